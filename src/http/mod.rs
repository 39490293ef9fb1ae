//! The HTTP surface: router, middleware, GraphQL transport, GraphiQL, health.

mod exports;
mod graphiql;
mod graphql;
mod health;
pub mod limits;
mod media;
mod metrics;
pub mod serve;

use std::time::Duration;

use axum::{
    Router,
    http::{HeaderName, HeaderValue, Method, Request, StatusCode},
    response::Response,
    routing::{get, post},
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

use crate::{
    AppState,
    error::codes,
    schema::{AppSchema, build_schema},
};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the handlers share. Capabilities' own handlers (payments) take just the
/// [`AppState`], through [`axum::extract::FromRef`], so they need not know this type.
#[derive(Clone)]
pub struct HttpState {
    pub app: AppState,
    pub schema: AppSchema,
    /// The open websockets.
    pub websockets: Websockets,
}

/// The open websockets of a server: one permit each (`EASEL_MAX_CONNECTIONS`), and the signal
/// that closes them all at shutdown (each completes its operations and closes with 1001).
#[derive(Clone)]
pub struct Websockets {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    max: u32,
    closing: tokio::sync::watch::Receiver<bool>,
}

impl Websockets {
    /// At most `max` websockets, closed once `closing` turns true.
    pub fn new(max: usize, closing: tokio::sync::watch::Receiver<bool>) -> Self {
        let max = u32::try_from(max).unwrap_or(u32::MAX).min(1 << 28);
        Websockets {
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(max as usize)),
            max,
            closing,
        }
    }

    /// A permit for one more websocket, unless `max` are open.
    pub fn try_open(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    /// Resolves when the server shuts down (never, when nothing can shut it down).
    pub async fn closing(&self) {
        let mut closing = self.closing.clone();
        if closing.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once no websocket is open.
    pub async fn closed(&self) {
        let _all = self.permits.acquire_many(self.max).await;
    }
}

impl axum::extract::FromRef<HttpState> for AppState {
    fn from_ref(state: &HttpState) -> Self {
        state.app.clone()
    }
}

/// The whole HTTP application (its websockets are never closed by a shutdown).
pub fn router(app: AppState) -> Router {
    let (_, never) = tokio::sync::watch::channel(false);
    let websockets = Websockets::new(app.config.max_connections, never);
    router_with(app, websockets)
}

/// The whole HTTP application, with `websockets` (which a shutdown closes).
pub fn router_with(app: AppState, websockets: Websockets) -> Router {
    let config = app.config.clone();
    let state = HttpState {
        schema: build_schema(app.clone()),
        websockets,
        app,
    };
    let mut router = Router::new();
    if config.metrics {
        router = router.route("/metrics", get(metrics::scrape));
    }
    if config.graphiql {
        router = router
            .route("/", get(graphiql::page))
            .route("/graphiql", get(graphiql::page));
    }
    router
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/graphql/ws", get(graphql::websocket))
        .route("/webhooks/payments/{gateway}", post(crate::payments::http::webhook))
        .merge(crate::payments::http::sandbox_routes(&config))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/media/{*key}", get(media::get))
        .route("/exports/{id}", get(exports::get))
        .fallback(not_found)
        .with_state(state.clone())
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, config.request_timeout))
        .layer(cors(&config.cors_origins, &config.cors_headers))
        .layer(CatchPanicLayer::custom(|_| {
            error_response(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL, "internal server error")
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(axum::middleware::from_fn_with_state(state, metrics::access))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// `easel worker`'s HTTP: `/healthz`, `/readyz` (the database, the schema, the event
/// listener) and `/metrics` (this process's worker counters; guarded by
/// `EASEL_METRICS_TOKEN` like the API's), nothing else.
pub fn worker_router(app: AppState) -> Router {
    let config = app.config.clone();
    let (_, never) = tokio::sync::watch::channel(false);
    let state = HttpState {
        schema: build_schema(app.clone()),
        websockets: Websockets::new(1, never),
        app,
    };
    let mut router = Router::new();
    if config.metrics {
        router = router.route("/metrics", get(metrics::scrape));
    }
    router
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(not_found)
        .with_state(state)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config.request_timeout,
        ))
}

fn cors(origins: &[String], headers: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(
            headers
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
                .collect::<Vec<_>>(),
        )
        .expose_headers([REQUEST_ID])
        .max_age(Duration::from_secs(3600))
}

pub use crate::error::error_response;

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        codes::NOT_FOUND,
        "no such endpoint; GraphQL is served at /graphql",
    )
}
