//! The gallery's rules: validation, ownership, privacy, and every multi-row change in one
//! transaction (counts move in the transaction that adds or removes the row they count).

use std::net::{IpAddr, Ipv6Addr};

use bytes::Bytes;
use diesel_async::AsyncConnection;
use uuid::Uuid;

use super::{
    CharacterStatus, ImageKind, LicenseType, StyleType, VariantType,
    model::{
        self, AlbumChangeset, AlbumRow, CharacterChangeset, CharacterRow, CollectionChangeset,
        CollectionRow, ImageRow, NewAlbum, NewCharacter, NewCollection, NewImage, Seer, Tenths,
    },
    upload,
};
use crate::{
    AppState,
    accounts::{Role, viewer::ViewerUser},
    db,
    error::{AppError, AppResult},
    ratelimit,
};

/// Most images one character, album change or collection change may name.
pub const MAX_IDS: usize = 50;

/// The seer a signed-in user is.
pub fn seer_of(user: &ViewerUser) -> Seer {
    Seer {
        user: Some(user.id),
        admin: user.role == Role::Admin,
    }
}

fn owns(user: &ViewerUser, owner: Uuid) -> bool {
    user.id == owner || user.role == Role::Admin
}

// ---- validation -------------------------------------------------------------------------

/// Trims and checks a text: `min..=max` characters, no control characters but newlines.
pub fn text(value: &str, field: &str, min: usize, max: usize) -> AppResult<String> {
    let v = value.trim();
    let n = v.chars().count();
    if n < min || n > max {
        return Err(AppError::bad_input(
            field,
            if min > 0 {
                format!("{min} to {max} characters")
            } else {
                format!("at most {max} characters")
            },
        ));
    }
    if v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::bad_input(
            field,
            "control characters are not allowed",
        ));
    }
    Ok(v.to_string())
}

/// An optional text; blank becomes `None`.
pub fn opt_text(value: Option<&str>, field: &str, max: usize) -> AppResult<Option<String>> {
    value
        .map(|v| text(v, field, 0, max))
        .transpose()
        .map(|v| v.filter(|s| !s.is_empty()))
}

/// Tags: at most 20, each 1 to 40 characters, lower-cased, duplicates dropped.
pub fn tags(values: &[String], field: &str) -> AppResult<Vec<String>> {
    if values.len() > 20 {
        return Err(AppError::bad_input(field, "at most 20 tags"));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for v in values {
        let t = v.trim().to_lowercase();
        if t.is_empty() || t.chars().count() > 40 {
            return Err(AppError::bad_input(
                field,
                "each tag has 1 to 40 characters",
            ));
        }
        if t.chars().any(|c| c.is_control() || c == ',') {
            return Err(AppError::bad_input(
                field,
                "tags may not hold commas or control characters",
            ));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// A colour palette: at most 12 colours as `#RRGGBB`, stored upper-case.
pub fn palette(values: &[String]) -> AppResult<Vec<String>> {
    if values.len() > 12 {
        return Err(AppError::bad_input(
            "input.colorPalette",
            "at most 12 colours",
        ));
    }
    values
        .iter()
        .map(|c| {
            let c = c.trim();
            let ok =
                c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit());
            if ok {
                Ok(c.to_ascii_uppercase())
            } else {
                Err(AppError::bad_input(
                    "input.colorPalette",
                    "colours are hex codes like #1A2B3C",
                ))
            }
        })
        .collect()
}

/// A CFG scale: 1.0 to 30.0 in steps of 0.1.
pub fn cfg_scale(value: f64) -> AppResult<Tenths> {
    let tenths = (value * 10.0).round();
    if !value.is_finite()
        || !(10.0..=300.0).contains(&tenths)
        || (value * 10.0 - tenths).abs() > 1e-6
    {
        return Err(AppError::bad_input(
            "input.generation.cfgScale",
            "between 1.0 and 30.0, with at most one decimal",
        ));
    }
    Ok(Tenths(tenths as i32))
}

/// Sampling steps: 1 to 150.
pub fn steps(value: i32) -> AppResult<i32> {
    if (1..=150).contains(&value) {
        Ok(value)
    } else {
        Err(AppError::bad_input(
            "input.generation.steps",
            "between 1 and 150",
        ))
    }
}

fn ids(values: &[Uuid], field: &str) -> AppResult<Vec<Uuid>> {
    if values.len() > MAX_IDS {
        return Err(AppError::bad_input(field, format!("at most {MAX_IDS} ids")));
    }
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        if !out.contains(v) {
            out.push(*v);
        }
    }
    Ok(out)
}

// ---- images -----------------------------------------------------------------------------

/// Checks, stores (original and thumbnail) and records an uploaded image. Each user may try
/// `EASEL_UPLOAD_MAX_PER_HOUR` uploads an hour; the image's header must fit the limits before
/// it is decoded, and decoding waits for one of the process's decode slots.
pub async fn upload_image(
    state: &AppState,
    user: &ViewerUser,
    bytes: Vec<u8>,
    is_public: bool,
    tag_values: &[String],
) -> AppResult<ImageRow> {
    let tags = tags(tag_values, "input.tags")?;
    let config = state.config.clone();
    {
        let mut conn = db::conn(&state.pool).await?;
        ratelimit::hit(
            &mut conn,
            &format!("upload:{}", user.id),
            std::time::Duration::from_secs(3600),
            config.upload_max_per_hour,
        )
        .await?;
    }
    let slot = upload::decode_slot(config.upload_max_concurrent_decodes).await;
    let (bytes, processed) = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let limits = upload::DecodeLimits::from_config(&config);
        let p = upload::process(&bytes, &limits, config.thumbnail_side);
        (bytes, p)
    })
    .await
    .map_err(AppError::internal)?;
    let processed = processed.map_err(|r| AppError::bad_input("file", r.message()))?;
    let id = Uuid::now_v7();
    let key = format!("images/{id}.{}", processed.extension);
    let thumb_key = format!("images/{id}_thumb.{}", processed.thumbnail_extension);
    let byte_size = bytes.len() as i64;
    state
        .media
        .put(&key, Bytes::from(bytes))
        .await
        .map_err(AppError::internal)?;
    if let Err(e) = state
        .media
        .put(&thumb_key, Bytes::from(processed.thumbnail))
        .await
    {
        let _ = state.media.delete(&[&key]).await;
        return Err(AppError::internal(e));
    }
    let kind = if user.role == Role::Vendor {
        ImageKind::Vendor
    } else {
        ImageKind::Upload
    };
    let inserted = async {
        let mut conn = db::conn(&state.pool).await?;
        model::insert_image(
            &mut conn,
            &NewImage {
                id,
                owner_id: user.id,
                job_id: None,
                kind,
                storage_key: &key,
                mime_type: processed.mime_type,
                byte_size,
                width: processed.width as i32,
                height: processed.height as i32,
                thumbnail_key: Some(&thumb_key),
                is_public,
                tags: &tags,
            },
        )
        .await
        .map_err(AppError::from)
    }
    .await;
    if inserted.is_err() {
        // Nothing half-written: the files go when their row could not be recorded.
        let _ = state.media.delete(&[&key, &thumb_key]).await;
    }
    inserted
}

// ---- characters -------------------------------------------------------------------------

/// Generation parameters of a character.
#[derive(Debug, Default)]
pub struct GenerationParams {
    pub model_version: Option<String>,
    pub seed: Option<i64>,
    pub cfg_scale: Option<f64>,
    pub steps: Option<i32>,
    pub sampler: Option<String>,
}

/// Everything `createCharacter` takes.
#[derive(Debug)]
pub struct NewCharacterInput {
    pub name: String,
    pub prompt: String,
    pub description: Option<String>,
    pub negative_prompt: Option<String>,
    pub style_type: StyleType,
    pub art_style: Option<String>,
    pub mood: Option<String>,
    pub color_palette: Vec<String>,
    pub tags: Vec<String>,
    pub is_public: bool,
    pub allow_commercial_use: bool,
    pub license_type: LicenseType,
    pub parent_character_id: Option<Uuid>,
    pub variant_type: Option<VariantType>,
    pub primary_image_id: Option<Uuid>,
    pub image_ids: Vec<Uuid>,
    pub generation: GenerationParams,
}

/// Checks that every image belongs to the user (else `BAD_USER_INPUT` on `field`).
async fn check_images(
    conn: &mut db::DbConn,
    owner: Uuid,
    wanted: &[Uuid],
    field: &str,
) -> AppResult<()> {
    if wanted.is_empty() {
        return Ok(());
    }
    let found = model::owned_image_ids(conn, owner, wanted).await?;
    if found.len() != wanted.len() {
        return Err(AppError::bad_input(field, "no such image of yours"));
    }
    Ok(())
}

/// Creates a character (a variant when `parent_character_id` is given: the next version of
/// that character, numbered in order even under concurrent creation).
pub async fn create_character(
    state: &AppState,
    user: &ViewerUser,
    input: NewCharacterInput,
) -> AppResult<CharacterRow> {
    let name = text(&input.name, "input.name", 1, 200)?;
    let prompt = text(&input.prompt, "input.prompt", 1, 4000)?;
    let description = opt_text(input.description.as_deref(), "input.description", 2000)?;
    let negative = opt_text(
        input.negative_prompt.as_deref(),
        "input.negativePrompt",
        4000,
    )?;
    let art_style = opt_text(input.art_style.as_deref(), "input.artStyle", 100)?;
    let mood = opt_text(input.mood.as_deref(), "input.mood", 100)?;
    let colors = palette(&input.color_palette)?;
    let tags = tags(&input.tags, "input.tags")?;
    let g = &input.generation;
    let model_version = text(
        g.model_version.as_deref().unwrap_or("v1.0"),
        "input.generation.modelVersion",
        1,
        50,
    )?;
    let sampler = text(
        g.sampler.as_deref().unwrap_or("DPM++ 2M Karras"),
        "input.generation.sampler",
        1,
        50,
    )?;
    let cfg = cfg_scale(g.cfg_scale.unwrap_or(7.5))?;
    let steps = steps(g.steps.unwrap_or(20))?;
    if g.seed.is_some_and(|s| s < 0) {
        return Err(AppError::bad_input(
            "input.generation.seed",
            "must not be negative",
        ));
    }
    let image_ids = ids(&input.image_ids, "input.imageIds")?;
    let primary = input.primary_image_id.or(image_ids.first().copied());
    let mut conn = db::conn(&state.pool).await?;
    check_images(&mut conn, user.id, &image_ids, "input.imageIds").await?;
    if let Some(p) = input.primary_image_id {
        check_images(&mut conn, user.id, &[p], "input.primaryImageId").await?;
    }
    let owner = user.id;
    let admin = user.role == Role::Admin;
    conn.transaction(async move |conn| {
        let version = match input.parent_character_id {
            None => 1,
            Some(parent_id) => {
                let parent = model::lock_character(conn, parent_id)
                    .await?
                    .filter(|p| p.owner_id == owner || admin)
                    .ok_or_else(|| {
                        AppError::bad_input("input.parentCharacterId", "no such character of yours")
                    })?;
                model::next_version_number(conn, parent.id).await?
            }
        };
        let row = model::insert_character(
            conn,
            &NewCharacter {
                id: Uuid::now_v7(),
                owner_id: owner,
                name: &name,
                description: description.as_deref(),
                prompt: &prompt,
                negative_prompt: negative.as_deref(),
                style_type: input.style_type,
                art_style: art_style.as_deref(),
                mood: mood.as_deref(),
                color_palette: &colors,
                model_version: &model_version,
                seed: g.seed,
                cfg_scale: cfg,
                steps,
                sampler: &sampler,
                primary_image_id: primary,
                status: if primary.is_some() {
                    CharacterStatus::Completed
                } else {
                    CharacterStatus::Pending
                },
                tags: &tags,
                is_public: input.is_public,
                published_at: input.is_public.then(chrono::Utc::now),
                allow_commercial_use: input.allow_commercial_use,
                license_type: input.license_type,
                parent_character_id: input.parent_character_id,
                version_number: version,
                variant_type: input.variant_type,
            },
        )
        .await?;
        model::set_character_images(conn, row.id, &image_ids).await?;
        if input.is_public {
            let mut shown = image_ids.clone();
            shown.extend(primary);
            model::publish_images(conn, owner, &shown).await?;
        }
        Ok::<_, AppError>(row)
    })
    .await
}

/// Changes to a character; `None` leaves a field, `Some(None)` clears an optional one.
#[derive(Debug, Default)]
pub struct CharacterChanges {
    pub name: Option<String>,
    pub prompt: Option<String>,
    pub description: Option<Option<String>>,
    pub negative_prompt: Option<Option<String>>,
    pub style_type: Option<StyleType>,
    pub art_style: Option<Option<String>>,
    pub mood: Option<Option<String>>,
    pub color_palette: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub is_public: Option<bool>,
    pub allow_commercial_use: Option<bool>,
    pub license_type: Option<LicenseType>,
    pub variant_type: Option<Option<VariantType>>,
    pub primary_image_id: Option<Option<Uuid>>,
    pub image_ids: Option<Vec<Uuid>>,
    pub generation: GenerationParams,
}

fn opt_opt(
    v: Option<Option<String>>,
    field: &str,
    max: usize,
) -> AppResult<Option<Option<String>>> {
    v.map(|o| opt_text(o.as_deref(), field, max)).transpose()
}

/// Owner (or admin) changes a character.
pub async fn update_character(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    input: CharacterChanges,
) -> AppResult<CharacterRow> {
    let g = &input.generation;
    let changes = CharacterChangeset {
        name: input
            .name
            .as_deref()
            .map(|v| text(v, "input.name", 1, 200))
            .transpose()?,
        prompt: input
            .prompt
            .as_deref()
            .map(|v| text(v, "input.prompt", 1, 4000))
            .transpose()?,
        description: opt_opt(input.description, "input.description", 2000)?,
        negative_prompt: opt_opt(input.negative_prompt, "input.negativePrompt", 4000)?,
        style_type: input.style_type,
        art_style: opt_opt(input.art_style, "input.artStyle", 100)?,
        mood: opt_opt(input.mood, "input.mood", 100)?,
        color_palette: input.color_palette.as_deref().map(palette).transpose()?,
        model_version: g
            .model_version
            .as_deref()
            .map(|v| text(v, "input.generation.modelVersion", 1, 50))
            .transpose()?,
        seed: match g.seed {
            Some(s) if s < 0 => {
                return Err(AppError::bad_input(
                    "input.generation.seed",
                    "must not be negative",
                ));
            }
            s => s.map(Some),
        },
        cfg_scale: g.cfg_scale.map(cfg_scale).transpose()?,
        steps: g.steps.map(steps).transpose()?,
        sampler: g
            .sampler
            .as_deref()
            .map(|v| text(v, "input.generation.sampler", 1, 50))
            .transpose()?,
        primary_image_id: input.primary_image_id,
        tags: input
            .tags
            .as_deref()
            .map(|t| tags(t, "input.tags"))
            .transpose()?,
        is_public: input.is_public,
        allow_commercial_use: input.allow_commercial_use,
        license_type: input.license_type,
        variant_type: input.variant_type,
    };
    let image_ids = input
        .image_ids
        .as_deref()
        .map(|v| ids(v, "input.imageIds"))
        .transpose()?;
    let mut conn = db::conn(&state.pool).await?;
    let current = model::character_by_id(&mut conn, id)
        .await?
        .filter(|c| seer_of(user).sees(c.owner_id, c.is_public))
        .ok_or(AppError::NotFound("character"))?;
    if !owns(user, current.owner_id) {
        return Err(AppError::Forbidden(
            "only the owner may change a character".into(),
        ));
    }
    let owner = current.owner_id;
    if let Some(ids) = &image_ids {
        check_images(&mut conn, owner, ids, "input.imageIds").await?;
    }
    if let Some(Some(p)) = changes.primary_image_id {
        check_images(&mut conn, owner, &[p], "input.primaryImageId").await?;
    }
    conn.transaction(async move |conn| {
        let publishing = changes.is_public == Some(true) && !current.is_public;
        let mut row = model::update_character(conn, id, &changes).await?;
        if let Some(ids) = &image_ids {
            model::set_character_images(conn, id, ids).await?;
        }
        if publishing && row.published_at.is_none() {
            row = model::publish_character(conn, id).await?;
        }
        if row.is_public {
            let mut shown = model::character_image_ids(conn, id).await?;
            shown.extend(row.primary_image_id);
            model::publish_images(conn, owner, &shown).await?;
        }
        Ok::<_, AppError>(row)
    })
    .await
}

/// Owner (or admin) deletes a character; collections holding it lose it and their counts
/// follow in the same transaction; its variants stay, without a parent.
pub async fn delete_character(state: &AppState, user: &ViewerUser, id: Uuid) -> AppResult<bool> {
    let mut conn = db::conn(&state.pool).await?;
    let admin = user.role == Role::Admin;
    let viewer = user.id;
    conn.transaction(async move |conn| {
        let current = model::lock_character(conn, id)
            .await?
            .filter(|c| c.is_public || c.owner_id == viewer || admin)
            .ok_or(AppError::NotFound("character"))?;
        if current.owner_id != viewer && !admin {
            return Err(AppError::Forbidden(
                "only the owner may delete a character".into(),
            ));
        }
        Ok(model::delete_character(conn, id).await?)
    })
    .await
}

/// Makes a character public and sets `published_at` (the first time); its images become
/// public with it.
pub async fn publish_character(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
) -> AppResult<CharacterRow> {
    let mut conn = db::conn(&state.pool).await?;
    let admin = user.role == Role::Admin;
    let viewer = user.id;
    conn.transaction(async move |conn| {
        let current = model::lock_character(conn, id)
            .await?
            .filter(|c| c.is_public || c.owner_id == viewer || admin)
            .ok_or(AppError::NotFound("character"))?;
        if current.owner_id != viewer && !admin {
            return Err(AppError::Forbidden(
                "only the owner may publish a character".into(),
            ));
        }
        let row = if current.published_at.is_some() && current.is_public {
            current
        } else {
            model::publish_character(conn, id).await?
        };
        let mut shown = model::character_image_ids(conn, id).await?;
        shown.extend(row.primary_image_id);
        model::publish_images(conn, row.owner_id, &shown).await?;
        Ok::<_, AppError>(row)
    })
    .await
}

/// A character the viewer may see, or `NOT_FOUND`.
async fn visible_character(conn: &mut db::DbConn, seer: Seer, id: Uuid) -> AppResult<CharacterRow> {
    model::character_by_id(conn, id)
        .await?
        .filter(|c| seer.sees(c.owner_id, c.is_public))
        .ok_or(AppError::NotFound("character"))
}

/// Likes a character once (liking again changes nothing); `like_count` moves in the same
/// transaction as the like row, so it stays exact under concurrent likes.
pub async fn like(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    liked: bool,
) -> AppResult<CharacterRow> {
    let mut conn = db::conn(&state.pool).await?;
    let current = visible_character(&mut conn, seer_of(user), id).await?;
    let viewer = user.id;
    conn.transaction(async move |conn| {
        let changed = if liked {
            model::insert_like(conn, id, viewer).await?
        } else {
            model::delete_like(conn, id, viewer).await?
        };
        if !changed {
            return Ok(current);
        }
        Ok::<_, AppError>(model::bump_like_count(conn, id, if liked { 1 } else { -1 }).await?)
    })
    .await
}

/// Rates a character 1 to 5 (rating again replaces the viewer's rating).
pub async fn rate(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    rating: i32,
    review: Option<&str>,
) -> AppResult<CharacterRow> {
    if !(1..=5).contains(&rating) {
        return Err(AppError::bad_input("rating", "between 1 and 5"));
    }
    let review = opt_text(review, "review", 2000)?;
    let mut conn = db::conn(&state.pool).await?;
    let current = visible_character(&mut conn, seer_of(user), id).await?;
    model::upsert_rating(&mut conn, id, user.id, rating, review.as_deref()).await?;
    Ok(current)
}

/// Who a view is counted for: the signed-in user, else the client address. An IPv6 client
/// counts by its /64 (one subscriber usually holds a whole /64 and can pick any address in
/// it); an unknown address is one viewer.
pub fn viewer_key(user: Option<Uuid>, ip: Option<IpAddr>) -> String {
    match (user, ip.map(|ip| ip.to_canonical())) {
        (Some(user), _) => format!("user:{user}"),
        (None, Some(IpAddr::V4(v4))) => format!("ip:{v4}"),
        (None, Some(IpAddr::V6(v6))) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("ip:{}/64", Ipv6Addr::from(prefix))
        }
        (None, None) => "ip:unknown".into(),
    }
}

/// `character(id)`: the character when the viewer may see it. Counts a view when someone
/// other than the owner looks, at most once per viewer (see [`viewer_key`]) and character in
/// each `EASEL_VIEW_WINDOW_SECS` window, so aliases and reloads do not inflate `viewCount`.
pub async fn view_character(
    state: &AppState,
    seer: Seer,
    viewer: &str,
    id: Uuid,
) -> AppResult<Option<CharacterRow>> {
    let mut conn = db::conn(&state.pool).await?;
    let Some(mut row) = model::character_by_id(&mut conn, id)
        .await?
        .filter(|c| seer.sees(c.owner_id, c.is_public))
    else {
        return Ok(None);
    };
    if seer.user != Some(row.owner_id) {
        let window = state.config.view_window.as_secs() as i64;
        if let Some(count) = model::add_view_once(&mut conn, id, viewer, window).await? {
            row.view_count = count;
        }
    }
    Ok(Some(row))
}

// ---- collections ------------------------------------------------------------------------

/// Fields of `createCollection` / `updateCollection`.
#[derive(Debug, Default)]
pub struct CollectionInput {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub cover_image_id: Option<Option<Uuid>>,
    pub tags: Option<Vec<String>>,
    pub is_public: Option<bool>,
}

async fn check_cover(
    conn: &mut db::DbConn,
    owner: Uuid,
    cover: Option<Option<Uuid>>,
) -> AppResult<()> {
    if let Some(Some(c)) = cover {
        check_images(conn, owner, &[c], "input.coverImageId").await?;
    }
    Ok(())
}

pub async fn create_collection(
    state: &AppState,
    user: &ViewerUser,
    input: CollectionInput,
) -> AppResult<CollectionRow> {
    let name = text(input.name.as_deref().unwrap_or(""), "input.name", 1, 200)?;
    let description = opt_opt(input.description, "input.description", 2000)?.flatten();
    let tags = tags(&input.tags.unwrap_or_default(), "input.tags")?;
    let mut conn = db::conn(&state.pool).await?;
    check_cover(&mut conn, user.id, input.cover_image_id).await?;
    Ok(model::insert_collection(
        &mut conn,
        &NewCollection {
            id: Uuid::now_v7(),
            owner_id: user.id,
            name: &name,
            description: description.as_deref(),
            cover_image_id: input.cover_image_id.flatten(),
            tags: &tags,
            is_public: input.is_public.unwrap_or(false),
        },
    )
    .await?)
}

/// A collection the user owns (or, for admins, any); `NOT_FOUND` when they may not see it.
async fn own_collection(
    conn: &mut db::DbConn,
    user: &ViewerUser,
    id: Uuid,
) -> AppResult<CollectionRow> {
    let c = model::collection_by_id(conn, id)
        .await?
        .filter(|c| seer_of(user).sees(c.owner_id, c.is_public))
        .ok_or(AppError::NotFound("collection"))?;
    if !owns(user, c.owner_id) {
        return Err(AppError::Forbidden(
            "only the owner may change a collection".into(),
        ));
    }
    Ok(c)
}

pub async fn update_collection(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    input: CollectionInput,
) -> AppResult<CollectionRow> {
    let changes = CollectionChangeset {
        name: input
            .name
            .as_deref()
            .map(|v| text(v, "input.name", 1, 200))
            .transpose()?,
        description: opt_opt(input.description, "input.description", 2000)?,
        cover_image_id: input.cover_image_id,
        tags: input
            .tags
            .as_deref()
            .map(|t| tags(t, "input.tags"))
            .transpose()?,
        is_public: input.is_public,
    };
    let mut conn = db::conn(&state.pool).await?;
    let c = own_collection(&mut conn, user, id).await?;
    check_cover(&mut conn, c.owner_id, input.cover_image_id).await?;
    Ok(model::update_collection(&mut conn, id, &changes).await?)
}

pub async fn delete_collection(state: &AppState, user: &ViewerUser, id: Uuid) -> AppResult<bool> {
    let mut conn = db::conn(&state.pool).await?;
    own_collection(&mut conn, user, id).await?;
    Ok(model::delete_collection(&mut conn, id).await?)
}

/// Adds characters the user may see to their collection; `characterCount` stays exact.
pub async fn add_to_collection(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    character_ids: &[Uuid],
) -> AppResult<CollectionRow> {
    let wanted = ids(character_ids, "characterIds")?;
    let mut conn = db::conn(&state.pool).await?;
    own_collection(&mut conn, user, id).await?;
    let seer = seer_of(user);
    let found = model::characters_by_ids(&mut conn, &wanted).await?;
    let visible = found
        .iter()
        .filter(|c| seer.sees(c.owner_id, c.is_public))
        .count();
    if visible != wanted.len() {
        return Err(AppError::bad_input("characterIds", "no such character"));
    }
    if wanted.is_empty() {
        return own_collection(&mut conn, user, id).await;
    }
    conn.transaction(async move |conn| {
        Ok::<_, AppError>(model::add_to_collection(conn, id, &wanted).await?)
    })
    .await
}

pub async fn remove_from_collection(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    character_ids: &[Uuid],
) -> AppResult<CollectionRow> {
    let wanted = ids(character_ids, "characterIds")?;
    let mut conn = db::conn(&state.pool).await?;
    own_collection(&mut conn, user, id).await?;
    conn.transaction(async move |conn| {
        Ok::<_, AppError>(model::remove_from_collection(conn, id, &wanted).await?)
    })
    .await
}

/// Checks that `order` names every member exactly once.
fn check_order(order: &[Uuid], members: &[Uuid], field: &str) -> AppResult<()> {
    let mut a = order.to_vec();
    let mut b = members.to_vec();
    a.sort();
    b.sort();
    if a != b {
        return Err(AppError::bad_input(
            field,
            "list every item exactly once, in the new order",
        ));
    }
    Ok(())
}

/// Puts a collection's characters in the given order.
pub async fn reorder_collection(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    order: &[Uuid],
) -> AppResult<CollectionRow> {
    let mut conn = db::conn(&state.pool).await?;
    own_collection(&mut conn, user, id).await?;
    let order = order.to_vec();
    conn.transaction(async move |conn| {
        let members = model::collection_member_ids(conn, id).await?;
        check_order(&order, &members, "characterIds")?;
        model::set_collection_order(conn, id, &order).await?;
        model::collection_by_id(conn, id)
            .await?
            .ok_or(AppError::NotFound("collection"))
    })
    .await
}

// ---- albums -----------------------------------------------------------------------------

/// Fields of `createAlbum` / `updateAlbum`.
#[derive(Debug, Default)]
pub struct AlbumInput {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub cover_image_id: Option<Option<Uuid>>,
    pub is_public: Option<bool>,
}

pub async fn create_album(
    state: &AppState,
    user: &ViewerUser,
    input: AlbumInput,
) -> AppResult<AlbumRow> {
    let name = text(input.name.as_deref().unwrap_or(""), "input.name", 1, 200)?;
    let description = opt_opt(input.description, "input.description", 2000)?.flatten();
    let mut conn = db::conn(&state.pool).await?;
    check_cover(&mut conn, user.id, input.cover_image_id).await?;
    Ok(model::insert_album(
        &mut conn,
        &NewAlbum {
            id: Uuid::now_v7(),
            owner_id: user.id,
            name: &name,
            description: description.as_deref(),
            cover_image_id: input.cover_image_id.flatten(),
            is_public: input.is_public.unwrap_or(false),
        },
    )
    .await?)
}

async fn own_album(conn: &mut db::DbConn, user: &ViewerUser, id: Uuid) -> AppResult<AlbumRow> {
    let a = model::album_by_id(conn, id)
        .await?
        .filter(|a| seer_of(user).sees(a.owner_id, a.is_public))
        .ok_or(AppError::NotFound("album"))?;
    if !owns(user, a.owner_id) {
        return Err(AppError::Forbidden(
            "only the owner may change an album".into(),
        ));
    }
    Ok(a)
}

pub async fn update_album(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    input: AlbumInput,
) -> AppResult<AlbumRow> {
    let changes = AlbumChangeset {
        name: input
            .name
            .as_deref()
            .map(|v| text(v, "input.name", 1, 200))
            .transpose()?,
        description: opt_opt(input.description, "input.description", 2000)?,
        cover_image_id: input.cover_image_id,
        is_public: input.is_public,
    };
    let mut conn = db::conn(&state.pool).await?;
    let a = own_album(&mut conn, user, id).await?;
    check_cover(&mut conn, a.owner_id, input.cover_image_id).await?;
    Ok(model::update_album(&mut conn, id, &changes).await?)
}

pub async fn delete_album(state: &AppState, user: &ViewerUser, id: Uuid) -> AppResult<bool> {
    let mut conn = db::conn(&state.pool).await?;
    own_album(&mut conn, user, id).await?;
    Ok(model::delete_album(&mut conn, id).await?)
}

/// Adds the vendor's own images to their album. A vendor without a running plan spends one
/// image of `freeGalleryRemaining` per image newly added (never refunded); when too few
/// remain nothing is added (`FORBIDDEN`).
pub async fn add_images_to_album(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    image_ids: &[Uuid],
) -> AppResult<AlbumRow> {
    let wanted = ids(image_ids, "imageIds")?;
    let mut conn = db::conn(&state.pool).await?;
    let album = own_album(&mut conn, user, id).await?;
    check_images(&mut conn, album.owner_id, &wanted, "imageIds").await?;
    let owner = album.owner_id;
    let admin = user.role == Role::Admin;
    conn.transaction(async move |conn| {
        model::lock_album(conn, id)
            .await?
            .ok_or(AppError::NotFound("album"))?;
        let present = model::album_image_ids(conn, id, &wanted).await?;
        let new: Vec<Uuid> = wanted
            .iter()
            .copied()
            .filter(|i| !present.contains(i))
            .collect();
        if new.is_empty() {
            return model::album_by_id(conn, id)
                .await?
                .ok_or(AppError::NotFound("album"));
        }
        if !admin
            && !model::has_active_plan(conn, owner).await?
            && !model::take_free_gallery(conn, owner, new.len() as i32).await?
        {
            let left = model::free_gallery_remaining(conn, owner).await?;
            return Err(AppError::Forbidden(format!(
                "your free gallery allows {left} more image(s); choose a plan to add more"
            )));
        }
        Ok::<_, AppError>(model::add_album_images(conn, id, &new).await?)
    })
    .await
}

pub async fn remove_images_from_album(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    image_ids: &[Uuid],
) -> AppResult<AlbumRow> {
    let wanted = ids(image_ids, "imageIds")?;
    let mut conn = db::conn(&state.pool).await?;
    own_album(&mut conn, user, id).await?;
    conn.transaction(async move |conn| {
        Ok::<_, AppError>(model::remove_album_images(conn, id, &wanted).await?)
    })
    .await
}

/// Vendors: puts an album's images in the given order.
pub async fn reorder_album(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    order: &[Uuid],
) -> AppResult<AlbumRow> {
    let mut conn = db::conn(&state.pool).await?;
    own_album(&mut conn, user, id).await?;
    let order = order.to_vec();
    conn.transaction(async move |conn| {
        model::lock_album(conn, id)
            .await?
            .ok_or(AppError::NotFound("album"))?;
        let members = model::album_member_ids(conn, id).await?;
        check_order(&order, &members, "imageIds")?;
        model::set_album_order(conn, id, &order).await?;
        model::album_by_id(conn, id)
            .await?
            .ok_or(AppError::NotFound("album"))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: AppError) -> String {
        match e {
            AppError::BadUserInput { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn views_are_keyed_by_user_else_address() {
        let user = Uuid::now_v7();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            viewer_key(Some(user), ip("10.0.0.1")),
            format!("user:{user}")
        );
        assert_eq!(viewer_key(None, ip("203.0.113.7")), "ip:203.0.113.7");
        assert_eq!(viewer_key(None, ip("::ffff:203.0.113.7")), "ip:203.0.113.7");
        assert_eq!(
            viewer_key(None, ip("2001:db8:1:2:aaaa::1")),
            viewer_key(None, ip("2001:db8:1:2:bbbb::2")),
            "one /64 is one viewer"
        );
        assert_eq!(
            viewer_key(None, ip("2001:db8:1:2::1")),
            "ip:2001:db8:1:2::/64"
        );
        assert_ne!(
            viewer_key(None, ip("2001:db8:1:3::1")),
            viewer_key(None, ip("2001:db8:1:2::1"))
        );
        assert_eq!(viewer_key(None, None), "ip:unknown");
    }

    #[test]
    fn character_fields_are_checked() {
        assert_eq!(cfg_scale(7.5).unwrap(), Tenths(75));
        assert_eq!(cfg_scale(1.0).unwrap(), Tenths(10));
        assert_eq!(cfg_scale(30.0).unwrap(), Tenths(300));
        for bad in [0.9, 30.1, 7.55, f64::NAN] {
            assert_eq!(
                field(cfg_scale(bad).unwrap_err()),
                "input.generation.cfgScale"
            );
        }
        assert!(steps(150).is_ok() && steps(0).is_err() && steps(151).is_err());
        assert_eq!(
            palette(&["#a1b2c3".into()]).unwrap(),
            vec!["#A1B2C3".to_string()]
        );
        assert!(palette(&["red".into()]).is_err());
        assert_eq!(
            tags(&[" Cat ".into(), "cat".into()], "input.tags").unwrap(),
            vec!["cat"]
        );
        assert!(tags(&vec!["x".to_string(); 21], "input.tags").is_err());
        assert!(tags(&["a".repeat(41)], "input.tags").is_err());
        assert_eq!(
            field(text("  ", "input.name", 1, 200).unwrap_err()),
            "input.name"
        );
    }
}
