//! `Image` and the input of `uploadImage`.

use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, Utc};

use super::{Res, owner};
use crate::{
    accounts::graphql::User,
    gallery::{
        ImageKind,
        service::{ImageExtras, ImageRow, ImageWants, PlannedImage},
    },
    graphql::{ContextExt, plan::Nodes},
};

/// A stored image. Private images are seen by their owner only.
pub struct Image(pub ImageRow, pub Option<Box<ImageExtras>>);

impl Image {
    /// An image whose owner loads through the dataloader.
    pub fn new(row: ImageRow) -> Self {
        Image(row, None)
    }

    /// An image of a planned page.
    pub fn planned((row, extras): PlannedImage) -> Self {
        Image(row, extras)
    }
}

/// What the nodes of an image page the resolving field returns need.
pub(super) fn image_wants(ctx: &Context<'_>) -> ImageWants {
    ImageWants {
        owner: Nodes::of_connection(ctx).has("owner"),
    }
}

/// An image: an upload, a generation result or a vendor's picture.
#[Object]
impl Image {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Where the full image is served (a long-cached, immutable URL).
    async fn url(&self, ctx: &Context<'_>) -> Res<String> {
        Ok(ctx.state()?.media.url(&self.0.storage_key))
    }

    /// A small preview (at most `EASEL_THUMBNAIL_SIDE` pixels on its longest side).
    async fn thumbnail_url(&self, ctx: &Context<'_>) -> Res<Option<String>> {
        let media = &ctx.state()?.media;
        Ok(self.0.thumbnail_key.as_deref().map(|k| media.url(k)))
    }

    /// Width in pixels.
    async fn width(&self) -> Option<i32> {
        self.0.width
    }

    /// Height in pixels.
    async fn height(&self) -> Option<i32> {
        self.0.height
    }

    /// `image/png`, `image/jpeg` or `image/webp` (from the file's content, not its name).
    async fn mime_type(&self) -> &str {
        &self.0.mime_type
    }

    /// Size of the original file in bytes.
    async fn byte_size(&self) -> i64 {
        self.0.byte_size
    }

    /// Where the image came from.
    async fn kind(&self) -> ImageKind {
        self.0.kind
    }

    /// Whether everyone may see the image.
    async fn is_public(&self) -> bool {
        self.0.is_public
    }

    /// Lower-case tags.
    async fn tags(&self) -> &[String] {
        &self.0.tags
    }

    /// Who owns the image.
    async fn owner(&self, ctx: &Context<'_>) -> Res<User> {
        if let Some(user) = self.1.as_ref().and_then(|p| p.owner.as_ref()) {
            return Ok(User::new(user.clone()));
        }
        owner(ctx, self.0.owner_id).await
    }

    /// When the image was stored.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Input of `uploadImage`.
#[derive(InputObject, Default)]
pub struct UploadImageInput {
    /// Whether everyone may see the image (default false).
    pub(super) is_public: Option<bool>,
    /// Up to 20 tags.
    pub(super) tags: Option<Vec<String>>,
}
