//! Schema assembly: the merged roots of every capability, limits, and the request context.

pub mod context;
pub mod documents;
pub mod errors;
pub mod limits;
pub mod pagination;

use async_graphql::{MergedObject, MergedSubscription, Schema, SchemaBuilder};

pub use context::{ContextExt, Loaders};

use crate::{
    AppState,
    accounts::graphql::{AccountsMutation, AccountsQuery},
    config::Config,
    credits::graphql::{CreditsMutation, CreditsQuery, CreditsSubscription},
    gallery::graphql::{GalleryMutation, GalleryQuery},
    generation::graphql::{GenerationMutation, GenerationQuery, GenerationSubscription},
    payments::graphql::{PaymentsMutation, PaymentsQuery},
};

/// The root query: one member per capability.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    AccountsQuery,
    CreditsQuery,
    PaymentsQuery,
    GenerationQuery,
    GalleryQuery,
);

/// The root mutation: one member per capability.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    AccountsMutation,
    CreditsMutation,
    PaymentsMutation,
    GenerationMutation,
    GalleryMutation,
);

/// The root subscription: one member per capability.
#[derive(MergedSubscription, Default)]
#[graphql(name = "Subscription")]
pub struct SubscriptionRoot(CreditsSubscription, GenerationSubscription);

/// Parses a GraphQL `ID` argument as a UUID; `BAD_USER_INPUT` naming `field` otherwise.
pub fn parse_id(id: &async_graphql::ID, field: &str) -> Result<uuid::Uuid, crate::error::AppError> {
    uuid::Uuid::parse_str(id.as_str())
        .map_err(|_| crate::error::AppError::bad_input(field, "not a valid id"))
}

/// The schema itself.
pub type GraphqlSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;
/// What the server executes: the schema, fed documents parsed once per distinct query text,
/// with an error code on every error.
pub type AppSchema = errors::ErrorCodes<documents::ParsedDocuments<GraphqlSchema>>;

fn builder(config: &Config) -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    let builder = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    .limit_depth(config.graphql_max_depth)
    .limit_complexity(config.graphql_max_complexity)
    .limit_recursive_depth(32)
    .limit_directives(16);
    if config.graphql_introspection {
        builder
    } else {
        // "Did you mean ...?" would tell the schema that introspection no longer does.
        builder.disable_introspection().disable_suggestions()
    }
}

/// The bounds every document is checked against before it runs.
pub fn limits(config: &Config) -> limits::Limits {
    limits::Limits {
        max_nesting: config.graphql_max_nesting,
        max_tokens: config.graphql_max_tokens,
        max_fields: config.graphql_max_fields,
    }
}

/// The schema the server executes, holding the application state.
pub fn build_schema(state: AppState) -> AppSchema {
    let limits = limits(&state.config);
    errors::ErrorCodes(documents::ParsedDocuments::new(
        builder(&state.config).data(state).finish(),
        limits,
    ))
}

/// The SDL of the schema (what `easel schema` prints and `schema.graphql` holds).
pub fn sdl() -> String {
    let config = Config::from_lookup(|_| None).expect("default configuration is valid");
    builder(&config).finish().sdl()
}
