//! The rules of accounts, one file per concept: one-time-code login (`otp.rs`), email and
//! password (`password.rs`), sessions with rotating refresh tokens (`sessions.rs`), profiles
//! (`profile.rs`) and admin changes (`admin.rs`). Every multi-statement change is one
//! transaction. The functions are re-exported here: callers write
//! `accounts::service::sign_up`.

mod admin;
mod erase;
mod oauth;
mod otp;
mod password;
mod profile;
mod recovery;
mod self_service;
mod sessions;

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use ipnet::IpNet;
use rand::Rng;
use serde_json::json;
use uuid::Uuid;

pub use crate::accounts::model::{UserRow, user_json};
pub use admin::{
    create_admin, set_account_status, set_account_status_in, set_user_role, set_vendor_verified,
};
pub use erase::{DELETE_CONFIRMATION, confirm_deletion_in, erase_in};
pub use oauth::{
    OAuthStart, complete_oauth, linked_accounts, oauth_providers, prune_oauth_states, start_oauth,
    unlink_oauth,
};
pub use otp::{OTP_MAX_ATTEMPTS, OtpSent, request_otp, verify_otp};
pub use password::{sign_in, sign_up};
pub use profile::verify_vendor_in;
pub use profile::{
    ProfileInput, become_vendor, set_tier_in, update_profile, user_by_id, user_by_id_in,
    user_by_username,
};
pub use recovery::{
    ResetProof, ResetTarget, add_email, add_phone, change_password, request_password_reset,
    reset_password, verify_email, verify_phone,
};
pub use self_service::{
    SessionInfo, VendorProfileInput, list_sessions, revoke_session, update_vendor_profile,
};
pub use sessions::{authenticate, refresh_session, sign_out};

use super::{
    AccountStatus, Role,
    model::{self, NewUser},
};
use crate::{
    AppState,
    audit::{self, AuditEntry},
    credits,
    error::{AppError, AppResult},
};

/// Sends a user a notice through the outbox, inside the caller's transaction: by email to a
/// verified address, else by SMS to their phone. Returns the channel used, `None` when the
/// account has neither.
pub async fn notify_in(
    conn: &mut AsyncPgConnection,
    user: &UserRow,
    template: &str,
    subject: &str,
    body: &str,
) -> AppResult<Option<&'static str>> {
    match (&user.email, user.email_verified_at, &user.phone) {
        (Some(email), Some(_), _) => {
            crate::outbox::enqueue_email(conn, email, template, subject, body).await?;
            Ok(Some("email"))
        }
        (_, _, Some(phone)) => {
            crate::outbox::enqueue_sms(conn, phone, template, body).await?;
            Ok(Some("sms"))
        }
        _ => Ok(None),
    }
}

/// Where a request came from (for rate limits, sessions and the audit log).
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl RequestMeta {
    fn ip_net(&self) -> Option<IpNet> {
        self.ip.map(IpNet::from)
    }

    fn ip_key(&self) -> String {
        self.ip
            .map_or_else(|| "unknown".into(), |ip| ip.to_string())
    }
}

/// A signed-in session: what `AuthPayload` returns.
#[derive(Debug)]
pub struct Auth {
    pub access_token: String,
    pub access_token_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_token_expires_at: DateTime<Utc>,
    pub user: UserRow,
    pub is_new_user: bool,
}

// ---- sign-up ------------------------------------------------------------------------------

/// A new account: who it is and how it came to be.
#[derive(Debug, Default)]
struct SignUp<'a> {
    phone: Option<&'a str>,
    email: Option<&'a str>,
    username: Option<&'a str>,
    password_hash: Option<&'a str>,
    /// The phone number was just proven with a one-time code.
    phone_verified: bool,
    /// The sign-up signs the account in (its login is recorded).
    signs_in: bool,
    /// The user whose referral code was given.
    referred_by: Option<Uuid>,
    /// How the account was made, for the audit log: `otp`, `password` or `cli`.
    method: &'a str,
}

/// What other capabilities do when an account is created, inside the sign-up transaction
/// (growth records the referral and may reward it). The composition root installs it in
/// [`AppState::sign_up_hook`], so accounts do not depend on the capabilities that react to
/// sign-ups (they depend on accounts).
pub trait SignUpHook: Send + Sync + 'static {
    /// `user` was just created; `referred_by` is the active user whose referral code it gave.
    fn signed_up<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        state: &'a AppState,
        user: Uuid,
        referred_by: Option<Uuid>,
    ) -> BoxFuture<'a, AppResult<()>>;
}

/// The user whose referral code a sign-up gives (trimmed, any case), inside the sign-up
/// transaction: none for an empty code, `BAD_USER_INPUT` on `field` for a code no active
/// account holds. Every sign-up path that takes a code (`verifyOtp`, `signUp`) asks here.
async fn referrer_in(
    conn: &mut AsyncPgConnection,
    code: Option<&str>,
    field: &str,
) -> AppResult<Option<Uuid>> {
    let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let unknown = || AppError::bad_input(field, "unknown referral code");
    if code.chars().count() > 32 {
        return Err(unknown());
    }
    let referrer = model::user_by_referral_code(conn, &code.to_uppercase())
        .await?
        .filter(|u| u.account_status == AccountStatus::Active)
        .ok_or_else(unknown)?;
    Ok(Some(referrer.id))
}

/// Creates an account inside the caller's transaction; every sign-up path (`verify_otp` on
/// first use, `sign_up`, `create_admin`) goes through here: the user row with a fresh referral
/// code, its credit account with the sign-up bonus (through the credits service), the
/// [`SignUpHook`] (the referral), and the `auth.sign_up` audit entry.
async fn create_user_in(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    meta: &RequestMeta,
    new: &SignUp<'_>,
) -> AppResult<UserRow> {
    let code = new_referral_code();
    let now = Utc::now();
    let user = model::insert_user(
        conn,
        &NewUser {
            id: Uuid::now_v7(),
            phone: new.phone,
            email: new.email,
            username: new.username,
            password_hash: new.password_hash,
            phone_verified_at: new.phone_verified.then_some(now),
            referral_code: &code,
            role: Role::User,
            last_login_at: new.signs_in.then_some(now),
        },
    )
    .await?;
    credits::service::open_account_in(conn, user.id, state.config.signup_bonus).await?;
    state
        .sign_up_hook
        .signed_up(conn, state, user.id, new.referred_by)
        .await?;
    audit_user(
        conn,
        &user,
        "auth.sign_up",
        meta,
        json!({ "method": new.method, "referred_by": new.referred_by }),
    )
    .await?;
    Ok(user)
}

// ---- helpers ----------------------------------------------------------------------------

fn ensure_active(user: &UserRow) -> AppResult<()> {
    match user.account_status {
        AccountStatus::Active => Ok(()),
        AccountStatus::Suspended => Err(AppError::Forbidden("this account is suspended".into())),
        AccountStatus::Banned => Err(AppError::Forbidden("this account is banned".into())),
        AccountStatus::Deleted => Err(AppError::Forbidden("this account was deleted".into())),
    }
}

/// The audit log's `actor_type` of a user with `role`.
pub fn actor_type(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Vendor => "vendor",
        Role::Admin => "admin",
    }
}

async fn audit_user(
    conn: &mut AsyncPgConnection,
    user: &UserRow,
    action: &str,
    meta: &RequestMeta,
    metadata: serde_json::Value,
) -> AppResult<()> {
    audit::record(
        conn,
        AuditEntry {
            actor_id: Some(user.id),
            actor_type: actor_type(user.role),
            action,
            resource: Some("user"),
            resource_id: Some(user.id.to_string()),
            ip: meta.ip_net(),
            metadata,
        },
    )
    .await?;
    Ok(())
}

/// Gives unique-violation conflicts the input field they concern.
fn with_field(err: AppError, email_field: &str, username_field: &str) -> AppError {
    match err {
        AppError::Conflict(m) if m.contains("email") => AppError::bad_input(email_field, m),
        AppError::Conflict(m) if m.contains("username") => AppError::bad_input(username_field, m),
        other => other,
    }
}

fn new_referral_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

pub fn validate_email(email: &str, field: &str) -> AppResult<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.len() <= 64
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && domain
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(AppError::bad_input(field, "not a valid email address"));
    }
    Ok(email)
}

pub fn validate_username(username: &str, field: &str) -> AppResult<String> {
    let u = username.trim();
    let ok =
        (3..=30).contains(&u.len()) && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok {
        return Err(AppError::bad_input(
            field,
            "3 to 30 letters, digits or underscores",
        ));
    }
    Ok(u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_validated() {
        assert_eq!(
            validate_email(" Ada@Example.COM ", "e").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@x.io",
            "a b@x.io",
            "ada@x",
            "x@-",
            "ada@exa_mple.com",
        ] {
            assert!(validate_email(bad, "e").is_err(), "{bad}");
        }
        assert!(validate_username("ada_99", "u").is_ok());
        for bad in [
            "ab",
            "way_too_long_username_for_easel_x",
            "ada!",
            "'; DROP TABLE users;--",
        ] {
            assert!(validate_username(bad, "u").is_err(), "{bad}");
        }
        assert_eq!(new_referral_code().len(), 8);
    }
}
