//! Rows and queries of the credit ledger. Balance updates are conditional single statements,
//! so concurrent charges can never overdraw; callers wrap them with the ledger insert in one
//! transaction.

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{BigInt, Bool, Nullable, Text, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::TransactionKind;
use crate::db::{
    Fragment, literal_limit,
    schema::{
        credit_accounts, credit_packages, credit_transactions, operation_prices, payment_plans,
    },
};

/// A ledger entry.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = credit_transactions, check_for_backend(diesel::pg::Pg))]
pub struct TransactionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: TransactionKind,
    pub amount: i64,
    pub balance_after: i64,
    pub allowance_used: i32,
    pub description: String,
    pub job_id: Option<Uuid>,
    pub payment_id: Option<Uuid>,
    pub counterparty_id: Option<Uuid>,
    pub performed_by: Option<Uuid>,
    pub refund_of_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The ledger's order: taken when the row is written, after its account was locked, so
    /// per account it follows `balance_after` (`created_at` is its transaction's start).
    pub seq: i64,
}

/// A ledger entry to write.
#[derive(Insertable)]
#[diesel(table_name = credit_transactions)]
pub struct NewTransaction<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: TransactionKind,
    pub amount: i64,
    pub balance_after: i64,
    pub allowance_used: i32,
    pub description: &'a str,
    pub job_id: Option<Uuid>,
    pub payment_id: Option<Uuid>,
    pub counterparty_id: Option<Uuid>,
    pub performed_by: Option<Uuid>,
    pub refund_of_id: Option<Uuid>,
    pub idempotency_key: Option<&'a str>,
    pub request_hash: Option<&'a str>,
}

pub async fn insert_transaction(
    conn: &mut AsyncPgConnection,
    t: &NewTransaction<'_>,
) -> QueryResult<TransactionRow> {
    diesel::insert_into(credit_transactions::table)
        .values(t)
        .returning(TransactionRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn transaction_by_id(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<TransactionRow>> {
    credit_transactions::table
        .find(id)
        .select(TransactionRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn transaction_by_key(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    key: &str,
) -> QueryResult<Option<TransactionRow>> {
    credit_transactions::table
        .filter(credit_transactions::user_id.eq(user))
        .filter(credit_transactions::idempotency_key.eq(key))
        .select(TransactionRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn refund_of(
    conn: &mut AsyncPgConnection,
    charge: Uuid,
) -> QueryResult<Option<TransactionRow>> {
    credit_transactions::table
        .filter(credit_transactions::refund_of_id.eq(charge))
        .select(TransactionRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Filters of the ledger listing.
#[derive(Debug, Default, Clone)]
pub struct HistoryFilter {
    pub kinds: Option<Vec<TransactionKind>>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// A user's ledger, newest first (by `seq`), after the keyset `after` = seq; each row with
/// the `extras` column a look-ahead plan adds (SQL over `credit_transactions`, built by the
/// capabilities that own what it reads; `NULL::text` for none).
pub async fn history(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    filter: &HistoryFilter,
    after: Option<i64>,
    limit: i64,
    extras: Fragment<Nullable<Text>>,
) -> QueryResult<Vec<(TransactionRow, Option<String>)>> {
    let mut q = credit_transactions::table
        .filter(credit_transactions::user_id.eq(user))
        .select((TransactionRow::as_select(), extras))
        .order(credit_transactions::seq.desc())
        .into_boxed();
    if let Some(kinds) = &filter.kinds {
        q = q.filter(credit_transactions::kind.eq_any(kinds.clone()));
    }
    if let Some(from) = filter.from {
        q = q.filter(credit_transactions::created_at.ge(from));
    }
    if let Some(to) = filter.to {
        q = q.filter(credit_transactions::created_at.lt(to));
    }
    if let Some(seq) = after {
        q = q.filter(credit_transactions::seq.lt(seq));
    }
    literal_limit(q, limit).load(conn).await
}

// ---- accounts --------------------------------------------------------------------------

/// Inserts a user's credit account holding `balance` (earned, not bought).
pub async fn insert_account(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    balance: i64,
) -> QueryResult<()> {
    diesel::insert_into(credit_accounts::table)
        .values((
            credit_accounts::user_id.eq(user),
            credit_accounts::balance.eq(balance),
            credit_accounts::total_earned.eq(balance),
            credit_accounts::last_transaction_at.eq((balance > 0).then(Utc::now)),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// A user's account as the API shows it, with today's allowance worked out in the user's
/// time zone (an allowance not yet reset today counts as full).
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct AccountView {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub user_id: Uuid,
    #[diesel(sql_type = BigInt)]
    pub balance: i64,
    #[diesel(sql_type = BigInt)]
    pub daily_allowance: i64,
    #[diesel(sql_type = BigInt)]
    pub daily_used: i64,
    #[diesel(sql_type = BigInt)]
    pub total_purchased: i64,
    #[diesel(sql_type = BigInt)]
    pub total_spent: i64,
    #[diesel(sql_type = BigInt)]
    pub total_earned: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_transaction_at: Option<DateTime<Utc>>,
}

/// `today` in the user's time zone, and the tier allowance: the pieces every allowance
/// expression needs (`u` = users, `t` = tier_allowances).
const ALLOWANCE_FROM: &str = "FROM users u";
const TODAY: &str = "(now() AT TIME ZONE u.timezone)::date";

pub async fn account_views(
    conn: &mut AsyncPgConnection,
    users: &[Uuid],
) -> QueryResult<Vec<AccountView>> {
    diesel::sql_query(format!(
        "SELECT a.user_id, a.balance, \
                coalesce(t.daily_allowance, 0) AS daily_allowance, \
                CASE WHEN a.daily_reset_on < {TODAY} THEN 0 ELSE a.daily_used END AS daily_used, \
                a.total_purchased, a.total_spent, a.total_earned, a.last_transaction_at \
         FROM credit_accounts a JOIN users u ON u.id = a.user_id \
         LEFT JOIN tier_allowances t ON t.tier = u.subscription_tier \
         WHERE a.user_id = ANY($1)"
    ))
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(users)
    .load(conn)
    .await
}

/// What a charge took: from today's allowance and from the balance.
#[derive(Debug, Clone)]
pub struct Charged {
    pub from_allowance: i64,
    pub from_balance: i64,
    pub balance: i64,
}

#[derive(QueryableByName)]
struct ChargeBasis {
    #[diesel(sql_type = BigInt)]
    balance: i64,
    #[diesel(sql_type = BigInt)]
    daily_used: i64,
    #[diesel(sql_type = diesel::sql_types::Date)]
    daily_reset_on: chrono::NaiveDate,
    #[diesel(sql_type = diesel::sql_types::Date)]
    today: chrono::NaiveDate,
    #[diesel(sql_type = BigInt)]
    allowance: i64,
}

/// Takes `cost` credits: today's allowance first (reset on a new day in the user's time
/// zone), then the balance. The account row is locked for the rest of the transaction, and
/// the balance update is conditional (`WHERE balance >= taken`), so parallel charges can never
/// overdraw. `Err(..)` of the outer result is a database error; `Ok(Err((balance,
/// allowance_left)))` means the credits fall short.
pub async fn take(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    cost: i64,
) -> QueryResult<Result<Charged, (i64, i64)>> {
    let basis: ChargeBasis = diesel::sql_query(format!(
        "SELECT a.balance, a.daily_used, a.daily_reset_on, {TODAY} AS today, coalesce(t.daily_allowance, 0) AS allowance \
         FROM credit_accounts a JOIN users u ON u.id = a.user_id \
         LEFT JOIN tier_allowances t ON t.tier = u.subscription_tier \
         WHERE a.user_id = $1 FOR UPDATE OF a"
    ))
    .bind::<diesel::sql_types::Uuid, _>(user)
    .get_result(conn)
    .await?;
    let new_day = basis.daily_reset_on < basis.today;
    let used = if new_day { 0 } else { basis.daily_used };
    let left = (basis.allowance - used).max(0);
    let from_allowance = cost.min(left);
    let from_balance = cost - from_allowance;
    if basis.balance < from_balance {
        return Ok(Err((basis.balance, left)));
    }
    let balance: Option<i64> = diesel::update(
        credit_accounts::table
            .find(user)
            .filter(credit_accounts::balance.ge(from_balance)),
    )
    .set((
        credit_accounts::balance.eq(credit_accounts::balance - from_balance),
        credit_accounts::total_spent.eq(credit_accounts::total_spent + from_balance),
        credit_accounts::daily_used.eq(used + from_allowance),
        credit_accounts::daily_allowance.eq(basis.allowance),
        credit_accounts::daily_reset_on.eq(basis.today.max(basis.daily_reset_on)),
        credit_accounts::last_transaction_at.eq(Utc::now()),
    ))
    .returning(credit_accounts::balance)
    .get_result(conn)
    .await
    .optional()?;
    Ok(match balance {
        Some(balance) => Ok(Charged {
            from_allowance,
            from_balance,
            balance,
        }),
        None => Err((basis.balance, left)),
    })
}

/// Adds `amount` (> 0) to the balance; `earned`/`purchased` say which total grows.
/// Optionally gives back `allowance` uses of today (a same-day refund).
pub async fn credit(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    amount: i64,
    purchased: bool,
    allowance: i64,
) -> QueryResult<Option<i64>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        balance: i64,
    }
    let row: Option<Row> = diesel::sql_query(format!(
        "UPDATE credit_accounts a SET \
             balance = a.balance + $2, \
             total_purchased = a.total_purchased + CASE WHEN $3 THEN $2 ELSE 0 END, \
             total_earned = a.total_earned + CASE WHEN $3 THEN 0 ELSE $2 END, \
             daily_used = CASE WHEN a.daily_reset_on = x.today THEN greatest(a.daily_used - $4, 0) ELSE a.daily_used END, \
             last_transaction_at = now() \
         FROM (SELECT {TODAY} AS today {ALLOWANCE_FROM} WHERE u.id = $1) x \
         WHERE a.user_id = $1 RETURNING a.balance"
    ))
    .bind::<diesel::sql_types::Uuid, _>(user)
    .bind::<BigInt, _>(amount)
    .bind::<Bool, _>(purchased)
    .bind::<BigInt, _>(allowance)
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(|r| r.balance))
}

/// Takes `amount` (> 0) from the balance only (gifts, negative adjustments); `None` when the
/// balance is short (the update matched no row).
pub async fn debit(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    amount: i64,
    spent: bool,
) -> QueryResult<Option<i64>> {
    diesel::update(
        credit_accounts::table
            .find(user)
            .filter(credit_accounts::balance.ge(amount)),
    )
    .set((
        credit_accounts::balance.eq(credit_accounts::balance - amount),
        credit_accounts::total_spent
            .eq(credit_accounts::total_spent + if spent { amount } else { 0 }),
        credit_accounts::last_transaction_at.eq(Utc::now()),
    ))
    .returning(credit_accounts::balance)
    .get_result(conn)
    .await
    .optional()
}

/// How much of `user`'s sign-up bonus an unverified account still holds: the bonus minus
/// what operations have spent from the balance (usage net of refunds; the bonus is the first
/// thing spent). 0 once the account is verified (phone or email) and for unknown users.
pub async fn unverified_bonus_held(conn: &mut AsyncPgConnection, user: Uuid) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        held: i64,
    }
    let row: Option<Row> = diesel::sql_query(
        "SELECT CASE WHEN u.phone_verified_at IS NOT NULL OR u.email_verified_at IS NOT NULL THEN 0 \
                ELSE greatest(0, coalesce((SELECT sum(t.amount) FROM credit_transactions t \
                     WHERE t.user_id = u.id AND t.kind IN ('signup_bonus', 'usage', 'refund')), 0)) \
                END::bigint AS held \
         FROM users u WHERE u.id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(user)
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map_or(0, |r| r.held))
}

/// Locks the accounts of `users` in a fixed order (by id), so transactions touching two
/// accounts (gifts both ways) cannot deadlock.
pub async fn lock_accounts(conn: &mut AsyncPgConnection, users: &[Uuid]) -> QueryResult<usize> {
    let mut sorted = users.to_vec();
    sorted.sort();
    let locked: Vec<Uuid> = credit_accounts::table
        .filter(credit_accounts::user_id.eq_any(&sorted))
        .order(credit_accounts::user_id.asc())
        .select(credit_accounts::user_id)
        .for_update()
        .load(conn)
        .await?;
    Ok(locked.len())
}

// ---- catalogue: packages, plans, prices ----------------------------------------------------

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = credit_packages, check_for_backend(diesel::pg::Pg))]
pub struct PackageRow {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub credits: i64,
    pub bonus_credits: i64,
    pub price_minor: i64,
    pub currency: String,
    pub is_active: bool,
    pub sort_order: i32,
    pub badge_text: Option<String>,
}

#[derive(Insertable, AsChangeset)]
#[diesel(table_name = credit_packages)]
pub struct PackageChanges<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub credits: i64,
    pub bonus_credits: i64,
    pub price_minor: i64,
    pub currency: &'a str,
    pub is_active: bool,
    pub sort_order: i32,
    pub badge_text: Option<&'a str>,
}

pub async fn packages(
    conn: &mut AsyncPgConnection,
    include_inactive: bool,
) -> QueryResult<Vec<PackageRow>> {
    let mut q = credit_packages::table
        .select(PackageRow::as_select())
        .order((credit_packages::sort_order.asc(), credit_packages::id.asc()))
        .into_boxed();
    if !include_inactive {
        q = q.filter(credit_packages::is_active.eq(true));
    }
    q.load(conn).await
}

pub async fn package(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<PackageRow>> {
    credit_packages::table
        .find(id)
        .select(PackageRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn upsert_package(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    changes: &PackageChanges<'_>,
) -> QueryResult<PackageRow> {
    diesel::insert_into(credit_packages::table)
        .values((credit_packages::id.eq(id), changes))
        .on_conflict(credit_packages::id)
        .do_update()
        .set(changes)
        .returning(PackageRow::as_returning())
        .get_result(conn)
        .await
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = payment_plans, check_for_backend(diesel::pg::Pg))]
pub struct PlanRow {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub description: Option<String>,
    pub tier: crate::accounts::SubscriptionTier,
    pub price_minor: i64,
    pub currency: String,
    pub interval: String,
    pub monthly_credits: i64,
    pub monthly_generation_limit: Option<i32>,
    pub features: Vec<String>,
    pub trial_days: i32,
    pub is_vendor_plan: bool,
    pub is_active: bool,
    pub sort_order: i32,
}

impl PlanRow {
    /// Months in one billing period.
    pub fn months(&self) -> u32 {
        if self.interval == "year" { 12 } else { 1 }
    }

    /// A paid plan on sale: what can be bought, switched to, or given as plan days.
    pub fn is_paid_on_sale(&self) -> bool {
        self.is_active && self.tier != crate::accounts::SubscriptionTier::Free
    }
}

#[derive(Insertable, AsChangeset)]
#[diesel(table_name = payment_plans)]
#[diesel(treat_none_as_null = true)]
pub struct PlanChanges<'a> {
    pub name: &'a str,
    pub display_name: &'a str,
    pub description: Option<&'a str>,
    pub tier: crate::accounts::SubscriptionTier,
    pub price_minor: i64,
    pub currency: &'a str,
    pub interval: &'a str,
    pub monthly_credits: i64,
    pub monthly_generation_limit: Option<i32>,
    pub features: Vec<String>,
    pub trial_days: i32,
    pub is_vendor_plan: bool,
    pub is_active: bool,
    pub sort_order: i32,
}

/// The plans on sale (or every one, archived too), in display order.
pub async fn plans(
    conn: &mut AsyncPgConnection,
    include_archived: bool,
) -> QueryResult<Vec<PlanRow>> {
    let mut q = payment_plans::table
        .order((payment_plans::sort_order.asc(), payment_plans::id.asc()))
        .select(PlanRow::as_select())
        .into_boxed();
    if !include_archived {
        q = q.filter(payment_plans::is_active.eq(true));
    }
    q.load(conn).await
}

pub async fn plan(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<PlanRow>> {
    payment_plans::table
        .find(id)
        .select(PlanRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn plan_by_name(
    conn: &mut AsyncPgConnection,
    name: &str,
) -> QueryResult<Option<PlanRow>> {
    payment_plans::table
        .filter(payment_plans::name.eq(name))
        .select(PlanRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn upsert_plan(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    changes: &PlanChanges<'_>,
) -> QueryResult<PlanRow> {
    diesel::insert_into(payment_plans::table)
        .values((payment_plans::id.eq(id), changes))
        .on_conflict(payment_plans::id)
        .do_update()
        .set(changes)
        .returning(PlanRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn set_plan_active(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    active: bool,
) -> QueryResult<Option<PlanRow>> {
    diesel::update(payment_plans::table.find(id))
        .set(payment_plans::is_active.eq(active))
        .returning(PlanRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = operation_prices, check_for_backend(diesel::pg::Pg))]
#[diesel(treat_none_as_null = true)]
pub struct PriceRow {
    pub operation: String,
    pub base_cost: i64,
    pub tier_multipliers: serde_json::Value,
    pub daily_limit: Option<i32>,
    pub per_minute_limit: Option<i32>,
    pub minimum_tier: Option<crate::accounts::SubscriptionTier>,
    pub is_enabled: bool,
    pub description: Option<String>,
}

pub async fn prices(conn: &mut AsyncPgConnection) -> QueryResult<Vec<PriceRow>> {
    operation_prices::table
        .order(operation_prices::operation.asc())
        .select(PriceRow::as_select())
        .load(conn)
        .await
}

pub async fn price(conn: &mut AsyncPgConnection, operation: &str) -> QueryResult<Option<PriceRow>> {
    operation_prices::table
        .find(operation)
        .select(PriceRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn upsert_price(conn: &mut AsyncPgConnection, row: &PriceRow) -> QueryResult<PriceRow> {
    diesel::insert_into(operation_prices::table)
        .values(row)
        .on_conflict(operation_prices::operation)
        .do_update()
        .set(row)
        .returning(PriceRow::as_returning())
        .get_result(conn)
        .await
}

/// Users whose stored balance disagrees with their ledger, or is negative; payments with the
/// wrong number of purchase entries; subscription periods without exactly their one grant;
/// referral and invite rewards paid other than once (`growth::model::reward_violations`).
/// Should be none.
pub async fn ledger_violations(conn: &mut AsyncPgConnection) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        problem: String,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT 'user ' || a.user_id || ': balance ' || a.balance || ' but ledger sums to ' || coalesce(l.total, 0) AS problem \
         FROM credit_accounts a LEFT JOIN (SELECT user_id, sum(amount) AS total FROM credit_transactions GROUP BY user_id) l \
           ON l.user_id = a.user_id \
         WHERE a.balance <> coalesce(l.total, 0) OR a.balance < 0 \
         UNION ALL \
         SELECT 'payment ' || p.id || ' is ' || p.status || ' with ' || count(t.id) || ' purchase rows' \
         FROM payments p LEFT JOIN credit_transactions t ON t.payment_id = p.id AND t.kind = 'purchase' \
         GROUP BY p.id, p.status, p.package_id \
         HAVING (p.package_id IS NOT NULL AND p.status = 'completed' AND count(t.id) <> 1) OR ((p.package_id IS NULL OR p.status <> 'completed') AND count(t.id) <> 0) \
         UNION ALL \
         SELECT 'period ' || p.subscription_id || '@' || p.period_start || ': ' || p.credits || ' credits, grant ' || coalesce(t.amount::text, 'missing') \
         FROM subscription_periods p LEFT JOIN credit_transactions t ON t.id = p.transaction_id \
         WHERE (p.credits > 0) <> (t.id IS NOT NULL) \
            OR (t.id IS NOT NULL AND (t.amount <> p.credits OR t.user_id <> p.user_id OR t.kind <> 'subscription_grant')) \
         UNION ALL \
         SELECT 'grant ' || t.id || ' belongs to no paid period' FROM credit_transactions t \
         WHERE t.kind = 'subscription_grant' AND NOT EXISTS (SELECT 1 FROM subscription_periods p WHERE p.transaction_id = t.id)",
    )
    .load(conn)
    .await?;
    let mut problems: Vec<String> = rows.into_iter().map(|r| r.problem).collect();
    // Referral rewards and invite credits pay each referral side and redemption once.
    problems.extend(crate::growth::model::reward_violations(conn).await?);
    Ok(problems)
}
