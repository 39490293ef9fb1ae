//! `/healthz` (the process answers) and `/readyz` (database reachable, schema up to date, and
//! the event listener connected: without it subscriptions hear nothing).

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde_json::json;

use super::HttpState;
use crate::db;

pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    let expected = db::latest_migration_version();
    let check = async {
        // The reason is for whoever probes (a load balancer, the public): the details of a
        // database error go to the log only.
        let mut conn = state.app.pool.get().await.map_err(|e| {
            tracing::warn!(error = %e, "readiness: no database connection");
            "database unreachable".to_string()
        })?;
        let applied = db::applied_migration_version(&mut conn)
            .await
            .map_err(|_| "database: migrations table not readable".to_string())?;
        let version = match applied {
            Some(v) if v >= expected => v,
            other => {
                return Err(format!(
                    "migrations pending: applied {}, expected {expected}",
                    other.unwrap_or_else(|| "none".into())
                ));
            }
        };
        // Subscriptions hear nothing while it is down (what they miss is caught up once it
        // is back).
        if !state.app.events.is_listening() {
            return Err("event listener not connected".to_string());
        }
        Ok(version)
    };
    match tokio::time::timeout(Duration::from_secs(3), check).await {
        Ok(Ok(version)) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "migration": version })),
        ),
        Ok(Err(reason)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": reason })),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": "database did not answer in 3 s" })),
        ),
    }
}
