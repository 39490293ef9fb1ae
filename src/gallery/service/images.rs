//! Images: uploads, and the lists of an owner's images.

use bytes::Bytes;
use uuid::Uuid;

use super::tags;
use crate::{
    AppState,
    accounts::{Role, viewer::ViewerUser},
    db,
    error::{AppError, AppResult},
    gallery::{
        ImageKind,
        model::{self, ImageRow, NewImage, Seer, TimeKey},
        upload,
    },
    ratelimit,
};

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

/// An owner's images, newest first, as `seer` may see them.
pub async fn owner_images(
    state: &AppState,
    owner: Uuid,
    seer: Seer,
    after: Option<TimeKey>,
    limit: i64,
) -> AppResult<Vec<ImageRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::owner_images(&mut conn, owner, seer, after, limit).await?)
}
