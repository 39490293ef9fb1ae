//! What generation asks of the gallery: checks when a job is requested, and what a job's end
//! changes (its result images, its character). Every function takes the caller's connection,
//! so the changes run in the caller's transaction (the worker records a job's end in one).

use std::collections::HashSet;

use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::{
    error::AppResult,
    gallery::{
        CharacterStatus, ImageKind,
        model::{self, CHARACTER_IMAGES, ImageRow, NewImage},
    },
};

/// Whether every one of `ids` (repeats allowed) is an image of `owner`.
pub async fn owns_images(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    ids: &[Uuid],
) -> AppResult<bool> {
    let wanted: HashSet<&Uuid> = ids.iter().collect();
    let found = model::owned_image_ids(conn, owner, ids).await?;
    Ok(found.len() == wanted.len())
}

/// The images among `ids` that belong to `owner` (a job's inputs: one deleted since, or
/// someone else's, is missing from the answer).
pub async fn images_of_owner(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    ids: &[Uuid],
) -> AppResult<Vec<ImageRow>> {
    let mut rows = model::images_by_ids(conn, ids).await?;
    rows.retain(|i| i.owner_id == owner);
    Ok(rows)
}

/// The owner of a character; `None` when there is no such character.
pub async fn character_owner(conn: &mut AsyncPgConnection, id: Uuid) -> AppResult<Option<Uuid>> {
    Ok(model::character_owner(conn, id).await?)
}

/// Sets where a character's generation stands (a job for it was queued, or ended without
/// images), with the error that ended it, if any.
pub async fn set_character_status(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    status: CharacterStatus,
    error: Option<&str>,
) -> AppResult<()> {
    Ok(model::set_character_status(conn, id, status, error).await?)
}

/// An image a generation job made, already in object storage.
#[derive(Debug, Clone, Copy)]
pub struct JobImage<'a> {
    pub id: Uuid,
    pub job_id: Uuid,
    /// Who asked for the job.
    pub owner_id: Uuid,
    pub storage_key: &'a str,
    pub thumbnail_key: &'a str,
    pub mime_type: &'a str,
    pub byte_size: i64,
    pub width: i32,
    pub height: i32,
}

/// Records a job's image: a private, untagged `RESULT` image of the job's owner.
pub async fn record_job_image(
    conn: &mut AsyncPgConnection,
    image: &JobImage<'_>,
) -> AppResult<ImageRow> {
    Ok(model::insert_image(
        conn,
        &NewImage {
            id: image.id,
            owner_id: image.owner_id,
            job_id: Some(image.job_id),
            kind: ImageKind::Result,
            storage_key: image.storage_key,
            mime_type: image.mime_type,
            byte_size: image.byte_size,
            width: image.width,
            height: image.height,
            thumbnail_key: Some(image.thumbnail_key),
            is_public: false,
            tags: &[],
        },
    )
    .await?)
}

/// Adds a succeeded job's images at the end of its character's images (the first becomes
/// the primary image when the character has none) and marks the character completed.
/// Nothing happens when the character was deleted meanwhile.
pub async fn attach_to_character(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    image_ids: &[Uuid],
) -> AppResult<()> {
    let Some(images) = CHARACTER_IMAGES.lock(conn, id).await? else {
        return Ok(());
    };
    images.append(conn, image_ids).await?;
    model::complete_character(conn, id, image_ids.first().copied()).await?;
    Ok(())
}
