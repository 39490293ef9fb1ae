//! `Album` and the input of `createAlbum` and `updateAlbum`.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object};
use chrono::{DateTime, Utc};

use super::{
    Conn, Image, Res, image::image_wants, in_order, maybe, maybe_id, owner, page, seer,
    visible_image,
};
use crate::{
    accounts::graphql::User,
    error::AppError,
    gallery::service::{self, AlbumInput, AlbumRow, OrderKey},
    graphql::ContextExt,
};

/// A vendor's album of images.
pub struct Album(pub AlbumRow);

/// A vendor's album of images (seed 001).
#[Object]
impl Album {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Name, 1 to 200 characters.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Free description.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// Whether everyone may see the album (its private images stay hidden).
    async fn is_public(&self) -> bool {
        self.0.is_public
    }

    /// Images in the album.
    async fn image_count(&self) -> i64 {
        i64::from(self.0.image_count)
    }

    /// The cover picture, when the viewer may see it.
    async fn cover_image(&self, ctx: &Context<'_>) -> Res<Option<Image>> {
        visible_image(ctx, self.0.cover_image_id).await
    }

    /// The vendor who owns the album.
    async fn owner(&self, ctx: &Context<'_>) -> Res<User> {
        owner(ctx, self.0.owner_id).await
    }

    /// The images the viewer may see, in album order.
    async fn images(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many items to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
    ) -> Res<Conn<Image>> {
        let (page, after) = page::<OrderKey>(first, after)?;
        let wants = image_wants(ctx);
        let rows = service::album_images(
            ctx.state()?,
            self.0.id,
            seer(ctx),
            after,
            page.limit(),
            &wants,
        )
        .await?;
        Ok(in_order(&page, rows, Image::planned, |i| i.0.id))
    }

    /// When the album was made.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Input of `createAlbum` and `updateAlbum` (omitted fields stay on update).
#[derive(InputObject)]
pub struct AlbumFields {
    /// 1 to 200 characters (required to create).
    name: Option<String>,
    /// Up to 2000 characters.
    description: MaybeUndefined<String>,
    /// One of your images.
    cover_image_id: MaybeUndefined<ID>,
    /// Default false.
    is_public: Option<bool>,
}

impl AlbumFields {
    pub(super) fn into_input(self) -> Result<AlbumInput, AppError> {
        Ok(AlbumInput {
            name: self.name,
            description: maybe(self.description),
            cover_image_id: maybe_id(self.cover_image_id, "input.coverImageId")?,
            is_public: self.is_public,
        })
    }
}
