//! HTTP endpoints of payments: gateway webhooks and the sandbox's hosted checkout page.

use axum::{
    Form, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{
    PaymentStatus,
    service::{self, WebhookError},
};
use crate::{
    AppState,
    config::Config,
    error::error_response,
    error::{AppError, codes},
};

/// The sandbox gateway's pages, `/sandbox/checkout/<payment>` (GET and POST) and
/// `/sandbox/done`: routes only when the sandbox is enabled, so that otherwise they answer
/// the router's 404 like any unknown path.
pub fn sandbox_routes<S>(config: &Config) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    AppState: axum::extract::FromRef<S>,
{
    if !config.payment_gateways.iter().any(|g| g == "sandbox") {
        return Router::new();
    }
    Router::new()
        .route(
            "/sandbox/checkout/{payment}",
            get(checkout_page).post(checkout_decide),
        )
        .route("/sandbox/done", get(done))
}

/// `POST /webhooks/payments/<gateway>`: verified on the raw body; 200 once recorded (also for
/// replays), 400 for a bad signature or body (nothing changes), 404 for an unknown gateway.
pub async fn webhook(
    State(state): State<AppState>,
    Path(gateway): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match service::handle_webhook(&state, &gateway, &headers, &body).await {
        Ok(()) => (StatusCode::OK, axum::Json(json!({ "received": true }))).into_response(),
        Err(WebhookError::UnknownGateway) => error_response(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            "unknown or disabled gateway",
        ),
        Err(WebhookError::BadSignature(reason)) => {
            tracing::warn!(gateway, reason, "webhook refused");
            error_response(StatusCode::BAD_REQUEST, codes::BAD_USER_INPUT, reason)
        }
        Err(WebhookError::Internal(e)) => {
            let _ = e.into_graphql(); // logs it
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::INTERNAL,
                "internal error; retry",
            )
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

/// The checkout link's token (`?token=...`).
#[derive(Deserialize)]
pub struct CheckoutToken {
    token: Option<String>,
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        page("Not found", "<h1>No such payment</h1>"),
    )
        .into_response()
}

/// `GET /sandbox/checkout/<payment>?token=<checkout token>`: the sandbox gateway's hosted
/// checkout. Without the payment's token it answers 404, as for an unknown payment.
pub async fn checkout_page(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<CheckoutToken>,
) -> Response {
    let p = match service::sandbox_checkout(&state, id, query.token.as_deref()).await {
        Ok(p) => p,
        Err(AppError::NotFound(_)) => return not_found(),
        Err(e) => {
            let _ = e.into_graphql(); // logs it
            return (StatusCode::SERVICE_UNAVAILABLE, "busy; retry").into_response();
        }
    };
    let offer = match p.gateway_data["plan"].as_str() {
        Some(plan) => {
            let every = p.gateway_data["interval"].as_str().unwrap_or("month");
            let price = money(
                p.gateway_data["price_minor"].as_i64().unwrap_or(0),
                &p.currency,
            );
            match p.gateway_data["trial_days"].as_i64().filter(|d| *d > 0) {
                Some(days) => format!(
                    "<strong>{}</strong> subscription: {days} days free, then {price} a {}; today",
                    escape(plan),
                    escape(every)
                ),
                None => format!(
                    "<strong>{}</strong> subscription, {price} a {}: first {}",
                    escape(plan),
                    escape(every),
                    escape(every)
                ),
            }
        }
        None => format!(
            "<strong>{}</strong>: {} credits",
            escape(p.gateway_data["package"].as_str().unwrap_or("Credits")),
            p.gateway_data["credits"].as_i64().unwrap_or(0)
        ),
    };
    let body = if p.status == PaymentStatus::Pending {
        // The token travels on with the decision (the form posts to this same URL, too).
        let token = escape(query.token.as_deref().unwrap_or_default());
        format!(
            "<h1>Easel sandbox checkout</h1><p>{offer} for {}</p>\
             <form method=\"post\"><input type=\"hidden\" name=\"token\" value=\"{token}\">\
             <button class=\"approve\" name=\"decision\" value=\"approve\">Approve</button>\
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
    /// The checkout token, from the page's form (or else from the URL's query).
    token: Option<String>,
}

/// `POST /sandbox/checkout/<payment>`: Approve or Decline, then back to the app. Needs the
/// checkout token (404 without it); a payment already decided answers 409 and changes nothing.
pub async fn checkout_decide(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<CheckoutToken>,
    Form(form): Form<Decision>,
) -> Response {
    let token = form.token.or(query.token);
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
    match service::sandbox_decide(&state, id, token.as_deref(), approve).await {
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
                    "<h1>Payment {}</h1><p>{}</p><p><a href=\"{}\">Return to the app</a></p>",
                    p.status.as_str(),
                    match (p.plan_id, p.status) {
                        (Some(_), PaymentStatus::Completed) => "Subscription started.".to_string(),
                        (Some(_), _) => "No subscription started.".to_string(),
                        (None, _) => format!("{} credits granted.", p.credits_granted),
                    },
                    escape(&link)
                ),
            )
            .into_response()
        }
        Err(AppError::NotFound(_)) => not_found(),
        Err(e) => {
            let (status, heading) = if e.code() == codes::CONFLICT {
                (StatusCode::CONFLICT, "Already decided")
            } else {
                (StatusCode::BAD_GATEWAY, "Something went wrong")
            };
            let msg = escape(&e.message());
            let _ = e.into_graphql();
            (
                status,
                page(
                    "Easel sandbox checkout",
                    &format!("<h1>{heading}</h1><p>{msg}</p>"),
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
