//! Signing up and in with an email address and a password.

use diesel_async::AsyncConnection;
use serde_json::json;

use super::{
    Auth, RequestMeta, SignUp, create_user_in, ensure_active, referrer_in, sessions::start_session,
    validate_email, validate_username, with_field,
};
use crate::{
    AppState,
    accounts::{model, password},
    audit::{self, AuditEntry},
    db,
    error::{AppError, AppResult},
    ratelimit,
};

/// Creates an account with email and password and signs it in; at most
/// `EASEL_SIGNUP_MAX_PER_HOUR_PER_IP` per client IP and hour (`RATE_LIMITED` beyond). A
/// verification link is emailed in the same transaction; until it is followed
/// (`verifyEmail`) the email is not verified, so the sign-up bonus cannot be gifted (see
/// `credits::service::gift`). A `referral_code` names the referrer (as in
/// `verify_otp`; an unknown one is `BAD_USER_INPUT` on `input.referralCode`).
pub async fn sign_up(
    state: &AppState,
    meta: &RequestMeta,
    email: &str,
    password_input: &str,
    username: Option<&str>,
    referral_code: Option<&str>,
) -> AppResult<Auth> {
    let email = validate_email(email, "input.email")?;
    password::validate(password_input, "input.password")?;
    let username = username
        .map(|u| validate_username(u, "input.username"))
        .transpose()?;
    let mut conn = db::conn(&state.pool).await?;
    // Each account starts with a bonus: one client IP may open only so many per hour.
    ratelimit::hit(
        &mut conn,
        &format!("signup:ip:{}", meta.ip_key()),
        std::time::Duration::from_secs(3600),
        state.config.signup_max_per_hour_per_ip,
    )
    .await?;
    let hash = password::hash(password_input.to_string()).await?;
    let user = conn
        .transaction(async |conn| {
            let referred_by = referrer_in(conn, referral_code, "input.referralCode").await?;
            let sign_up = SignUp {
                email: Some(&email),
                username: username.as_deref(),
                password_hash: Some(&hash),
                signs_in: true,
                referred_by,
                method: "password",
                ..SignUp::default()
            };
            let user = create_user_in(conn, state, meta, &sign_up).await?;
            super::recovery::send_email_verification_in(
                conn,
                state,
                user.id,
                &email,
                "email_verify",
            )
            .await?;
            Ok(user)
        })
        .await
        .map_err(|e| with_field(e, "input.email", "input.username"))?;
    state.outbox_wakeup.notify_one();
    start_session(state, &mut conn, user, true, meta, "password").await
}

/// Signs in with email and password. Unknown email and wrong password get the same answer
/// after the same work (a dummy hash is verified for unknown emails).
pub async fn sign_in(
    state: &AppState,
    meta: &RequestMeta,
    email: &str,
    password_input: &str,
) -> AppResult<Auth> {
    const WRONG: AppError = AppError::Unauthenticated("wrong email or password");
    if email.len() > 320 || password_input.len() > 4 * password::MAX_LEN {
        return Err(WRONG);
    }
    let email = email.trim().to_lowercase();
    let mut conn = db::conn(&state.pool).await?;
    // Guessing from one address stops after a few tries without locking the owner out
    // elsewhere; the per-email ceiling is far higher and only stops guessing from many
    // addresses at once.
    let window = std::time::Duration::from_secs(900);
    let config = &state.config;
    let ip = meta.ip_key();
    ratelimit::hit(
        &mut conn,
        &format!("signin:email-ip:{email}|{ip}"),
        window,
        config.signin_max_per_email_ip,
    )
    .await?;
    ratelimit::hit(&mut conn, &format!("signin:ip:{ip}"), window, 100).await?;
    ratelimit::hit(
        &mut conn,
        &format!("signin:email:{email}"),
        window,
        config.signin_max_per_email,
    )
    .await?;
    let found = model::user_with_password_by_email(&mut conn, &email).await?;
    let (user, stored) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, None),
    };
    let ok = password::verify(password_input.to_string(), stored).await?;
    let Some(user) = user.filter(|_| ok) else {
        audit::record(
            &mut conn,
            AuditEntry {
                actor_id: None,
                actor_type: "system",
                action: "auth.sign_in_failed",
                resource: Some("email"),
                resource_id: Some(email.clone()),
                ip: meta.ip_net(),
                metadata: json!({}),
            },
        )
        .await?;
        return Err(WRONG);
    };
    ensure_active(&user)?;
    let user = model::record_login(&mut conn, user.id, false).await?;
    start_session(state, &mut conn, user, false, meta, "password").await
}
