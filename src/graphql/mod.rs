//! Schema assembly: the merged roots of every capability, limits, and the request context.

pub mod context;
pub mod errors;
pub mod pagination;

use async_graphql::{EmptySubscription, MergedObject, Schema, SchemaBuilder};

pub use context::{ContextExt, Loaders};

use crate::{
    AppState,
    accounts::graphql::{AccountsMutation, AccountsQuery},
    config::Config,
    gallery::graphql::{GalleryMutation, GalleryQuery},
};

/// The root query: one member per capability.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(AccountsQuery, GalleryQuery);

/// The root mutation: one member per capability.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(AccountsMutation, GalleryMutation);

/// The executable schema.
pub type AppSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

fn builder(config: &Config) -> SchemaBuilder<QueryRoot, MutationRoot, EmptySubscription> {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        EmptySubscription,
    )
    .limit_depth(config.graphql_max_depth)
    .limit_complexity(config.graphql_max_complexity)
    .limit_recursive_depth(32)
    .limit_directives(16)
    .extension(errors::ErrorCodes)
}

/// The schema the server executes, holding the application state.
pub fn build_schema(state: AppState) -> AppSchema {
    builder(&state.config).data(state).finish()
}

/// The SDL of the schema (what `easel schema` prints and `schema.graphql` holds).
pub fn sdl() -> String {
    let config = Config::from_lookup(|_| None).expect("default configuration is valid");
    builder(&config).finish().sdl()
}
