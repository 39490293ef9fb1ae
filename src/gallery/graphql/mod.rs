//! The gallery's GraphQL API, one file per type: [`Image`], [`Character`], [`Collection`],
//! [`Album`] and [`Gallery`] (each with its inputs), and here the root fields
//! ([`GalleryQuery`], [`GalleryMutation`]) and the helpers the types share.

mod album;
mod character;
mod collection;
mod gallery;
mod image;

pub use album::{Album, AlbumFields};
pub use character::{Character, CreateCharacterInput, GenerationInput, UpdateCharacterInput};
pub use collection::{Collection, CollectionFields};
pub use gallery::{Gallery, GalleryFilter, GalleryOrder};
pub use image::{Image, UploadImageInput};

use async_graphql::{
    Context, ID, MaybeUndefined, Object, Upload,
    connection::{Connection, Edge, OpaqueCursor},
};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use super::{
    loaders::{GalleryLoader, ImageId},
    model::{self, FeedKey, FeedOrder, Seer},
    service,
};
use crate::{
    accounts::{
        Role,
        graphql::User,
        guards::{Authenticated, HasRole, require_user},
        loaders::{AccountsLoader, UserId},
        service::RequestMeta,
    },
    db,
    error::AppError,
    graphql::{ContextExt, pagination::Page, parse_id},
};

/// Every gallery list: a Relay connection with an opaque keyset cursor.
pub type Conn<N> = Connection<OpaqueCursor<serde_json::Value>, N>;

type Res<T> = async_graphql::Result<T>;

/// Validates `first`/`after` and decodes the cursor into this list's sort key.
fn page<K: DeserializeOwned>(
    first: Option<i32>,
    after: Option<String>,
) -> Result<(Page<serde_json::Value>, Option<K>), AppError> {
    let page = Page::<serde_json::Value>::new(first, after)?;
    let key = page
        .after
        .clone()
        .map(|v| {
            serde_json::from_value::<K>(v)
                .map_err(|_| AppError::bad_input("after", "after is not a cursor from this list"))
        })
        .transpose()?;
    Ok((page, key))
}

fn conn_of<R, N, K: Serialize>(
    page: &Page<serde_json::Value>,
    mut rows: Vec<R>,
    key: impl Fn(&R) -> K,
    node: impl Fn(R) -> N,
) -> Conn<N>
where
    N: async_graphql::OutputType,
{
    let has_next = rows.len() as i64 > page.first;
    rows.truncate(page.first as usize);
    let mut out = Connection::new(page.after.is_some(), has_next);
    out.edges.extend(rows.into_iter().map(|r| {
        let cursor = OpaqueCursor(serde_json::to_value(key(&r)).unwrap_or_default());
        Edge::new(cursor, node(r))
    }));
    out
}

fn parse_ids(ids: &[ID], field: &str) -> Result<Vec<Uuid>, AppError> {
    ids.iter().map(|i| parse_id(i, field)).collect()
}

/// Who is looking, for privacy filters.
fn seer(ctx: &Context<'_>) -> Seer {
    match ctx.viewer().user() {
        Some(u) => service::seer_of(u),
        None => Seer::default(),
    }
}

fn maybe<T>(v: MaybeUndefined<T>) -> Option<Option<T>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(s) => Some(Some(s)),
    }
}

fn maybe_id(v: MaybeUndefined<ID>, field: &str) -> Result<Option<Option<Uuid>>, AppError> {
    maybe(v)
        .map(|o| o.map(|id| parse_id(&id, field)).transpose())
        .transpose()
}

async fn owner(ctx: &Context<'_>, id: Uuid) -> Res<User> {
    ctx.loader::<AccountsLoader>()?
        .load_one(UserId(id))
        .await?
        .map(User::new)
        .ok_or_else(|| AppError::NotFound("user").into())
}

async fn visible_image(ctx: &Context<'_>, id: Option<Uuid>) -> Res<Option<Image>> {
    let Some(id) = id else { return Ok(None) };
    let s = seer(ctx);
    Ok(ctx
        .loader::<GalleryLoader>()?
        .load_one(ImageId(id))
        .await?
        .filter(|i| s.sees(i.owner_id, i.is_public))
        .map(Image))
}

// ---- roots ------------------------------------------------------------------------------

/// Gallery queries.
#[derive(Default)]
pub struct GalleryQuery;

#[Object]
impl GalleryQuery {
    /// One owner's gallery by user id or username (give exactly one). Null when there is no
    /// such user, or their profile is private or their account not active (the owner and
    /// admins still see it).
    async fn gallery(
        &self,
        ctx: &Context<'_>,
        owner: Option<ID>,
        username: Option<String>,
    ) -> Res<Option<Gallery>> {
        let row = match (owner, username) {
            (Some(id), None) => {
                let id = parse_id(&id, "owner")?;
                ctx.loader::<AccountsLoader>()?.load_one(UserId(id)).await?
            }
            (None, Some(name)) => {
                if name.len() > 30 {
                    return Ok(None);
                }
                let mut conn = db::conn(&ctx.state()?.pool).await?;
                crate::accounts::model::user_by_username(&mut conn, &name)
                    .await
                    .map_err(AppError::from)?
            }
            _ => {
                return Err(AppError::bad_input(
                    "owner",
                    "give exactly one of `owner` and `username`",
                )
                .into());
            }
        };
        Ok(row
            .filter(|u| User::profile_visible_to(u, ctx.viewer()))
            .map(|u| Gallery { owner: u.id }))
    }

    /// The public showcase: public characters of owners who allow showcasing.
    async fn gallery_feed(
        &self,
        ctx: &Context<'_>,
        filter: Option<GalleryFilter>,
        #[graphql(default_with = "Some(GalleryOrder::Newest)")] order_by: Option<GalleryOrder>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Res<Conn<Character>> {
        let filter = filter.unwrap_or_default();
        let order = match order_by.unwrap_or(GalleryOrder::Newest) {
            GalleryOrder::Newest => FeedOrder::Newest,
            GalleryOrder::MostLiked => FeedOrder::MostLiked,
            GalleryOrder::MostViewed => FeedOrder::MostViewed,
        };
        let featured_first = filter.featured_first.unwrap_or(false);
        let (page, key) = page::<FeedKey>(first, after)?;
        if key.as_ref().is_some_and(|k| !k.fits(order, featured_first)) {
            return Err(AppError::bad_input("after", "after is a cursor of another order").into());
        }
        let search = filter
            .search
            .as_deref()
            .map(|s| service::text(s, "filter.search", 0, 100))
            .transpose()?
            .filter(|s| !s.is_empty());
        let feed_filter = model::FeedFilter {
            style_type: filter.style_type,
            tags: service::tags(&filter.tags.unwrap_or_default(), "filter.tags")?,
            featured: filter.featured,
            search,
        };
        let mut conn = db::conn(&ctx.state()?.pool).await?;
        let rows = model::feed(
            &mut conn,
            &feed_filter,
            order,
            featured_first,
            key.as_ref(),
            page.limit(),
        )
        .await
        .map_err(AppError::from)?;
        Ok(conn_of(
            &page,
            rows,
            |c| FeedKey::of(c, order, featured_first),
            Character,
        ))
    }

    /// A character, or null when there is none the viewer may see. Counts a view when
    /// someone other than the owner looks: at most one per viewer (the signed-in user, else
    /// the client address) and character per `EASEL_VIEW_WINDOW_SECS` (default an hour),
    /// however many times it is asked for.
    async fn character(&self, ctx: &Context<'_>, id: ID) -> Res<Option<Character>> {
        let id = parse_id(&id, "id")?;
        let ip = ctx.data_opt::<RequestMeta>().and_then(|m| m.ip);
        let viewer = service::viewer_key(ctx.viewer().user_id(), ip);
        Ok(
            service::view_character(ctx.state()?, seer(ctx), &viewer, id)
                .await?
                .map(Character),
        )
    }

    /// A collection, or null when there is none the viewer may see.
    async fn collection(&self, ctx: &Context<'_>, id: ID) -> Res<Option<Collection>> {
        let id = parse_id(&id, "id")?;
        let mut conn = db::conn(&ctx.state()?.pool).await?;
        let s = seer(ctx);
        Ok(model::collection_by_id(&mut conn, id)
            .await
            .map_err(AppError::from)?
            .filter(|c| s.sees(c.owner_id, c.is_public))
            .map(Collection))
    }

    /// An album, or null when there is none the viewer may see.
    async fn album(&self, ctx: &Context<'_>, id: ID) -> Res<Option<Album>> {
        let id = parse_id(&id, "id")?;
        let mut conn = db::conn(&ctx.state()?.pool).await?;
        let s = seer(ctx);
        Ok(model::album_by_id(&mut conn, id)
            .await
            .map_err(AppError::from)?
            .filter(|a| s.sees(a.owner_id, a.is_public))
            .map(Album))
    }

    /// An image, or null when there is none the viewer may see.
    async fn image(&self, ctx: &Context<'_>, id: ID) -> Res<Option<Image>> {
        let id = parse_id(&id, "id")?;
        visible_image(ctx, Some(id)).await
    }
}

/// Gallery mutations.
#[derive(Default)]
pub struct GalleryMutation;

#[Object]
impl GalleryMutation {
    /// Uploads a PNG, JPEG or WebP image as a GraphQL multipart request (the spec
    /// apollo-upload-client and urql follow). Browsers must send an `apollo-require-preflight`
    /// or `x-easel-csrf` header with it (CSRF protection). Images over the server's limits
    /// (file size, pixels on a side, and decoded size: width × height × bytes per pixel) are
    /// refused with `BAD_USER_INPUT` on `file`, a message naming the limit; too many uploads
    /// in an hour answer `RATE_LIMITED` with `retryAfterSeconds`.
    #[graphql(guard = "Authenticated")]
    async fn upload_image(
        &self,
        ctx: &Context<'_>,
        file: Upload,
        input: Option<UploadImageInput>,
    ) -> Res<Image> {
        let user = require_user(ctx)?;
        let input = input.unwrap_or_default();
        let value = file
            .value(ctx)
            .map_err(|_| AppError::bad_input("file", "no file"))?;
        let bytes = tokio::task::spawn_blocking(move || {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut value.into_read(), &mut bytes).map(|_| bytes)
        })
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)?;
        let row = service::upload_image(
            ctx.state()?,
            user,
            bytes,
            input.is_public.unwrap_or(false),
            &input.tags.unwrap_or_default(),
        )
        .await?;
        Ok(Image(row))
    }

    /// Creates a character (a variant when `parentCharacterId` names one of yours).
    #[graphql(guard = "Authenticated")]
    async fn create_character(
        &self,
        ctx: &Context<'_>,
        input: CreateCharacterInput,
    ) -> Res<Character> {
        let user = require_user(ctx)?;
        let row = service::create_character(ctx.state()?, user, input.into_input()?).await?;
        Ok(Character(row))
    }

    /// Changes one of your characters.
    #[graphql(guard = "Authenticated")]
    async fn update_character(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateCharacterInput,
    ) -> Res<Character> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        let changes = input.into_changes()?;
        Ok(Character(
            service::update_character(ctx.state()?, user, id, changes).await?,
        ))
    }

    /// Deletes one of your characters (it leaves every collection holding it).
    #[graphql(guard = "Authenticated")]
    async fn delete_character(&self, ctx: &Context<'_>, id: ID) -> Res<bool> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(service::delete_character(ctx.state()?, user, id).await?)
    }

    /// Publishes one of your characters: it becomes public (with its images) and gets its
    /// `publishedAt`.
    #[graphql(guard = "Authenticated")]
    async fn publish_character(&self, ctx: &Context<'_>, id: ID) -> Res<Character> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(Character(
            service::publish_character(ctx.state()?, user, id).await?,
        ))
    }

    /// Likes a character (liking twice counts once).
    #[graphql(guard = "Authenticated")]
    async fn like_character(&self, ctx: &Context<'_>, id: ID) -> Res<Character> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(Character(
            service::like(ctx.state()?, user, id, true).await?,
        ))
    }

    /// Takes back a like (no-op without one).
    #[graphql(guard = "Authenticated")]
    async fn unlike_character(&self, ctx: &Context<'_>, id: ID) -> Res<Character> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(Character(
            service::like(ctx.state()?, user, id, false).await?,
        ))
    }

    /// Rates a character 1 to 5, with an optional review; rating again replaces yours.
    #[graphql(guard = "Authenticated")]
    async fn rate_character(
        &self,
        ctx: &Context<'_>,
        id: ID,
        rating: i32,
        review: Option<String>,
    ) -> Res<Character> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(Character(
            service::rate(ctx.state()?, user, id, rating, review.as_deref()).await?,
        ))
    }

    /// Creates a collection.
    #[graphql(guard = "Authenticated")]
    async fn create_collection(
        &self,
        ctx: &Context<'_>,
        input: CollectionFields,
    ) -> Res<Collection> {
        let user = require_user(ctx)?;
        Ok(Collection(
            service::create_collection(ctx.state()?, user, input.into_input()?).await?,
        ))
    }

    /// Changes one of your collections.
    #[graphql(guard = "Authenticated")]
    async fn update_collection(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: CollectionFields,
    ) -> Res<Collection> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(Collection(
            service::update_collection(ctx.state()?, user, id, input.into_input()?).await?,
        ))
    }

    /// Deletes one of your collections (the characters stay).
    #[graphql(guard = "Authenticated")]
    async fn delete_collection(&self, ctx: &Context<'_>, id: ID) -> Res<bool> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(service::delete_collection(ctx.state()?, user, id).await?)
    }

    /// Appends characters you may see to one of your collections (ones already in it stay
    /// where they are).
    #[graphql(guard = "Authenticated")]
    async fn add_to_collection(
        &self,
        ctx: &Context<'_>,
        collection_id: ID,
        character_ids: Vec<ID>,
    ) -> Res<Collection> {
        let user = require_user(ctx)?;
        let id = parse_id(&collection_id, "collectionId")?;
        let chars = parse_ids(&character_ids, "characterIds")?;
        Ok(Collection(
            service::add_to_collection(ctx.state()?, user, id, &chars).await?,
        ))
    }

    /// Takes characters out of one of your collections.
    #[graphql(guard = "Authenticated")]
    async fn remove_from_collection(
        &self,
        ctx: &Context<'_>,
        collection_id: ID,
        character_ids: Vec<ID>,
    ) -> Res<Collection> {
        let user = require_user(ctx)?;
        let id = parse_id(&collection_id, "collectionId")?;
        let chars = parse_ids(&character_ids, "characterIds")?;
        Ok(Collection(
            service::remove_from_collection(ctx.state()?, user, id, &chars).await?,
        ))
    }

    /// Puts the characters of one of your collections in a new order (list each once).
    #[graphql(guard = "Authenticated")]
    async fn reorder_collection(
        &self,
        ctx: &Context<'_>,
        collection_id: ID,
        character_ids: Vec<ID>,
    ) -> Res<Collection> {
        let user = require_user(ctx)?;
        let id = parse_id(&collection_id, "collectionId")?;
        let order = parse_ids(&character_ids, "characterIds")?;
        Ok(Collection(
            service::reorder_collection(ctx.state()?, user, id, &order).await?,
        ))
    }

    /// Vendors: creates an album.
    #[graphql(guard = "HasRole(Role::Vendor)")]
    async fn create_album(&self, ctx: &Context<'_>, input: AlbumFields) -> Res<Album> {
        let user = require_user(ctx)?;
        Ok(Album(
            service::create_album(ctx.state()?, user, input.into_input()?).await?,
        ))
    }

    /// Vendors: changes one of your albums.
    #[graphql(guard = "HasRole(Role::Vendor)")]
    async fn update_album(&self, ctx: &Context<'_>, id: ID, input: AlbumFields) -> Res<Album> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(Album(
            service::update_album(ctx.state()?, user, id, input.into_input()?).await?,
        ))
    }

    /// Vendors: deletes one of your albums (the images stay).
    #[graphql(guard = "HasRole(Role::Vendor)")]
    async fn delete_album(&self, ctx: &Context<'_>, id: ID) -> Res<bool> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(service::delete_album(ctx.state()?, user, id).await?)
    }

    /// Vendors: appends your images to one of your albums. Without a running plan each new
    /// image uses one of `freeGalleryRemaining`; when too few remain nothing is added.
    #[graphql(guard = "HasRole(Role::Vendor)")]
    async fn add_images_to_album(
        &self,
        ctx: &Context<'_>,
        album_id: ID,
        image_ids: Vec<ID>,
    ) -> Res<Album> {
        let user = require_user(ctx)?;
        let id = parse_id(&album_id, "albumId")?;
        let images = parse_ids(&image_ids, "imageIds")?;
        Ok(Album(
            service::add_images_to_album(ctx.state()?, user, id, &images).await?,
        ))
    }

    /// Vendors: takes images out of one of your albums.
    #[graphql(guard = "HasRole(Role::Vendor)")]
    async fn remove_images_from_album(
        &self,
        ctx: &Context<'_>,
        album_id: ID,
        image_ids: Vec<ID>,
    ) -> Res<Album> {
        let user = require_user(ctx)?;
        let id = parse_id(&album_id, "albumId")?;
        let images = parse_ids(&image_ids, "imageIds")?;
        Ok(Album(
            service::remove_images_from_album(ctx.state()?, user, id, &images).await?,
        ))
    }

    /// Vendors: puts the images of one of your albums in a new order (list each once).
    #[graphql(guard = "HasRole(Role::Vendor)")]
    async fn reorder_album(
        &self,
        ctx: &Context<'_>,
        album_id: ID,
        image_ids: Vec<ID>,
    ) -> Res<Album> {
        let user = require_user(ctx)?;
        let id = parse_id(&album_id, "albumId")?;
        let order = parse_ids(&image_ids, "imageIds")?;
        Ok(Album(
            service::reorder_album(ctx.state()?, user, id, &order).await?,
        ))
    }
}
