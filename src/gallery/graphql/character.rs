//! `Character` and the inputs of `createCharacter` and `updateCharacter`.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object};
use chrono::{DateTime, Utc};

use super::{
    Collection, Conn, Image, Newest, Res, keyed, maybe, maybe_id, owner, page, parse_ids, seer,
    visible_image,
};
use crate::{
    accounts::graphql::User,
    error::AppError,
    gallery::{
        CharacterStatus, LicenseType, StyleType, VariantType,
        loaders::{CharacterId, CharacterImages, GalleryLoader, RatingOf, ViewerLiked},
        service::{
            self, CharacterChanges, CharacterExtras, CharacterRow, CharacterWants,
            GenerationParams, NewCharacterInput, OrderKey, PlannedCharacter, TimeKey,
        },
    },
    graphql::{ContextExt, parse_id, plan::Nodes},
};

/// A character (seed 003). Private characters are seen by their owner only. The second field
/// is what the page's look-ahead plan brought along (`gallery::model::plan`); what it does
/// not hold loads through the dataloaders.
pub struct Character(pub CharacterRow, pub Option<Box<CharacterExtras>>);

impl Character {
    /// A character whose related rows load through the dataloaders.
    pub fn new(row: CharacterRow) -> Self {
        Character(row, None)
    }

    /// A character of a planned page.
    pub fn planned((row, extras): PlannedCharacter) -> Self {
        Character(row, extras)
    }

    fn plan(&self) -> Option<&CharacterExtras> {
        self.1.as_deref()
    }
}

/// What the nodes of a character page the resolving field returns need, from the client's
/// selection.
pub(super) fn character_wants(ctx: &Context<'_>) -> CharacterWants {
    let nodes = Nodes::of_connection(ctx);
    CharacterWants {
        owner: nodes.has("owner"),
        primary_image: nodes.has("primaryImage"),
        images: nodes.int_arg("images", "first", 20, 0..=100),
        liked_by: nodes
            .has("viewerHasLiked")
            .then(|| ctx.viewer().user_id())
            .flatten(),
        rating: nodes.has("averageRating") || nodes.has("ratingCount"),
    }
}

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
        if let Some(liked) = self.plan().and_then(|p| p.liked) {
            return Ok(liked);
        }
        Ok(ctx
            .loader::<GalleryLoader>()?
            .load_one(ViewerLiked {
                character: self.0.id,
                user,
            })
            .await?
            .unwrap_or(false))
    }

    /// Mean rating, 1 to 5; null before the first rating.
    async fn average_rating(&self, ctx: &Context<'_>) -> Res<Option<f64>> {
        if let Some((average, _)) = self.plan().and_then(|p| p.rating) {
            return Ok(average.map(|a| (a * 100.0).round() / 100.0));
        }
        let s = ctx
            .loader::<GalleryLoader>()?
            .load_one(RatingOf(self.0.id))
            .await?;
        Ok(s.map(|s| (s.average * 100.0).round() / 100.0))
    }

    /// How many users rated the character.
    async fn rating_count(&self, ctx: &Context<'_>) -> Res<i64> {
        if let Some((_, count)) = self.plan().and_then(|p| p.rating) {
            return Ok(count);
        }
        let s = ctx
            .loader::<GalleryLoader>()?
            .load_one(RatingOf(self.0.id))
            .await?;
        Ok(s.map_or(0, |s| s.count))
    }

    /// Ratings with their reviews, newest first. Ratings by accounts that are not active
    /// (suspended, banned, deleted) are left out.
    async fn reviews(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many items to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
    ) -> Res<Conn<super::Review>> {
        super::social::reviews(ctx, self.0.id, first, after).await
    }

    /// The viewer's own rating and review of the character (null when none, or anonymous).
    async fn viewer_rating(&self, ctx: &Context<'_>) -> Res<Option<super::Review>> {
        super::social::viewer_rating(ctx, self.0.id).await
    }

    /// Who owns the character.
    async fn owner(&self, ctx: &Context<'_>) -> Res<User> {
        if let Some(user) = self.plan().and_then(|p| p.owner.as_ref()) {
            return Ok(User::new(user.clone()));
        }
        owner(ctx, self.0.owner_id).await
    }

    /// The main picture (null when none, or when the viewer may not see it).
    async fn primary_image(&self, ctx: &Context<'_>) -> Res<Option<Image>> {
        if let Some(image) = self.plan().and_then(|p| p.primary_image.as_ref()) {
            let s = seer(ctx);
            return Ok(image
                .as_ref()
                .filter(|i| s.sees(i.owner_id, i.is_public))
                .map(|i| Image::new(i.clone())));
        }
        visible_image(ctx, self.0.primary_image_id).await
    }

    /// The character's images in order (the first `first`, default 20, at most 100), as the
    /// viewer may see them.
    async fn images(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "How many items to return, 0 to 100 (default 20).",
            default = 20
        )]
        first: i32,
    ) -> Res<Vec<Image>> {
        if !(0..=100).contains(&first) {
            return Err(AppError::bad_input("first", "between 0 and 100").into());
        }
        if let Some(plan) = self.plan()
            && let Some(images) = &plan.images
            && plan.images_first == first
        {
            return Ok(images.iter().cloned().map(Image::new).collect());
        }
        let rows = ctx
            .loader::<GalleryLoader>()?
            .load_one(CharacterImages {
                character: self.0.id,
                first,
                seer: seer(ctx),
            })
            .await?
            .unwrap_or_default();
        Ok(rows.into_iter().map(Image::new).collect())
    }

    /// The character this one is a variant of (null when none or not visible).
    async fn parent(&self, ctx: &Context<'_>) -> Res<Option<Character>> {
        let Some(id) = self.0.parent_character_id else {
            return Ok(None);
        };
        let s = seer(ctx);
        Ok(ctx
            .loader::<GalleryLoader>()?
            .load_one(CharacterId(id))
            .await?
            .filter(|c| s.sees(c.owner_id, c.is_public))
            .map(Character::new))
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
        #[graphql(desc = "How many items to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
    ) -> Res<Conn<Character>> {
        let (page, after) = page::<OrderKey>(first, after)?;
        let rows =
            service::variants(ctx.state()?, self.0.id, seer(ctx), after, page.limit()).await?;
        Ok(keyed(&page, rows, Character::new, |c| {
            (c.0.version_number, c.0.id)
        }))
    }

    /// Collections holding this character that the viewer may see, newest first.
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
        let rows = service::collections_of_character(
            ctx.state()?,
            self.0.id,
            seer(ctx),
            after,
            page.limit(),
        )
        .await?;
        Ok(keyed(&page, rows, Collection, Collection::newest))
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
    /// The visual style.
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
    /// 1 to 200 characters.
    name: Option<String>,
    /// 1 to 4000 characters.
    prompt: Option<String>,
    /// Up to 2000 characters.
    description: MaybeUndefined<String>,
    /// Up to 4000 characters.
    negative_prompt: MaybeUndefined<String>,
    /// The visual style.
    style_type: Option<StyleType>,
    /// Up to 100 characters.
    art_style: MaybeUndefined<String>,
    /// Up to 100 characters.
    mood: MaybeUndefined<String>,
    /// Up to 12 colours as `#RRGGBB`; replaces the palette.
    color_palette: Option<Vec<String>>,
    /// Up to 20 tags of 1 to 40 characters; replaces the tags.
    tags: Option<Vec<String>>,
    /// Making a character public publishes it (and its images).
    is_public: Option<bool>,
    /// Allow commercial use.
    allow_commercial_use: Option<bool>,
    /// Licence.
    license_type: Option<LicenseType>,
    /// How the variant differs from its parent.
    variant_type: MaybeUndefined<VariantType>,
    /// One of your images.
    primary_image_id: MaybeUndefined<ID>,
    /// Replaces the character's images (in this order).
    image_ids: Option<Vec<ID>>,
    /// Generation parameters to change (omitted ones stay).
    generation: Option<GenerationInput>,
}

impl CreateCharacterInput {
    /// What the service takes, with the ids parsed.
    pub(super) fn into_input(self) -> Result<NewCharacterInput, AppError> {
        let parent = self
            .parent_character_id
            .as_ref()
            .map(|i| parse_id(i, "input.parentCharacterId"))
            .transpose()?;
        let primary = self
            .primary_image_id
            .as_ref()
            .map(|i| parse_id(i, "input.primaryImageId"))
            .transpose()?;
        let image_ids = parse_ids(&self.image_ids.unwrap_or_default(), "input.imageIds")?;
        Ok(NewCharacterInput {
            name: self.name,
            prompt: self.prompt,
            description: self.description,
            negative_prompt: self.negative_prompt,
            style_type: self.style_type,
            art_style: self.art_style,
            mood: self.mood,
            color_palette: self.color_palette.unwrap_or_default(),
            tags: self.tags.unwrap_or_default(),
            is_public: self.is_public.unwrap_or(false),
            allow_commercial_use: self.allow_commercial_use.unwrap_or(false),
            license_type: self.license_type.unwrap_or(LicenseType::Standard),
            parent_character_id: parent,
            variant_type: self.variant_type,
            primary_image_id: primary,
            image_ids,
            generation: self.generation.into(),
        })
    }
}

impl UpdateCharacterInput {
    /// What the service takes: omitted fields stay, `null` clears.
    pub(super) fn into_changes(self) -> Result<CharacterChanges, AppError> {
        Ok(CharacterChanges {
            name: self.name,
            prompt: self.prompt,
            description: maybe(self.description),
            negative_prompt: maybe(self.negative_prompt),
            style_type: self.style_type,
            art_style: maybe(self.art_style),
            mood: maybe(self.mood),
            color_palette: self.color_palette,
            tags: self.tags,
            is_public: self.is_public,
            allow_commercial_use: self.allow_commercial_use,
            license_type: self.license_type,
            variant_type: maybe(self.variant_type),
            primary_image_id: maybe_id(self.primary_image_id, "input.primaryImageId")?,
            image_ids: self
                .image_ids
                .map(|v| parse_ids(&v, "input.imageIds"))
                .transpose()?,
            generation: self.generation.into(),
        })
    }
}
