//! The rules of accounts: one-time-code login, email and password, sessions with rotating
//! refresh tokens, profiles and roles. Every multi-statement change is one transaction.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use ipnet::IpNet;
use rand::Rng;
use serde_json::json;
use uuid::Uuid;

use super::{
    AccountStatus, ProfileVisibility, Role,
    model::{
        self, NewSession, NewUser, NewVendorProfile, ProfileChangeset, UserRow, VendorProfileRow,
    },
    password, phone, revocations,
    tokens::{self, TokenError},
    viewer::{Viewer, ViewerUser},
};
use crate::{
    AppState,
    audit::{self, AuditEntry},
    credits, db,
    error::{AppError, AppResult},
    outbox, ratelimit,
};

/// Wrong tries a one-time code survives.
pub const OTP_MAX_ATTEMPTS: i32 = 5;
const OTP_PURPOSE_LOGIN: &str = "login";

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

/// What `requestOtp` answers.
pub struct OtpSent {
    pub expires_at: DateTime<Utc>,
    pub resend_after_seconds: u64,
}

// ---- who is asking --------------------------------------------------------------------

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

// ---- one-time codes -------------------------------------------------------------------

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
    let signup_bonus = state.config.signup_bonus;
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
                    let referrer = match referral_code.map(str::trim).filter(|c| !c.is_empty()) {
                        Some(c) => Some(model::user_by_referral_code(conn, c).await?.ok_or_else(
                            || AppError::bad_input("input.referralCode", "unknown referral code"),
                        )?),
                        None => None,
                    };
                    let code = new_referral_code();
                    let now = Utc::now();
                    let user = model::insert_user(
                        conn,
                        &NewUser {
                            id: Uuid::now_v7(),
                            phone: Some(&phone),
                            email: None,
                            username: None,
                            password_hash: None,
                            phone_verified_at: Some(now),
                            referral_code: &code,
                            role: Role::User,
                            last_login_at: Some(now),
                        },
                    )
                    .await?;
                    credits::model::open_account(conn, user.id, signup_bonus).await?;
                    let referred_by = referrer.map(|r| r.id);
                    if let Some(referrer) = referred_by {
                        model::insert_referral(conn, referrer, user.id).await?;
                    }
                    audit_user(
                        conn,
                        &user,
                        "auth.sign_up",
                        meta,
                        json!({ "method": "otp", "referred_by": referred_by }),
                    )
                    .await?;
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

// ---- email and password -----------------------------------------------------------------

/// Creates an account with email and password and signs it in; at most
/// `EASEL_SIGNUP_MAX_PER_HOUR_PER_IP` per client IP and hour (`RATE_LIMITED` beyond). The
/// account's email is not verified (nothing verifies emails yet), so its sign-up bonus cannot
/// be gifted (see `credits::service::gift`).
pub async fn sign_up(
    state: &AppState,
    meta: &RequestMeta,
    email: &str,
    password_input: &str,
    username: Option<&str>,
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
    let signup_bonus = state.config.signup_bonus;
    let user = conn
        .transaction(async |conn| {
            let code = new_referral_code();
            let user = model::insert_user(
                conn,
                &NewUser {
                    id: Uuid::now_v7(),
                    phone: None,
                    email: Some(&email),
                    username: username.as_deref(),
                    password_hash: Some(&hash),
                    phone_verified_at: None,
                    referral_code: &code,
                    role: Role::User,
                    last_login_at: Some(Utc::now()),
                },
            )
            .await
            .map_err(|e| with_field(e.into(), "input.email", "input.username"))?;
            credits::model::open_account(conn, user.id, signup_bonus).await?;
            audit_user(
                conn,
                &user,
                "auth.sign_up",
                meta,
                json!({ "method": "password" }),
            )
            .await?;
            Ok::<_, AppError>(user)
        })
        .await?;
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

// ---- sessions -----------------------------------------------------------------------

/// Opens a session family for `user` and issues its tokens.
async fn start_session(
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
async fn revoke(
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

// ---- profiles and roles ---------------------------------------------------------------

/// Profile changes; `Some(None)` clears an optional field.
#[derive(Debug, Default)]
pub struct ProfileInput {
    pub display_name: Option<Option<String>>,
    pub username: Option<Option<String>>,
    pub bio: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub profile_visibility: Option<ProfileVisibility>,
    pub allow_gallery_showcase: Option<bool>,
    pub preferred_language: Option<String>,
    pub timezone: Option<String>,
}

/// Validates and applies profile changes.
pub async fn update_profile(
    state: &AppState,
    user: Uuid,
    input: ProfileInput,
) -> AppResult<UserRow> {
    let text =
        |v: Option<Option<String>>, field: &str, max: usize| -> AppResult<Option<Option<String>>> {
            v.map(|o| {
                o.map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        if s.chars().count() > max {
                            Err(AppError::bad_input(
                                field,
                                format!("at most {max} characters"),
                            ))
                        } else if s.chars().any(|c| c.is_control() && c != '\n') {
                            Err(AppError::bad_input(
                                field,
                                "control characters are not allowed",
                            ))
                        } else {
                            Ok(s)
                        }
                    })
                    .transpose()
            })
            .transpose()
        };
    let mut changes = ProfileChangeset {
        display_name: text(input.display_name, "input.displayName", 50)?,
        bio: text(input.bio, "input.bio", 500)?,
        username: input
            .username
            .map(|o| {
                o.map(|u| validate_username(&u, "input.username"))
                    .transpose()
            })
            .transpose()?,
        avatar_url: input
            .avatar_url
            .map(|o| o.map(|u| validate_url(&u, "input.avatarUrl")).transpose())
            .transpose()?,
        profile_visibility: input.profile_visibility,
        allow_gallery_showcase: input.allow_gallery_showcase,
        preferred_language: input
            .preferred_language
            .map(|l| validate_language(&l))
            .transpose()?,
        timezone: None,
    };
    let mut conn = db::conn(&state.pool).await?;
    if let Some(tz) = input.timezone {
        let tz = tz.trim().to_string();
        if tz.is_empty() || tz.len() > 64 || !model::timezone_exists(&mut conn, &tz).await? {
            return Err(AppError::bad_input(
                "input.timezone",
                "not an IANA time zone name (e.g. Europe/Berlin)",
            ));
        }
        changes.timezone = Some(tz);
    }
    model::update_profile(&mut conn, user, &changes)
        .await
        .map_err(|e| with_field(e.into(), "input.username", "input.username"))
}

/// Makes the viewer a vendor with a vendor profile (admins keep their role).
pub async fn become_vendor(
    state: &AppState,
    meta: &RequestMeta,
    user_id: Uuid,
    business_name: &str,
    contact_info: serde_json::Value,
    social_links: serde_json::Value,
) -> AppResult<(UserRow, VendorProfileRow)> {
    let name = business_name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_input(
            "input.businessName",
            "1 to 100 characters",
        ));
    }
    for (value, field) in [
        (&contact_info, "input.contactInfo"),
        (&social_links, "input.socialLinks"),
    ] {
        if !value.is_object() || value.to_string().len() > 4096 {
            return Err(AppError::bad_input(field, "an object of at most 4 kB"));
        }
    }
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        let user = model::user_by_id(conn, user_id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        let profile = model::insert_vendor_profile(
            conn,
            &NewVendorProfile {
                user_id,
                business_name: name,
                contact_info: &contact_info,
                social_links: &social_links,
            },
        )
        .await
        .map_err(|e| match AppError::from(e) {
            AppError::Conflict(_) => AppError::Conflict("you are already a vendor".into()),
            other => other,
        })?;
        let user = if user.role == Role::User {
            model::set_role(conn, user_id, Role::Vendor).await?
        } else {
            user
        };
        audit_user(
            conn,
            &user,
            "account.role_changed",
            meta,
            json!({ "role": user.role.as_str(), "vendor": true }),
        )
        .await?;
        Ok((user, profile))
    })
    .await
}

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
    let signup_bonus = state.config.signup_bonus;
    conn.transaction(async |conn| {
        let user = match existing {
            Some(u) => u,
            None => {
                let phone = phone_input
                    .map(|p| phone::normalize(p, "phone"))
                    .transpose()?;
                let email = email.map(|e| validate_email(e, "email")).transpose()?;
                let code = new_referral_code();
                let user = model::insert_user(
                    conn,
                    &NewUser {
                        id: Uuid::now_v7(),
                        phone: phone.as_deref(),
                        email: email.as_deref(),
                        username: None,
                        password_hash: hash.as_deref(),
                        phone_verified_at: None,
                        referral_code: &code,
                        role: Role::User,
                        last_login_at: None,
                    },
                )
                .await?;
                credits::model::open_account(conn, user.id, signup_bonus).await?;
                user
            }
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

// ---- helpers ----------------------------------------------------------------------------

fn ensure_active(user: &UserRow) -> AppResult<()> {
    match user.account_status {
        AccountStatus::Active => Ok(()),
        AccountStatus::Suspended => Err(AppError::Forbidden("this account is suspended".into())),
        AccountStatus::Banned => Err(AppError::Forbidden("this account is banned".into())),
        AccountStatus::Deleted => Err(AppError::Forbidden("this account was deleted".into())),
    }
}

fn actor_type(role: Role) -> &'static str {
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
        AppError::Conflict(m) if m.contains("email") => AppError::BadUserInput {
            field: email_field.into(),
            message: m,
        },
        AppError::Conflict(m) if m.contains("username") => AppError::BadUserInput {
            field: username_field.into(),
            message: m,
        },
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

fn validate_url(url: &str, field: &str) -> AppResult<String> {
    let url = url.trim();
    let parsed =
        reqwest::Url::parse(url).map_err(|_| AppError::bad_input(field, "not a valid URL"))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
        || url.len() > 2048
    {
        return Err(AppError::bad_input(
            field,
            "an http(s) URL of at most 2048 characters",
        ));
    }
    Ok(parsed.to_string())
}

fn validate_language(lang: &str) -> AppResult<String> {
    let lang = lang.trim();
    let mut parts = lang.splitn(2, '-');
    let primary = parts.next().unwrap_or_default();
    let ok = (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_lowercase())
        && parts.next().is_none_or(|r| {
            (2..=8).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    if !ok {
        return Err(AppError::bad_input(
            "input.preferredLanguage",
            "a language tag such as `en` or `pt-BR`",
        ));
    }
    Ok(lang.to_string())
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
        assert!(validate_url("https://cdn.example/a.png", "a").is_ok());
        for bad in [
            "javascript:alert(1)",
            "ftp://x.io/a",
            "not a url",
            "https://",
        ] {
            assert!(validate_url(bad, "a").is_err(), "{bad}");
        }
        assert!(validate_language("pt-BR").is_ok() && validate_language("en").is_ok());
        assert!(validate_language("english").is_err() && validate_language("EN").is_err());
        assert_eq!(new_referral_code().len(), 8);
    }
}
