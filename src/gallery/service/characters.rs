//! Characters: creating, changing, publishing and deleting them, likes, ratings, counted
//! views, and the lists of an owner's characters and of a character's variants.

use std::net::{IpAddr, Ipv6Addr};

use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use super::{
    cfg_scale, check_images, ids, opt_opt, opt_text, owns, palette, seer_of, steps, tags, text,
};
use crate::{
    AppState,
    accounts::{Role, viewer::ViewerUser},
    db,
    error::{AppError, AppResult},
    gallery::{
        CharacterStatus, LicenseType, StyleType, VariantType,
        model::{
            self, CHARACTER_IMAGES, CharacterChangeset, CharacterRow, CharacterWants, Locked,
            NewCharacter, OrderKey, PlannedCharacter, Seer, TimeKey,
        },
    },
};

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
        let images = images_of(conn, row.id).await?;
        images.replace(conn, &image_ids).await?;
        if row.is_public {
            show_images(conn, &row, images).await?;
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
        let images = images_of(conn, id).await?;
        if let Some(ids) = &image_ids {
            images.replace(conn, ids).await?;
        }
        if publishing && row.published_at.is_none() {
            row = model::publish_character(conn, id).await?;
        }
        if row.is_public {
            show_images(conn, &row, images).await?;
        }
        Ok::<_, AppError>(row)
    })
    .await
}

/// Owner (or admin) deletes a character; collections holding it lose it and their counts
/// follow in the same transaction; its variants stay, without a parent.
pub async fn delete_character(state: &AppState, user: &ViewerUser, id: Uuid) -> AppResult<bool> {
    let mut conn = db::conn(&state.pool).await?;
    let seer = seer_of(user);
    conn.transaction(async move |conn| {
        lock_own(conn, seer, id, "delete").await?;
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
    let seer = seer_of(user);
    conn.transaction(async move |conn| {
        let current = lock_own(conn, seer, id, "publish").await?;
        let row = if current.published_at.is_some() && current.is_public {
            current
        } else {
            model::publish_character(conn, id).await?
        };
        let images = images_of(conn, id).await?;
        show_images(conn, &row, images).await?;
        Ok::<_, AppError>(row)
    })
    .await
}

/// A character the viewer may see, or `NOT_FOUND`.
async fn visible_character(
    conn: &mut AsyncPgConnection,
    seer: Seer,
    id: Uuid,
) -> AppResult<CharacterRow> {
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

/// The character, locked until the transaction ends, when `seer` may change it: `NOT_FOUND`
/// when they may not see it, `FORBIDDEN` ("only the owner may <verb> a character") when they
/// see it but neither own it nor are an admin.
async fn lock_own(
    conn: &mut AsyncPgConnection,
    seer: Seer,
    id: Uuid,
    verb: &str,
) -> AppResult<CharacterRow> {
    let current = model::lock_character(conn, id)
        .await?
        .filter(|c| seer.sees(c.owner_id, c.is_public))
        .ok_or(AppError::NotFound("character"))?;
    if seer.user != Some(current.owner_id) && !seer.admin {
        return Err(AppError::Forbidden(format!(
            "only the owner may {verb} a character"
        )));
    }
    Ok(current)
}

/// The images of a character, locked with it until the transaction ends.
async fn images_of(conn: &mut AsyncPgConnection, id: Uuid) -> AppResult<Locked> {
    CHARACTER_IMAGES
        .lock(conn, id)
        .await?
        .ok_or(AppError::NotFound("character"))
}

/// Makes a public character's pictures (its images and primary image) public with it.
async fn show_images(
    conn: &mut AsyncPgConnection,
    row: &CharacterRow,
    images: Locked,
) -> AppResult<()> {
    let mut shown = images.members(conn).await?;
    shown.extend(row.primary_image_id);
    model::publish_images(conn, row.owner_id, &shown).await?;
    Ok(())
}

/// An owner's characters, newest first, as `seer` may see them, with what `wants` asks for.
pub async fn owner_characters(
    state: &AppState,
    owner: Uuid,
    seer: Seer,
    after: Option<TimeKey>,
    limit: i64,
    wants: &CharacterWants,
) -> AppResult<Vec<PlannedCharacter>> {
    let mut conn = state.read_conn(seer.user).await?;
    Ok(model::owner_characters(&mut conn, owner, seer, after, limit, wants).await?)
}

/// The variants of a character in version order, as `seer` may see them.
pub async fn variants(
    state: &AppState,
    parent: Uuid,
    seer: Seer,
    after: Option<OrderKey>,
    limit: i64,
) -> AppResult<Vec<CharacterRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::variants(&mut conn, parent, seer, after, limit).await?)
}

/// Drops view marks of windows that ended long ago (windows last at most a day); called
/// hourly by the server.
pub async fn prune_view_marks(conn: &mut AsyncPgConnection) -> AppResult<usize> {
    Ok(model::prune_view_marks(conn).await?)
}
