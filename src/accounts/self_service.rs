//! GraphQL roots of what users manage about their own account beyond the profile: social
//! sign-in (`oauthProviders`, `startOAuth`, `completeOAuth`, `unlinkOAuth`), their sessions
//! (`revokeSession`) and their vendor profile (`updateVendorProfile`). The types `User` shows
//! (sessions, linked accounts) are in `security`.

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};

use crate::{
    accounts::{
        graphql::{AuthPayload, User},
        guards::{Authenticated, require_user},
        service::{self, RequestMeta, VendorProfileInput},
    },
    graphql::{ContextExt, parse_id},
};

/// Input of `startOAuth`.
#[derive(InputObject)]
pub struct StartOAuthInput {
    /// One of `oauthProviders` (e.g. `google`, `github`).
    provider: String,
    /// Where the provider sends the user back with `code` and `state`: one of the server's
    /// allowed redirect URIs (`EASEL_OAUTH_REDIRECT_URIS`), exactly.
    redirect_uri: String,
}

/// Where to send the user to sign in with a provider.
#[derive(SimpleObject)]
pub struct StartOAuthPayload {
    /// Open this URL (browser or in-app browser tab); the provider sends the user back to
    /// the redirect URI with `code` and `state` query parameters.
    authorization_url: String,
    /// The request's state: check that the `state` the redirect carries equals it, then pass
    /// both to `completeOAuth` within 10 minutes.
    state: String,
}

/// Input of `completeOAuth`.
#[derive(InputObject)]
pub struct CompleteOAuthInput {
    /// The `code` query parameter of the redirect.
    code: String,
    /// The `state` query parameter of the redirect (as `startOAuth` returned it).
    state: String,
}

/// Social sign-in queries.
#[derive(Default)]
pub struct OAuthQuery;

#[Object]
impl OAuthQuery {
    /// The identity providers this server signs users in with (`startOAuth`'s `provider`).
    async fn oauth_providers(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<String>> {
        Ok(service::oauth_providers(ctx.state()?))
    }
}

/// Social sign-in mutations.
#[derive(Default)]
pub struct OAuthMutation;

#[Object]
impl OAuthMutation {
    /// Starts signing in with an identity provider (authorization code with PKCE). Signed
    /// out, `completeOAuth` then signs in or creates an account; signed in, it links the
    /// provider's account to the viewer's (and must be completed with the same viewer).
    #[graphql(name = "startOAuth")]
    async fn start_oauth(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")] input: StartOAuthInput,
    ) -> async_graphql::Result<StartOAuthPayload> {
        let started = service::start_oauth(
            ctx.state()?,
            &meta(ctx),
            ctx.viewer().user(),
            &input.provider,
            &input.redirect_uri,
        )
        .await?;
        Ok(StartOAuthPayload {
            authorization_url: started.authorization_url,
            state: started.state,
        })
    }

    /// Completes a `startOAuth` request with what the provider's redirect carried, and
    /// returns a new session. A provider account already linked signs its user in; a
    /// verified email matching an account with a verified email links to that account;
    /// otherwise an account is created (`isNewUser`). An email the provider did not verify
    /// never reaches an existing account (`CONFLICT`). A state that is unknown, expired (10
    /// minutes), already used or started by someone else is `BAD_USER_INPUT` on
    /// `input.state`; an answer that fails verification is `UNAUTHENTICATED`.
    #[graphql(name = "completeOAuth")]
    async fn complete_oauth(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: CompleteOAuthInput,
    ) -> async_graphql::Result<AuthPayload> {
        Ok(service::complete_oauth(
            ctx.state()?,
            &meta(ctx),
            ctx.viewer().user(),
            &input.code,
            &input.state,
        )
        .await?
        .into())
    }

    /// Removes the viewer's link to a provider. Refused (`CONFLICT`) when it is the last way
    /// to sign in to the account (no password, no phone number, no other provider);
    /// `NOT_FOUND` when the provider is not linked.
    #[graphql(name = "unlinkOAuth", guard = "Authenticated")]
    async fn unlink_oauth(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The provider to unlink, as `linkedAccounts` names it.")] provider: String,
    ) -> async_graphql::Result<User> {
        let viewer = require_user(ctx)?;
        Ok(User::new(
            service::unlink_oauth(ctx.state()?, &meta(ctx), viewer, &provider).await?,
        ))
    }
}

/// Input of `updateVendorProfile`: omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateVendorProfileInput {
    /// The name shown on the vendor's albums, 1 to 100 characters.
    business_name: Option<String>,
    /// A JSON object of at most 4 kB, e.g. `{"email": "shop@example.com"}`.
    contact_info: Option<Json<serde_json::Value>>,
    /// A JSON object of at most 4 kB, e.g. `{"instagram": "https://instagram.com/shop"}`.
    social_links: Option<Json<serde_json::Value>>,
}

fn meta(ctx: &Context<'_>) -> RequestMeta {
    ctx.data_opt::<RequestMeta>().cloned().unwrap_or_default()
}

/// Session and vendor-profile mutations.
#[derive(Default)]
pub struct SelfServiceMutation;

#[Object]
impl SelfServiceMutation {
    /// Ends one of the viewer's sessions (see `me.sessions`): its refresh token and access
    /// tokens stop working at once. An id that is not an active session of the viewer is
    /// `NOT_FOUND`.
    #[graphql(guard = "Authenticated")]
    async fn revoke_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The session's `id`, from `me.sessions`.")] id: ID,
    ) -> async_graphql::Result<bool> {
        let viewer = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(service::revoke_session(ctx.state()?, &meta(ctx), viewer, id).await?)
    }

    /// Changes the viewer's vendor profile (vendors only: `FORBIDDEN` for others), with the
    /// rules of `becomeVendor`.
    #[graphql(guard = "Authenticated")]
    async fn update_vendor_profile(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: UpdateVendorProfileInput,
    ) -> async_graphql::Result<User> {
        let viewer = require_user(ctx)?;
        let (user, _) = service::update_vendor_profile(
            ctx.state()?,
            &meta(ctx),
            viewer.id,
            VendorProfileInput {
                business_name: input.business_name,
                contact_info: input.contact_info.map(|j| j.0),
                social_links: input.social_links.map(|j| j.0),
            },
        )
        .await?;
        Ok(User::new(user))
    }
}
