//! What users manage about their own account beyond the profile: their sessions (listing
//! and revoking them one by one) and their vendor profile.

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{Nullable, Text, Timestamptz},
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ipnet::IpNet;
use serde_json::json;
use uuid::Uuid;

use super::{RequestMeta, actor_type, audit_user, sessions::revoke};
use crate::{
    AppState,
    accounts::{
        model::{self, UserRow, VendorProfileRow},
        viewer::ViewerUser,
    },
    audit::{self, AuditEntry},
    db::{self, schema::vendor_profiles},
    error::{AppError, AppResult},
};

/// The most sessions `me.sessions` lists (the most recently used ones).
const MAX_SESSIONS: i64 = 100;

/// An active session (a sign-in and its refreshes): not signed out or revoked, not expired.
#[derive(Debug, QueryableByName)]
pub struct SessionInfo {
    /// The session family: the `sid` of its access tokens.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    /// The client of the last sign-in or refresh.
    #[diesel(sql_type = Nullable<Text>)]
    pub user_agent: Option<String>,
    /// The client IP of the last sign-in or refresh.
    #[diesel(sql_type = Nullable<diesel::sql_types::Inet>)]
    pub ip: Option<IpNet>,
    /// When the user signed in.
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    /// The last sign-in or refresh.
    #[diesel(sql_type = Timestamptz)]
    pub last_used_at: DateTime<Utc>,
}

/// The user's active sessions, most recently used first (at most 100).
pub async fn list_sessions(state: &AppState, user: Uuid) -> AppResult<Vec<SessionInfo>> {
    let mut conn = db::conn(&state.pool).await?;
    // A family's live row is its latest refresh token; the family began with its first row.
    let rows = diesel::sql_query(
        "SELECT l.family_id AS id, l.user_agent, l.ip, l.last_used_at, \
                (SELECT min(f.created_at) FROM sessions f WHERE f.family_id = l.family_id) \
                    AS created_at \
         FROM sessions l \
         WHERE l.user_id = $1 AND l.revoked_at IS NULL AND l.expires_at > now() \
         ORDER BY l.last_used_at DESC, l.id DESC \
         LIMIT $2",
    )
    .bind::<diesel::sql_types::Uuid, _>(user)
    .bind::<diesel::sql_types::BigInt, _>(MAX_SESSIONS)
    .load::<SessionInfo>(&mut conn)
    .await?;
    Ok(rows)
}

/// Whether `family` is an active session of `user`.
async fn owns_active_session(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    family: Uuid,
) -> QueryResult<bool> {
    use crate::db::schema::sessions;
    diesel::select(diesel::dsl::exists(
        sessions::table
            .filter(sessions::family_id.eq(family))
            .filter(sessions::user_id.eq(user))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(diesel::dsl::now)),
    ))
    .get_result(conn)
    .await
}

/// Revokes one of the viewer's own sessions: its refresh token stops working, and its access
/// tokens at once in every process. Another user's session, or one that is not active, is
/// `NOT_FOUND` and nothing changes.
pub async fn revoke_session(
    state: &AppState,
    meta: &RequestMeta,
    viewer: &ViewerUser,
    session: Uuid,
) -> AppResult<bool> {
    let mut conn = db::conn(&state.pool).await?;
    let families = conn
        .transaction(async |conn| {
            if !owns_active_session(conn, viewer.id, session).await? {
                return Err(AppError::NotFound("session"));
            }
            let families = revoke(conn, viewer.id, Some(session)).await?;
            audit::record(
                conn,
                AuditEntry {
                    actor_id: Some(viewer.id),
                    actor_type: actor_type(viewer.role),
                    action: "auth.session_revoked",
                    resource: Some("session"),
                    resource_id: Some(session.to_string()),
                    ip: meta.ip_net(),
                    metadata: json!({ "current": session == viewer.session_id }),
                },
            )
            .await?;
            Ok::<_, AppError>(families)
        })
        .await?;
    state.revocations.revoke(&families);
    Ok(true)
}

/// The changes of `updateVendorProfile` (`None`: unchanged).
#[derive(Debug, Default)]
pub struct VendorProfileInput {
    pub business_name: Option<String>,
    pub contact_info: Option<serde_json::Value>,
    pub social_links: Option<serde_json::Value>,
}

/// Changes the vendor profile of `user` (made with `becomeVendor`; without one:
/// `FORBIDDEN`), with `becomeVendor`'s rules: a business name of 1 to 100 characters,
/// contact details and social links as JSON objects of at most 4 kB.
pub async fn update_vendor_profile(
    state: &AppState,
    meta: &RequestMeta,
    user: Uuid,
    input: VendorProfileInput,
) -> AppResult<(UserRow, VendorProfileRow)> {
    let name = input.business_name.as_deref().map(str::trim);
    if name.is_some_and(|n| n.is_empty() || n.chars().count() > 100) {
        return Err(AppError::bad_input(
            "input.businessName",
            "1 to 100 characters",
        ));
    }
    for (value, field) in [
        (&input.contact_info, "input.contactInfo"),
        (&input.social_links, "input.socialLinks"),
    ] {
        if value
            .as_ref()
            .is_some_and(|v| !v.is_object() || v.to_string().len() > 4096)
        {
            return Err(AppError::bad_input(field, "an object of at most 4 kB"));
        }
    }
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        let user = model::user_by_id(conn, user)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        let current = vendor_profiles::table
            .find(user.id)
            .select(VendorProfileRow::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()?
            .ok_or_else(|| {
                AppError::Forbidden(
                    "only vendors have a vendor profile (see `becomeVendor`)".into(),
                )
            })?;
        let profile = diesel::update(vendor_profiles::table.find(user.id))
            .set((
                vendor_profiles::business_name.eq(name.unwrap_or(&current.business_name)),
                vendor_profiles::contact_info
                    .eq(input.contact_info.as_ref().unwrap_or(&current.contact_info)),
                vendor_profiles::social_links
                    .eq(input.social_links.as_ref().unwrap_or(&current.social_links)),
            ))
            .returning(VendorProfileRow::as_returning())
            .get_result(conn)
            .await?;
        audit_user(
            conn,
            &user,
            "vendor.profile_updated",
            meta,
            json!({
                "business_name": name.is_some(),
                "contact_info": input.contact_info.is_some(),
                "social_links": input.social_links.is_some(),
            }),
        )
        .await?;
        Ok((user, profile))
    })
    .await
}
