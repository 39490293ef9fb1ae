//! The schema: the merged roots of every capability, the limits, the per-request loaders,
//! and the SDL export. It sits above the capabilities (which only use the toolkit in
//! [`crate::graphql`]), so nothing below imports it but the HTTP layer and the CLI.

use async_graphql::{MergedObject, MergedSubscription, Request, Schema, SchemaBuilder};

use crate::{
    AppState,
    accounts::{
        graphql::{AccountsMutation, AccountsQuery},
        loaders::AccountsLoader,
        recovery::RecoveryMutation,
        self_service::{OAuthMutation, OAuthQuery, SelfServiceMutation},
    },
    admin::graphql::{AdminMutation, AdminQuery},
    chat::graphql::{ChatMutation, ChatQuery, ChatSubscription},
    config::Config,
    credits::{
        graphql::{CreditsMutation, CreditsQuery, CreditsSubscription},
        loaders::CreditsLoader,
    },
    gallery::{
        graphql::{GalleryMutation, GalleryQuery, ImageMutation, LikesQuery},
        loaders::GalleryLoader,
    },
    generation::graphql::{GenerationMutation, GenerationQuery, GenerationSubscription},
    graphql::{batched, documents, errors, limits, shape},
    growth::graphql::{GrowthMutation, GrowthQuery},
    moderation::graphql::{ModerationMutation, ModerationQuery},
    payments::{
        graphql::{PaymentsMutation, PaymentsQuery},
        loaders::PaymentsLoader,
    },
    rights::graphql::{RightsMutation, RightsQuery},
};

/// The root query: one member per capability.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    AccountsQuery,
    OAuthQuery,
    CreditsQuery,
    PaymentsQuery,
    GenerationQuery,
    GalleryQuery,
    GrowthQuery,
    ChatQuery,
    LikesQuery,
    ModerationQuery,
    AdminQuery,
    RightsQuery,
);

/// The root mutation: one member per capability.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    AccountsMutation,
    RecoveryMutation,
    OAuthMutation,
    SelfServiceMutation,
    CreditsMutation,
    PaymentsMutation,
    GenerationMutation,
    GalleryMutation,
    ImageMutation,
    GrowthMutation,
    ChatMutation,
    ModerationMutation,
    AdminMutation,
    RightsMutation,
);

/// The root subscription: one member per capability.
#[derive(MergedSubscription, Default)]
#[graphql(name = "Subscription")]
pub struct SubscriptionRoot(
    CreditsSubscription,
    GenerationSubscription,
    ChatSubscription,
);

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
    let schema = builder(&state.config).data(state).finish();
    let shapes = shape::Shapes::from_sdl(&schema.sdl()).expect("the schema's own SDL parses");
    errors::ErrorCodes(documents::ParsedDocuments::new(schema, limits, shapes))
}

/// The SDL of the schema (what `easel schema` prints and `schema.graphql` holds).
pub fn sdl() -> String {
    let config = Config::from_lookup(|_| None).expect("default configuration is valid");
    builder(&config).finish().sdl()
}

/// Adds every capability's dataloaders to a request's data (each HTTP request and each
/// websocket connection gets its own: they batch, they do not cache across requests).
pub fn insert_loaders(data: &mut async_graphql::Data, state: &AppState) {
    data.insert(batched(AccountsLoader(state.pool.clone())));
    data.insert(batched(CreditsLoader(state.pool.clone())));
    data.insert(batched(GalleryLoader(state.pool.clone())));
    data.insert(batched(PaymentsLoader(state.pool.clone())));
}

/// `request` with every capability's dataloaders.
pub fn with_loaders(mut request: Request, state: &AppState) -> Request {
    insert_loaders(&mut request.data, state);
    request
}
