//! The rules of growth: referrals and their one reward, invite tokens.
//!
//! **Referrals.** A referral is recorded only when an account is *created* with another
//! user's code (the [`SignUpHook`] that accounts call inside the sign-up transaction). So a
//! referral always points from an older account to a newer one: self-referral is impossible
//! (the new account's code does not exist before it) and so are loops (A referred B means A
//! existed before B, so B's code can never create A; signing in to an existing account with
//! a code ignores the code). The database backs it: `referred_id` is unique (one referrer per
//! user) and a CHECK refuses `referrer_id = referred_id`.
//!
//! The reward (`EASEL_REFERRAL_REWARD`: credits to both, days of a plan to both, or none) is
//! granted once per referral, at sign-up or at the referred user's first completed payment
//! (`EASEL_REFERRAL_REWARD_ON`): [`reward_in`] claims the referral with a conditional update
//! (`redeemed_at IS NULL`) in the same transaction as the `REFERRAL` ledger entries (or plan
//! days), so parallel payments queue on the row lock and only the first one rewards.
//!
//! **Invite tokens.** Admins create tokens that carry credits (a `BONUS` ledger entry), days
//! of a plan and/or the vendor role (a verified vendor). Only the token's SHA-256 is stored;
//! its text is answered once, at creation. A redemption takes one use with a conditional
//! update (`use_count < max_uses`, not revoked, not expired) and writes one
//! `invite_redemptions` row (unique per token and user) in the transaction that applies the
//! gifts, so a token is never used more than `max_uses` times, nor twice by one user.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::future::BoxFuture;
use rand::Rng;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    InviteFailure, InviteTokenStatus,
    model::{self, InviteRow, NewInvite, RedemptionRow, ReferralRow, ReferralStats, ReferralView},
};
use crate::{
    AppState,
    accounts::{Role, service::SignUpHook},
    audit::{self, AuditEntry},
    config::ReferralReward,
    credits::{self, TransactionKind},
    db,
    error::{AppError, AppResult},
    payments::{SubscriptionSource, subscriptions},
};

// ---- referrals -----------------------------------------------------------------------------

/// The [`SignUpHook`] the composition root installs: records referrals (and rewards them
/// when `EASEL_REFERRAL_REWARD_ON=signup`).
pub struct Referrals;

impl SignUpHook for Referrals {
    fn signed_up<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        state: &'a AppState,
        user: Uuid,
        referred_by: Option<Uuid>,
    ) -> BoxFuture<'a, AppResult<()>> {
        Box::pin(on_sign_up_in(conn, state, user, referred_by))
    }
}

/// `referrals.reward_type` of a configured reward.
fn reward_type(reward: &ReferralReward) -> &'static str {
    match reward {
        ReferralReward::PlanDays { .. } => "pro_days",
        ReferralReward::None | ReferralReward::Credits { .. } => "credits",
    }
}

/// Inside the sign-up transaction of `user`: records that `referred_by` referred them, and
/// rewards it at once when so configured. See the module documentation for why neither
/// self-referral nor loops can be recorded.
pub async fn on_sign_up_in(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    user: Uuid,
    referred_by: Option<Uuid>,
) -> AppResult<()> {
    let Some(referrer) = referred_by else {
        return Ok(());
    };
    if referrer == user {
        return Err(AppError::bad_input(
            "input.referralCode",
            "you cannot refer yourself",
        ));
    }
    let config = &state.config.referral;
    model::insert_referral(conn, referrer, user, reward_type(&config.reward)).await?;
    if config.reward_at_signup {
        reward_in(conn, state, user).await?;
    }
    Ok(())
}

/// Call inside the transaction of every completed payment of `user` (credit purchases,
/// subscription payments): the first one rewards `user`'s referral, if any and not rewarded
/// yet; every other call changes nothing. With `EASEL_REFERRAL_REWARD_ON=signup` referrals
/// are rewarded at sign-up, so this only pays those recorded while `first_payment` was set.
pub async fn on_payment_in(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    user: Uuid,
) -> AppResult<()> {
    reward_in(conn, state, user).await.map(|_| ())
}

/// Grants the configured reward of `referred`'s referral, exactly once, inside the caller's
/// transaction; `None` when there is nothing (left) to reward.
pub async fn reward_in(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    referred: Uuid,
) -> AppResult<Option<ReferralRow>> {
    let reward = &state.config.referral.reward;
    let plan = match reward {
        ReferralReward::None => return Ok(None),
        ReferralReward::Credits { .. } => None,
        ReferralReward::PlanDays { plan, days } => {
            let on_sale = credits::service::plan_by_name_in(conn, plan)
                .await?
                .filter(|p| p.is_paid_on_sale());
            match on_sale {
                Some(p) => Some((p.id, *days)),
                None => {
                    // Never fail the payment for a configuration mistake: the referral stays
                    // unrewarded, and a later payment rewards it once the plan exists.
                    tracing::error!(
                        plan,
                        "EASEL_REFERRAL_PLAN names no plan; referral reward not granted"
                    );
                    return Ok(None);
                }
            }
        }
    };
    let Some(referral) = model::claim_referral(conn, referred, reward_type(reward)).await? else {
        return Ok(None);
    };
    let mut granted = json!({});
    match (reward, plan) {
        (ReferralReward::Credits { referrer, referred }, _) => {
            // The referred user's account first: a payment's transaction already holds it.
            let referred_tx = grant_referral_credits(
                conn,
                referral.referred_id,
                *referred,
                "Referral reward: welcome",
                referral.referrer_id,
            )
            .await?;
            let referrer_tx = grant_referral_credits(
                conn,
                referral.referrer_id,
                *referrer,
                "Referral reward: a user you referred joined",
                referral.referred_id,
            )
            .await?;
            model::set_referral_reward(conn, referral.id, referrer_tx, referred_tx, None).await?;
            granted = json!({ "referrer_credits": referrer, "referred_credits": referred });
        }
        (_, Some((plan, days))) => {
            let mut given = Vec::new();
            for user in [referral.referred_id, referral.referrer_id] {
                if grant_days_or_skip(conn, user, plan, days, SubscriptionSource::Referral).await? {
                    given.push(user);
                }
            }
            model::set_referral_reward(conn, referral.id, None, None, Some((plan, days))).await?;
            granted = json!({ "plan": plan, "days": days, "users": given });
        }
        _ => {}
    }
    audit::record(
        conn,
        AuditEntry {
            actor_id: None,
            actor_type: "system",
            action: "referral.rewarded",
            resource: Some("referral"),
            resource_id: Some(referral.id.to_string()),
            ip: None,
            metadata: json!({
                "referrer": referral.referrer_id, "referred": referral.referred_id,
                "at_signup": state.config.referral.reward_at_signup, "granted": granted,
            }),
        },
    )
    .await?;
    Ok(Some(referral))
}

async fn grant_referral_credits(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    amount: i64,
    description: &str,
    counterparty: Uuid,
) -> AppResult<Option<Uuid>> {
    if amount <= 0 {
        return Ok(None);
    }
    let row = credits::service::grant_free_in(
        conn,
        user,
        TransactionKind::Referral,
        amount,
        description,
        Some(counterparty),
    )
    .await?;
    Ok(Some(row.id))
}

/// Days of `plan` for a referral side, in a savepoint: a user who holds a paid subscription
/// (`CONFLICT`) gets no days and the rest of the reward stands. False when skipped.
async fn grant_days_or_skip(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    plan: Uuid,
    days: i32,
    source: SubscriptionSource,
) -> AppResult<bool> {
    let result = conn
        .transaction(async |conn| grant_days_in(conn, user, plan, days, source).await)
        .await;
    match result {
        Ok(()) => Ok(true),
        Err(AppError::Conflict(why)) => {
            tracing::info!(%user, why, "referral plan days skipped");
            Ok(false)
        }
        Err(other) => Err(other),
    }
}

/// Days of `plan` for `user`, through the subscriptions service (`CONFLICT` when the user
/// pays for a plan; `BAD_USER_INPUT` when the plan is not a paid plan on sale).
async fn grant_days_in(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    plan: Uuid,
    days: i32,
    source: SubscriptionSource,
) -> AppResult<()> {
    subscriptions::grant_days_in(conn, user, plan, days, source)
        .await
        .map(|_| ())
}

/// `referrer`'s referrals, newest first.
pub async fn referrals(
    state: &AppState,
    referrer: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> AppResult<Vec<ReferralView>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::referrals_of(&mut conn, referrer, after, limit).await?)
}

/// `referrer`'s totals.
pub async fn referral_stats(state: &AppState, referrer: Uuid) -> AppResult<ReferralStats> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::referral_stats(&mut conn, referrer).await?)
}

// ---- invite tokens -------------------------------------------------------------------------

/// Characters of invite tokens: no 0/O, 1/I.
const TOKEN_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Random characters in a token (120 bits), shown in groups of 4 (`XXXX-XXXX-...`).
const TOKEN_CHARS: usize = 24;
/// The most uses one token may have.
pub const MAX_INVITE_USES: i32 = 1_000_000;
/// The most plan days one token may carry (what the subscriptions service gives at once).
pub const MAX_INVITE_PLAN_DAYS: i32 = subscriptions::MAX_GIFT_DAYS;

fn new_token() -> String {
    let mut rng = rand::rng();
    let chars: Vec<char> = (0..TOKEN_CHARS)
        .map(|_| TOKEN_ALPHABET[rng.random_range(0..TOKEN_ALPHABET.len())] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// A token as typed (any case, with or without dashes and spaces) in its one stored form,
/// or none when it cannot be a token.
fn canonical_token(text: &str) -> Option<String> {
    if text.len() > 100 {
        return None;
    }
    let canonical: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (canonical.len() == TOKEN_CHARS && canonical.bytes().all(|b| TOKEN_ALPHABET.contains(&b)))
        .then_some(canonical)
}

/// What is stored of a token: SHA-256, hex (tokens are long and random: no salt needed).
fn token_hash(canonical: &str) -> String {
    Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What an invite token grants, and how often.
#[derive(Debug, Clone, Default)]
pub struct InviteSpec<'a> {
    /// How many users may redeem it (default 1).
    pub max_uses: Option<i32>,
    pub credits: Option<i64>,
    pub plan_id: Option<Uuid>,
    pub plan_days: Option<i32>,
    pub role: Option<Role>,
    pub note: Option<&'a str>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Admin: creates an invite token; answers it with its text, which is stored nowhere
/// (only its SHA-256). Audit-logged (without the text).
pub async fn create_invite(
    state: &AppState,
    admin: Uuid,
    spec: &InviteSpec<'_>,
) -> AppResult<(InviteRow, String)> {
    let max_uses = spec.max_uses.unwrap_or(1);
    if !(1..=MAX_INVITE_USES).contains(&max_uses) {
        return Err(AppError::bad_input(
            "input.maxUses",
            format!("between 1 and {MAX_INVITE_USES}"),
        ));
    }
    let credits = spec.credits.unwrap_or(0);
    if !(0..=credits::service::MAX_CREDITS).contains(&credits) {
        return Err(AppError::bad_input(
            "input.credits",
            format!("between 0 and {}", credits::service::MAX_CREDITS),
        ));
    }
    let plan_days = spec.plan_days.unwrap_or(0);
    if !(0..=MAX_INVITE_PLAN_DAYS).contains(&plan_days) {
        return Err(AppError::bad_input(
            "input.planDays",
            format!("between 0 and {MAX_INVITE_PLAN_DAYS}"),
        ));
    }
    match (spec.plan_id, plan_days) {
        (Some(_), 0) => {
            return Err(AppError::bad_input(
                "input.planDays",
                "give how many days of the plan (1 or more)",
            ));
        }
        (None, d) if d > 0 => {
            return Err(AppError::bad_input("input.planId", "give the plan"));
        }
        _ => {}
    }
    let role = match spec.role {
        None => None,
        Some(Role::Vendor) => Some("vendor"),
        Some(_) => {
            return Err(AppError::bad_input(
                "input.role",
                "an invite can only make a VENDOR",
            ));
        }
    };
    if credits == 0 && plan_days == 0 && role.is_none() {
        return Err(AppError::bad_input(
            "input.credits",
            "an invite must grant credits, plan days or a role",
        ));
    }
    let note = spec.note.map(str::trim).filter(|n| !n.is_empty());
    if note
        .is_some_and(|n| n.chars().count() > 500 || n.chars().any(|c| c.is_control() && c != '\n'))
    {
        return Err(AppError::bad_input(
            "input.note",
            "at most 500 characters, without control characters",
        ));
    }
    if spec.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(AppError::bad_input(
            "input.expiresAt",
            "must be in the future",
        ));
    }
    let kind = if plan_days > 0 {
        "pro"
    } else if max_uses == 1 {
        "gift"
    } else {
        "public"
    };
    let text = new_token();
    let hash = token_hash(&canonical_token(&text).expect("a new token is canonical"));
    let mut conn = db::conn(&state.pool).await?;
    let row = conn
        .transaction(async |conn| {
            if let Some(plan) = spec.plan_id
                && !credits::service::plan_in(conn, plan)
                    .await?
                    .is_some_and(|p| p.is_paid_on_sale())
            {
                return Err(AppError::bad_input(
                    "input.planId",
                    "no such paid plan on sale",
                ));
            }
            let row = model::insert_invite(
                conn,
                &NewInvite {
                    id: Uuid::now_v7(),
                    token: &hash,
                    referrer_id: admin,
                    kind,
                    max_uses,
                    credits,
                    plan_id: spec.plan_id,
                    plan_days,
                    role,
                    note,
                    expires_at: spec.expires_at,
                },
            )
            .await?;
            let metadata = json!({
                "max_uses": max_uses, "credits": credits, "plan_id": spec.plan_id,
                "plan_days": plan_days, "role": role, "note": note, "expires_at": spec.expires_at,
            });
            audit::admin(
                conn,
                admin,
                "invite.created",
                "invite_token",
                row.id.to_string(),
                metadata,
            )
            .await?;
            Ok(row)
        })
        .await?;
    Ok((row, text))
}

/// Admin: revokes an invite token (it can no longer be redeemed; what was granted stays).
/// Revoking it again changes nothing. Audit-logged.
pub async fn revoke_invite(state: &AppState, admin: Uuid, id: Uuid) -> AppResult<InviteRow> {
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        let row = model::revoke_invite(conn, id, admin)
            .await?
            .ok_or(AppError::NotFound("invite token"))?;
        audit::admin(
            conn,
            admin,
            "invite.revoked",
            "invite_token",
            row.id.to_string(),
            json!({}),
        )
        .await?;
        Ok(row)
    })
    .await
}

/// Admin: every invite token, newest first.
pub async fn invites(
    state: &AppState,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> AppResult<Vec<InviteRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::invites(&mut conn, after, limit).await?)
}

/// What a redemption gave.
#[derive(Debug)]
pub struct Redeemed {
    pub invite: InviteRow,
    pub redemption: RedemptionRow,
    /// The user after the redemption.
    pub user: crate::accounts::service::UserRow,
}

fn refused(reason: InviteFailure) -> AppError {
    AppError::bad_input_because("token", reason.code(), reason.message())
}

/// Redeems an invite token for `user`: its credits (one `BONUS` ledger entry), plan days and
/// role, all in one transaction with the use it takes. A token is used at most `max_uses`
/// times in total and once per user; refusals are `BAD_USER_INPUT` on `token` with a reason
/// ([`InviteFailure`]).
pub async fn redeem_invite(state: &AppState, user: Uuid, token: &str) -> AppResult<Redeemed> {
    let Some(canonical) = canonical_token(token) else {
        return Err(refused(InviteFailure::Unknown));
    };
    let hash = token_hash(&canonical);
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        let found = model::invite_by_hash(conn, &hash)
            .await?
            .ok_or_else(|| refused(InviteFailure::Unknown))?;
        if model::redeemed(conn, found.id, user).await? {
            return Err(refused(InviteFailure::AlreadyRedeemed));
        }
        let Some(invite) = model::take_invite_use(conn, &hash, user).await? else {
            let now = model::invite_by_hash(conn, &hash).await?.unwrap_or(found);
            return Err(refused(why_unusable(conn, &now, user).await?));
        };
        let mut redemption = RedemptionRow {
            id: Uuid::now_v7(),
            invite_id: invite.id,
            user_id: user,
            credits: invite.credits,
            transaction_id: None,
            plan_id: invite.plan_id,
            plan_days: invite.plan_days,
            role: invite.role.clone(),
        };
        if invite.role.as_deref() == Some("vendor")
            && crate::accounts::service::verify_vendor_in(conn, user)
                .await?
                .is_none()
        {
            return Err(refused(InviteFailure::VendorProfileRequired));
        }
        if let (Some(plan), days) = (invite.plan_id, invite.plan_days)
            && days > 0
        {
            grant_days_in(conn, user, plan, days, SubscriptionSource::Invite)
                .await
                .map_err(|e| match e {
                    AppError::BadUserInput { .. } => refused(InviteFailure::PlanUnavailable),
                    other => other,
                })?;
        }
        if invite.credits > 0 {
            let description = match invite.note.as_deref() {
                Some(note) => format!("Invite: {note}"),
                None => "Invite gift".to_string(),
            };
            let row = credits::service::grant_free_in(
                conn,
                user,
                TransactionKind::Bonus,
                invite.credits,
                &description,
                None,
            )
            .await?;
            redemption.transaction_id = Some(row.id);
        }
        model::insert_redemption(conn, &redemption)
            .await
            .map_err(|e| match AppError::from(e) {
                AppError::Conflict(_) => refused(InviteFailure::AlreadyRedeemed),
                other => other,
            })?;
        let user_row = crate::accounts::service::user_by_id_in(conn, user)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        audit::record(
            conn,
            AuditEntry {
                actor_id: Some(user),
                actor_type: crate::accounts::service::actor_type(user_row.role),
                action: "invite.redeemed",
                resource: Some("invite_token"),
                resource_id: Some(invite.id.to_string()),
                ip: None,
                metadata: json!({
                    "credits": invite.credits, "plan_id": invite.plan_id,
                    "plan_days": invite.plan_days, "role": invite.role,
                }),
            },
        )
        .await?;
        Ok(Redeemed {
            invite,
            redemption,
            user: user_row,
        })
    })
    .await
}

/// Why `invite` could not be used by `user` (read after the conditional update missed).
async fn why_unusable(
    conn: &mut AsyncPgConnection,
    invite: &InviteRow,
    user: Uuid,
) -> AppResult<InviteFailure> {
    if model::redeemed(conn, invite.id, user).await? {
        return Ok(InviteFailure::AlreadyRedeemed);
    }
    Ok(match invite.status() {
        InviteTokenStatus::Revoked => InviteFailure::Revoked,
        InviteTokenStatus::Expired => InviteFailure::Expired,
        // Active when read: the last use went to a parallel redemption meanwhile.
        InviteTokenStatus::Exhausted | InviteTokenStatus::Active => InviteFailure::Exhausted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_canonical_in_any_form() {
        let token = new_token();
        assert_eq!(token.len(), TOKEN_CHARS + TOKEN_CHARS / 4 - 1);
        let canonical = canonical_token(&token).unwrap();
        assert_eq!(
            canonical_token(&token.to_lowercase()),
            Some(canonical.clone())
        );
        assert_eq!(
            canonical_token(&format!(" {} ", canonical.to_lowercase())),
            Some(canonical.clone())
        );
        assert_eq!(token_hash(&canonical).len(), 64);
        for bad in [
            "",
            "short",
            "0000-0000-0000-0000-0000-0000",
            &"A".repeat(200),
        ] {
            assert_eq!(canonical_token(bad), None, "{bad}");
        }
    }
}
