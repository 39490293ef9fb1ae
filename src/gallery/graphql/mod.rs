//! The gallery's GraphQL API, one file per type: [`Image`], [`Character`], [`Collection`],
//! [`Album`] and [`Gallery`] (each with its inputs), and here the root fields
//! ([`GalleryQuery`], [`GalleryMutation`]) and the helpers the types share.

mod album;
mod character;
mod collection;
mod gallery;
mod image;
mod image_edit;
mod social;

pub use album::{Album, AlbumFields};
pub use character::{Character, CreateCharacterInput, GenerationInput, UpdateCharacterInput};
pub use collection::{Collection, CollectionFields};
pub use gallery::{Gallery, GalleryFilter, GalleryOrder};
pub use image::{Image, UploadImageInput};
pub use image_edit::{ImageMutation, UpdateImageInput};
pub use social::{LikesQuery, Review};

use std::collections::HashMap;

use async_graphql::{
    Context, ID, MaybeUndefined, Object, OutputType, Upload,
    connection::{Connection, OpaqueCursor},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    loaders::{GalleryLoader, ImageId},
    service::{self, FeedKey, OrderKey, Seer, TimeKey},
};
use crate::{
    accounts::{
        Role,
        graphql::User,
        guards::{Authenticated, HasRole, require_user},
        loaders::{AccountsLoader, UserId},
        service::RequestMeta,
    },
    error::AppError,
    graphql::{
        ContextExt,
        pagination::{Page, connection},
        parse_id,
    },
};

/// The cursor of every gallery list: the sort key of a row, tagged with the kind of list
/// it belongs to. One type serves all the lists because a connection type (`ImageConnection`,
/// `CharacterConnection`) has one cursor type whatever list it pages; [`page`] checks the
/// tag, so a cursor of one kind of list fed to another is refused (`BAD_USER_INPUT` on
/// `after`), and each resolver gets its list's own typed key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ListKey {
    /// A newest-first list.
    #[serde(rename = "t")]
    Time(TimeKey),
    /// A list in its own order (members by position, variants by version).
    #[serde(rename = "o")]
    Order(OrderKey),
    /// The showcase feed (whose key also names its order).
    #[serde(rename = "f")]
    Feed(FeedKey),
}

/// A sort key of one kind of list.
trait Key: Sized {
    fn into_list_key(self) -> ListKey;
    fn from_list_key(key: ListKey) -> Option<Self>;
}

macro_rules! list_keys {
    ($($key:ty => $variant:ident),+ $(,)?) => {$(
        impl Key for $key {
            fn into_list_key(self) -> ListKey {
                ListKey::$variant(self)
            }
            fn from_list_key(key: ListKey) -> Option<Self> {
                match key {
                    ListKey::$variant(k) => Some(k),
                    _ => None,
                }
            }
        }
    )+};
}

list_keys!(TimeKey => Time, OrderKey => Order, FeedKey => Feed);

/// A page of a gallery list: a Relay connection with an opaque keyset cursor.
pub type Conn<N> = Connection<OpaqueCursor<ListKey>, N>;

type Res<T> = async_graphql::Result<T>;

/// Validates `first`/`after` of a list keyed by `K`; returns the page and `after` as a `K`.
fn page<K: Key>(
    first: Option<i32>,
    after: Option<String>,
) -> Result<(Page<ListKey>, Option<K>), AppError> {
    let page = Page::<ListKey>::new(first, after)?;
    let after = page
        .after
        .clone()
        .map(|k| {
            K::from_list_key(k)
                .ok_or_else(|| AppError::bad_input("after", "after is not a cursor from this list"))
        })
        .transpose()?;
    Ok((page, after))
}

/// The connection of up to `page.limit()` rows in list order, made nodes by `node`; `key`
/// gives each node's sort key in this list, which becomes its cursor.
fn keyed<R, N: OutputType, K: Key>(
    page: &Page<ListKey>,
    rows: Vec<R>,
    node: impl FnMut(R) -> N,
    key: impl Fn(&N) -> K,
) -> Conn<N> {
    let nodes = rows.into_iter().map(node).collect();
    connection(page, nodes, |n| key(n).into_list_key())
}

/// Nodes of newest-first lists, keyed by `(created_at, id)`.
trait Newest {
    fn newest(&self) -> TimeKey;
}

macro_rules! newest {
    ($($node:ident),+) => {$(
        impl Newest for $node {
            fn newest(&self) -> TimeKey {
                (self.0.created_at, self.0.id)
            }
        }
    )+};
}

newest!(Album, Character, Collection, Image);

/// [`keyed`] for an ordered list (a collection's characters, an album's images): the key of
/// a member is its `(position, id)` in the list, which the node itself does not carry.
fn in_order<R, N: OutputType>(
    page: &Page<ListKey>,
    rows: Vec<(i32, R)>,
    node: impl Fn(R) -> N,
    id: impl Fn(&N) -> Uuid,
) -> Conn<N> {
    let nodes: Vec<(i32, N)> = rows.into_iter().map(|(p, r)| (p, node(r))).collect();
    let positions: HashMap<Uuid, i32> = nodes.iter().map(|(p, n)| (id(n), *p)).collect();
    keyed(
        page,
        nodes,
        |(_, n)| n,
        |n| {
            let id = id(n);
            (positions.get(&id).copied().unwrap_or_default(), id)
        },
    )
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
        .map(Image::new))
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
        #[graphql(desc = "The owner's user id (give `owner` or `username`, not both).")]
        owner: Option<ID>,
        #[graphql(desc = "The owner's username (give `owner` or `username`, not both).")]
        username: Option<String>,
    ) -> Res<Option<Gallery>> {
        let row = match (owner, username) {
            (Some(id), None) => {
                let id = parse_id(&id, "owner")?;
                crate::accounts::service::user_by_id(ctx.state()?, id).await?
            }
            (None, Some(name)) => {
                if name.len() > 30 {
                    return Ok(None);
                }
                crate::accounts::service::user_by_username(ctx.state()?, &name).await?
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
        #[graphql(desc = "Only characters matching this filter.")] filter: Option<GalleryFilter>,
        #[graphql(
            desc = "The order of the feed (default NEWEST).",
            default_with = "Some(GalleryOrder::Newest)"
        )]
        order_by: Option<GalleryOrder>,
        #[graphql(desc = "How many items to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
    ) -> Res<Conn<Character>> {
        let request = filter
            .unwrap_or_default()
            .into_request(order_by.unwrap_or(GalleryOrder::Newest));
        let (page, after) = page::<FeedKey>(first, after)?;
        let wants = character::character_wants(ctx);
        let rows = service::feed(
            ctx.state()?,
            &request,
            after.as_ref(),
            page.limit(),
            &wants,
            seer(ctx),
        )
        .await?;
        Ok(keyed(&page, rows, Character::planned, |c| {
            FeedKey::of(&c.0, request.order, request.featured_first)
        }))
    }

    /// A character, or null when there is none the viewer may see. Counts a view when
    /// someone other than the owner looks: at most one per viewer (the signed-in user, else
    /// the client address) and character per `EASEL_VIEW_WINDOW_SECS` (default an hour),
    /// however many times it is asked for.
    async fn character(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The character's id.")] id: ID,
    ) -> Res<Option<Character>> {
        let id = parse_id(&id, "id")?;
        let ip = ctx.data_opt::<RequestMeta>().and_then(|m| m.ip);
        let viewer = service::viewer_key(ctx.viewer().user_id(), ip);
        Ok(
            service::view_character(ctx.state()?, seer(ctx), &viewer, id)
                .await?
                .map(Character::new),
        )
    }

    /// A collection, or null when there is none the viewer may see.
    async fn collection(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The collection's id.")] id: ID,
    ) -> Res<Option<Collection>> {
        let id = parse_id(&id, "id")?;
        let row = service::collection(ctx.state()?, seer(ctx), id).await?;
        Ok(row.map(Collection))
    }

    /// An album, or null when there is none the viewer may see.
    async fn album(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The album's id.")] id: ID,
    ) -> Res<Option<Album>> {
        let id = parse_id(&id, "id")?;
        let row = service::album(ctx.state()?, seer(ctx), id).await?;
        Ok(row.map(Album))
    }

    /// An image, or null when there is none the viewer may see.
    async fn image(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The image's id.")] id: ID,
    ) -> Res<Option<Image>> {
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
        #[graphql(
            desc = "The image (PNG, JPEG, WebP or GIF), sent as a multipart file by the GraphQL multipart request spec."
        )]
        file: Upload,
        #[graphql(desc = "Optional settings of the upload (see the input type).")] input: Option<
            UploadImageInput,
        >,
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
        Ok(Image::new(row))
    }

    /// Creates a character (a variant when `parentCharacterId` names one of yours).
    #[graphql(guard = "Authenticated")]
    async fn create_character(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: CreateCharacterInput,
    ) -> Res<Character> {
        let user = require_user(ctx)?;
        let row = service::create_character(ctx.state()?, user, input.into_input()?).await?;
        Ok(Character::new(row))
    }

    /// Changes one of your characters.
    #[graphql(guard = "Authenticated")]
    async fn update_character(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "One of the viewer's characters (any character, for admins).")] id: ID,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: UpdateCharacterInput,
    ) -> Res<Character> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        let changes = input.into_changes()?;
        Ok(Character::new(
            service::update_character(ctx.state()?, user, id, changes).await?,
        ))
    }

    /// Deletes one of your characters (it leaves every collection holding it).
    #[graphql(guard = "Authenticated")]
    async fn delete_character(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "One of the viewer's characters (any character, for admins).")] id: ID,
    ) -> Res<bool> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(service::delete_character(ctx.state()?, user, id).await?)
    }

    /// Publishes one of your characters: it becomes public (with its images) and gets its
    /// `publishedAt`.
    #[graphql(guard = "Authenticated")]
    async fn publish_character(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "One of the viewer's characters.")] id: ID,
    ) -> Res<Character> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(Character::new(
            service::publish_character(ctx.state()?, user, id).await?,
        ))
    }

    /// Likes a character (liking twice counts once).
    #[graphql(guard = "Authenticated")]
    async fn like_character(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A character the viewer can see.")] id: ID,
    ) -> Res<Character> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(Character::new(
            service::like(ctx.state()?, user, id, true).await?,
        ))
    }

    /// Takes back a like (no-op without one).
    #[graphql(guard = "Authenticated")]
    async fn unlike_character(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A character the viewer liked.")] id: ID,
    ) -> Res<Character> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(Character::new(
            service::like(ctx.state()?, user, id, false).await?,
        ))
    }

    /// Rates a character 1 to 5, with an optional review; rating again replaces yours.
    #[graphql(guard = "Authenticated")]
    async fn rate_character(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A character the viewer can see.")] id: ID,
        #[graphql(desc = "1 to 5 stars; rating again replaces the viewer's earlier rating.")]
        rating: i32,
        #[graphql(desc = "Up to 2000 characters.")] review: Option<String>,
    ) -> Res<Character> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(Character::new(
            service::rate(ctx.state()?, user, id, rating, review.as_deref()).await?,
        ))
    }

    /// Creates a collection.
    #[graphql(guard = "Authenticated")]
    async fn create_collection(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
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
        #[graphql(desc = "One of the viewer's collections.")] id: ID,
        #[graphql(desc = "The fields of the request (see the input type).")]
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
    async fn delete_collection(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "One of the viewer's collections.")] id: ID,
    ) -> Res<bool> {
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
        #[graphql(desc = "One of the viewer's collections.")] collection_id: ID,
        #[graphql(desc = "Characters the viewer can see, appended in this order.")]
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
        #[graphql(desc = "One of the viewer's collections.")] collection_id: ID,
        #[graphql(desc = "Characters to take out; ones not in the collection are ignored.")]
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
        #[graphql(desc = "One of the viewer's collections.")] collection_id: ID,
        #[graphql(desc = "Every character of the collection exactly once, in the new order.")]
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
    async fn create_album(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")] input: AlbumFields,
    ) -> Res<Album> {
        let user = require_user(ctx)?;
        Ok(Album(
            service::create_album(ctx.state()?, user, input.into_input()?).await?,
        ))
    }

    /// Vendors: changes one of your albums.
    #[graphql(guard = "HasRole(Role::Vendor)")]
    async fn update_album(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "One of the viewer's albums.")] id: ID,
        #[graphql(desc = "The fields of the request (see the input type).")] input: AlbumFields,
    ) -> Res<Album> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(Album(
            service::update_album(ctx.state()?, user, id, input.into_input()?).await?,
        ))
    }

    /// Vendors: deletes one of your albums (the images stay).
    #[graphql(guard = "HasRole(Role::Vendor)")]
    async fn delete_album(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "One of the viewer's albums.")] id: ID,
    ) -> Res<bool> {
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
        #[graphql(desc = "One of the viewer's albums.")] album_id: ID,
        #[graphql(desc = "The viewer's own images, appended in this order.")] image_ids: Vec<ID>,
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
        #[graphql(desc = "One of the viewer's albums.")] album_id: ID,
        #[graphql(desc = "Images to take out; ones not in the album are ignored.")] image_ids: Vec<
            ID,
        >,
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
        #[graphql(desc = "One of the viewer's albums.")] album_id: ID,
        #[graphql(desc = "Every image of the album exactly once, in the new order.")]
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

#[cfg(test)]
mod tests {
    use async_graphql::connection::CursorType;
    use chrono::Utc;

    use super::*;

    fn refused<K: Key>(cursor: &str) -> bool {
        matches!(page::<K>(None, Some(cursor.into())),
            Err(AppError::BadUserInput { ref field, .. }) if field == "after")
    }

    #[test]
    fn a_cursor_of_one_kind_of_list_is_refused_by_another() {
        let id = Uuid::now_v7();
        let time = OpaqueCursor((Utc::now(), id).into_list_key()).encode_cursor();
        let order = OpaqueCursor((3, id).into_list_key()).encode_cursor();
        let feed = OpaqueCursor(
            FeedKey {
                featured: None,
                at: Some(Utc::now()),
                count: None,
                id,
            }
            .into_list_key(),
        )
        .encode_cursor();
        assert!(refused::<OrderKey>(&time) && refused::<FeedKey>(&time));
        assert!(refused::<TimeKey>(&order) && refused::<FeedKey>(&order));
        assert!(refused::<TimeKey>(&feed) && refused::<OrderKey>(&feed));
        assert!(refused::<TimeKey>("WzEsMl0") && refused::<TimeKey>("garbage"));
        let (_, after) = page::<OrderKey>(Some(5), Some(order)).unwrap();
        assert_eq!(after, Some((3, id)));
        assert!(page::<TimeKey>(None, Some(time)).unwrap().1.is_some());
        assert!(page::<FeedKey>(None, Some(feed)).unwrap().1.is_some());
    }

    #[test]
    fn members_of_an_ordered_list_page_by_position() {
        let ids = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
        let rows = vec![
            (4, ids[0].to_string()),
            (7, ids[1].to_string()),
            (9, ids[2].to_string()),
        ];
        let page = Page {
            first: 2,
            after: None,
        };
        let list = in_order(&page, rows, |n| n, |n| Uuid::parse_str(n).unwrap());
        assert!(list.has_next_page);
        let cursors: Vec<ListKey> = list.edges.iter().map(|e| e.cursor.0.clone()).collect();
        assert_eq!(
            cursors,
            [ListKey::Order((4, ids[0])), ListKey::Order((7, ids[1]))]
        );
    }
}
