//! HTTP endpoints of payments: gateway webhooks and the sandbox's hosted checkout page.

use axum::{
    Form,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{
    Gateway, PaymentStatus, model,
    service::{self, WebhookError},
};
use crate::{db, http::HttpState};

/// `POST /webhooks/payments/<gateway>`: verified on the raw body; 200 once recorded (also for
/// replays), 400 for a bad signature or body (nothing changes), 404 for an unknown gateway.
pub async fn webhook(
    State(state): State<HttpState>,
    Path(gateway): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match service::handle_webhook(&state.app, &gateway, &headers, &body).await {
        Ok(()) => (StatusCode::OK, axum::Json(json!({ "received": true }))).into_response(),
        Err(WebhookError::UnknownGateway) => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": "unknown or disabled gateway" })),
        )
            .into_response(),
        Err(WebhookError::BadSignature(reason)) => {
            tracing::warn!(gateway, reason, "webhook refused");
            (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": reason })),
            )
                .into_response()
        }
        Err(WebhookError::Internal(e)) => {
            let _ = e.into_graphql(); // logs it
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({ "error": "internal error; retry" })),
            )
                .into_response()
        }
    }
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}\
         button{{font-size:1rem;padding:.6rem 1.4rem;margin-right:.6rem;border-radius:.4rem;border:1px solid #888;cursor:pointer}}\
         .approve{{background:#1a7f37;color:#fff}}.decline{{background:#fff}}.note{{color:#666;font-size:.9rem}}</style></head>\
         <body>{body}</body></html>"
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn money(minor: i64, currency: &str) -> String {
    format!("{}.{:02} {}", minor / 100, minor % 100, escape(currency))
}

/// `GET /sandbox/checkout/<payment>`: the sandbox gateway's hosted checkout.
pub async fn checkout_page(State(state): State<HttpState>, Path(id): Path<Uuid>) -> Response {
    let Ok(mut conn) = db::conn(&state.app.pool).await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "busy; retry").into_response();
    };
    let payment = model::by_id(&mut conn, id)
        .await
        .ok()
        .flatten()
        .filter(|p| p.gateway == Gateway::Sandbox);
    let Some(p) = payment else {
        return (
            StatusCode::NOT_FOUND,
            page("Not found", "<h1>No such payment</h1>"),
        )
            .into_response();
    };
    let what = escape(p.gateway_data["package"].as_str().unwrap_or("Credits"));
    let credits = p.gateway_data["credits"].as_i64().unwrap_or(0);
    let body = if p.status == PaymentStatus::Pending {
        format!(
            "<h1>Easel sandbox checkout</h1><p><strong>{what}</strong>: {credits} credits for {}</p>\
             <form method=\"post\"><button class=\"approve\" name=\"decision\" value=\"approve\">Approve</button>\
             <button class=\"decline\" name=\"decision\" value=\"decline\">Decline</button></form>\
             <p class=\"note\">No money moves: this page stands in for a real gateway and sends Easel the same signed webhook.</p>",
            money(p.amount_minor, &p.currency)
        )
    } else {
        format!(
            "<h1>Payment {}</h1><p>This payment is {}.</p>",
            p.id,
            p.status.as_str()
        )
    };
    page("Easel sandbox checkout", &body).into_response()
}

#[derive(Deserialize)]
pub struct Decision {
    decision: String,
}

/// `POST /sandbox/checkout/<payment>`: Approve or Decline, then back to the app.
pub async fn checkout_decide(
    State(state): State<HttpState>,
    Path(id): Path<Uuid>,
    Form(form): Form<Decision>,
) -> Response {
    let approve = match form.decision.as_str() {
        "approve" => true,
        "decline" => false,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                page("Bad request", "<h1>Choose Approve or Decline</h1>"),
            )
                .into_response();
        }
    };
    match service::sandbox_decide(&state.app, id, approve).await {
        Ok(p) => {
            let back = p.gateway_data["return_url"]
                .as_str()
                .unwrap_or("/sandbox/done")
                .to_string();
            let sep = if back.contains('?') { '&' } else { '?' };
            let status = if p.status == PaymentStatus::Completed {
                "success"
            } else {
                p.status.as_str()
            };
            let link = format!("{back}{sep}payment={}&status={status}", p.id);
            page(
                "Easel sandbox checkout",
                &format!(
                    "<h1>Payment {}</h1><p>{} credits granted.</p><p><a href=\"{}\">Return to the app</a></p>",
                    p.status.as_str(),
                    p.credits_granted,
                    escape(&link)
                ),
            )
            .into_response()
        }
        Err(e) => {
            let status = if e.code() == "NOT_FOUND" {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::BAD_GATEWAY
            };
            let msg = escape(&e.message());
            let _ = e.into_graphql();
            (
                status,
                page(
                    "Easel sandbox checkout",
                    &format!("<h1>Something went wrong</h1><p>{msg}</p>"),
                ),
            )
                .into_response()
        }
    }
}

/// `GET /sandbox/done`: where sandbox checkouts without a return URL end.
pub async fn done() -> Html<String> {
    page(
        "Easel sandbox checkout",
        "<h1>Done</h1><p>You can close this page.</p>",
    )
}
