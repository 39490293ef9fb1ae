//! GraphQL over HTTP (POST, GET) and over websockets (`graphql-transport-ws`).
//!
//! Bad requests never reach the executor: a missing or wrong content type is 415, a body
//! over the limit 413, a body that is not JSON or not a GraphQL request 400, a mutation over
//! GET 405; a request error of GraphQL itself (syntax, validation, unknown operation, limits)
//! is 400. Every one of them answers with a GraphQL `errors` array carrying `extensions.code`.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_graphql::{
    BatchRequest, BatchResponse, Data, Executor, Request as GqlRequest,
    http::{ALL_WEBSOCKET_PROTOCOLS, MultipartOptions, WebSocketProtocols, WsMessage},
    parser::types::OperationType,
};
use axum::{
    body::to_bytes,
    extract::{
        ConnectInfo, FromRequestParts, Request, State, WebSocketUpgrade,
        ws::{CloseFrame, Message},
    },
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use futures_util::{SinkExt, StreamExt, TryStreamExt};

use super::limits::{SocketOperations, Verdict};
use super::{HttpState, error_response};
use crate::{
    AppState,
    accounts::{
        service::{self, RequestMeta},
        viewer::Viewer,
    },
    error::{AppError, codes},
    graphql::{
        errors::is_request_error,
        limits::{self, Limits},
    },
    schema,
};
use uuid::Uuid;

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
/// Room for the operations, map and part headers of a multipart upload beyond the file.
const MULTIPART_OVERHEAD: usize = 64 * 1024;
/// Bytes read from a websocket at a time (see `upgrade`).
const WS_READ_BUFFER: usize = 8 * 1024;

/// `POST /graphql`: JSON bodies, and GraphQL multipart requests (file uploads).
pub async fn post(State(state): State<HttpState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let who = match Caller::from_parts(&state.app, &parts) {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let headers = &parts.headers;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let essence = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|e| e.trim().to_ascii_lowercase());
    let limit = state.app.config.max_body_bytes;
    let batch = match essence.as_deref() {
        Some("application/json") => {
            let bytes = match to_bytes(body, limit).await {
                Ok(b) => b,
                Err(_) => return too_large(limit),
            };
            match parse_json_body(&bytes) {
                Ok(batch) => batch,
                Err(message) => {
                    return error_response(StatusCode::BAD_REQUEST, codes::BAD_USER_INPUT, message);
                }
            }
        }
        Some("multipart/form-data") => {
            // A browser sends a cross-site multipart form without a preflight; a custom
            // header forces one, so only allowed origins can upload (CSRF protection).
            let preflighted = ["apollo-require-preflight", "x-easel-csrf"]
                .iter()
                .any(|h| headers.get(*h).is_some_and(|v| !v.is_empty()));
            if !preflighted {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    codes::BAD_USER_INPUT,
                    "multipart requests need an `apollo-require-preflight` or `x-easel-csrf` header (CSRF protection)",
                );
            }
            let file_limit = state.app.config.upload_max_bytes;
            let limit = limit.max(file_limit.saturating_add(MULTIPART_OVERHEAD));
            let declared = headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            if declared.is_some_and(|n| n > limit) {
                return too_large(limit);
            }
            let mut received = 0usize;
            let stream = body
                .into_data_stream()
                .map(move |chunk| {
                    let chunk = chunk.map_err(std::io::Error::other)?;
                    received += chunk.len();
                    if received > limit {
                        return Err(std::io::Error::other("request body is too large"));
                    }
                    Ok(chunk)
                })
                .into_async_read();
            let opts = MultipartOptions::default()
                .max_file_size(file_limit)
                .max_num_files(16);
            match async_graphql::http::receive_batch_body(content_type, stream, opts).await {
                Ok(batch) => batch,
                Err(async_graphql::ParseRequestError::PayloadTooLarge) => {
                    return too_large(file_limit);
                }
                Err(e) => {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        codes::BAD_USER_INPUT,
                        format!("invalid multipart GraphQL request: {e}"),
                    );
                }
            }
        }
        _ => {
            return error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                codes::BAD_USER_INPUT,
                "Content-Type must be application/json (or multipart/form-data for uploads)",
            );
        }
    };
    execute(&state, batch, headers, who, None).await
}

/// Who sent a request: the viewer from the bearer token, and where it came from.
struct Caller {
    viewer: Viewer,
    meta: RequestMeta,
}

impl Caller {
    /// A bad or expired token answers 401 at once: never silently anonymous.
    fn from_parts(app: &AppState, parts: &Parts) -> Result<Self, Box<Response>> {
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or("\u{0}"));
        let viewer =
            service::authenticate(app, authorization).map_err(|e| Box::new(unauthorized(e)))?;
        Ok(Caller {
            viewer,
            meta: request_meta(app, parts),
        })
    }
}

fn unauthorized(err: AppError) -> Response {
    let mut resp = error_response(StatusCode::UNAUTHORIZED, err.code(), err.message());
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    resp
}

/// Client IP (from `X-Forwarded-For` only when `EASEL_TRUST_PROXY` is set) and user agent.
fn request_meta(app: &AppState, parts: &Parts) -> RequestMeta {
    let forwarded = app
        .config
        .trust_proxy
        .then(|| {
            parts
                .headers
                .get("x-forwarded-for")?
                .to_str()
                .ok()?
                .split(',')
                .next()?
                .trim()
                .parse::<IpAddr>()
                .ok()
        })
        .flatten();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    RequestMeta {
        ip: forwarded.or(peer),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(String::from),
    }
}

fn parse_json_body(bytes: &[u8]) -> Result<BatchRequest, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("request body is not valid JSON: {e}"))?;
    let is_request = |v: &serde_json::Value| {
        v.get("query").is_some_and(|q| q.is_string()) || v.get("extensions").is_some()
    };
    let shaped = match &value {
        serde_json::Value::Object(_) => is_request(&value),
        serde_json::Value::Array(items) => !items.is_empty() && items.iter().all(is_request),
        _ => false,
    };
    if !shaped {
        return Err("request body must be a GraphQL request: {\"query\": \"...\", \"variables\": {...}, \"operationName\": \"...\"}".into());
    }
    serde_json::from_value(value).map_err(|e| format!("invalid GraphQL request: {e}"))
}

/// `GET /graphql`: queries in the query string; a websocket upgrade is handed to the
/// subscription endpoint, so clients may use `/graphql` for both.
pub async fn get(State(state): State<HttpState>, req: Request) -> Response {
    let (mut parts, _body) = req.into_parts();
    if parts
        .headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
    {
        return upgrade(state, &mut parts).await;
    }
    let who = match Caller::from_parts(&state.app, &parts) {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let mut request = match parse_get_query(parts.uri.query().unwrap_or_default()) {
        Ok(r) => r,
        Err(message) => {
            return error_response(StatusCode::BAD_REQUEST, codes::BAD_USER_INPUT, message);
        }
    };
    // A persisted query's text is needed to refuse mutations over GET.
    let persisted = request.extensions.contains_key("persistedQuery");
    if let Err(e) = state.schema.0.resolve_persisted(&mut request) {
        let response = async_graphql::Response::from_errors(vec![e]);
        return graphql_response(&response, &parts.headers, None);
    }
    if let Some(kind) = non_query_operation(&request, &crate::schema::limits(&state.app.config)) {
        let mut resp = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            codes::BAD_USER_INPUT,
            format!(
                "{kind} operations are not allowed over GET; use POST (or the websocket endpoint for subscriptions)"
            ),
        );
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    // A successful persisted query over GET may be cached: by anyone for an anonymous caller
    // (`EASEL_PERSISTED_QUERY_CACHE_CONTROL`), never for a signed-in one.
    let cache_control = persisted.then(|| {
        if who.viewer.user_id().is_some() {
            HeaderValue::from_static("private, no-store")
        } else {
            HeaderValue::from_str(&state.app.config.persisted_query_cache_control)
                .unwrap_or_else(|_| HeaderValue::from_static("no-store"))
        }
    });
    execute(
        &state,
        BatchRequest::Single(request),
        &parts.headers,
        who,
        cache_control,
    )
    .await
}

/// The GraphQL-over-HTTP query string: `query`, `operationName`, and JSON-encoded
/// `variables` and `extensions`.
fn parse_get_query(raw: &str) -> Result<GqlRequest, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Params {
        #[serde(default)]
        query: String,
        operation_name: Option<String>,
        variables: Option<String>,
        extensions: Option<String>,
    }
    let params: Params =
        serde_urlencoded::from_str(raw).map_err(|e| format!("invalid query string: {e}"))?;
    let persisted = params
        .extensions
        .as_deref()
        .is_some_and(|e| e.contains("persistedQuery"));
    if params.query.trim().is_empty() && !persisted {
        return Err("missing `query` parameter (GraphiQL is served at /graphiql)".into());
    }
    let mut request = GqlRequest::new(params.query);
    if let Some(name) = params.operation_name.filter(|n| !n.is_empty()) {
        request = request.operation_name(name);
    }
    if let Some(vars) = params.variables.filter(|v| !v.is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(&vars).map_err(|e| format!("`variables` is not JSON: {e}"))?;
        request = request.variables(async_graphql::Variables::from_json(value));
    }
    if let Some(ext) = params.extensions.filter(|v| !v.is_empty()) {
        request.extensions = serde_json::from_str(&ext)
            .map_err(|e| format!("`extensions` is not a JSON object: {e}"))?;
    }
    Ok(request)
}

/// The kind of the operation a GET request would run, when it is not a query. A document
/// over the limits is not parsed here: the executor answers it.
fn non_query_operation(request: &GqlRequest, limits: &Limits) -> Option<&'static str> {
    limits::scan(&request.query, limits).ok()?;
    let doc = async_graphql::parser::parse_query(&request.query).ok()?;
    // The operation that would run: the named one, or the only one (named or not). A
    // document with several and no name runs nothing (the executor refuses it).
    let ty = crate::graphql::shape::operation(&doc, request.operation_name.as_deref())?.ty;
    match ty {
        OperationType::Query => None,
        OperationType::Mutation => Some("mutation"),
        OperationType::Subscription => Some("subscription"),
    }
}

async fn execute(
    state: &HttpState,
    batch: BatchRequest,
    headers: &HeaderMap,
    who: Caller,
    cache_control: Option<HeaderValue>,
) -> Response {
    let max = state.app.config.graphql_max_batch;
    if let BatchRequest::Batch(items) = &batch
        && items.len() > max
    {
        return error_response(
            StatusCode::BAD_REQUEST,
            codes::BAD_USER_INPUT,
            format!("a batch may hold at most {max} operations"),
        );
    }
    mark_writer(state, &batch, &who);
    let batch = match batch {
        BatchRequest::Single(r) => BatchRequest::Single(with_request_data(state, r, &who)),
        BatchRequest::Batch(rs) => BatchRequest::Batch(
            rs.into_iter()
                .map(|r| with_request_data(state, r, &who))
                .collect(),
        ),
    };
    let operation = match &batch {
        BatchRequest::Single(r) => operation_label(state, r),
        BatchRequest::Batch(_) => "batch".to_string(),
    };
    let response = state.schema.execute_batch(batch).await;
    let metrics = &state.app.metrics;
    let mut http = match response {
        BatchResponse::Single(r) => {
            metrics.graphql_errors(r.errors.iter().map(error_code));
            graphql_response(&r, headers, cache_control)
        }
        BatchResponse::Batch(rs) => {
            metrics.graphql_errors(rs.iter().flat_map(|r| r.errors.iter().map(error_code)));
            graphql_response(&BatchResponse::Batch(rs), headers, None)
        }
    };
    http.extensions_mut()
        .insert(super::metrics::GraphqlOperation(operation));
    http
}

/// With a read replica: a signed-in viewer about to run a mutation reads from the primary
/// for the next `EASEL_READ_YOUR_WRITES_SECS` (in this process), so they see what they wrote.
/// A persisted query sent by its hash alone counts as a mutation (its text is not read here).
fn mark_writer(state: &HttpState, batch: &BatchRequest, who: &Caller) {
    let (Some(_), Some(user)) = (&state.app.read_pool, who.viewer.user_id()) else {
        return;
    };
    let limits = crate::schema::limits(&state.app.config);
    let writes = |r: &GqlRequest| {
        r.query.trim().is_empty() || non_query_operation(r, &limits) == Some("mutation")
    };
    let any = match batch {
        BatchRequest::Single(r) => writes(r),
        BatchRequest::Batch(rs) => rs.iter().any(writes),
    };
    if any {
        state.app.recent_writers.mark(user);
    }
}

/// The `extensions.code` of an error.
fn error_code(error: &async_graphql::ServerError) -> Option<&str> {
    match error.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(code) => Some(code.as_str()),
        _ => None,
    }
}

/// The operation name a request is counted and logged under: its name when the document
/// holds it, `anonymous` for an unnamed one, `other` for a document that does not parse,
/// names no operation it holds, or whose name the metrics do not count
/// ([`crate::metrics::Metrics::operation_label`]).
fn operation_label(state: &HttpState, request: &GqlRequest) -> String {
    use async_graphql::parser::types::DocumentOperations;
    let metrics = &state.app.metrics;
    let name = request.operation_name.as_deref();
    if request.query.trim().is_empty() {
        // A persisted query sent by its hash only (the executor looks the text up).
        return name.map_or_else(|| "anonymous".into(), |n| metrics.operation_label(n));
    }
    let limits = crate::schema::limits(&state.app.config);
    let Some(doc) = limits::scan(&request.query, &limits)
        .ok()
        .and_then(|_| async_graphql::parser::parse_query(&request.query).ok())
    else {
        return "other".into();
    };
    match (&doc.operations, name) {
        (DocumentOperations::Single(_), None) => "anonymous".into(),
        (DocumentOperations::Multiple(ops), Some(n)) if ops.contains_key(n) => {
            metrics.operation_label(n)
        }
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops
            .keys()
            .next()
            .map_or_else(|| "other".into(), |n| metrics.operation_label(n)),
        _ => "other".into(),
    }
}

/// A GraphQL response over HTTP: 400 for a request error (GraphQL-over-HTTP), else 200;
/// `application/graphql-response+json` when the client accepts it. `cache_control` is set
/// on a single response without errors; any other gets `no-store` when it is given.
fn graphql_response<R: GraphqlBody>(
    response: &R,
    headers: &HeaderMap,
    cache_control: Option<HeaderValue>,
) -> Response {
    let status = if response.is_request_error() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let wants_graphql_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains(GRAPHQL_RESPONSE_JSON));
    let content_type = if wants_graphql_json {
        GRAPHQL_RESPONSE_JSON
    } else {
        "application/json"
    };
    match serde_json::to_vec(response) {
        Ok(body) => {
            let mut http = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
            if let Some(value) = cache_control {
                let value = if response.is_clean() {
                    value
                } else {
                    HeaderValue::from_static("no-store")
                };
                http.headers_mut().insert(header::CACHE_CONTROL, value);
                http.headers_mut()
                    .insert(header::VARY, HeaderValue::from_static("Authorization"));
            }
            http
        }
        Err(e) => {
            tracing::error!(error = %e, "serialising a GraphQL response");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::INTERNAL,
                "internal server error",
            )
        }
    }
}

/// What the HTTP layer asks of a response or a batch of them.
trait GraphqlBody: serde::Serialize {
    /// A request error (only a single response can be one).
    fn is_request_error(&self) -> bool;
    /// No errors at all.
    fn is_clean(&self) -> bool;
}

impl GraphqlBody for async_graphql::Response {
    fn is_request_error(&self) -> bool {
        is_request_error(self)
    }
    fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }
}

impl GraphqlBody for BatchResponse {
    fn is_request_error(&self) -> bool {
        matches!(self, BatchResponse::Single(r) if is_request_error(r))
    }
    fn is_clean(&self) -> bool {
        match self {
            BatchResponse::Single(r) => r.errors.is_empty(),
            BatchResponse::Batch(rs) => rs.iter().all(|r| r.errors.is_empty()),
        }
    }
}

fn with_request_data(state: &HttpState, request: GqlRequest, who: &Caller) -> GqlRequest {
    schema::with_loaders(
        request.data(who.viewer.clone()).data(who.meta.clone()),
        &state.app,
    )
}

fn too_large(limit: usize) -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        codes::BAD_USER_INPUT,
        format!("request body is larger than {limit} bytes"),
    )
}

/// `GET /graphql/ws`: subscriptions (and queries) over `graphql-transport-ws`, or the legacy
/// `graphql-ws` subprotocol.
pub async fn websocket(State(state): State<HttpState>, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    upgrade(state, &mut parts).await
}

/// Close code for a refused or expired token (graphql-ws `Forbidden`).
const CLOSE_FORBIDDEN: u16 = 4403;
const FORBIDDEN_MARK: &str = "\u{1}forbidden:";
/// Close code for a message the protocol does not know (graphql-transport-ws).
const CLOSE_INVALID_MESSAGE: u16 = 4400;

async fn upgrade(state: HttpState, parts: &mut Parts) -> Response {
    let ws = match WebSocketUpgrade::from_request_parts(parts, &state).await {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    let protocol = parts
        .headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|p| p.trim().parse::<WebSocketProtocols>().ok())
        })
        .unwrap_or(WebSocketProtocols::GraphQLWS);
    let meta = request_meta(&state.app, parts);
    let Some(permit) = state.websockets.try_open() else {
        let mut resp = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::RATE_LIMITED,
            "too many open websockets; retry shortly",
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return resp;
    };
    let limit = state.app.config.max_body_bytes;
    // tungstenite's default read buffer is 128 KiB per socket, zeroed before each read:
    // 1.2 GiB of a server holding 10,000 subscribers (`easel bench generation`). Client
    // messages are small; the buffer grows for a larger one.
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(WS_READ_BUFFER)
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let counted = state.app.metrics.websocket_opened();
            serve_socket(state, protocol, meta, socket).await;
            drop(counted);
            drop(permit);
        })
}

/// Runs one websocket connection. The access token comes in the `connection_init` payload
/// (`{"authorization": "Bearer <jwt>"}`); a bad one closes the socket with 4403, and the
/// socket is closed with 4403 when the token expires or its session is revoked, ending its
/// subscriptions. A socket that sends no `connection_init` within `EASEL_WS_INIT_TIMEOUT_SECS`
/// is closed with 4408. Operations are counted per socket and per user, and the rules of
/// `graphql-transport-ws` async-graphql leaves out are kept ([`super::limits`]). At shutdown
/// every running operation gets its `complete`, then the socket closes with 1001.
async fn serve_socket(
    state: HttpState,
    protocol: WebSocketProtocols,
    meta: RequestMeta,
    socket: axum::extract::ws::WebSocket,
) {
    let config = &state.app.config;
    let init_deadline = tokio::time::Instant::now() + config.ws_init_timeout;
    let mut operations =
        SocketOperations::new(state.app.ws_operations.clone(), config.ws_max_subscriptions);
    if protocol == WebSocketProtocols::GraphQLWS {
        operations = operations.transport_ws();
    }
    let operations = Arc::new(Mutex::new(operations));
    // Messages the endpoint itself sends: refusals, and closes for protocol violations.
    let (inject_tx, mut injected) = tokio::sync::mpsc::unbounded_channel::<Message>();
    let (mut sink, stream) = socket.split();
    let ops = operations.clone();
    let input = stream
        .take_while(|r| futures_util::future::ready(r.is_ok()))
        .filter_map(move |r| {
            let data = match r {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => m.into_data(),
                _ => return futures_util::future::ready(None),
            };
            let verdict = lock(&ops).from_client(&data);
            futures_util::future::ready(match verdict {
                Verdict::Pass => Some(data),
                Verdict::Refuse { id, message } => {
                    let _ = inject_tx.send(refusal(protocol, &id, &message));
                    None
                }
                Verdict::Close { code, reason } => {
                    let _ = inject_tx.send(close(code, &reason));
                    None
                }
            })
        });
    // The signed-in viewer, once `connection_init` names one: (token expiry, session).
    let session: Arc<Mutex<Option<(i64, Uuid)>>> = Arc::default();
    let signed_in = session.clone();
    let ops = operations.clone();
    let app = state.app.clone();
    let on_init = move |payload: serde_json::Value| async move {
        // Any case: GraphiQL and other clients send their headers as the payload.
        let authorization = match payload.as_object().and_then(|o| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                .map(|(_, v)| v)
        }) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.as_str()),
            // Never silently anonymous, as over HTTP (where a bad header answers 401).
            Some(_) => {
                return Err(async_graphql::Error::new(format!(
                    "{FORBIDDEN_MARK}`authorization` must be a string: `Bearer <access token>`"
                )));
            }
        };
        let viewer = service::authenticate(&app, authorization)
            .map_err(|e| async_graphql::Error::new(format!("{FORBIDDEN_MARK}{}", e.message())))?;
        if let Viewer::User(u) = &viewer {
            *lock(&signed_in) = Some((u.expires_at, u.session_id));
            lock(&ops).set_user(Some(u.id));
        }
        let mut data = Data::default();
        data.insert(viewer);
        data.insert(meta);
        schema::insert_loaders(&mut data, &app);
        Ok(data)
    };
    let ops = operations.clone();
    let messages = async_graphql::http::WebSocket::new(state.schema.clone(), input, protocol)
        .on_connection_init(on_init)
        .filter_map(move |msg| {
            futures_util::future::ready(match msg {
                WsMessage::Text(text) => lock(&ops)
                    .from_server(text)
                    .map(|text| Message::Text(text.into())),
                WsMessage::Close(code, reason) => Some(match reason.strip_prefix(FORBIDDEN_MARK) {
                    Some(reason) => close(CLOSE_FORBIDDEN, reason),
                    // async-graphql closes with 1002 on a message it cannot read;
                    // graphql-transport-ws says 4400 ("Invalid message received").
                    None if code == 1002 && protocol == WebSocketProtocols::GraphQLWS => {
                        close(CLOSE_INVALID_MESSAGE, &reason)
                    }
                    None => close(code, &reason),
                }),
            })
        });
    futures_util::pin_mut!(messages);
    let mut revoked = state.app.revocations.subscribe();
    let mut awaiting_init = true;
    loop {
        let current = *lock(&session);
        let deadline = current.map(|(exp, _)| {
            let left = exp - chrono::Utc::now().timestamp();
            tokio::time::Instant::now() + Duration::from_secs(left.max(0) as u64)
        });
        let expired = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = messages.next() => match msg {
                Some(msg) => {
                    let closing = matches!(msg, Message::Close(_));
                    if sink.send(msg).await.is_err() || closing { break }
                }
                None => break,
            },
            Some(msg) = injected.recv() => {
                let closing = matches!(msg, Message::Close(_));
                if sink.send(msg).await.is_err() || closing { break }
            }
            _ = expired => {
                let _ = sink.send(close(CLOSE_FORBIDDEN, "the access token has expired")).await;
                break;
            }
            _ = tokio::time::sleep_until(init_deadline), if awaiting_init => {
                awaiting_init = false;
                if !lock(&operations).initialised() {
                    let _ = sink.send(close(4408, "Connection initialisation timeout")).await;
                    break;
                }
            }
            _ = state.websockets.closing() => {
                // Shutdown: every running operation completes, then the socket closes; the
                // client's answer to the close is awaited, so the connection ends cleanly.
                let ids = lock(&operations).running_ids();
                for id in ids {
                    let complete = serde_json::json!({ "type": "complete", "id": id });
                    if sink.send(Message::Text(complete.to_string().into())).await.is_err() {
                        return;
                    }
                }
                if sink.send(close(1001, "Going away")).await.is_ok() {
                    let drain = async { while messages.next().await.is_some() {} };
                    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
                }
                break;
            }
            family = revoked.recv(), if current.is_some() => {
                let Some((_, sid)) = current else { continue };
                let hit = match family {
                    Ok(family) => family == sid,
                    Err(_) => state.app.revocations.is_revoked(sid),
                };
                if hit {
                    let _ = sink.send(close(CLOSE_FORBIDDEN, "the session was signed out or revoked")).await;
                    break;
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An `error` message refusing operation `id`, in the socket's protocol.
fn refusal(protocol: WebSocketProtocols, id: &str, message: &str) -> Message {
    let error =
        serde_json::json!({ "message": message, "extensions": { "code": codes::RATE_LIMITED } });
    let payload = match protocol {
        WebSocketProtocols::GraphQLWS => serde_json::json!([error]),
        _ => error,
    };
    let msg = serde_json::json!({ "type": "error", "id": id, "payload": payload });
    Message::Text(msg.to_string().into())
}

fn close(code: u16, reason: &str) -> Message {
    // A close reason may hold at most 123 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].into(),
    }))
}
