//! Gives every error that async-graphql itself raises (syntax, validation, limits, argument
//! coercion) an `extensions.code`, so clients can always branch on the code.

use std::sync::Arc;

use async_graphql::{
    Response, ServerError,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextRequest, NextSubscribe},
    futures_util::stream::BoxStream,
};
use futures_util::StreamExt;

use crate::error::codes;

/// The extension; add it to the schema once.
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        with_codes(next.run(ctx).await)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream).map(with_codes).boxed()
    }
}

fn with_codes(mut response: Response) -> Response {
    for err in &mut response.errors {
        add_code(err);
    }
    response
}

fn add_code(err: &mut ServerError) {
    let ext = err.extensions.get_or_insert_with(Default::default);
    if ext.get("code").is_some() {
        return;
    }
    let limit = [
        "nested too deep",
        "too complex",
        "recursion depth",
        "too many directives",
    ];
    let code = if limit.iter().any(|m| err.message.contains(m)) {
        codes::QUERY_TOO_COMPLEX
    } else {
        // What is left is the client's document or variables: syntax, validation, coercion.
        codes::BAD_USER_INPUT
    };
    ext.set("code", code);
}

/// A request error (the operation never ran: syntax, validation, limits, unknown operation)
/// as opposed to a field error; the HTTP layer answers 400 for these.
pub fn is_request_error(response: &Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}
