//! GraphQL over HTTP (POST, GET) and over websockets (`graphql-transport-ws`).
//!
//! Bad requests never reach the executor: a missing or wrong content type is 415, a body
//! over the limit 413, a body that is not JSON or not a GraphQL request 400, a mutation over
//! GET 405; a request error of GraphQL itself (syntax, validation, unknown operation, limits)
//! is 400. Every one of them answers with a GraphQL `errors` array carrying `extensions.code`.

use async_graphql::{
    BatchRequest, BatchResponse, Data, Request as GqlRequest,
    http::{ALL_WEBSOCKET_PROTOCOLS, MultipartOptions},
    parser::types::{DocumentOperations, OperationType},
};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::{
    body::{Body, to_bytes},
    extract::{FromRequestParts, Request, State, WebSocketUpgrade},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures_util::{StreamExt, TryStreamExt};

use super::{HttpState, error_response};
use crate::{
    accounts::viewer::Viewer,
    error::codes,
    graphql::{Loaders, errors::is_request_error},
};

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// `POST /graphql`: JSON bodies, and GraphQL multipart requests (file uploads).
pub async fn post(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
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
                .max_file_size(limit)
                .max_num_files(16);
            match async_graphql::http::receive_batch_body(content_type, stream, opts).await {
                Ok(batch) => batch,
                Err(async_graphql::ParseRequestError::PayloadTooLarge) => return too_large(limit),
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
    execute(&state, batch, &headers).await
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
        let protocol = GraphQLProtocol::from_request_parts(&mut parts, &state).await;
        let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &state).await;
        return match (protocol, upgrade) {
            (Ok(protocol), Ok(ws)) => serve_websocket(state, protocol, ws),
            (Err(e), _) => e.into_response(),
            (_, Err(e)) => e.into_response(),
        };
    }
    let request = match parse_get_query(parts.uri.query().unwrap_or_default()) {
        Ok(r) => r,
        Err(message) => {
            return error_response(StatusCode::BAD_REQUEST, codes::BAD_USER_INPUT, message);
        }
    };
    if let Some(kind) = non_query_operation(&request) {
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
    execute(&state, BatchRequest::Single(request), &parts.headers).await
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
    if params.query.trim().is_empty() {
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

/// The kind of the operation a GET request would run, when it is not a query.
fn non_query_operation(request: &GqlRequest) -> Option<&'static str> {
    let doc = async_graphql::parser::parse_query(&request.query).ok()?;
    let ty = match (&doc.operations, request.operation_name.as_deref()) {
        (DocumentOperations::Single(op), _) => op.node.ty,
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name)?.node.ty,
        (DocumentOperations::Multiple(_), None) => return None,
    };
    match ty {
        OperationType::Query => None,
        OperationType::Mutation => Some("mutation"),
        OperationType::Subscription => Some("subscription"),
    }
}

async fn execute(state: &HttpState, batch: BatchRequest, headers: &HeaderMap) -> Response {
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
    let viewer = Viewer::Anonymous;
    let batch = match batch {
        BatchRequest::Single(r) => BatchRequest::Single(with_request_data(state, r, viewer)),
        BatchRequest::Batch(rs) => BatchRequest::Batch(
            rs.into_iter()
                .map(|r| with_request_data(state, r, viewer.clone()))
                .collect(),
        ),
    };
    let response = state.schema.execute_batch(batch).await;
    let status = match &response {
        BatchResponse::Single(r) if is_request_error(r) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
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
    match serde_json::to_vec(&response) {
        Ok(body) => (status, [(header::CONTENT_TYPE, content_type)], body).into_response(),
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

fn with_request_data(state: &HttpState, request: GqlRequest, viewer: Viewer) -> GqlRequest {
    request.data(viewer).data(Loaders::new(&state.app))
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
pub async fn websocket(
    State(state): State<HttpState>,
    protocol: GraphQLProtocol,
    ws: WebSocketUpgrade,
) -> Response {
    serve_websocket(state, protocol, ws)
}

fn serve_websocket(state: HttpState, protocol: GraphQLProtocol, ws: WebSocketUpgrade) -> Response {
    ws.protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let schema = state.schema.clone();
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |_payload| async move {
                    let mut data = Data::default();
                    data.insert(Viewer::Anonymous);
                    data.insert(Loaders::new(&state.app));
                    Ok(data)
                })
                .serve()
        })
        .into_response()
}
