//! `updateImage` and `deleteImage`, and the image removal deleting an account shares.

use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use super::tags;
use crate::{
    AppState,
    accounts::viewer::ViewerUser,
    db,
    error::{AppError, AppResult},
    gallery::model::{self, DeletedObjects, ImageRow},
};

/// One of the user's images, locked until the transaction ends; `NOT_FOUND` for anyone
/// else's (whether or not it is public: only its owner changes an image).
async fn own_image(conn: &mut AsyncPgConnection, user: &ViewerUser, id: Uuid) -> AppResult<()> {
    if model::lock_owned_image(conn, user.id, id).await? {
        Ok(())
    } else {
        Err(AppError::NotFound("image"))
    }
}

/// Changes the public flag and tags of one of the user's images (`None` leaves a field).
pub async fn update_image(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    is_public: Option<bool>,
    tag_values: Option<&[String]>,
) -> AppResult<ImageRow> {
    let tags = tag_values.map(|t| tags(t, "input.tags")).transpose()?;
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        own_image(conn, user, id).await?;
        Ok(model::update_image(conn, id, is_public, tags.as_deref()).await?)
    })
    .await
}

/// Deletes one of the user's images: it leaves its characters (a primary image is cleared)
/// and albums (counts kept, a free gallery image it took given back) in one transaction;
/// its files are deleted once that committed.
pub async fn delete_image(state: &AppState, user: &ViewerUser, id: Uuid) -> AppResult<bool> {
    let mut conn = db::conn(&state.pool).await?;
    let objects = conn
        .transaction(async |conn| {
            own_image(conn, user, id).await?;
            delete_images_in(conn, &[id]).await
        })
        .await?;
    delete_objects(state, &objects).await;
    Ok(true)
}

/// Deletes images in the caller's transaction (see [`model::delete_images`]); hand what it
/// returns to [`delete_objects`] once the transaction committed.
pub async fn delete_images_in(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> AppResult<Vec<DeletedObjects>> {
    Ok(model::delete_images(conn, ids).await?)
}

/// Deletes the files of deleted images. Their rows are gone already, so a failure cannot be
/// undone nor shown to the user: it is logged with the keys (and counted in
/// `easel_media_orphans_total`) for an operator to delete; no URL names them any more.
pub async fn delete_objects(state: &AppState, objects: &[DeletedObjects]) {
    let keys: Vec<&str> = objects.iter().flat_map(DeletedObjects::keys).collect();
    if keys.is_empty() {
        return;
    }
    for chunk in keys.chunks(500) {
        if let Err(e) = state.media.delete(chunk).await {
            tracing::error!(keys = ?chunk, error = %e, "deleting the files of deleted images");
            state
                .metrics
                .count("easel_media_orphans_total", &[], chunk.len() as u64);
        }
    }
}

/// Deletes everything a user has in the gallery, in the caller's transaction (see
/// [`model::delete_owner_content`]); hand what it returns to [`delete_objects`] once the
/// transaction committed.
pub async fn delete_owner_content_in(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
) -> AppResult<Vec<DeletedObjects>> {
    Ok(model::delete_owner_content(conn, owner).await?)
}
