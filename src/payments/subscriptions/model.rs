//! Rows and queries of subscriptions and their paid periods. Every change of one user's
//! subscriptions runs under that user's subscription lock ([`lock_user`]), so webhooks,
//! mutations and the expiry sweep of the same user never interleave.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{SubscriptionSource, SubscriptionStatus, add_months};
use crate::{
    db::schema::{subscription_periods, subscriptions},
    payments::Gateway,
};

/// The statuses in which a subscription is live (gives its plan's tier).
pub const LIVE: [SubscriptionStatus; 3] = [
    SubscriptionStatus::Trial,
    SubscriptionStatus::Active,
    SubscriptionStatus::PastDue,
];

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = subscriptions, check_for_backend(diesel::pg::Pg))]
pub struct SubscriptionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub plan_id: Uuid,
    pub status: SubscriptionStatus,
    pub current_period_start: Option<DateTime<Utc>>,
    pub current_period_end: DateTime<Utc>,
    pub gateway: Option<Gateway>,
    pub gateway_ref: Option<String>,
    pub gateway_item_ref: Option<String>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub pending_plan_id: Option<Uuid>,
    pub price_minor: Option<i64>,
    pub currency: Option<String>,
    pub billing_interval: Option<String>,
    pub trial_ends_at: Option<DateTime<Utc>>,
    pub payment_id: Option<Uuid>,
    pub source: SubscriptionSource,
    pub usage_window_start: Option<DateTime<Utc>>,
    pub usage_count: i32,
    pub last_event_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SubscriptionRow {
    pub fn is_live(&self) -> bool {
        LIVE.contains(&self.status)
    }

    /// The month of `monthlyGenerationLimit` that `now` falls in (months roll from the
    /// subscription's start) and the generations counted in it so far.
    pub fn usage_at(&self, now: DateTime<Utc>) -> (DateTime<Utc>, i32) {
        let mut start = self.usage_window_start.unwrap_or(self.created_at);
        if add_months(start, 1) > now {
            return (start, self.usage_count);
        }
        // Whole months since the window opened (at most a few hundred steps a century).
        while add_months(start, 1) <= now {
            start = add_months(start, 1);
        }
        (start, 0)
    }
}

#[derive(Insertable)]
#[diesel(table_name = subscriptions)]
pub struct NewSubscription<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub plan_id: Uuid,
    pub status: SubscriptionStatus,
    pub source: SubscriptionSource,
    pub current_period_start: DateTime<Utc>,
    pub current_period_end: DateTime<Utc>,
    pub gateway: Option<Gateway>,
    pub gateway_ref: Option<&'a str>,
    pub price_minor: Option<i64>,
    pub currency: Option<&'a str>,
    pub billing_interval: Option<&'a str>,
    pub trial_ends_at: Option<DateTime<Utc>>,
    pub payment_id: Option<Uuid>,
    pub usage_window_start: DateTime<Utc>,
}

/// A change to a subscription (`None` leaves a column as it is).
#[derive(Default, AsChangeset)]
#[diesel(table_name = subscriptions)]
pub struct Changes {
    pub plan_id: Option<Uuid>,
    pub status: Option<SubscriptionStatus>,
    pub current_period_start: Option<Option<DateTime<Utc>>>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub gateway_item_ref: Option<Option<String>>,
    pub cancelled_at: Option<Option<DateTime<Utc>>>,
    pub cancel_at_period_end: Option<bool>,
    pub pending_plan_id: Option<Option<Uuid>>,
    pub price_minor: Option<Option<i64>>,
    pub currency: Option<Option<String>>,
    pub billing_interval: Option<Option<String>>,
    pub usage_window_start: Option<Option<DateTime<Utc>>>,
    pub usage_count: Option<i32>,
    pub last_event_at: Option<Option<DateTime<Utc>>>,
    pub payment_id: Option<Option<Uuid>>,
    pub trial_ends_at: Option<Option<DateTime<Utc>>>,
}

/// Takes `user`'s subscription lock until the end of the transaction.
pub async fn lock_user(conn: &mut AsyncPgConnection, user: Uuid) -> QueryResult<()> {
    diesel::sql_query(
        "SELECT pg_advisory_xact_lock(hashtextextended('subscriptions:' || $1::text, 0))",
    )
    .bind::<sql_types::Uuid, _>(user)
    .execute(conn)
    .await
    .map(drop)
}

/// `user`'s live subscription (at most one: a unique index).
pub async fn live(
    conn: &mut AsyncPgConnection,
    user: Uuid,
) -> QueryResult<Option<SubscriptionRow>> {
    subscriptions::table
        .filter(subscriptions::user_id.eq(user))
        .filter(subscriptions::status.eq_any(LIVE))
        .select(SubscriptionRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn by_id(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<SubscriptionRow>> {
    subscriptions::table
        .find(id)
        .select(SubscriptionRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn by_ref(
    conn: &mut AsyncPgConnection,
    gateway: Gateway,
    gateway_ref: &str,
) -> QueryResult<Option<SubscriptionRow>> {
    subscriptions::table
        .filter(subscriptions::gateway.eq(gateway))
        .filter(subscriptions::gateway_ref.eq(gateway_ref))
        .select(SubscriptionRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Whether `user` ever had a trial.
pub async fn had_trial(conn: &mut AsyncPgConnection, user: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        subscriptions::table
            .filter(subscriptions::user_id.eq(user))
            .filter(subscriptions::trial_ends_at.is_not_null()),
    ))
    .get_result(conn)
    .await
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    row: &NewSubscription<'_>,
) -> QueryResult<SubscriptionRow> {
    diesel::insert_into(subscriptions::table)
        .values(row)
        .returning(SubscriptionRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    changes: &Changes,
) -> QueryResult<SubscriptionRow> {
    diesel::update(subscriptions::table.find(id))
        .set((changes, subscriptions::updated_at.eq(diesel::dsl::now)))
        .returning(SubscriptionRow::as_returning())
        .get_result(conn)
        .await
}

/// Live subscriptions whose period is over: gift ones and those set to end at period end at
/// once, gateway ones that renew only `grace` later (the gateway reports a renewal shortly
/// after the period ends). Their users, at most `limit`.
pub async fn ended_users(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    grace: chrono::Duration,
    limit: i64,
) -> QueryResult<Vec<Uuid>> {
    subscriptions::table
        .filter(subscriptions::status.eq_any(LIVE))
        .filter(
            subscriptions::current_period_end
                .le(now)
                .and(
                    subscriptions::gateway
                        .is_null()
                        .or(subscriptions::cancel_at_period_end.eq(true)),
                )
                .or(subscriptions::current_period_end.le(now - grace)),
        )
        .select(subscriptions::user_id)
        .limit(limit)
        .load(conn)
        .await
}

/// Records a paid period; `false` when it was recorded before (a replayed delivery).
pub async fn insert_period(
    conn: &mut AsyncPgConnection,
    sub: &SubscriptionRow,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    credits: i64,
    invoice_ref: Option<&str>,
) -> QueryResult<bool> {
    let n = diesel::insert_into(subscription_periods::table)
        .values((
            subscription_periods::subscription_id.eq(sub.id),
            subscription_periods::period_start.eq(start),
            subscription_periods::period_end.eq(end),
            subscription_periods::user_id.eq(sub.user_id),
            subscription_periods::plan_id.eq(sub.plan_id),
            subscription_periods::credits.eq(credits),
            subscription_periods::invoice_ref.eq(invoice_ref),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(n == 1)
}

pub async fn set_period_transaction(
    conn: &mut AsyncPgConnection,
    sub: Uuid,
    start: DateTime<Utc>,
    transaction: Uuid,
) -> QueryResult<()> {
    diesel::update(subscription_periods::table.find((sub, start)))
        .set(subscription_periods::transaction_id.eq(transaction))
        .execute(conn)
        .await
        .map(drop)
}

/// How many paid periods a subscription has had.
pub async fn period_count(conn: &mut AsyncPgConnection, sub: Uuid) -> QueryResult<i64> {
    subscription_periods::table
        .filter(subscription_periods::subscription_id.eq(sub))
        .count()
        .get_result(conn)
        .await
}
