//! `Gallery` (one owner's gallery) and the filters and orders of `galleryFeed`.

use async_graphql::{Context, Enum, InputObject, Object};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Album, Character, Collection, Conn, Image, Res, conn_of, owner, page, seer};
use crate::{
    accounts::graphql::User,
    db,
    error::AppError,
    gallery::{StyleType, model},
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
    /// Whose gallery this is.
    async fn owner(&self, ctx: &Context<'_>) -> Res<User> {
        owner(ctx, self.owner).await
    }

    /// Albums, newest first.
    async fn albums(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Res<Conn<Album>> {
        let (page, key) = page::<(DateTime<Utc>, Uuid)>(first, after)?;
        let mut conn = db::conn(&ctx.state()?.pool).await?;
        let rows = model::owner_albums(&mut conn, self.owner, seer(ctx), key, page.limit())
            .await
            .map_err(AppError::from)?;
        Ok(conn_of(&page, rows, |a| (a.created_at, a.id), Album))
    }

    /// Images, newest first.
    async fn images(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Res<Conn<Image>> {
        let (page, key) = page::<(DateTime<Utc>, Uuid)>(first, after)?;
        let mut conn = db::conn(&ctx.state()?.pool).await?;
        let rows = model::owner_images(&mut conn, self.owner, seer(ctx), key, page.limit())
            .await
            .map_err(AppError::from)?;
        Ok(conn_of(&page, rows, |i| (i.created_at, i.id), Image))
    }

    /// Characters, newest first.
    async fn characters(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Res<Conn<Character>> {
        let (page, key) = page::<(DateTime<Utc>, Uuid)>(first, after)?;
        let mut conn = db::conn(&ctx.state()?.pool).await?;
        let rows = model::owner_characters(&mut conn, self.owner, seer(ctx), key, page.limit())
            .await
            .map_err(AppError::from)?;
        Ok(conn_of(&page, rows, |c| (c.created_at, c.id), Character))
    }

    /// Collections, newest first.
    async fn collections(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Res<Conn<Collection>> {
        let (page, key) = page::<(DateTime<Utc>, Uuid)>(first, after)?;
        let mut conn = db::conn(&ctx.state()?.pool).await?;
        let rows = model::owner_collections(&mut conn, self.owner, seer(ctx), key, page.limit())
            .await
            .map_err(AppError::from)?;
        Ok(conn_of(&page, rows, |c| (c.created_at, c.id), Collection))
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
    pub(super) style_type: Option<StyleType>,
    /// Only characters carrying every one of these tags.
    pub(super) tags: Option<Vec<String>>,
    /// `true`: only featured characters; `false`: only others.
    pub(super) featured: Option<bool>,
    /// Featured characters first, then the rest (each part in the chosen order).
    pub(super) featured_first: Option<bool>,
    /// Text found in the name or description (case-insensitive).
    pub(super) search: Option<String>,
}
