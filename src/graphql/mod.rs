//! The GraphQL toolkit every capability uses: typed access to request data
//! ([`ContextExt`]), id parsing, Relay pagination, and the executors that check documents and
//! give errors their codes and responses their spec shape. It knows no capability: the schema itself is assembled above the
//! capabilities, in [`crate::schema`].

pub mod context;
pub mod documents;
pub mod errors;
pub mod limits;
pub mod pagination;
pub mod plan;
pub mod shape;

pub use context::{ContextExt, batched};

/// Parses a GraphQL `ID` argument as a UUID; `BAD_USER_INPUT` naming `field` otherwise.
pub fn parse_id(id: &async_graphql::ID, field: &str) -> Result<uuid::Uuid, crate::error::AppError> {
    uuid::Uuid::parse_str(id.as_str())
        .map_err(|_| crate::error::AppError::bad_input(field, "not a valid id"))
}
