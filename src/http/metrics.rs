//! `GET /metrics` (Prometheus text format) and the access log: one INFO line and one count
//! per HTTP request.

use std::time::Instant;

use axum::{
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::{HttpState, REQUEST_ID};
use crate::error::codes;

/// The GraphQL operation a response answered, as counted (set by the GraphQL handlers).
#[derive(Clone, Debug)]
pub struct GraphqlOperation(pub String);

/// `GET /metrics`: the text exposition format; with `EASEL_METRICS_TOKEN` set, only for
/// `Authorization: Bearer <token>`.
pub async fn scrape(State(state): State<HttpState>, req: Request) -> Response {
    if let Some(token) = &state.app.config.metrics_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Digests compared, so the time taken says nothing about the token.
        let same = Sha256::digest(given.trim().as_bytes())
            == Sha256::digest(token.expose_secret().as_bytes());
        if !same {
            let mut resp = super::error_response(
                StatusCode::UNAUTHORIZED,
                codes::UNAUTHENTICATED,
                "/metrics needs `Authorization: Bearer <EASEL_METRICS_TOKEN>`",
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"metrics\""),
            );
            return resp;
        }
    }
    let text = state.app.metrics.render(&state.app).await;
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}

/// Logs one line per request (method, path, operation, status, duration, request id) at
/// INFO, and counts it in `easel_http_requests_total` and its latency histogram.
pub async fn access(State(state): State<HttpState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let response = next.run(req).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let operation = response
        .extensions()
        .get::<GraphqlOperation>()
        .map(|o| o.0.as_str());
    let ms = elapsed.as_secs_f64() * 1000.0;
    tracing::info!(
        target: "easel::access",
        method = %method,
        path = %path,
        operation,
        status,
        duration_ms = (ms * 1000.0).round() / 1000.0,
        request_id = %request_id,
        "request"
    );
    state.app.metrics.http_request(
        route(&path),
        operation.unwrap_or("none"),
        method_label(&method),
        status,
        elapsed,
    );
    response
}

/// The route a path belongs to: a short fixed list, so paths cannot grow the label set.
fn route(path: &str) -> &'static str {
    match path {
        "/graphql" => "/graphql",
        "/graphql/ws" => "/graphql/ws",
        "/" | "/graphiql" => "/graphiql",
        "/metrics" => "/metrics",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        p if p.starts_with("/media/") => "/media",
        p if p.starts_with("/webhooks/") => "/webhooks",
        p if p.starts_with("/sandbox/") => "/sandbox",
        _ => "other",
    }
}

fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn routes_are_a_fixed_set() {
        assert_eq!(super::route("/media/a/b.png"), "/media");
        assert_eq!(super::route("/graphql"), "/graphql");
        assert_eq!(super::route("/random/thing"), "other");
    }
}
