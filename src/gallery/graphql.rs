//! GraphQL types and root fields of the gallery capability.

use async_graphql::{
    Context, Enum, ID, InputObject, MaybeUndefined, Object, Upload,
    connection::{Connection, Edge, OpaqueCursor},
};
use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use super::{
    CharacterStatus, ImageKind, LicenseType, StyleType, VariantType,
    loaders::{CharacterId, CharacterImages, ImageId, RatingOf, ViewerLiked},
    model::{self, AlbumRow, CharacterRow, CollectionRow, FeedKey, FeedOrder, ImageRow, Seer},
    service::{self, AlbumInput, CharacterChanges, CollectionInput, GenerationParams},
};
use crate::graphql::parse_id;
use crate::{
    accounts::{
        Role,
        graphql::User,
        guards::{Authenticated, HasRole, require_user},
        loaders::UserId,
        service::RequestMeta,
    },
    db,
    error::AppError,
    graphql::{ContextExt, pagination::Page},
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
    ctx.loader::<crate::accounts::loaders::AccountsLoader>()?
        .load_one(UserId(id))
        .await?
        .map(User::new)
        .ok_or_else(|| AppError::NotFound("user").into())
}

async fn visible_image(ctx: &Context<'_>, id: Option<Uuid>) -> Res<Option<Image>> {
    let Some(id) = id else { return Ok(None) };
    let s = seer(ctx);
    Ok(ctx
        .loader::<crate::gallery::loaders::GalleryLoader>()?
        .load_one(ImageId(id))
        .await?
        .filter(|i| s.sees(i.owner_id, i.is_public))
        .map(Image))
}

// ---- types ------------------------------------------------------------------------------

/// A stored image. Private images are seen by their owner only.
pub struct Image(pub ImageRow);

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
        owner(ctx, self.0.owner_id).await
    }

    /// When the image was stored.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A character (seed 003). Private characters are seen by their owner only.
pub struct Character(pub CharacterRow);

/// A character: a described, generated persona with its images, likes, ratings and variants.
#[Object]
impl Character {
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

    /// The generation prompt.
    async fn prompt(&self) -> &str {
        &self.0.prompt
    }

    /// What the generation should avoid.
    async fn negative_prompt(&self) -> Option<&str> {
        self.0.negative_prompt.as_deref()
    }

    /// Visual style.
    async fn style_type(&self) -> StyleType {
        self.0.style_type
    }

    /// Free-form art style (e.g. `watercolor`).
    async fn art_style(&self) -> Option<&str> {
        self.0.art_style.as_deref()
    }

    /// Mood (e.g. `cheerful`).
    async fn mood(&self) -> Option<&str> {
        self.0.mood.as_deref()
    }

    /// Colours as `#RRGGBB`.
    async fn color_palette(&self) -> &[String] {
        &self.0.color_palette
    }

    /// Model version used for generation.
    async fn model_version(&self) -> &str {
        &self.0.model_version
    }

    /// Generation seed.
    async fn seed(&self) -> Option<i64> {
        self.0.seed
    }

    /// Classifier-free guidance scale, 1.0 to 30.0.
    async fn cfg_scale(&self) -> f64 {
        f64::from(self.0.cfg_scale.0) / 10.0
    }

    /// Sampling steps, 1 to 150.
    async fn steps(&self) -> i32 {
        self.0.steps
    }

    /// Sampler name.
    async fn sampler(&self) -> &str {
        &self.0.sampler
    }

    /// Where the character's generation stands.
    async fn status(&self) -> CharacterStatus {
        self.0.status
    }

    /// Whether everyone may see the character.
    async fn is_public(&self) -> bool {
        self.0.is_public
    }

    /// Whether Easel features the character in the showcase.
    async fn is_featured(&self) -> bool {
        self.0.is_featured
    }

    /// Whether others may use the character commercially.
    async fn allow_commercial_use(&self) -> bool {
        self.0.allow_commercial_use
    }

    /// Lower-case tags.
    async fn tags(&self) -> &[String] {
        &self.0.tags
    }

    /// Licence of the character.
    async fn license_type(&self) -> LicenseType {
        self.0.license_type
    }

    /// Views by others than the owner: one per viewer (user, else client address) per
    /// `EASEL_VIEW_WINDOW_SECS` window.
    async fn view_count(&self) -> i64 {
        self.0.view_count
    }

    /// Likes (exact).
    async fn like_count(&self) -> i64 {
        self.0.like_count
    }

    /// Downloads.
    async fn download_count(&self) -> i64 {
        self.0.download_count
    }

    /// Whether the viewer liked the character (false when anonymous).
    async fn viewer_has_liked(&self, ctx: &Context<'_>) -> Res<bool> {
        let Some(user) = ctx.viewer().user_id() else {
            return Ok(false);
        };
        Ok(ctx
            .loader::<crate::gallery::loaders::GalleryLoader>()?
            .load_one(ViewerLiked {
                character: self.0.id,
                user,
            })
            .await?
            .unwrap_or(false))
    }

    /// Mean rating, 1 to 5; null before the first rating.
    async fn average_rating(&self, ctx: &Context<'_>) -> Res<Option<f64>> {
        let s = ctx
            .loader::<crate::gallery::loaders::GalleryLoader>()?
            .load_one(RatingOf(self.0.id))
            .await?;
        Ok(s.map(|s| (s.average * 100.0).round() / 100.0))
    }

    /// How many users rated the character.
    async fn rating_count(&self, ctx: &Context<'_>) -> Res<i64> {
        let s = ctx
            .loader::<crate::gallery::loaders::GalleryLoader>()?
            .load_one(RatingOf(self.0.id))
            .await?;
        Ok(s.map_or(0, |s| s.count))
    }

    /// Who owns the character.
    async fn owner(&self, ctx: &Context<'_>) -> Res<User> {
        owner(ctx, self.0.owner_id).await
    }

    /// The main picture (null when none, or when the viewer may not see it).
    async fn primary_image(&self, ctx: &Context<'_>) -> Res<Option<Image>> {
        visible_image(ctx, self.0.primary_image_id).await
    }

    /// The character's images in order (the first `first`, default 20, at most 100), as the
    /// viewer may see them.
    async fn images(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> Res<Vec<Image>> {
        if !(0..=100).contains(&first) {
            return Err(AppError::bad_input("first", "between 0 and 100").into());
        }
        let rows = ctx
            .loader::<crate::gallery::loaders::GalleryLoader>()?
            .load_one(CharacterImages {
                character: self.0.id,
                first,
                seer: seer(ctx),
            })
            .await?
            .unwrap_or_default();
        Ok(rows.into_iter().map(Image).collect())
    }

    /// The character this one is a variant of (null when none or not visible).
    async fn parent(&self, ctx: &Context<'_>) -> Res<Option<Character>> {
        let Some(id) = self.0.parent_character_id else {
            return Ok(None);
        };
        let s = seer(ctx);
        Ok(ctx
            .loader::<crate::gallery::loaders::GalleryLoader>()?
            .load_one(CharacterId(id))
            .await?
            .filter(|c| s.sees(c.owner_id, c.is_public))
            .map(Character))
    }

    /// Version of this character among its parent's variants (the original is 1).
    async fn version_number(&self) -> i32 {
        self.0.version_number
    }

    /// How this variant differs from its parent.
    async fn variant_type(&self) -> Option<VariantType> {
        self.0.variant_type
    }

    /// Variants of this character, in version order.
    async fn variants(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Res<Conn<Character>> {
        let (page, key) = page::<(i32, Uuid)>(first, after)?;
        let mut conn = db::conn(&ctx.state()?.pool).await?;
        let rows = model::variants(&mut conn, self.0.id, seer(ctx), key, page.limit())
            .await
            .map_err(AppError::from)?;
        Ok(conn_of(
            &page,
            rows,
            |c| (c.version_number, c.id),
            Character,
        ))
    }

    /// Collections holding this character that the viewer may see, newest first.
    async fn collections(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Res<Conn<Collection>> {
        let (page, key) = page::<(DateTime<Utc>, Uuid)>(first, after)?;
        let mut conn = db::conn(&ctx.state()?.pool).await?;
        let rows =
            model::collections_of_character(&mut conn, self.0.id, seer(ctx), key, page.limit())
                .await
                .map_err(AppError::from)?;
        Ok(conn_of(&page, rows, |c| (c.created_at, c.id), Collection))
    }

    /// When the character was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When the character was first published.
    async fn published_at(&self) -> Option<DateTime<Utc>> {
        self.0.published_at
    }
}

/// A user's collection of characters.
pub struct Collection(pub CollectionRow);

/// A named collection of characters (any user may make them).
#[Object]
impl Collection {
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

    /// Lower-case tags.
    async fn tags(&self) -> &[String] {
        &self.0.tags
    }

    /// Whether everyone may see the collection (its private characters stay hidden).
    async fn is_public(&self) -> bool {
        self.0.is_public
    }

    /// Characters in the collection (including ones the viewer may not see).
    async fn character_count(&self) -> i64 {
        i64::from(self.0.character_count)
    }

    /// The cover picture, when the viewer may see it.
    async fn cover_image(&self, ctx: &Context<'_>) -> Res<Option<Image>> {
        visible_image(ctx, self.0.cover_image_id).await
    }

    /// Who owns the collection.
    async fn owner(&self, ctx: &Context<'_>) -> Res<User> {
        owner(ctx, self.0.owner_id).await
    }

    /// The characters the viewer may see, in collection order.
    async fn characters(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Res<Conn<Character>> {
        let (page, key) = page::<(i32, Uuid)>(first, after)?;
        let mut conn = db::conn(&ctx.state()?.pool).await?;
        let rows =
            model::collection_characters_page(&mut conn, self.0.id, seer(ctx), key, page.limit())
                .await
                .map_err(AppError::from)?;
        Ok(conn_of(
            &page,
            rows,
            |(p, c)| (*p, c.id),
            |(_, c)| Character(c),
        ))
    }

    /// When the collection was made.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

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
        first: Option<i32>,
        after: Option<String>,
    ) -> Res<Conn<Image>> {
        let (page, key) = page::<(i32, Uuid)>(first, after)?;
        let mut conn = db::conn(&ctx.state()?.pool).await?;
        let rows = model::album_images_page(&mut conn, self.0.id, seer(ctx), key, page.limit())
            .await
            .map_err(AppError::from)?;
        Ok(conn_of(&page, rows, |(p, i)| (*p, i.id), |(_, i)| Image(i)))
    }

    /// When the album was made.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// One owner's gallery.
pub struct Gallery {
    owner: Uuid,
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

// ---- inputs -----------------------------------------------------------------------------

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

/// Input of `uploadImage`.
#[derive(InputObject, Default)]
pub struct UploadImageInput {
    /// Whether everyone may see the image (default false).
    is_public: Option<bool>,
    /// Up to 20 tags.
    tags: Option<Vec<String>>,
}

/// Generation parameters of a character.
#[derive(InputObject, Default)]
pub struct GenerationInput {
    /// Model version (default `v1.0`).
    model_version: Option<String>,
    /// Non-negative seed.
    seed: Option<i64>,
    /// 1.0 to 30.0, one decimal (default 7.5).
    cfg_scale: Option<f64>,
    /// 1 to 150 (default 20).
    steps: Option<i32>,
    /// Sampler name (default `DPM++ 2M Karras`).
    sampler: Option<String>,
}

impl From<Option<GenerationInput>> for GenerationParams {
    fn from(g: Option<GenerationInput>) -> Self {
        let g = g.unwrap_or_default();
        GenerationParams {
            model_version: g.model_version,
            seed: g.seed,
            cfg_scale: g.cfg_scale,
            steps: g.steps,
            sampler: g.sampler,
        }
    }
}

/// Input of `createCharacter`.
#[derive(InputObject)]
pub struct CreateCharacterInput {
    /// 1 to 200 characters.
    name: String,
    /// 1 to 4000 characters.
    prompt: String,
    /// Up to 2000 characters.
    description: Option<String>,
    /// Up to 4000 characters.
    negative_prompt: Option<String>,
    style_type: StyleType,
    /// Up to 100 characters.
    art_style: Option<String>,
    /// Up to 100 characters.
    mood: Option<String>,
    /// Up to 12 colours as `#RRGGBB`.
    color_palette: Option<Vec<String>>,
    /// Up to 20 tags of 1 to 40 characters.
    tags: Option<Vec<String>>,
    /// Publish at once (default false).
    is_public: Option<bool>,
    /// Allow commercial use (default false).
    allow_commercial_use: Option<bool>,
    /// Licence (default STANDARD).
    license_type: Option<LicenseType>,
    /// Make this a variant (the next version) of one of your characters.
    parent_character_id: Option<ID>,
    /// How the variant differs.
    variant_type: Option<VariantType>,
    /// One of your images (default: the first of `imageIds`).
    primary_image_id: Option<ID>,
    /// Your images, in order (at most 50).
    image_ids: Option<Vec<ID>>,
    /// Generation parameters.
    generation: Option<GenerationInput>,
}

/// Input of `updateCharacter`: omitted fields stay; `null` clears optional ones.
#[derive(InputObject)]
pub struct UpdateCharacterInput {
    name: Option<String>,
    prompt: Option<String>,
    description: MaybeUndefined<String>,
    negative_prompt: MaybeUndefined<String>,
    style_type: Option<StyleType>,
    art_style: MaybeUndefined<String>,
    mood: MaybeUndefined<String>,
    color_palette: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    /// Making a character public publishes it (and its images).
    is_public: Option<bool>,
    allow_commercial_use: Option<bool>,
    license_type: Option<LicenseType>,
    variant_type: MaybeUndefined<VariantType>,
    primary_image_id: MaybeUndefined<ID>,
    /// Replaces the character's images (in this order).
    image_ids: Option<Vec<ID>>,
    generation: Option<GenerationInput>,
}

/// Input of `createCollection` and `updateCollection` (omitted fields stay on update).
#[derive(InputObject)]
pub struct CollectionFields {
    /// 1 to 200 characters (required to create).
    name: Option<String>,
    description: MaybeUndefined<String>,
    /// One of your images.
    cover_image_id: MaybeUndefined<ID>,
    tags: Option<Vec<String>>,
    /// Default false.
    is_public: Option<bool>,
}

/// Input of `createAlbum` and `updateAlbum` (omitted fields stay on update).
#[derive(InputObject)]
pub struct AlbumFields {
    /// 1 to 200 characters (required to create).
    name: Option<String>,
    description: MaybeUndefined<String>,
    /// One of your images.
    cover_image_id: MaybeUndefined<ID>,
    /// Default false.
    is_public: Option<bool>,
}

impl CollectionFields {
    fn into_input(self) -> Result<CollectionInput, AppError> {
        Ok(CollectionInput {
            name: self.name,
            description: maybe(self.description),
            cover_image_id: maybe_id(self.cover_image_id, "input.coverImageId")?,
            tags: self.tags,
            is_public: self.is_public,
        })
    }
}

impl AlbumFields {
    fn into_input(self) -> Result<AlbumInput, AppError> {
        Ok(AlbumInput {
            name: self.name,
            description: maybe(self.description),
            cover_image_id: maybe_id(self.cover_image_id, "input.coverImageId")?,
            is_public: self.is_public,
        })
    }
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
                ctx.loader::<crate::accounts::loaders::AccountsLoader>()?
                    .load_one(UserId(id))
                    .await?
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
        let parent = input
            .parent_character_id
            .as_ref()
            .map(|i| parse_id(i, "input.parentCharacterId"))
            .transpose()?;
        let primary = input
            .primary_image_id
            .as_ref()
            .map(|i| parse_id(i, "input.primaryImageId"))
            .transpose()?;
        let image_ids = parse_ids(&input.image_ids.unwrap_or_default(), "input.imageIds")?;
        let row = service::create_character(
            ctx.state()?,
            user,
            service::NewCharacterInput {
                name: input.name,
                prompt: input.prompt,
                description: input.description,
                negative_prompt: input.negative_prompt,
                style_type: input.style_type,
                art_style: input.art_style,
                mood: input.mood,
                color_palette: input.color_palette.unwrap_or_default(),
                tags: input.tags.unwrap_or_default(),
                is_public: input.is_public.unwrap_or(false),
                allow_commercial_use: input.allow_commercial_use.unwrap_or(false),
                license_type: input.license_type.unwrap_or(LicenseType::Standard),
                parent_character_id: parent,
                variant_type: input.variant_type,
                primary_image_id: primary,
                image_ids,
                generation: input.generation.into(),
            },
        )
        .await?;
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
        let changes = CharacterChanges {
            name: input.name,
            prompt: input.prompt,
            description: maybe(input.description),
            negative_prompt: maybe(input.negative_prompt),
            style_type: input.style_type,
            art_style: maybe(input.art_style),
            mood: maybe(input.mood),
            color_palette: input.color_palette,
            tags: input.tags,
            is_public: input.is_public,
            allow_commercial_use: input.allow_commercial_use,
            license_type: input.license_type,
            variant_type: maybe(input.variant_type),
            primary_image_id: maybe_id(input.primary_image_id, "input.primaryImageId")?,
            image_ids: input
                .image_ids
                .map(|v| parse_ids(&v, "input.imageIds"))
                .transpose()?,
            generation: input.generation.into(),
        };
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
