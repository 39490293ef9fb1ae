//! Every request's document goes through here before the schema sees it: the bounds of
//! [`super::limits`] are checked before it is parsed and once it is, and parsed documents
//! are remembered, so the few documents an app sends over and over are scanned, parsed and
//! measured once rather than on every request.
//!
//! Only that is skipped for a remembered document: async-graphql still checks the recursion
//! depth, the directive limit, validation, depth and complexity of every request, and the
//! variables are checked for NUL characters on every request.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
};

use async_graphql::{
    Data, Executor, Request, Response, ServerError,
    futures_util::{StreamExt, stream::BoxStream},
    parser::types::ExecutableDocument,
};

use super::{
    limits::{self, Limits},
    shape::{self, Shapes},
};

/// Documents remembered at most; past that the cache starts afresh.
const MAX_DOCUMENTS: usize = 128;
/// Longer documents are parsed every time (apps' documents are far shorter).
const MAX_QUERY_BYTES: usize = 8 * 1024;

/// An executor that hands the executor it wraps an already parsed document when it has seen
/// the same query text before, and puts each response in spec shape ([`Shapes`]).
#[derive(Clone)]
pub struct ParsedDocuments<E> {
    inner: E,
    limits: Limits,
    shapes: Arc<Shapes>,
    cache: Arc<Mutex<HashMap<String, Arc<Checked>>>>,
}

/// A parsed document that passed the checks, with where its variables are used.
struct Checked {
    doc: ExecutableDocument,
    uses: limits::VariableUses,
}

impl<E> ParsedDocuments<E> {
    pub fn new(inner: E, limits: Limits, shapes: Shapes) -> Self {
        ParsedDocuments {
            inner,
            limits,
            shapes: Arc::new(shapes),
            cache: Arc::default(),
        }
    }

    /// How many documents are remembered now.
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Checked>>> {
        // The map stays consistent whatever panicked while holding it.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The request with its document parsed and checked (and that document, to shape the
    /// response with), or the request error to answer.
    fn prepare(&self, mut request: Request) -> Result<(Request, Option<Shaping>), ServerError> {
        let cached = self.lock().get(&request.query).cloned();
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
                let checked = Arc::new(Checked { doc, uses });
                if request.query.len() <= MAX_QUERY_BYTES {
                    let mut cache = self.lock();
                    if cache.len() >= MAX_DOCUMENTS {
                        cache.clear();
                    }
                    cache.insert(request.query.clone(), checked.clone());
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
            exec.remembered(),
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
        let before = exec.remembered();
        let broken = exec.execute(Request::new("{ add(a: 1, b: ")).await;
        assert!(!broken.errors.is_empty());
        assert_eq!(exec.remembered(), before);
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
            assert!(exec.remembered() <= MAX_DOCUMENTS);
        }
        let long = format!("{{ add(a: 1, b: 2) {} }}", " ".repeat(MAX_QUERY_BYTES));
        let before = exec.remembered();
        let resp = exec.execute(Request::new(long)).await;
        assert!(resp.errors.is_empty(), "{resp:?}");
        assert_eq!(
            exec.remembered(),
            before,
            "over-long documents are not kept"
        );
    }
}
