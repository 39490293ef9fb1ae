//! `GET /media/<key>`: files of the local media store, with long cache headers (keys are
//! never reused: a changed image gets a new key).

use axum::{
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{HttpState, error_response};
use crate::{error::codes, storage::MediaStore};

pub async fn get(State(state): State<HttpState>, Path(key): Path<String>) -> Response {
    let not_found = || {
        error_response(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            "no such media file",
        )
    };
    // Data exports are served by `/exports/<id>` only (token and expiry checked there).
    let Some(content_type) = MediaStore::content_type(&key)
        .filter(|_| MediaStore::valid_key(&key) && !key.starts_with("exports/"))
    else {
        return not_found();
    };
    match state.app.media.get(&key).await {
        Ok(Some(bytes)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, crate::storage::CACHE_CONTROL),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            bytes,
        )
            .into_response(),
        Ok(None) => not_found(),
        Err(e) => {
            tracing::error!(error = %e, "reading a media file");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::INTERNAL,
                "internal server error",
            )
        }
    }
}
