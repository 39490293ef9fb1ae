//! Every request's document goes through here before the schema sees it: the bounds of
//! [`super::limits`] are checked before it is parsed and once it is, and parsed documents
//! are remembered, so the few documents an app sends over and over are scanned, parsed and
//! measured once rather than on every request.
//!
//! Only that is skipped for a remembered document: async-graphql still checks the recursion
//! depth, the directive limit, validation, depth and complexity of every request, and the
//! variables are checked for NUL characters on every request.
//!
//! The remembered documents are keyed by the SHA-256 of their text, in a bounded LRU, which
//! makes them the store of Apollo's automatic persisted queries as well: a request whose
//! `extensions.persistedQuery.sha256Hash` names a remembered document runs it without sending
//! the text; an unknown hash answers `PERSISTED_QUERY_NOT_FOUND`, and the client's retry with
//! the text (checked against the hash) remembers it.

use std::{
    future::Future,
    num::NonZeroUsize,
    sync::{Arc, Mutex},
};

use async_graphql::{
    Data, Executor, Request, Response, ServerError,
    futures_util::{StreamExt, stream::BoxStream},
    parser::types::ExecutableDocument,
};
use lru::LruCache;
use sha2::{Digest as _, Sha256};

use super::{
    limits::{self, Limits},
    shape::{self, Shapes},
};
use crate::error::codes;

/// Documents remembered at most, least recently used first out.
const MAX_DOCUMENTS: usize = 1024;
/// Bytes of query text remembered at most (their parsed forms take roughly ten times that).
const MAX_REMEMBERED_BYTES: usize = 4 * 1024 * 1024;
/// Longer documents are parsed every time and cannot be persisted (apps' documents are far
/// shorter).
const MAX_QUERY_BYTES: usize = 64 * 1024;

/// The SHA-256 of a query text: the cache key and the persisted-query hash.
type Digest = [u8; 32];

/// The remembered documents.
struct Remembered {
    entries: LruCache<Digest, Arc<Checked>>,
    bytes: usize,
}

/// An executor that hands the executor it wraps an already parsed document when it has seen
/// the same query text before, and puts each response in spec shape ([`Shapes`]).
#[derive(Clone)]
pub struct ParsedDocuments<E> {
    inner: E,
    limits: Limits,
    shapes: Arc<Shapes>,
    cache: Arc<Mutex<Remembered>>,
}

/// A parsed document that passed the checks, with its text and where its variables are used.
struct Checked {
    query: String,
    doc: ExecutableDocument,
    uses: limits::VariableUses,
}

impl<E> ParsedDocuments<E> {
    pub fn new(inner: E, limits: Limits, shapes: Shapes) -> Self {
        ParsedDocuments {
            inner,
            limits,
            shapes: Arc::new(shapes),
            cache: Arc::new(Mutex::new(Remembered {
                entries: LruCache::new(
                    NonZeroUsize::new(MAX_DOCUMENTS).unwrap_or(NonZeroUsize::MIN),
                ),
                bytes: 0,
            })),
        }
    }

    /// How many documents are remembered now, and their bytes of text.
    #[cfg(test)]
    fn remembered(&self) -> (usize, usize) {
        let cache = self.lock();
        (cache.entries.len(), cache.bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        // The cache stays consistent whatever panicked while holding it.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers a checked document, dropping the least recently used ones past the bounds.
    fn remember(&self, digest: Digest, checked: Arc<Checked>) {
        let mut cache = self.lock();
        let size = checked.query.len();
        if let Some((_, old)) = cache.entries.push(digest, checked) {
            cache.bytes -= old.query.len();
        }
        cache.bytes += size;
        while cache.bytes > MAX_REMEMBERED_BYTES {
            match cache.entries.pop_lru() {
                Some((_, old)) => cache.bytes -= old.query.len(),
                None => break,
            }
        }
    }

    /// Fills in the text of an automatic persisted query from its hash, or checks a sent
    /// text against its hash. A request without `extensions.persistedQuery` is left as it is.
    pub fn resolve_persisted(&self, request: &mut Request) -> Result<(), ServerError> {
        let Some(hash) = persisted_hash(request)? else {
            return Ok(());
        };
        if request.query.is_empty() {
            let known = self.lock().entries.get(&hash).map(|c| c.query.clone());
            match known {
                Some(query) => request.query = query,
                None => {
                    return Err(limits::error(
                        codes::PERSISTED_QUERY_NOT_FOUND,
                        "PersistedQueryNotFound".into(),
                        None,
                    ));
                }
            }
        } else if digest(&request.query) != hash {
            return Err(bad_request("provided sha does not match query"));
        }
        Ok(())
    }

    /// The request with its document parsed and checked (and that document, to shape the
    /// response with), or the request error to answer.
    fn prepare(&self, mut request: Request) -> Result<(Request, Option<Shaping>), ServerError> {
        self.resolve_persisted(&mut request)?;
        let key = digest(&request.query);
        let cached = self.lock().entries.get(&key).cloned();
        let checked = match cached {
            Some(doc) => doc,
            None => {
                limits::scan(&request.query, &self.limits)?;
                // A document that does not parse is left to the executor, which reports it
                // (the scan above already bounds what its parser will do).
                let Ok(doc) = async_graphql::parser::parse_query(&request.query) else {
                    return Ok((request, None));
                };
                let uses = limits::check_document(&doc, &self.limits)?;
                let checked = Arc::new(Checked {
                    query: request.query.clone(),
                    doc,
                    uses,
                });
                if request.query.len() <= MAX_QUERY_BYTES {
                    self.remember(key, checked.clone());
                }
                checked
            }
        };
        limits::check_variables(&request.variables, &checked.uses)?;
        if let Some(operation) = shape::operation(&checked.doc, request.operation_name.as_deref()) {
            shape::add_variable_defaults(operation, &mut request.variables);
        }
        request.set_parsed_query(ExecutableDocument::clone(&checked.doc));
        let shaping = Shaping {
            shapes: self.shapes.clone(),
            operation_name: request.operation_name.clone(),
            variables: request.variables.clone(),
            checked,
        };
        Ok((request, Some(shaping)))
    }
}

fn digest(query: &str) -> Digest {
    Sha256::digest(query.as_bytes()).into()
}

fn bad_request(message: &str) -> ServerError {
    limits::error(codes::BAD_USER_INPUT, message.into(), None)
}

/// The hash of `extensions.persistedQuery` (`{"version": 1, "sha256Hash": "<64 hex>"}`), if
/// the request has one.
fn persisted_hash(request: &Request) -> Result<Option<Digest>, ServerError> {
    let Some(persisted) = request.extensions.get("persistedQuery") else {
        return Ok(None);
    };
    let async_graphql::Value::Object(fields) = persisted else {
        return Err(bad_request("extensions.persistedQuery must be an object"));
    };
    if fields.get("version") != Some(&async_graphql::Value::from(1)) {
        return Err(bad_request("Unsupported persisted query version"));
    }
    let hash = match fields.get("sha256Hash") {
        Some(async_graphql::Value::String(hash)) => hash,
        _ => {
            return Err(bad_request(
                "extensions.persistedQuery.sha256Hash must be a string",
            ));
        }
    };
    let mut out = [0u8; 32];
    let valid = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    if valid {
        for (pair, byte) in hash.as_bytes().chunks(2).zip(out.iter_mut()) {
            let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            *byte = digit(pair[0]) << 4 | digit(pair[1]);
        }
    }
    if !valid {
        return Err(bad_request(
            "extensions.persistedQuery.sha256Hash must be 64 hexadecimal digits",
        ));
    }
    Ok(Some(out))
}

/// What shaping a request's responses takes.
struct Shaping {
    shapes: Arc<Shapes>,
    checked: Arc<Checked>,
    operation_name: Option<String>,
    variables: async_graphql::Variables,
}

impl Shaping {
    fn apply(&self, mut response: Response) -> Response {
        self.shapes.shape(
            &self.checked.doc,
            self.operation_name.as_deref(),
            &self.variables,
            &mut response,
        );
        response
    }
}

impl<E: Executor> Executor for ParsedDocuments<E> {
    fn execute(&self, request: Request) -> impl Future<Output = Response> + Send {
        let prepared = self.prepare(request);
        async move {
            match prepared {
                Ok((request, shaping)) => {
                    let response = self.inner.execute(request).await;
                    match shaping {
                        Some(shaping) => shaping.apply(response),
                        None => response,
                    }
                }
                Err(e) => Response::from_errors(vec![e]),
            }
        }
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        match self.prepare(request) {
            Ok((request, None)) => self.inner.execute_stream(request, session_data),
            Ok((request, Some(shaping))) => self
                .inner
                .execute_stream(request, session_data)
                .map(move |response| shaping.apply(response))
                .boxed(),
            Err(e) => {
                futures_util::stream::once(async move { Response::from_errors(vec![e]) }).boxed()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

    use super::*;

    struct Query;

    #[Object]
    impl Query {
        async fn add(&self, a: i32, b: i32) -> i32 {
            a + b
        }
    }

    fn executor() -> ParsedDocuments<Schema<Query, EmptyMutation, EmptySubscription>> {
        let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
        let shapes = Shapes::from_sdl(&schema.sdl()).unwrap();
        ParsedDocuments::new(
            schema,
            Limits {
                max_nesting: 64,
                max_tokens: 10_000,
                max_fields: 2_000,
            },
            shapes,
        )
    }

    fn vars(json: serde_json::Value) -> async_graphql::Variables {
        async_graphql::Variables::from_json(json)
    }

    #[tokio::test]
    async fn a_remembered_document_runs_with_each_requests_variables() {
        let exec = executor();
        let q = "query Sum($a: Int!, $b: Int!) { add(a: $a, b: $b) }";
        let first = exec
            .execute(Request::new(q).variables(vars(serde_json::json!({"a": 1, "b": 2}))))
            .await;
        let second = exec
            .execute(Request::new(q).variables(vars(serde_json::json!({"a": 40, "b": 2}))))
            .await;
        assert_eq!(
            first.data.into_json().unwrap(),
            serde_json::json!({"add": 3})
        );
        assert_eq!(
            second.data.into_json().unwrap(),
            serde_json::json!({"add": 42})
        );
        assert_eq!(
            exec.remembered().0,
            1,
            "the same text is parsed and kept once"
        );
    }

    #[tokio::test]
    async fn remembered_documents_are_still_validated_and_bad_ones_are_not_kept() {
        let exec = executor();
        // Valid syntax, invalid against the schema: kept as parsed, refused every time.
        let unknown = "{ subtract(a: 1, b: 2) }";
        for _ in 0..2 {
            let resp = exec.execute(Request::new(unknown)).await;
            assert!(resp.errors[0].message.contains("Unknown field"), "{resp:?}");
        }
        // A missing variable is caught on the second request of a remembered document too.
        let q = "query Sum($a: Int!) { add(a: $a, b: 1) }";
        let ok = exec
            .execute(Request::new(q).variables(vars(serde_json::json!({"a": 1}))))
            .await;
        assert!(ok.errors.is_empty(), "{ok:?}");
        let missing = exec.execute(Request::new(q)).await;
        assert!(!missing.errors.is_empty(), "{missing:?}");
        // A syntax error is reported by the schema and never remembered.
        let before = exec.remembered().0;
        let broken = exec.execute(Request::new("{ add(a: 1, b: ")).await;
        assert!(!broken.errors.is_empty());
        assert_eq!(exec.remembered().0, before);
    }

    #[tokio::test]
    async fn the_cache_stays_bounded() {
        let exec = executor();
        for i in 0..(MAX_DOCUMENTS * 2 + 3) {
            let resp = exec
                .execute(Request::new(format!("{{ add(a: {i}, b: 0) }}")))
                .await;
            assert_eq!(
                resp.data.into_json().unwrap(),
                serde_json::json!({ "add": i })
            );
            assert!(exec.remembered().0 <= MAX_DOCUMENTS);
        }
        let long = format!("{{ add(a: 1, b: 2) {} }}", " ".repeat(MAX_QUERY_BYTES));
        let before = exec.remembered().0;
        let resp = exec.execute(Request::new(long)).await;
        assert!(resp.errors.is_empty(), "{resp:?}");
        assert_eq!(
            exec.remembered().0,
            before,
            "over-long documents are not kept"
        );
    }

    /// The cache drops the least recently used documents, and keeps its text under
    /// `MAX_REMEMBERED_BYTES`.
    #[tokio::test]
    async fn least_recently_used_documents_go_first() {
        let exec = executor();
        let hot = "{ add(a: 1, b: 1) }";
        exec.execute(Request::new(hot)).await;
        for i in 0..MAX_DOCUMENTS {
            exec.execute(Request::new(format!("{{ add(a: {i}, b: 2) }}")))
                .await;
            if i % 100 == 0 {
                exec.execute(Request::new(hot)).await;
            }
        }
        assert!(
            exec.lock().entries.contains(&digest(hot)),
            "used often: kept"
        );
        assert!(!exec.lock().entries.contains(&digest("{ add(a: 0, b: 2) }")));
        // Large documents: bounded by bytes before the entry count.
        let padding = " ".repeat(MAX_QUERY_BYTES - 40);
        for i in 0..(MAX_REMEMBERED_BYTES / MAX_QUERY_BYTES + 8) {
            let resp = exec
                .execute(Request::new(format!("{{ add(a: {i}, b: 3) }}{padding}")))
                .await;
            assert!(resp.errors.is_empty(), "{resp:?}");
        }
        let (entries, bytes) = exec.remembered();
        assert!(bytes <= MAX_REMEMBERED_BYTES, "{bytes}");
        assert!(entries < MAX_DOCUMENTS, "{entries}");
        let counted: usize = exec.lock().entries.iter().map(|(_, c)| c.query.len()).sum();
        assert_eq!(counted, bytes, "the byte count follows the entries");
    }

    fn persisted(query: Option<&str>, hash: &str, version: i32) -> Request {
        let mut request = Request::new(query.unwrap_or_default());
        request.extensions.insert(
            "persistedQuery".into(),
            async_graphql::Value::from_json(
                serde_json::json!({ "version": version, "sha256Hash": hash }),
            )
            .unwrap(),
        );
        request
    }

    fn code(resp: &Response) -> String {
        resp.errors[0]
            .extensions
            .as_ref()
            .unwrap()
            .get("code")
            .unwrap()
            .to_string()
    }

    /// Apollo's automatic persisted queries: hash only (unknown), then hash and text
    /// (checked, remembered), then hash only again.
    #[tokio::test]
    async fn automatic_persisted_queries() {
        let exec = executor();
        let query = "query Sum($a: Int!) { add(a: $a, b: 40) }";
        let hash: String = digest(query).iter().map(|b| format!("{b:02x}")).collect();
        let vars = vars(serde_json::json!({ "a": 2 }));

        let unknown = exec.execute(persisted(None, &hash, 1)).await;
        assert_eq!(code(&unknown), "\"PERSISTED_QUERY_NOT_FOUND\"");
        assert_eq!(unknown.errors[0].message, "PersistedQueryNotFound");

        let wrong = format!("{}0", &hash[..63]);
        let mismatch = exec.execute(persisted(Some(query), &wrong, 1)).await;
        assert_eq!(code(&mismatch), "\"BAD_USER_INPUT\"");
        assert_eq!(
            mismatch.errors[0].message,
            "provided sha does not match query"
        );
        for (bad, version) in [(hash.as_str(), 2), ("zz", 1), (&hash[..10], 1)] {
            let resp = exec.execute(persisted(Some(query), bad, version)).await;
            assert_eq!(code(&resp), "\"BAD_USER_INPUT\"", "{bad} v{version}");
        }
        assert_eq!(exec.remembered().0, 0, "nothing refused was remembered");

        let registered = exec
            .execute(persisted(Some(query), &hash, 1).variables(vars.clone()))
            .await;
        assert_eq!(
            registered.data.into_json().unwrap(),
            serde_json::json!({ "add": 42 })
        );
        let by_hash = exec
            .execute(persisted(None, &hash.to_uppercase(), 1).variables(vars))
            .await;
        assert_eq!(
            by_hash.data.into_json().unwrap(),
            serde_json::json!({ "add": 42 })
        );
    }
}
