//! The admin tools' read queries: one aggregate statement per figure of `adminStats`, the
//! user search and the audit log. They read other capabilities' tables, never write them.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::{
    prelude::*,
    sql_types::{BigInt, Bool, Date, Nullable, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ipnet::IpNet;
use uuid::Uuid;

use crate::{
    accounts::{AccountStatus, Role, SubscriptionTier, model::UserRow},
    db::{
        Fragment,
        schema::{audit_logs, users},
    },
};

/// A value and how many rows have it.
#[derive(Debug, QueryableByName)]
pub struct Counted {
    #[diesel(sql_type = Text)]
    pub key: String,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// Users by account status.
pub async fn users_by_status(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Counted>> {
    diesel::sql_query("SELECT account_status AS key, count(*) AS n FROM users GROUP BY 1")
        .load(conn)
        .await
}

/// Users by subscription tier.
pub async fn users_by_tier(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Counted>> {
    diesel::sql_query("SELECT subscription_tier AS key, count(*) AS n FROM users GROUP BY 1")
        .load(conn)
        .await
}

/// Generation jobs by status.
pub async fn jobs_by_status(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Counted>> {
    diesel::sql_query("SELECT status AS key, count(*) AS n FROM generation_jobs GROUP BY 1")
        .load(conn)
        .await
}

/// Sign-ups on one UTC day.
#[derive(Debug, QueryableByName)]
pub struct DayCount {
    #[diesel(sql_type = Date)]
    pub day: NaiveDate,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// Accounts created on each of the last `days` UTC days (today included), oldest first,
/// days without sign-ups included.
pub async fn signups_per_day(
    conn: &mut AsyncPgConnection,
    days: i32,
) -> QueryResult<Vec<DayCount>> {
    diesel::sql_query(
        "WITH today AS (SELECT (now() AT TIME ZONE 'UTC')::date AS d), \
              span AS (SELECT generate_series(today.d - ($1 - 1), today.d, interval '1 day')::date AS day FROM today) \
         SELECT span.day, count(u.id) AS n FROM span \
         LEFT JOIN users u ON u.created_at >= span.day::timestamp AT TIME ZONE 'UTC' \
                          AND u.created_at < (span.day + 1)::timestamp AT TIME ZONE 'UTC' \
         GROUP BY span.day ORDER BY span.day",
    )
    .bind::<diesel::sql_types::Integer, _>(days)
    .load(conn)
    .await
}

#[derive(QueryableByName)]
struct Seconds {
    #[diesel(sql_type = Nullable<BigInt>)]
    seconds: Option<i64>,
}

/// How long the oldest queued job has waited, in whole seconds (none when nothing waits).
pub async fn oldest_queued_age(conn: &mut AsyncPgConnection) -> QueryResult<Option<i64>> {
    let row: Seconds = diesel::sql_query(
        "SELECT floor(extract(epoch FROM now() - min(queued_at)))::bigint AS seconds \
         FROM generation_jobs WHERE status = 'queued'",
    )
    .get_result(conn)
    .await?;
    Ok(row.seconds)
}

/// Credit totals over the whole ledger (see [`ledger_totals`]).
#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct LedgerTotals {
    #[diesel(sql_type = BigInt)]
    pub sold: i64,
    #[diesel(sql_type = BigInt)]
    pub spent: i64,
    #[diesel(sql_type = BigInt)]
    pub refunded: i64,
}

/// Sold: the credits of `purchase` entries (credit packages paid for). Spent: the balance
/// credits taken by `usage` entries (the daily-allowance part of a charge is not a
/// balance credit and is left out). Refunded: the credits `refund` entries gave back.
pub async fn ledger_totals(conn: &mut AsyncPgConnection) -> QueryResult<LedgerTotals> {
    diesel::sql_query(
        "SELECT coalesce(sum(amount) FILTER (WHERE kind = 'purchase'), 0)::bigint AS sold, \
                coalesce(-sum(amount) FILTER (WHERE kind = 'usage'), 0)::bigint AS spent, \
                coalesce(sum(amount) FILTER (WHERE kind = 'refund'), 0)::bigint AS refunded \
         FROM credit_transactions WHERE kind IN ('purchase', 'usage', 'refund')",
    )
    .get_result(conn)
    .await
}

/// Money taken in one currency.
#[derive(Debug, QueryableByName)]
pub struct Revenue {
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = BigInt)]
    pub amount_minor: i64,
}

/// The sum of completed payments (packages and plans) per currency, in minor units.
pub async fn revenue_by_currency(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Revenue>> {
    diesel::sql_query(
        "SELECT currency, sum(amount_minor)::bigint AS amount_minor FROM payments \
         WHERE status = 'completed' GROUP BY currency ORDER BY currency",
    )
    .load(conn)
    .await
}

/// What `adminUsers` filters on.
#[derive(Debug, Default)]
pub struct UserFilter {
    /// A `LIKE` pattern (already escaped and wrapped in `%`), matched case-insensitively
    /// against email, phone, username and display name.
    pub pattern: Option<String>,
    pub role: Option<Role>,
    pub status: Option<AccountStatus>,
    pub tier: Option<SubscriptionTier>,
}

/// A user with their credit balance and warning count.
pub type AdminUserRow = (UserRow, Option<i64>, i64);

/// Users matching `filter`, newest first, after `(created_at, id)`.
pub async fn users(
    conn: &mut AsyncPgConnection,
    filter: &UserFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<AdminUserRow>> {
    let mut q = users::table
        .select((
            UserRow::as_select(),
            Fragment::<Nullable<BigInt>>::new(
                "(SELECT ca.balance FROM credit_accounts ca WHERE ca.user_id = users.id)",
            ),
            Fragment::<BigInt>::new(
                "(SELECT count(*) FROM content_reports r \
                  WHERE r.target_owner_id = users.id AND r.resolution = 'warn_user')",
            ),
        ))
        .into_boxed();
    if let Some(p) = &filter.pattern {
        q = q.filter(
            users::email
                .ilike(p.clone())
                .or(users::phone.ilike(p.clone()))
                .or(users::username.ilike(p.clone()))
                .or(users::display_name.ilike(p.clone()))
                .assume_not_null(),
        );
    }
    if let Some(r) = filter.role {
        q = q.filter(users::role.eq(r));
    }
    if let Some(s) = filter.status {
        q = q.filter(users::account_status.eq(s));
    }
    if let Some(t) = filter.tier {
        q = q.filter(users::subscription_tier.eq(t));
    }
    if let Some((at, id)) = after {
        q = q.filter(
            Fragment::<Bool>::new("(users.created_at, users.id) < (")
                .time(at)
                .sql(", ")
                .uuid(id)
                .sql(")"),
        );
    }
    q.order((users::created_at.desc(), users::id.desc()))
        .limit(limit)
        .load(conn)
        .await
}

/// An audit entry.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_logs, check_for_backend(diesel::pg::Pg))]
pub struct AuditRow {
    pub id: Uuid,
    pub actor_id: Option<Uuid>,
    pub actor_type: String,
    pub action: String,
    pub resource: Option<String>,
    pub resource_id: Option<String>,
    pub ip: Option<IpNet>,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// What `auditLog` filters on (each given part must match exactly; `from` inclusive, `to`
/// exclusive).
#[derive(Debug, Default)]
pub struct AuditFilter {
    pub actor_id: Option<Uuid>,
    pub action: Option<String>,
    pub resource: Option<String>,
    pub resource_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Audit entries matching `filter`, newest first, after `(created_at, id)`.
pub async fn audit_log(
    conn: &mut AsyncPgConnection,
    filter: &AuditFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    let mut q = audit_logs::table.select(AuditRow::as_select()).into_boxed();
    if let Some(a) = filter.actor_id {
        q = q.filter(audit_logs::actor_id.eq(a));
    }
    if let Some(a) = &filter.action {
        q = q.filter(audit_logs::action.eq(a.clone()));
    }
    if let Some(r) = &filter.resource {
        q = q.filter(audit_logs::resource.eq(r.clone()));
    }
    if let Some(r) = &filter.resource_id {
        q = q.filter(audit_logs::resource_id.eq(r.clone()));
    }
    if let Some(f) = filter.from {
        q = q.filter(audit_logs::created_at.ge(f));
    }
    if let Some(t) = filter.to {
        q = q.filter(audit_logs::created_at.lt(t));
    }
    if let Some((at, id)) = after {
        q = q.filter(
            Fragment::<Bool>::new("(audit_logs.created_at, audit_logs.id) < (")
                .time(at)
                .sql(", ")
                .uuid(id)
                .sql(")"),
        );
    }
    q.order((audit_logs::created_at.desc(), audit_logs::id.desc()))
        .limit(limit)
        .load(conn)
        .await
}
