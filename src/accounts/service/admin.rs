//! Admin: account status, and `easel create-admin`.

use diesel_async::AsyncConnection;
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
    if admin.id == user_id {
        return Err(AppError::bad_input(
            "userId",
            "admins cannot change their own status",
        ));
    }
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        model::user_by_id(conn, user_id)
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
                actor_id: Some(admin.id),
                actor_type: "admin",
                action: "account.status_changed",
                resource: Some("user"),
                resource_id: Some(user_id.to_string()),
                ip: meta.ip_net(),
                metadata: json!({ "status": status.as_str() }),
            },
        )
        .await?;
        Ok((user, families))
    })
    .await
    .map(|(user, families)| {
        state.revocations.revoke(&families);
        user
    })
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
