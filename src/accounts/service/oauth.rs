//! Social sign-in: starting an authorization request, completing it (signing in, signing
//! up or linking), listing and unlinking a user's provider accounts.
//!
//! The rules of accounts:
//! - a provider account already linked signs its user in;
//! - otherwise a VERIFIED email the provider gives that matches an Easel account whose own
//!   email is verified links the provider to that account and signs it in;
//! - an email the provider did not verify never reaches an existing account: when an Easel
//!   account holds that address, `completeOAuth` answers `CONFLICT` and creates nothing (the
//!   owner signs in another way and links the provider from there); so does a verified email
//!   matching an account whose own email is not verified (that account may not be the
//!   address owner's);
//! - otherwise a new account is created through the one sign-up path (sign-up bonus,
//!   referral hook, audit), with the email marked verified when the provider vouched for it;
//! - a signed-in user who started the request links the provider to their own account.

use std::time::Duration;

use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    Auth, RequestMeta, SignUp, audit_user, create_user_in, ensure_active, sessions::start_session,
    validate_email,
};
use crate::{
    AppState,
    accounts::{
        model::{self as accounts_model, UserRow},
        oauth::{self, Identity, OAuthError, Pending, Provider, model},
        tokens,
        viewer::ViewerUser,
    },
    db,
    error::{AppError, AppResult},
    ratelimit,
};

/// How long an authorization request may take, from `startOAuth` to `completeOAuth`.
const STATE_TTL: Duration = Duration::from_secs(600);

/// Where to send the user, and the state the app checks when the provider sends them back.
#[derive(Debug)]
pub struct OAuthStart {
    pub authorization_url: String,
    pub state: String,
}

fn state_hash(state: &str) -> String {
    Sha256::digest(state.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unavailable(provider: &str, err: anyhow::Error) -> AppError {
    AppError::Internal(err.context(format!("the {provider} identity provider")))
}

/// The providers this server signs users in with (`oauthProviders`).
pub fn oauth_providers(state: &AppState) -> Vec<String> {
    Provider::all(&state.config.oauth)
        .iter()
        .map(|p| p.name().to_string())
        .collect()
}

/// Starts an authorization request with `provider`, to come back to `redirect_uri` (one of
/// `EASEL_OAUTH_REDIRECT_URIS`, exactly). `viewer`, when signed in, is who the provider's
/// account will be linked to. At most 100 per client IP in 15 minutes.
pub async fn start_oauth(
    state: &AppState,
    meta: &RequestMeta,
    viewer: Option<&ViewerUser>,
    provider_name: &str,
    redirect_uri: &str,
) -> AppResult<OAuthStart> {
    let config = &state.config.oauth;
    let provider = Provider::named(config, provider_name).ok_or_else(|| {
        AppError::bad_input(
            "input.provider",
            "not a provider this server signs in with (see `oauthProviders`)",
        )
    })?;
    if !config.redirect_uris.iter().any(|u| u == redirect_uri) {
        return Err(AppError::bad_input(
            "input.redirectUri",
            "not one of the redirect URIs this server allows",
        ));
    }
    let mut conn = db::conn(&state.pool).await?;
    ratelimit::hit(
        &mut conn,
        &format!("oauth:start:ip:{}", meta.ip_key()),
        Duration::from_secs(900),
        100,
    )
    .await?;
    let (oauth_state, nonce, verifier) = (
        tokens::random_token(32),
        tokens::random_token(32),
        tokens::random_token(48),
    );
    let pending = Pending {
        state: &oauth_state,
        nonce: &nonce,
        pkce_verifier: &verifier,
        redirect_uri,
    };
    let authorization_url =
        oauth::authorization_url(provider, &pending)
            .await
            .map_err(|e| match e {
                OAuthError::Unavailable(e) => unavailable(provider_name, e),
                OAuthError::Rejected(m) => unavailable(provider_name, anyhow::anyhow!(m)),
                OAuthError::Invalid(m) => unavailable(provider_name, anyhow::anyhow!(m)),
            })?;
    let expires_at =
        Utc::now() + chrono::Duration::from_std(STATE_TTL).map_err(AppError::internal)?;
    model::insert_state(
        &mut conn,
        &model::NewState {
            state_hash: &state_hash(&oauth_state),
            provider: provider.name(),
            redirect_uri,
            nonce: &nonce,
            pkce_verifier: &verifier,
            user_id: viewer.map(|v| v.id),
            expires_at,
        },
    )
    .await?;
    Ok(OAuthStart {
        authorization_url,
        state: oauth_state,
    })
}

/// Completes an authorization request: checks the state (it works once, for ten minutes, and
/// only for whoever started it: the same signed-in user, or anyone when started signed out),
/// exchanges the code with the PKCE verifier, checks the provider's answer, and signs in,
/// signs up or links (see the module documentation). Returns a new session.
pub async fn complete_oauth(
    state: &AppState,
    meta: &RequestMeta,
    viewer: Option<&ViewerUser>,
    code: &str,
    oauth_state: &str,
) -> AppResult<Auth> {
    if code.is_empty() || code.len() > 2048 {
        return Err(AppError::bad_input("input.code", "not a valid code"));
    }
    let bad_state = || {
        AppError::bad_input(
            "input.state",
            "unknown, expired or already used, or started by someone else; start again",
        )
    };
    if oauth_state.is_empty() || oauth_state.len() > 256 {
        return Err(bad_state());
    }
    let mut conn = db::conn(&state.pool).await?;
    let pending = model::consume_state(&mut conn, &state_hash(oauth_state), viewer.map(|v| v.id))
        .await?
        .ok_or_else(bad_state)?;
    let provider = Provider::named(&state.config.oauth, &pending.provider).ok_or_else(bad_state)?;
    let identity = oauth::identity(
        provider,
        code,
        &Pending {
            state: oauth_state,
            nonce: &pending.nonce,
            pkce_verifier: &pending.pkce_verifier,
            redirect_uri: &pending.redirect_uri,
        },
    )
    .await
    .map_err(|e| match e {
        OAuthError::Rejected(m) => AppError::bad_input(
            "input.code",
            format!("the identity provider refused the code ({m}); start again"),
        ),
        OAuthError::Invalid(m) => {
            tracing::warn!(provider = provider.name(), "social sign-in refused: {m}");
            AppError::Unauthenticated(m)
        }
        OAuthError::Unavailable(e) => unavailable(provider.name(), e),
    })?;
    let identity = Identity {
        email: identity
            .email
            .and_then(|e| validate_email(&e, "input.code").ok()),
        ..identity
    };
    let name = provider.name();
    let (user, is_new_user) = match viewer {
        Some(viewer) => (
            link_to(&mut conn, meta, viewer, name, &identity).await?,
            false,
        ),
        None => sign_in_or_up(state, &mut conn, meta, name, &identity).await?,
    };
    let user = accounts_model::record_login(&mut conn, user.id, false).await?;
    start_session(state, &mut conn, user, is_new_user, meta, "oauth").await
}

/// Links the provider's account to the signed-in `viewer`.
async fn link_to(
    conn: &mut AsyncPgConnection,
    meta: &RequestMeta,
    viewer: &ViewerUser,
    provider: &str,
    identity: &Identity,
) -> AppResult<UserRow> {
    conn.transaction(async |conn| {
        model::lock_user_has_password(conn, viewer.id)
            .await?
            .ok_or(AppError::Unauthenticated("the account no longer exists"))?;
        let user = accounts_model::user_by_id(conn, viewer.id)
            .await?
            .ok_or(AppError::Unauthenticated("the account no longer exists"))?;
        ensure_active(&user)?;
        match model::link_by_subject(conn, provider, &identity.subject).await? {
            Some(link) if link.user_id == user.id => {
                model::update_link_email(
                    conn,
                    provider,
                    &identity.subject,
                    identity.email.as_deref(),
                )
                .await?;
                return Ok(user);
            }
            Some(_) => {
                return Err(AppError::Conflict(format!(
                    "this {provider} account is linked to another Easel account"
                )));
            }
            None => {}
        }
        if model::links_of(conn, user.id)
            .await?
            .iter()
            .any(|l| l.provider == provider)
        {
            return Err(AppError::Conflict(format!(
                "another {provider} account is linked to this account; unlink it first"
            )));
        }
        insert_link(conn, meta, &user, provider, identity).await?;
        Ok(user)
    })
    .await
}

/// Signs in the linked user, links by verified email, or signs up.
async fn sign_in_or_up(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    meta: &RequestMeta,
    provider: &str,
    identity: &Identity,
) -> AppResult<(UserRow, bool)> {
    const SIGN_IN_ELSEWHERE: &str = "an Easel account already uses this email address; sign in to it another way and link the provider from there";
    if let Some(link) = model::link_by_subject(conn, provider, &identity.subject).await? {
        let user = accounts_model::user_by_id(conn, link.user_id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        ensure_active(&user)?;
        model::update_link_email(conn, provider, &identity.subject, identity.email.as_deref())
            .await?;
        return Ok((user, false));
    }
    let Some(email) = identity.email.as_deref() else {
        return Err(AppError::bad_input(
            "input.code",
            "the identity provider gave no email address, which a new account needs",
        ));
    };
    if let Some(existing) = model::user_by_email(conn, email).await? {
        if !(identity.email_verified && existing.email_verified_at.is_some()) {
            return Err(AppError::Conflict(SIGN_IN_ELSEWHERE.into()));
        }
        ensure_active(&existing)?;
        let user = conn
            .transaction(async |conn| {
                insert_link(conn, meta, &existing, provider, identity).await?;
                Ok::<_, AppError>(existing)
            })
            .await?;
        return Ok((user, false));
    }
    // Each account starts with a bonus: the same ceiling per client IP as `signUp`.
    ratelimit::hit(
        conn,
        &format!("signup:ip:{}", meta.ip_key()),
        Duration::from_secs(3600),
        state.config.signup_max_per_hour_per_ip,
    )
    .await?;
    let user = conn
        .transaction(async |conn| {
            let sign_up = SignUp {
                email: Some(email),
                method: "oauth",
                ..SignUp::default()
            };
            let user = create_user_in(conn, state, meta, &sign_up).await?;
            let user = if identity.email_verified {
                model::set_email_verified(conn, user.id).await?
            } else {
                user
            };
            insert_link(conn, meta, &user, provider, identity).await?;
            Ok::<_, AppError>(user)
        })
        .await
        .map_err(|e| match e {
            // Someone took the address meanwhile.
            AppError::Conflict(_) => AppError::Conflict(SIGN_IN_ELSEWHERE.into()),
            other => other,
        })?;
    Ok((user, true))
}

async fn insert_link(
    conn: &mut AsyncPgConnection,
    meta: &RequestMeta,
    user: &UserRow,
    provider: &str,
    identity: &Identity,
) -> AppResult<()> {
    model::insert_link(
        conn,
        &model::NewLink {
            id: Uuid::now_v7(),
            user_id: user.id,
            provider,
            provider_user_id: &identity.subject,
            email: identity.email.as_deref(),
        },
    )
    .await
    .map_err(|e| match AppError::from(e) {
        AppError::Conflict(_) => {
            AppError::Conflict(format!("this {provider} account is already linked"))
        }
        other => other,
    })?;
    audit_user(
        conn,
        user,
        "auth.oauth_linked",
        meta,
        json!({ "provider": provider, "email_verified": identity.email_verified }),
    )
    .await
}

/// Drops authorization requests that expired over a day ago (the server's hourly clean-up).
pub async fn prune_oauth_states(conn: &mut AsyncPgConnection) -> AppResult<usize> {
    Ok(model::prune_states(conn).await?)
}

/// The user's linked provider accounts, oldest first.
pub async fn linked_accounts(state: &AppState, user: Uuid) -> AppResult<Vec<model::LinkRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::links_of(&mut conn, user).await?)
}

/// Removes the viewer's link to `provider`, unless it is their last way to sign in (no
/// password, no phone number, no other provider): `CONFLICT` then. No such link: `NOT_FOUND`.
pub async fn unlink_oauth(
    state: &AppState,
    meta: &RequestMeta,
    viewer: &ViewerUser,
    provider: &str,
) -> AppResult<UserRow> {
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        let has_password = model::lock_user_has_password(conn, viewer.id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        let user = accounts_model::user_by_id(conn, viewer.id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        let links = model::links_of(conn, user.id).await?;
        if !links.iter().any(|l| l.provider == provider) {
            return Err(AppError::NotFound("linked account"));
        }
        let other_links = links.iter().any(|l| l.provider != provider);
        if !(has_password || user.phone.is_some() || other_links) {
            return Err(AppError::Conflict(
                "this is the account's last way to sign in; add a password, a phone number or another provider first".into(),
            ));
        }
        model::delete_links(conn, user.id, provider).await?;
        audit_user(
            conn,
            &user,
            "auth.oauth_unlinked",
            meta,
            json!({ "provider": provider }),
        )
        .await?;
        Ok(user)
    })
    .await
}
