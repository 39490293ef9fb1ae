//! GraphQL types of an account's security that `User` shows its owner: the active sessions
//! (`User.sessions`) and the linked identity-provider accounts (`User.linkedAccounts`). The
//! mutations that change them are in `self_service`.

use async_graphql::{Context, ID, SimpleObject};
use chrono::{DateTime, Utc};

use crate::{
    accounts::{model::UserRow, service},
    graphql::ContextExt,
};

/// An active session: one sign-in on one device, kept alive by refreshing it.
#[derive(SimpleObject)]
pub struct Session {
    /// Stable identifier (pass it to `revokeSession`).
    id: ID,
    /// The `User-Agent` of the client's last sign-in or refresh, if it sent one.
    user_agent: Option<String>,
    /// The client IP of the last sign-in or refresh, if known.
    ip: Option<String>,
    /// When the user signed in.
    created_at: DateTime<Utc>,
    /// The last sign-in or refresh of the session.
    last_used_at: DateTime<Utc>,
    /// Whether this is the session of the request's access token.
    current: bool,
}

/// The active sessions of `user`, for the user themself only (null for anyone else).
pub async fn sessions_of(
    ctx: &Context<'_>,
    user: &UserRow,
) -> async_graphql::Result<Option<Vec<Session>>> {
    let Some(viewer) = ctx.viewer().user().filter(|v| v.id == user.id) else {
        return Ok(None);
    };
    let sessions = service::list_sessions(ctx.state()?, user.id).await?;
    Ok(Some(
        sessions
            .into_iter()
            .map(|s| Session {
                id: ID(s.id.to_string()),
                user_agent: s.user_agent,
                ip: s.ip.map(|ip| ip.addr().to_string()),
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                current: s.id == viewer.session_id,
            })
            .collect(),
    ))
}

/// A provider account linked to an Easel account: signing in with it signs in to the Easel
/// account.
#[derive(SimpleObject)]
pub struct LinkedAccount {
    /// The provider's name, as `oauthProviders` lists it (`google`, `github`, ...).
    provider: String,
    /// The email address the provider last gave for the account, if any.
    email: Option<String>,
    /// When the provider account was linked.
    created_at: DateTime<Utc>,
}

/// The linked provider accounts of `user`, for the user themself only (null for anyone else).
pub async fn linked_accounts_of(
    ctx: &Context<'_>,
    user: &UserRow,
) -> async_graphql::Result<Option<Vec<LinkedAccount>>> {
    if ctx.viewer().user_id() != Some(user.id) {
        return Ok(None);
    }
    let links = service::linked_accounts(ctx.state()?, user.id).await?;
    Ok(Some(
        links
            .into_iter()
            .map(|l| LinkedAccount {
                provider: l.provider,
                email: l.email,
                created_at: l.created_at,
            })
            .collect(),
    ))
}
