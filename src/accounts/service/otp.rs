//! Signing in with a one-time code sent by SMS; the first use signs the user up.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;

use super::{
    Auth, RequestMeta, SignUp, create_user_in, ensure_active, referrer_in, sessions::start_session,
};
use crate::{
    AppState,
    accounts::{model, phone, tokens},
    audit::{self, AuditEntry},
    db,
    error::{AppError, AppResult},
    outbox, ratelimit,
};

/// Wrong tries a one-time code survives.
pub const OTP_MAX_ATTEMPTS: i32 = 5;
const OTP_PURPOSE_LOGIN: &str = "login";

/// What `requestOtp` answers.
pub struct OtpSent {
    pub expires_at: DateTime<Utc>,
    pub resend_after_seconds: u64,
}

/// Sends a 6-digit login code to `phone`, throttled per phone and per client IP.
pub async fn request_otp(
    state: &AppState,
    meta: &RequestMeta,
    phone_input: &str,
) -> AppResult<OtpSent> {
    let phone = phone::normalize(phone_input, "input.phone")?;
    let cfg = &state.config;
    let code = tokens::otp_code();
    let hash = state.keys.otp_hash(&phone, &code);
    let ttl = chrono::Duration::from_std(cfg.otp_ttl).map_err(AppError::internal)?;
    let expires_at = Utc::now() + ttl;
    let body = format!(
        "Your Easel code is {code}. It expires in {} minutes.",
        cfg.otp_ttl.as_secs().div_ceil(60)
    );
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        model::lock_destination(conn, &phone).await?;
        if let Some(last) = model::latest_otp(conn, &phone, OTP_PURPOSE_LOGIN).await? {
            let wait = last.created_at
                + chrono::Duration::from_std(cfg.otp_resend).map_err(AppError::internal)?
                - Utc::now();
            if wait > chrono::Duration::zero() {
                let secs = (wait.num_milliseconds() as u64).div_ceil(1000).max(1);
                return Err(AppError::RateLimited {
                    retry_after_seconds: secs,
                });
            }
        }
        ratelimit::hit(
            conn,
            &format!("otp:hour:{phone}"),
            std::time::Duration::from_secs(3600),
            cfg.otp_max_per_hour,
        )
        .await?;
        ratelimit::hit(
            conn,
            &format!("otp:ip:{}", meta.ip_key()),
            std::time::Duration::from_secs(3600),
            cfg.otp_max_per_hour_per_ip,
        )
        .await?;
        model::insert_otp(conn, &phone, OTP_PURPOSE_LOGIN, &hash, expires_at).await?;
        outbox::enqueue_sms(conn, &phone, "otp_login", &body).await?;
        Ok::<_, AppError>(())
    })
    .await?;
    state.outbox_wakeup.notify_one();
    Ok(OtpSent {
        expires_at,
        resend_after_seconds: cfg.otp_resend.as_secs(),
    })
}

/// Signs in with a code sent by [`request_otp`], signing up a new user on first use.
pub async fn verify_otp(
    state: &AppState,
    meta: &RequestMeta,
    phone_input: &str,
    code: &str,
    referral_code: Option<&str>,
) -> AppResult<Auth> {
    let phone = phone::normalize(phone_input, "input.phone")?;
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AppError::bad_input(
            "input.code",
            "the code is the 6 digits we sent",
        ));
    }
    let mut conn = db::conn(&state.pool).await?;
    // Spend a try first (atomically, so parallel guesses cannot exceed the limit), then check.
    let Some(otp) =
        model::reserve_otp_attempt(&mut conn, &phone, OTP_PURPOSE_LOGIN, OTP_MAX_ATTEMPTS).await?
    else {
        return Err(no_live_code(&mut conn, &phone).await?);
    };
    if !state.keys.otp_matches(&phone, code, &otp.code_hash) {
        audit::record(
            &mut conn,
            AuditEntry {
                actor_id: None,
                actor_type: "system",
                action: "auth.otp_failed",
                resource: Some("phone"),
                resource_id: Some(phone.clone()),
                ip: meta.ip_net(),
                metadata: json!({ "attempt": otp.attempt_count }),
            },
        )
        .await?;
        let left = OTP_MAX_ATTEMPTS - otp.attempt_count;
        let message = if left > 0 {
            format!("wrong code; {left} tries left")
        } else {
            "wrong code; no tries left, request a new code".to_string()
        };
        return Err(AppError::bad_input("input.code", message));
    }
    let (user, is_new) = conn
        .transaction(async |conn| {
            if !model::consume_otp(conn, otp.id).await? {
                return Err(AppError::bad_input(
                    "input.code",
                    "this code was already used; request a new one",
                ));
            }
            match model::user_by_phone(conn, &phone).await? {
                Some(existing) => {
                    ensure_active(&existing)?;
                    let user = model::record_login(conn, existing.id, true).await?;
                    Ok((user, false))
                }
                None => {
                    let referred_by =
                        referrer_in(conn, referral_code, "input.referralCode").await?;
                    let sign_up = SignUp {
                        phone: Some(&phone),
                        phone_verified: true,
                        signs_in: true,
                        referred_by,
                        method: "otp",
                        ..SignUp::default()
                    };
                    let user = create_user_in(conn, state, meta, &sign_up).await?;
                    Ok((user, true))
                }
            }
        })
        .await?;
    let auth = start_session(state, &mut conn, user, is_new, meta, "otp").await?;
    Ok(auth)
}

async fn no_live_code(conn: &mut AsyncPgConnection, phone: &str) -> AppResult<AppError> {
    let latest = model::latest_otp(conn, phone, OTP_PURPOSE_LOGIN).await?;
    let message = match latest {
        None => "no code was requested for this number",
        Some(o) if o.consumed_at.is_some() => "this code was already used; request a new one",
        Some(o) if o.attempt_count >= OTP_MAX_ATTEMPTS => "too many wrong codes; request a new one",
        Some(_) => "the code has expired; request a new one",
    };
    Ok(AppError::bad_input("input.code", message))
}
