//! Sessions: decoding access tokens, opening sessions, rotating refresh tokens, signing out
//! and revoking.

use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use uuid::Uuid;

use super::{Auth, RequestMeta, actor_type, audit_user, truncate};
use crate::{
    AppState,
    accounts::{
        AccountStatus,
        model::{self, NewSession, UserRow},
        revocations,
        tokens::{self, TokenError},
        viewer::{Viewer, ViewerUser},
    },
    audit::{self, AuditEntry},
    db,
    error::{AppError, AppResult},
};

/// Decodes an `Authorization` header value (`Bearer <jwt>`) into the viewer. No header is
/// anonymous; a header with a bad or expired token is an error, never silently anonymous.
pub fn authenticate(state: &AppState, authorization: Option<&str>) -> AppResult<Viewer> {
    let Some(value) = authorization.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(Viewer::Anonymous);
    };
    // The scheme is case-insensitive (RFC 7235 section 2.1).
    let token = value
        .split_once(char::is_whitespace)
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or(AppError::Unauthenticated(
            "the Authorization header must be `Bearer <access token>`",
        ))?;
    match state.keys.verify(token) {
        Ok(claims) if state.revocations.is_revoked(claims.sid) => Err(AppError::Unauthenticated(
            "the session was signed out or revoked; sign in again",
        )),
        Ok(claims) => Ok(Viewer::User(ViewerUser {
            id: claims.sub,
            role: claims.role,
            session_id: claims.sid,
            expires_at: claims.exp,
        })),
        Err(TokenError::Expired) => Err(AppError::Unauthenticated(
            "the access token has expired; refresh the session",
        )),
        Err(TokenError::Invalid) => Err(AppError::Unauthenticated("the access token is not valid")),
    }
}

/// Opens a session family for `user` and issues its tokens.
pub(super) async fn start_session(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    user: UserRow,
    is_new_user: bool,
    meta: &RequestMeta,
    method: &str,
) -> AppResult<Auth> {
    let family = Uuid::now_v7();
    conn.transaction(async |conn| {
        let auth = issue_tokens(state, conn, user.clone(), family, 0, is_new_user, meta).await?;
        audit_user(
            conn,
            &user,
            "auth.sign_in",
            meta,
            json!({ "method": method, "session": family }),
        )
        .await?;
        Ok(auth)
    })
    .await
}

async fn issue_tokens(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    user: UserRow,
    family: Uuid,
    rotation: i32,
    is_new_user: bool,
    meta: &RequestMeta,
) -> AppResult<Auth> {
    let refresh_token = tokens::random_token(32);
    let refresh_expires = Utc::now()
        + chrono::Duration::from_std(state.config.refresh_token_ttl).map_err(AppError::internal)?;
    let user_agent = meta.user_agent.as_deref().map(|ua| truncate(ua, 256));
    model::insert_session(
        conn,
        &NewSession {
            id: Uuid::now_v7(),
            user_id: user.id,
            family_id: family,
            refresh_token_hash: &tokens::refresh_hash(&refresh_token),
            user_agent: user_agent.as_deref(),
            ip: meta.ip_net(),
            expires_at: refresh_expires,
            rotation_counter: rotation,
        },
    )
    .await?;
    let (access_token, access_expires) = state.keys.issue(user.id, user.role, family);
    Ok(Auth {
        access_token,
        access_token_expires_at: access_expires,
        refresh_token,
        refresh_token_expires_at: refresh_expires,
        user,
        is_new_user,
    })
}

/// Exchanges a refresh token for new tokens. The old refresh token stops working; presenting
/// one that was already exchanged revokes the whole session (it was probably stolen).
pub async fn refresh_session(
    state: &AppState,
    meta: &RequestMeta,
    refresh_token: &str,
) -> AppResult<Auth> {
    const INVALID: AppError =
        AppError::Unauthenticated("the refresh token is not valid; sign in again");
    if refresh_token.is_empty() || refresh_token.len() > 256 {
        return Err(INVALID);
    }
    let mut conn = db::conn(&state.pool).await?;
    let Some(session) =
        model::session_by_refresh_hash(&mut conn, &tokens::refresh_hash(refresh_token)).await?
    else {
        return Err(INVALID);
    };
    if session.revoked_at.is_some() {
        reuse_detected(state, &mut conn, &session, meta).await?;
        return Err(AppError::Unauthenticated(
            "the refresh token was already used; the session is revoked, sign in again",
        ));
    }
    if session.expires_at <= Utc::now() {
        return Err(AppError::Unauthenticated(
            "the session has expired; sign in again",
        ));
    }
    let user = model::user_by_id(&mut conn, session.user_id)
        .await?
        .ok_or(INVALID)?;
    if user.account_status != AccountStatus::Active {
        let families = revoke(&mut conn, user.id, Some(session.family_id)).await?;
        state.revocations.revoke(&families);
        return Err(AppError::Forbidden("this account is suspended".into()));
    }
    let rotated = conn
        .transaction(async |conn| {
            if !model::retire_session(conn, session.id).await? {
                return Ok(None); // a concurrent exchange of the same token won
            }
            let auth = issue_tokens(
                state,
                conn,
                user,
                session.family_id,
                session.rotation_counter + 1,
                false,
                meta,
            )
            .await?;
            Ok::<_, AppError>(Some(auth))
        })
        .await?;
    match rotated {
        Some(auth) => Ok(auth),
        None => {
            reuse_detected(state, &mut conn, &session, meta).await?;
            Err(AppError::Unauthenticated(
                "the refresh token was already used; the session is revoked, sign in again",
            ))
        }
    }
}

/// Revokes one session family (or every session of `user`) and announces it to every
/// process, so their access tokens stop working at once; returns the families revoked now.
/// Run it inside the caller's transaction, then hand the families to
/// `state.revocations.revoke` once it committed.
pub(super) async fn revoke(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    family: Option<Uuid>,
) -> AppResult<Vec<Uuid>> {
    let families = match family {
        Some(f) if model::revoke_family(conn, f).await? > 0 => vec![f],
        Some(_) => Vec::new(),
        None => model::revoke_user_sessions(conn, user).await?,
    };
    revocations::announce(conn, user, &families).await?;
    Ok(families)
}

async fn reuse_detected(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    session: &model::SessionRow,
    meta: &RequestMeta,
) -> AppResult<()> {
    let families = revoke(conn, session.user_id, Some(session.family_id)).await?;
    state.revocations.revoke(&families);
    if !families.is_empty() {
        tracing::warn!(user = %session.user_id, session = %session.family_id, "refresh token reuse: session revoked");
        audit::record(
            conn,
            AuditEntry {
                actor_id: Some(session.user_id),
                actor_type: "user",
                action: "auth.refresh_reuse",
                resource: Some("session"),
                resource_id: Some(session.family_id.to_string()),
                ip: meta.ip_net(),
                metadata: json!({}),
            },
        )
        .await?;
    }
    Ok(())
}

/// Ends the viewer's session, or every session of the viewer.
pub async fn sign_out(
    state: &AppState,
    meta: &RequestMeta,
    viewer: &ViewerUser,
    all: bool,
) -> AppResult<bool> {
    let mut conn = db::conn(&state.pool).await?;
    let families = conn
        .transaction(async |conn| {
            let families = revoke(conn, viewer.id, (!all).then_some(viewer.session_id)).await?;
            audit::record(
                conn,
                AuditEntry {
                    actor_id: Some(viewer.id),
                    actor_type: actor_type(viewer.role),
                    action: "auth.sign_out",
                    resource: Some("session"),
                    resource_id: Some(viewer.session_id.to_string()),
                    ip: meta.ip_net(),
                    metadata: json!({ "all_sessions": all, "revoked_sessions": families.len() }),
                },
            )
            .await?;
            Ok::<_, AppError>(families)
        })
        .await?;
    state.revocations.revoke(&families);
    Ok(true)
}
