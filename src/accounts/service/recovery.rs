//! Password recovery and change, email verification, and linking the other identifier to an
//! account (`addEmail`, `addPhone`).
//!
//! Links and codes live in `otp_codes` with a purpose (`password_reset`, `email_verify`,
//! `phone_verify`) and the account they were sent for (`user_id`). A link's token is
//! `<code id>.<secret>`: the id finds the row, the secret is checked against its keyed hash
//! (as one-time codes are); SMS codes are the usual 6 digits. Every kind is single use,
//! expires, and dies after [`OTP_MAX_ATTEMPTS`] wrong tries. The messages go out through the
//! outbox in the transaction that stores the code.

use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use uuid::Uuid;

use super::{
    Auth, OTP_MAX_ATTEMPTS, RequestMeta, audit_user, ensure_active, sessions, validate_email,
};
use crate::{
    AppState,
    accounts::{
        model::{self, OtpRow, UserRow},
        password, phone, revocations, tokens,
        viewer::ViewerUser,
    },
    db,
    error::{AppError, AppResult},
    outbox, ratelimit,
};

const RESET: &str = "password_reset";
const EMAIL_VERIFY: &str = "email_verify";
const PHONE_VERIFY: &str = "phone_verify";
const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

/// Where a password reset is sent.
pub enum ResetTarget<'a> {
    Email(&'a str),
    Phone(&'a str),
}

/// How a password reset proves itself.
pub enum ResetProof<'a> {
    /// The token of the emailed link.
    Token(&'a str),
    /// The number and the 6-digit code sent to it by SMS.
    PhoneCode { phone: &'a str, code: &'a str },
}

fn link(base: &str, token: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}token={token}")
}

fn minutes(d: std::time::Duration) -> u64 {
    d.as_secs().div_ceil(60)
}

fn ttl(d: std::time::Duration) -> AppResult<chrono::Duration> {
    chrono::Duration::from_std(d).map_err(AppError::internal)
}

/// A new link token for the code row `id`: the id, a dot, and 24 random bytes.
fn new_link_secret() -> String {
    tokens::random_token(24)
}

fn parse_token(token: &str) -> Option<(Uuid, &str)> {
    let (id, secret) = token.trim().split_once('.')?;
    if secret.is_empty() || secret.len() > 64 {
        return None;
    }
    Some((Uuid::try_parse(id).ok()?, secret))
}

fn dead_code(row: Option<OtpRow>, field: &str, what: &str) -> AppError {
    match row {
        None => AppError::bad_input_because(field, "INVALID", format!("this {what} is not valid")),
        Some(r) if r.consumed_at.is_some() => AppError::bad_input_because(
            field,
            "USED",
            format!("this {what} was already used; request a new one"),
        ),
        Some(r) if r.attempt_count >= OTP_MAX_ATTEMPTS => AppError::bad_input_because(
            field,
            "TOO_MANY_ATTEMPTS",
            format!("too many wrong tries; request a new {what}"),
        ),
        Some(_) => AppError::bad_input_because(
            field,
            "EXPIRED",
            format!("this {what} has expired; request a new one"),
        ),
    }
}

/// Spends a try of the link `token` (purpose `purpose`) and checks its secret; answers the
/// live row. Every failure is `BAD_USER_INPUT` on `field` with a `reason`.
async fn check_link(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    token: &str,
    purpose: &str,
    field: &str,
) -> AppResult<OtpRow> {
    let Some((id, secret)) = parse_token(token) else {
        return Err(dead_code(None, field, "link"));
    };
    let Some(row) = model::reserve_otp_attempt_by_id(conn, id, purpose, OTP_MAX_ATTEMPTS).await?
    else {
        let row = model::otp_by_id(conn, id, purpose).await?;
        return Err(dead_code(row, field, "link"));
    };
    if !state
        .keys
        .otp_matches(&row.destination, secret, &row.code_hash)
    {
        return Err(dead_code(None, field, "link"));
    }
    Ok(row)
}

/// Spends a try of the newest `purpose` code sent to `phone` and checks it.
async fn check_sms_code(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    phone: &str,
    code: &str,
    purpose: &str,
) -> AppResult<OtpRow> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AppError::bad_input(
            "input.code",
            "the code is the 6 digits we sent",
        ));
    }
    let Some(row) = model::reserve_otp_attempt(conn, phone, purpose, OTP_MAX_ATTEMPTS).await?
    else {
        let latest = model::latest_otp(conn, phone, purpose).await?;
        return Err(match latest {
            None => AppError::bad_input_because(
                "input.code",
                "INVALID",
                "no code was requested for this number",
            ),
            other => dead_code(other, "input.code", "code"),
        });
    };
    if !state.keys.otp_matches(phone, code, &row.code_hash) {
        let left = OTP_MAX_ATTEMPTS - row.attempt_count;
        let message = if left > 0 {
            format!("wrong code; {left} tries left")
        } else {
            "wrong code; no tries left, request a new code".to_string()
        };
        return Err(AppError::bad_input("input.code", message));
    }
    Ok(row)
}

// ---- password reset ------------------------------------------------------------------------

/// Sends a reset link to an account's email, or a 6-digit code by SMS to a phone account that
/// has a password. The answer never tells whether such an account exists: unknown addresses
/// send nothing and answer the same. Limited per destination and per client IP (those limits
/// apply whether or not the account exists).
pub async fn request_password_reset(
    state: &AppState,
    meta: &RequestMeta,
    target: ResetTarget<'_>,
) -> AppResult<()> {
    let destination = match target {
        ResetTarget::Email(e) => validate_email(e, "input.email")?,
        ResetTarget::Phone(p) => phone::normalize(p, "input.phone")?,
    };
    let cfg = &state.config.email;
    let mut conn = db::conn(&state.pool).await?;
    ratelimit::hit(
        &mut conn,
        &format!("reset:ip:{}", meta.ip_key()),
        HOUR,
        cfg.reset_max_per_hour_per_ip,
    )
    .await?;
    ratelimit::hit(
        &mut conn,
        &format!("reset:dest:{destination}"),
        HOUR,
        cfg.reset_max_per_hour,
    )
    .await?;
    let user = match target {
        ResetTarget::Email(_) => model::user_with_password_by_email(&mut conn, &destination)
            .await?
            .map(|(u, _)| u),
        ResetTarget::Phone(_) => match model::user_by_phone(&mut conn, &destination).await? {
            Some(u) if model::password_hash_of(&mut conn, u.id).await?.is_some() => Some(u),
            _ => None,
        },
    };
    let Some(user) = user.filter(|u| ensure_active(u).is_ok()) else {
        return Ok(());
    };
    let is_email = matches!(target, ResetTarget::Email(_));
    let (secret, expires_at) = if is_email {
        (new_link_secret(), Utc::now() + ttl(cfg.password_reset_ttl)?)
    } else {
        (tokens::otp_code(), Utc::now() + ttl(state.config.otp_ttl)?)
    };
    let hash = state.keys.otp_hash(&destination, &secret);
    conn.transaction(async |conn| {
        model::lock_destination(conn, &destination).await?;
        let id =
            model::insert_code_for(conn, &destination, RESET, &hash, expires_at, user.id).await?;
        if is_email {
            let token = format!("{}.{secret}", id.simple());
            let base = cfg
                .password_reset_url
                .clone()
                .unwrap_or_else(|| format!("{}/reset-password", state.config.public_url));
            let body = format!(
                "Someone asked to reset the password of your Easel account.\n\n\
                 To choose a new password, open this link within {} minutes:\n{}\n\n\
                 Or enter this code in the app: {token}\n\n\
                 If it was not you, ignore this email: your password stays as it is.\n",
                minutes(cfg.password_reset_ttl),
                link(&base, &token),
            );
            outbox::enqueue_email(
                conn,
                &destination,
                "password_reset",
                "Reset your Easel password",
                &body,
            )
            .await?;
        } else {
            let body = format!(
                "Your Easel password reset code is {secret}. It expires in {} minutes.",
                minutes(state.config.otp_ttl)
            );
            outbox::enqueue_sms(conn, &destination, "otp_password_reset", &body).await?;
        }
        audit_user(
            conn,
            &user,
            "auth.password_reset_requested",
            meta,
            json!({ "channel": if is_email { "email" } else { "sms" } }),
        )
        .await
    })
    .await?;
    state.outbox_wakeup.notify_one();
    Ok(())
}

/// Sets a new password with a reset link's token or an SMS code: the code is used up, every
/// other reset code of the account dies, every session of the account is revoked (their
/// access and refresh tokens stop working at once), and a new session is opened.
pub async fn reset_password(
    state: &AppState,
    meta: &RequestMeta,
    proof: ResetProof<'_>,
    new_password: &str,
) -> AppResult<Auth> {
    password::validate(new_password, "input.newPassword")?;
    let mut conn = db::conn(&state.pool).await?;
    let field = match proof {
        ResetProof::Token(_) => "input.token",
        ResetProof::PhoneCode { .. } => "input.code",
    };
    let row = match proof {
        ResetProof::Token(token) => {
            check_link(state, &mut conn, token, RESET, "input.token").await?
        }
        ResetProof::PhoneCode { phone: p, code } => {
            let phone = phone::normalize(p, "input.phone")?;
            check_sms_code(state, &mut conn, &phone, code, RESET).await?
        }
    };
    let hash = password::hash(new_password.to_string()).await?;
    let (user, families) = conn
        .transaction(async |conn| {
            if !model::consume_otp(conn, row.id).await? {
                return Err(dead_code(Some(row.clone()), field, "link"));
            }
            let user = match row.user_id {
                Some(id) => model::user_by_id(conn, id).await?,
                None => None,
            };
            // The account must still own the address the link was sent to.
            let owns = |u: &UserRow| {
                u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(&row.destination))
                    || u.phone.as_deref() == Some(row.destination.as_str())
            };
            let Some(user) = user.filter(owns) else {
                return Err(dead_code(None, field, "link"));
            };
            ensure_active(&user)?;
            let user = model::set_password_hash(conn, user.id, &hash).await?;
            model::consume_user_codes(conn, user.id, RESET).await?;
            let families = sessions::revoke(conn, user.id, None).await?;
            audit_user(
                conn,
                &user,
                "auth.password_reset",
                meta,
                json!({ "revoked_sessions": families.len() }),
            )
            .await?;
            Ok::<_, AppError>((user, families))
        })
        .await?;
    state.revocations.revoke(&families);
    sessions::start_session(state, &mut conn, user, false, meta, "password_reset").await
}

/// Changes the viewer's password. An account with a password must give it
/// (`currentPassword`; wrong is `BAD_USER_INPUT`, and tries are limited like `signIn`); an
/// account without one (a phone sign-up) sets its first. Every other session of the account
/// is revoked; this one stays signed in.
pub async fn change_password(
    state: &AppState,
    meta: &RequestMeta,
    viewer: &ViewerUser,
    current: Option<&str>,
    new_password: &str,
) -> AppResult<()> {
    password::validate(new_password, "input.newPassword")?;
    let mut conn = db::conn(&state.pool).await?;
    ratelimit::hit(
        &mut conn,
        &format!("chpw:user:{}", viewer.id),
        std::time::Duration::from_secs(900),
        state.config.signin_max_per_email_ip,
    )
    .await?;
    let user = model::user_by_id(&mut conn, viewer.id)
        .await?
        .ok_or(AppError::Unauthenticated("the account no longer exists"))?;
    ensure_active(&user)?;
    if let Some(stored) = model::password_hash_of(&mut conn, viewer.id).await? {
        let given = current.unwrap_or_default();
        if given.len() > 4 * password::MAX_LEN
            || !password::verify(given.to_string(), Some(stored)).await?
        {
            audit_user(
                &mut conn,
                &user,
                "auth.change_password_failed",
                meta,
                json!({}),
            )
            .await?;
            return Err(AppError::bad_input(
                "input.currentPassword",
                "the current password is wrong",
            ));
        }
    }
    let hash = password::hash(new_password.to_string()).await?;
    let families = conn
        .transaction(async |conn| {
            model::set_password_hash(conn, viewer.id, &hash).await?;
            model::consume_user_codes(conn, viewer.id, RESET).await?;
            let families =
                model::revoke_user_sessions_except(conn, viewer.id, viewer.session_id).await?;
            revocations::announce(conn, viewer.id, &families).await?;
            audit_user(
                conn,
                &user,
                "auth.password_changed",
                meta,
                json!({ "revoked_sessions": families.len() }),
            )
            .await?;
            Ok::<_, AppError>(families)
        })
        .await?;
    state.revocations.revoke(&families);
    Ok(())
}

// ---- email verification and addEmail ---------------------------------------------------

/// Queues the verification email of `email` for `user` inside the caller's transaction (the
/// caller wakes the outbox once it committed). `template` is `email_verify` at sign-up and
/// `email_add` for `addEmail`.
pub(super) async fn send_email_verification_in(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    user: Uuid,
    email: &str,
    template: &str,
) -> AppResult<()> {
    let cfg = &state.config.email;
    let secret = new_link_secret();
    let hash = state.keys.otp_hash(email, &secret);
    let expires_at = Utc::now() + ttl(cfg.verify_ttl)?;
    let id = model::insert_code_for(conn, email, EMAIL_VERIFY, &hash, expires_at, user).await?;
    let token = format!("{}.{secret}", id.simple());
    let base = cfg
        .verify_url
        .clone()
        .unwrap_or_else(|| format!("{}/verify-email", state.config.public_url));
    let hours = cfg.verify_ttl.as_secs().div_ceil(3600);
    let body = format!(
        "Please confirm that {email} is your email address for Easel.\n\n\
         Open this link within {hours} hours:\n{}\n\n\
         Or enter this code in the app: {token}\n\n\
         If you did not ask for this, ignore this email.\n",
        link(&base, &token),
    );
    outbox::enqueue_email(conn, email, template, "Confirm your email address", &body).await?;
    Ok(())
}

/// Confirms an email address with the token of its verification link: the account's email
/// becomes that address (for `addEmail`) and is marked verified. `CONFLICT` when another
/// account has taken the address meanwhile (the token stays usable).
pub async fn verify_email(state: &AppState, meta: &RequestMeta, token: &str) -> AppResult<()> {
    let mut conn = db::conn(&state.pool).await?;
    let row = check_link(state, &mut conn, token, EMAIL_VERIFY, "token").await?;
    conn.transaction(async |conn| {
        if !model::consume_otp(conn, row.id).await? {
            return Err(dead_code(Some(row.clone()), "token", "link"));
        }
        let user = match row.user_id {
            Some(id) => model::user_by_id(conn, id).await?,
            None => None,
        }
        .ok_or_else(|| dead_code(None, "token", "link"))?;
        ensure_active(&user)?;
        let previous = user.email.clone();
        let user = model::set_verified_email(conn, user.id, &row.destination).await?;
        // Links to other addresses die: an old one must not switch the email back.
        model::consume_user_codes(conn, user.id, EMAIL_VERIFY).await?;
        audit_user(
            conn,
            &user,
            "auth.email_verified",
            meta,
            json!({ "changed": previous.as_deref() != Some(row.destination.as_str()) }),
        )
        .await
    })
    .await
}

/// Sends a verification link to `email` for the viewer's account (it becomes the account's
/// email once confirmed with `verifyEmail`). Whether another account has the address is only
/// told at confirmation. Limited per account and per client IP.
pub async fn add_email(
    state: &AppState,
    meta: &RequestMeta,
    viewer: &ViewerUser,
    email: &str,
) -> AppResult<()> {
    let email = validate_email(email, "input.email")?;
    let mut conn = db::conn(&state.pool).await?;
    let user = limit_link_request(state, meta, &mut conn, viewer, "addemail").await?;
    if user.email.as_deref() == Some(email.as_str()) && user.email_verified_at.is_some() {
        return Err(AppError::bad_input(
            "input.email",
            "this is already the account's verified email",
        ));
    }
    conn.transaction(async |conn| {
        model::lock_destination(conn, &email).await?;
        send_email_verification_in(conn, state, viewer.id, &email, "email_add").await?;
        audit_user(conn, &user, "auth.email_add_requested", meta, json!({})).await
    })
    .await?;
    state.outbox_wakeup.notify_one();
    Ok(())
}

/// The viewer's account, once a request of `kind` is counted against the limits.
async fn limit_link_request(
    state: &AppState,
    meta: &RequestMeta,
    conn: &mut AsyncPgConnection,
    viewer: &ViewerUser,
    kind: &str,
) -> AppResult<UserRow> {
    let cfg = &state.config.email;
    ratelimit::hit(
        conn,
        &format!("{kind}:ip:{}", meta.ip_key()),
        HOUR,
        cfg.reset_max_per_hour_per_ip,
    )
    .await?;
    ratelimit::hit(
        conn,
        &format!("{kind}:user:{}", viewer.id),
        HOUR,
        cfg.reset_max_per_hour,
    )
    .await?;
    let user = model::user_by_id(conn, viewer.id)
        .await?
        .ok_or(AppError::Unauthenticated("the account no longer exists"))?;
    ensure_active(&user)?;
    Ok(user)
}

// ---- addPhone --------------------------------------------------------------------------

/// Sends a 6-digit code by SMS to `phone` for the viewer's account (confirmed with
/// `verifyPhone`). Whether another account has the number is only told at confirmation.
pub async fn add_phone(
    state: &AppState,
    meta: &RequestMeta,
    viewer: &ViewerUser,
    phone_input: &str,
) -> AppResult<()> {
    let phone = phone::normalize(phone_input, "input.phone")?;
    let mut conn = db::conn(&state.pool).await?;
    let user = limit_link_request(state, meta, &mut conn, viewer, "addphone").await?;
    if user.phone.as_deref() == Some(phone.as_str()) && user.phone_verified_at.is_some() {
        return Err(AppError::bad_input(
            "input.phone",
            "this is already the account's verified phone",
        ));
    }
    let code = tokens::otp_code();
    let hash = state.keys.otp_hash(&phone, &code);
    let expires_at = Utc::now() + ttl(state.config.otp_ttl)?;
    let body = format!(
        "Your Easel code to add this number is {code}. It expires in {} minutes.",
        minutes(state.config.otp_ttl)
    );
    conn.transaction(async |conn| {
        model::lock_destination(conn, &phone).await?;
        model::insert_code_for(conn, &phone, PHONE_VERIFY, &hash, expires_at, viewer.id).await?;
        outbox::enqueue_sms(conn, &phone, "otp_phone_verify", &body).await?;
        audit_user(conn, &user, "auth.phone_add_requested", meta, json!({})).await
    })
    .await?;
    state.outbox_wakeup.notify_one();
    Ok(())
}

/// Confirms the number of `addPhone` with its code: it becomes the account's phone, verified.
/// `CONFLICT` when another account has the number.
pub async fn verify_phone(
    state: &AppState,
    meta: &RequestMeta,
    viewer: &ViewerUser,
    phone_input: &str,
    code: &str,
) -> AppResult<UserRow> {
    let phone = phone::normalize(phone_input, "input.phone")?;
    let mut conn = db::conn(&state.pool).await?;
    let row = check_sms_code(state, &mut conn, &phone, code, PHONE_VERIFY).await?;
    if row.user_id != Some(viewer.id) {
        return Err(AppError::bad_input_because(
            "input.code",
            "INVALID",
            "no code was requested for this number",
        ));
    }
    conn.transaction(async |conn| {
        if !model::consume_otp(conn, row.id).await? {
            return Err(dead_code(Some(row.clone()), "input.code", "code"));
        }
        let user = model::set_verified_phone(conn, viewer.id, &phone).await?;
        model::consume_user_codes(conn, user.id, PHONE_VERIFY).await?;
        audit_user(conn, &user, "auth.phone_verified", meta, json!({})).await?;
        Ok(user)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_tokens_parse_and_links_join() {
        let id = Uuid::now_v7();
        let token = format!("{}.{}", id.simple(), new_link_secret());
        assert_eq!(parse_token(&token).map(|(i, _)| i), Some(id));
        for bad in [
            "",
            "abc",
            ".x",
            "not-a-uuid.secret",
            &format!("{}.", id.simple()),
        ] {
            assert!(parse_token(bad).is_none(), "{bad}");
        }
        assert_eq!(link("https://a.io/r", "t"), "https://a.io/r?token=t");
        assert_eq!(
            link("https://a.io/r?x=1", "t"),
            "https://a.io/r?x=1&token=t"
        );
    }
}
