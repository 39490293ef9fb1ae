//! `Gallery` (one owner's gallery) and the filters and orders of `galleryFeed`.

use async_graphql::{Context, Enum, ID, InputObject, Object};
use uuid::Uuid;

use super::{
    Album, Character, Collection, Conn, Image, Newest, Res, character::character_wants, keyed,
    owner, page, seer,
};
use crate::{
    accounts::graphql::User,
    gallery::{
        StyleType,
        service::{self, FeedOrder, FeedRequest, TimeKey},
    },
    graphql::ContextExt,
};

/// One owner's gallery.
pub struct Gallery {
    pub(super) owner: Uuid,
}

/// One owner's gallery: their public albums, images and characters (the owner sees the
/// private ones too).
#[Object]
impl Gallery {
    /// The owner's user id: a stable key for client caches.
    async fn id(&self) -> ID {
        ID(self.owner.to_string())
    }

    /// Whose gallery this is.
    async fn owner(&self, ctx: &Context<'_>) -> Res<User> {
        owner(ctx, self.owner).await
    }

    /// Albums, newest first.
    async fn albums(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many items to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
    ) -> Res<Conn<Album>> {
        let (page, after) = page::<TimeKey>(first, after)?;
        let rows =
            service::owner_albums(ctx.state()?, self.owner, seer(ctx), after, page.limit()).await?;
        Ok(keyed(&page, rows, Album, Album::newest))
    }

    /// Images, newest first.
    async fn images(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many items to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
    ) -> Res<Conn<Image>> {
        let (page, after) = page::<TimeKey>(first, after)?;
        let rows =
            service::owner_images(ctx.state()?, self.owner, seer(ctx), after, page.limit()).await?;
        Ok(keyed(&page, rows, Image::new, Image::newest))
    }

    /// Characters, newest first.
    async fn characters(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many items to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
    ) -> Res<Conn<Character>> {
        let (page, after) = page::<TimeKey>(first, after)?;
        let wants = character_wants(ctx);
        let rows = service::owner_characters(
            ctx.state()?,
            self.owner,
            seer(ctx),
            after,
            page.limit(),
            &wants,
        )
        .await?;
        Ok(keyed(&page, rows, Character::planned, Character::newest))
    }

    /// Collections, newest first.
    async fn collections(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many items to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
    ) -> Res<Conn<Collection>> {
        let (page, after) = page::<TimeKey>(first, after)?;
        let rows =
            service::owner_collections(ctx.state()?, self.owner, seer(ctx), after, page.limit())
                .await?;
        Ok(keyed(&page, rows, Collection, Collection::newest))
    }
}

/// Orders of the showcase feed.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum GalleryOrder {
    /// Newest first.
    Newest,
    /// Most liked first.
    MostLiked,
    /// Most viewed first.
    MostViewed,
}

/// Filters of `galleryFeed`.
#[derive(InputObject, Default)]
pub struct GalleryFilter {
    /// Only this style.
    style_type: Option<StyleType>,
    /// Only characters carrying every one of these tags.
    tags: Option<Vec<String>>,
    /// `true`: only featured characters; `false`: only others.
    featured: Option<bool>,
    /// Featured characters first, then the rest (each part in the chosen order).
    featured_first: Option<bool>,
    /// Text found in the name or description (case-insensitive).
    search: Option<String>,
}

impl From<GalleryOrder> for FeedOrder {
    fn from(order: GalleryOrder) -> Self {
        match order {
            GalleryOrder::Newest => FeedOrder::Newest,
            GalleryOrder::MostLiked => FeedOrder::MostLiked,
            GalleryOrder::MostViewed => FeedOrder::MostViewed,
        }
    }
}

impl GalleryFilter {
    /// What the service takes: the filters and the order.
    pub(super) fn into_request(self, order: GalleryOrder) -> FeedRequest {
        FeedRequest {
            style_type: self.style_type,
            tags: self.tags.unwrap_or_default(),
            featured: self.featured,
            search: self.search,
            order: order.into(),
            featured_first: self.featured_first.unwrap_or(false),
        }
    }
}
