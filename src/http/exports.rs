//! `GET /exports/<id>?token=<token>`: a ready data export's zip, for whoever has the link
//! `requestDataExport`'s owner sees (`DataExport.downloadUrl`). A wrong token or unknown id is
//! 404; an expired export is 410 Gone.

use axum::{
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{HttpState, error_response};
use crate::{error::codes, rights::export};

#[derive(Deserialize)]
pub struct Token {
    token: Option<String>,
}

pub async fn get(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    Query(query): Query<Token>,
) -> Response {
    let not_found = || error_response(StatusCode::NOT_FOUND, codes::NOT_FOUND, "no such export");
    let internal = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "serving a data export");
        error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "internal server error",
        )
    };
    let (Ok(id), Some(token)) = (uuid::Uuid::parse_str(&id), query.token) else {
        return not_found();
    };
    let row = match export::by_id(&state.app, id).await {
        Ok(Some(row)) => row,
        Ok(None) => return not_found(),
        Err(e) => return internal(&e.log_line()),
    };
    // Compared as digests: the time taken says nothing about the token.
    if Sha256::digest(token.as_bytes()) != Sha256::digest(row.download_token.as_bytes()) {
        return not_found();
    }
    let (Some(key), Some(expires)) = (row.storage_key.as_deref(), row.expires_at) else {
        return not_found();
    };
    if row.status != "ready" {
        return not_found();
    }
    if expires <= chrono::Utc::now() {
        return error_response(
            StatusCode::GONE,
            codes::NOT_FOUND,
            "this export has expired",
        );
    }
    match state.app.media.get(key).await {
        Ok(Some(bytes)) => (
            [
                (header::CONTENT_TYPE, "application/zip".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"easel-export-{id}.zip\""),
                ),
                (header::CACHE_CONTROL, "private, no-store".to_string()),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            ],
            bytes,
        )
            .into_response(),
        Ok(None) => not_found(),
        Err(e) => internal(&e),
    }
}
