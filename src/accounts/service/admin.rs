//! Admin: account status, and `easel create-admin`.

use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use uuid::Uuid;

use super::{RequestMeta, SignUp, create_user_in, sessions::revoke, validate_email};
use crate::{
    AppState,
    accounts::{
        AccountStatus, Role,
        model::{self, UserRow},
        password, phone,
        viewer::ViewerUser,
    },
    audit::{self, AuditEntry},
    db,
    error::{AppError, AppResult},
};

/// Admin: suspends, bans or reactivates an account. Suspending revokes its sessions.
pub async fn set_account_status(
    state: &AppState,
    meta: &RequestMeta,
    admin: &ViewerUser,
    user_id: Uuid,
    status: AccountStatus,
) -> AppResult<UserRow> {
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        set_account_status_in(conn, meta, admin.id, user_id, status, json!({})).await
    })
    .await
    .map(|(user, families)| {
        state.revocations.revoke(&families);
        user
    })
}

/// [`set_account_status`] inside the caller's transaction (moderation suspends through it),
/// audited with the status before and after plus `context`. Returns the session families it
/// revoked: hand them to `state.revocations.revoke` once the transaction committed.
pub async fn set_account_status_in(
    conn: &mut AsyncPgConnection,
    meta: &RequestMeta,
    admin: Uuid,
    user_id: Uuid,
    status: AccountStatus,
    context: serde_json::Value,
) -> AppResult<(UserRow, Vec<Uuid>)> {
    if admin == user_id {
        return Err(AppError::bad_input(
            "userId",
            "admins cannot change their own status",
        ));
    }
    let before = model::lock_user(conn, user_id)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    let user = model::set_account_status(conn, user_id, status).await?;
    let families = if status != AccountStatus::Active {
        revoke(conn, user_id, None).await?
    } else {
        Vec::new()
    };
    audit::record(
        conn,
        AuditEntry {
            actor_id: Some(admin),
            actor_type: "admin",
            action: "account.status_changed",
            resource: Some("user"),
            resource_id: Some(user_id.to_string()),
            ip: meta.ip_net(),
            metadata: json!({
                "status": status.as_str(),
                "before": { "status": before.account_status.as_str() },
                "after": { "status": status.as_str() },
                "context": context,
            }),
        },
    )
    .await?;
    Ok((user, families))
}

/// Admin: gives a user another role. An admin cannot change their own role, and the acting
/// admin must still be an admin in the database (every admin row is locked first, so two
/// admins demoting each other at once take turns and the second is refused): the actor
/// stays an admin, so the last admin can never be demoted. The role travels in access tokens, so the user's sessions are
/// revoked: the change holds at once, and their next sign-in carries the new role.
pub async fn set_user_role(
    state: &AppState,
    meta: &RequestMeta,
    admin: &ViewerUser,
    user_id: Uuid,
    role: Role,
) -> AppResult<UserRow> {
    if admin.id == user_id {
        return Err(AppError::bad_input(
            "userId",
            "admins cannot change their own role",
        ));
    }
    let mut conn = db::conn(&state.pool).await?;
    let (user, families) = conn
        .transaction(async |conn| {
            let admins = model::lock_admins(conn).await?;
            if !admins.contains(&admin.id) {
                return Err(AppError::Forbidden("only an admin may do this".into()));
            }
            let before = model::lock_user(conn, user_id)
                .await?
                .ok_or(AppError::NotFound("user"))?;
            if before.role == role {
                return Ok((before, Vec::new()));
            }
            let user = model::set_role(conn, user_id, role).await?;
            let families = revoke(conn, user_id, None).await?;
            audit::record(
                conn,
                AuditEntry {
                    actor_id: Some(admin.id),
                    actor_type: "admin",
                    action: "account.role_changed",
                    resource: Some("user"),
                    resource_id: Some(user_id.to_string()),
                    ip: meta.ip_net(),
                    metadata: json!({
                        "role": role.as_str(),
                        "before": { "role": before.role.as_str() },
                        "after": { "role": role.as_str() },
                        "sessions_revoked": families.len(),
                    }),
                },
            )
            .await?;
            Ok((user, families))
        })
        .await?;
    state.revocations.revoke(&families);
    Ok(user)
}

/// Admin: marks a vendor's business verified or not. Verifying makes a `user` a `vendor`
/// (as an admin's vendor invite does; admins keep their role); un-verifying leaves the role.
/// `BAD_USER_INPUT` on `userId` when the user has no vendor profile (`becomeVendor`).
pub async fn set_vendor_verified(
    state: &AppState,
    meta: &RequestMeta,
    admin: &ViewerUser,
    user_id: Uuid,
    verified: bool,
) -> AppResult<UserRow> {
    let mut conn = db::conn(&state.pool).await?;
    let (user, families) = conn
        .transaction(async |conn| {
            let before = model::lock_user(conn, user_id)
                .await?
                .ok_or(AppError::NotFound("user"))?;
            let was = model::set_vendor_verified(conn, user_id, verified)
                .await?
                .ok_or_else(|| AppError::bad_input("userId", "this user has no vendor profile"))?;
            let (user, families) = if verified && before.role == Role::User {
                // The role travels in access tokens: sign in again to act as a vendor.
                let user = model::set_role(conn, user_id, Role::Vendor).await?;
                (user, revoke(conn, user_id, None).await?)
            } else {
                (before.clone(), Vec::new())
            };
            audit::record(
                conn,
                AuditEntry {
                    actor_id: Some(admin.id),
                    actor_type: "admin",
                    action: "vendor.verification_changed",
                    resource: Some("user"),
                    resource_id: Some(user_id.to_string()),
                    ip: meta.ip_net(),
                    metadata: json!({
                        "before": { "verified": was, "role": before.role.as_str() },
                        "after": { "verified": verified, "role": user.role.as_str() },
                    }),
                },
            )
            .await?;
            Ok::<_, AppError>((user, families))
        })
        .await?;
    state.revocations.revoke(&families);
    Ok(user)
}

/// `easel create-admin`: promotes the account with this phone or email to admin, creating
/// it when missing (a new email account needs a password).
pub async fn create_admin(
    state: &AppState,
    phone_input: Option<&str>,
    email: Option<&str>,
    password_input: Option<&str>,
) -> AppResult<UserRow> {
    let mut conn = db::conn(&state.pool).await?;
    let existing = match (phone_input, email) {
        (Some(p), None) => model::user_by_phone(&mut conn, &phone::normalize(p, "phone")?).await?,
        (None, Some(e)) => {
            model::user_with_password_by_email(&mut conn, &validate_email(e, "email")?)
                .await?
                .map(|(u, _)| u)
        }
        _ => {
            return Err(AppError::bad_input(
                "phone",
                "give exactly one of --phone and --email",
            ));
        }
    };
    let hash = match (existing.is_none(), email, password_input) {
        (true, Some(_), Some(p)) => {
            password::validate(p, "password")?;
            Some(password::hash(p.to_string()).await?)
        }
        (true, Some(_), None) => {
            return Err(AppError::bad_input(
                "password",
                "a new email account needs EASEL_ADMIN_PASSWORD",
            ));
        }
        _ => None,
    };
    let phone = phone_input
        .map(|p| phone::normalize(p, "phone"))
        .transpose()?;
    let email = email.map(|e| validate_email(e, "email")).transpose()?;
    let sign_up = SignUp {
        phone: phone.as_deref(),
        email: email.as_deref(),
        password_hash: hash.as_deref(),
        method: "cli",
        ..SignUp::default()
    };
    conn.transaction(async |conn| {
        let user = match existing {
            Some(u) => u,
            None => create_user_in(conn, state, &RequestMeta::default(), &sign_up).await?,
        };
        let user = model::set_role(conn, user.id, Role::Admin).await?;
        audit::record(
            conn,
            AuditEntry {
                actor_id: None,
                actor_type: "system",
                action: "account.role_changed",
                resource: Some("user"),
                resource_id: Some(user.id.to_string()),
                ip: None,
                metadata: json!({ "role": "admin", "via": "cli" }),
            },
        )
        .await?;
        Ok(user)
    })
    .await
}
