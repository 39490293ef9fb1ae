//! Rows and queries of growth: referrals (who brought whom, and what paid the reward),
//! invite tokens and their redemptions. The single-statement guards live here: a referral
//! is claimed for its reward by a conditional update (`redeemed_at IS NULL`), an invite use
//! by another (`use_count < max_uses`, not revoked, not expired); callers run them in the
//! transaction that writes the reward.

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{BigInt, Nullable, Text, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::InviteTokenStatus;
use crate::db::schema::{invite_redemptions, invite_tokens, referrals};

// ---- referrals -----------------------------------------------------------------------------

/// A referral: `referrer_id` brought `referred_id` (recorded at the referred user's sign-up).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = referrals, check_for_backend(diesel::pg::Pg))]
pub struct ReferralRow {
    pub id: Uuid,
    pub referrer_id: Uuid,
    pub referred_id: Uuid,
    /// `credits` or `pro_days`: the reward configured when it was recorded, then the one
    /// granted.
    pub reward_type: String,
    /// When the reward was granted (at most once).
    pub redeemed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub referrer_transaction_id: Option<Uuid>,
    pub referred_transaction_id: Option<Uuid>,
    pub plan_id: Option<Uuid>,
    pub plan_days: Option<i32>,
}

pub async fn insert_referral(
    conn: &mut AsyncPgConnection,
    referrer: Uuid,
    referred: Uuid,
    reward_type: &str,
) -> QueryResult<ReferralRow> {
    diesel::insert_into(referrals::table)
        .values((
            referrals::id.eq(Uuid::now_v7()),
            referrals::referrer_id.eq(referrer),
            referrals::referred_id.eq(referred),
            referrals::reward_type.eq(reward_type),
        ))
        .returning(ReferralRow::as_returning())
        .get_result(conn)
        .await
}

/// Claims the reward of `referred`'s referral: sets `redeemed_at` unless it is set already.
/// `None` when the user was not referred or the reward was granted before. Parallel claims
/// queue on the row lock and only the first one matches.
pub async fn claim_referral(
    conn: &mut AsyncPgConnection,
    referred: Uuid,
    reward_type: &str,
) -> QueryResult<Option<ReferralRow>> {
    diesel::update(
        referrals::table
            .filter(referrals::referred_id.eq(referred))
            .filter(referrals::redeemed_at.is_null()),
    )
    .set((
        referrals::redeemed_at.eq(diesel::dsl::now),
        referrals::reward_type.eq(reward_type),
    ))
    .returning(ReferralRow::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Records what paid a claimed referral's reward.
pub async fn set_referral_reward(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    referrer_transaction: Option<Uuid>,
    referred_transaction: Option<Uuid>,
    plan: Option<(Uuid, i32)>,
) -> QueryResult<()> {
    diesel::update(referrals::table.find(id))
        .set((
            referrals::referrer_transaction_id.eq(referrer_transaction),
            referrals::referred_transaction_id.eq(referred_transaction),
            referrals::plan_id.eq(plan.map(|p| p.0)),
            referrals::plan_days.eq(plan.map(|p| p.1)),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// A referral as its referrer lists it, with the credits it earned them.
#[derive(Debug, Clone, QueryableByName)]
pub struct ReferralView {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub referred_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub redeemed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = BigInt)]
    pub credits_earned: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub plan_name: Option<String>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Integer>)]
    pub plan_days: Option<i32>,
}

/// `referrer`'s referrals, newest first, after the keyset `(created_at, id)`.
pub async fn referrals_of(
    conn: &mut AsyncPgConnection,
    referrer: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<ReferralView>> {
    let (at, id) = after.unzip();
    diesel::sql_query(
        "SELECT r.id, r.referred_id, r.created_at, r.redeemed_at, \
                coalesce(t.amount, 0) AS credits_earned, p.name AS plan_name, r.plan_days \
         FROM referrals r \
         LEFT JOIN credit_transactions t ON t.id = r.referrer_transaction_id \
         LEFT JOIN payment_plans p ON p.id = r.plan_id \
         WHERE r.referrer_id = $1 AND ($2::timestamptz IS NULL OR (r.created_at, r.id) < ($2, $3)) \
         ORDER BY r.created_at DESC, r.id DESC LIMIT $4",
    )
    .bind::<diesel::sql_types::Uuid, _>(referrer)
    .bind::<Nullable<Timestamptz>, _>(at)
    .bind::<Nullable<diesel::sql_types::Uuid>, _>(id)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// A referrer's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct ReferralStats {
    /// Users who signed up with the referrer's code.
    #[diesel(sql_type = BigInt)]
    pub invited: i64,
    /// Those whose referral was rewarded.
    #[diesel(sql_type = BigInt)]
    pub converted: i64,
    /// Credits the referrer earned by them.
    #[diesel(sql_type = BigInt)]
    pub credits_earned: i64,
}

pub async fn referral_stats(
    conn: &mut AsyncPgConnection,
    referrer: Uuid,
) -> QueryResult<ReferralStats> {
    diesel::sql_query(
        "SELECT count(*) AS invited, count(r.redeemed_at) AS converted, \
                coalesce(sum(t.amount), 0)::bigint AS credits_earned \
         FROM referrals r LEFT JOIN credit_transactions t ON t.id = r.referrer_transaction_id \
         WHERE r.referrer_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(referrer)
    .get_result(conn)
    .await
}

// ---- invite tokens -------------------------------------------------------------------------

/// An invite token (its text is never stored: `token` is its SHA-256).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = invite_tokens, check_for_backend(diesel::pg::Pg))]
pub struct InviteRow {
    pub id: Uuid,
    /// SHA-256 (hex) of the token text.
    pub token: String,
    /// The admin who created it.
    pub referrer_id: Uuid,
    pub kind: String,
    pub max_uses: i32,
    pub use_count: i32,
    pub credits: i64,
    pub plan_id: Option<Uuid>,
    pub plan_days: i32,
    pub role: Option<String>,
    pub note: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<Uuid>,
    pub used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl InviteRow {
    /// Whether it can still be redeemed, and if not, why (revoked, then expired, then used
    /// up).
    pub fn status(&self) -> InviteTokenStatus {
        if self.revoked_at.is_some() {
            InviteTokenStatus::Revoked
        } else if self.expires_at.is_some_and(|at| at <= Utc::now()) {
            InviteTokenStatus::Expired
        } else if self.use_count >= self.max_uses {
            InviteTokenStatus::Exhausted
        } else {
            InviteTokenStatus::Active
        }
    }
}

/// An invite token to write.
#[derive(Insertable)]
#[diesel(table_name = invite_tokens)]
pub struct NewInvite<'a> {
    pub id: Uuid,
    pub token: &'a str,
    pub referrer_id: Uuid,
    pub kind: &'a str,
    pub max_uses: i32,
    pub credits: i64,
    pub plan_id: Option<Uuid>,
    pub plan_days: i32,
    pub role: Option<&'a str>,
    pub note: Option<&'a str>,
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn insert_invite(
    conn: &mut AsyncPgConnection,
    invite: &NewInvite<'_>,
) -> QueryResult<InviteRow> {
    diesel::insert_into(invite_tokens::table)
        .values(invite)
        .returning(InviteRow::as_returning())
        .get_result(conn)
        .await
}

/// Every invite token, newest first, after the keyset `(created_at, id)`.
pub async fn invites(
    conn: &mut AsyncPgConnection,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<InviteRow>> {
    let mut q = invite_tokens::table
        .select(InviteRow::as_select())
        .order((invite_tokens::created_at.desc(), invite_tokens::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some((at, id)) = after {
        q = q.filter(
            invite_tokens::created_at
                .lt(at)
                .or(invite_tokens::created_at
                    .eq(at)
                    .and(invite_tokens::id.lt(id))),
        );
    }
    q.load(conn).await
}

/// Revokes invite `id` (a second revocation keeps the first's time and admin); `None` for
/// an unknown id.
pub async fn revoke_invite(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    admin: Uuid,
) -> QueryResult<Option<InviteRow>> {
    let revoked = diesel::update(
        invite_tokens::table
            .filter(invite_tokens::id.eq(id))
            .filter(invite_tokens::revoked_at.is_null()),
    )
    .set((
        invite_tokens::revoked_at.eq(diesel::dsl::now),
        invite_tokens::revoked_by.eq(admin),
    ))
    .returning(InviteRow::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    match revoked {
        Some(row) => Ok(Some(row)),
        None => invite_by_id(conn, id).await,
    }
}

pub async fn invite_by_id(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<InviteRow>> {
    invite_tokens::table
        .filter(invite_tokens::id.eq(id))
        .select(InviteRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn invite_by_hash(
    conn: &mut AsyncPgConnection,
    hash: &str,
) -> QueryResult<Option<InviteRow>> {
    invite_tokens::table
        .find(hash)
        .select(InviteRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Takes one use of the invite whose hash is `hash` for `user`: a single conditional update
/// (not revoked, not expired, `use_count < max_uses`), so parallel redemptions queue on the
/// row lock and never exceed `max_uses`. `None` when the invite cannot be used (unknown,
/// revoked, expired or used up: the caller reads the row to say which).
pub async fn take_invite_use(
    conn: &mut AsyncPgConnection,
    hash: &str,
    user: Uuid,
) -> QueryResult<Option<InviteRow>> {
    diesel::update(
        invite_tokens::table
            .find(hash)
            .filter(invite_tokens::revoked_at.is_null())
            .filter(
                invite_tokens::expires_at
                    .is_null()
                    .or(invite_tokens::expires_at.gt(diesel::dsl::now)),
            )
            .filter(invite_tokens::use_count.lt(invite_tokens::max_uses)),
    )
    .set((
        invite_tokens::use_count.eq(invite_tokens::use_count + 1),
        invite_tokens::used_by_id.eq(user),
        invite_tokens::used_at.eq(diesel::dsl::now),
    ))
    .returning(InviteRow::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Whether `user` redeemed invite `invite`.
pub async fn redeemed(conn: &mut AsyncPgConnection, invite: Uuid, user: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        invite_redemptions::table
            .filter(invite_redemptions::invite_id.eq(invite))
            .filter(invite_redemptions::user_id.eq(user)),
    ))
    .get_result(conn)
    .await
}

/// A redemption: what one user got from one invite.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = invite_redemptions, check_for_backend(diesel::pg::Pg))]
pub struct RedemptionRow {
    pub id: Uuid,
    pub invite_id: Uuid,
    pub user_id: Uuid,
    pub credits: i64,
    pub transaction_id: Option<Uuid>,
    pub plan_id: Option<Uuid>,
    pub plan_days: i32,
    pub role: Option<String>,
}

/// Inserts a redemption; a second one of the same invite by the same user violates
/// `invite_redemptions_invite_id_user_id_key`.
pub async fn insert_redemption(
    conn: &mut AsyncPgConnection,
    redemption: &RedemptionRow,
) -> QueryResult<()> {
    diesel::insert_into(invite_redemptions::table)
        .values(redemption)
        .execute(conn)
        .await
        .map(|_| ())
}

// ---- invariants ----------------------------------------------------------------------------

/// Growth's part of the ledger invariant (see `credits::model::ledger_violations`): every
/// referral reward entry pays exactly one referral side, of the right user; every invite
/// redemption with credits has its one `bonus` entry of that amount; no invite is used more
/// than `max_uses` times, and `use_count` counts its redemptions. Should be empty.
pub async fn reward_violations(conn: &mut AsyncPgConnection) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        problem: String,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT 'referral ' || r.id || ': reward entry ' || t.id || ' is not a referral credit of ' || side.user_id AS problem \
         FROM referrals r \
         CROSS JOIN LATERAL (VALUES (r.referrer_transaction_id, r.referrer_id), (r.referred_transaction_id, r.referred_id)) side(tx, user_id) \
         JOIN credit_transactions t ON t.id = side.tx \
         WHERE t.kind <> 'referral' OR t.user_id <> side.user_id OR t.amount <= 0 OR r.redeemed_at IS NULL \
         UNION ALL \
         SELECT 'ledger entry ' || t.id || ' (referral) pays ' || count(r.id) || ' referral rewards' \
         FROM credit_transactions t \
         LEFT JOIN referrals r ON t.id IN (r.referrer_transaction_id, r.referred_transaction_id) \
         WHERE t.kind = 'referral' GROUP BY t.id HAVING count(r.id) <> 1 \
         UNION ALL \
         SELECT 'invite ' || i.id || ': use_count ' || i.use_count || ', ' || count(x.id) || ' redemptions, max_uses ' || i.max_uses \
         FROM invite_tokens i LEFT JOIN invite_redemptions x ON x.invite_id = i.id \
         GROUP BY i.token HAVING i.use_count <> count(x.id) OR count(x.id) > i.max_uses \
         UNION ALL \
         SELECT 'invite redemption ' || x.id || ': ' || x.credits || ' credits, ledger entry ' || coalesce(t.id::text, 'none') \
         FROM invite_redemptions x LEFT JOIN credit_transactions t ON t.id = x.transaction_id \
         WHERE (x.credits > 0 AND (t.id IS NULL OR t.kind <> 'bonus' OR t.user_id <> x.user_id OR t.amount <> x.credits)) \
            OR (x.credits = 0 AND x.transaction_id IS NOT NULL)",
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.problem).collect())
}
