//! Rows and queries of payments and the webhook inbox.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{Gateway, PaymentStatus};
use crate::db::schema::{payment_events, payments};

#[derive(Debug, Clone, Queryable, Selectable, serde::Deserialize)]
#[diesel(table_name = payments, check_for_backend(diesel::pg::Pg))]
pub struct PaymentRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub package_id: Option<Uuid>,
    pub plan_id: Option<Uuid>,
    pub gateway: Gateway,
    pub amount_minor: i64,
    pub currency: String,
    pub status: PaymentStatus,
    pub gateway_ref: Option<String>,
    pub checkout_url: Option<String>,
    pub gateway_data: serde_json::Value,
    pub credits_granted: i64,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// SQL for the JSON of the [`PaymentRow`] whose id is `id_sql` (a column of the enclosing
/// query), for other capabilities' look-ahead plans (a ledger page's payments).
pub fn payment_json(id_sql: &str) -> String {
    static COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        crate::db::select_list(payments::table.select(PaymentRow::as_select()))
    });
    format!(
        "(SELECT row_to_json(p) FROM (SELECT {} FROM payments WHERE payments.id = {id_sql}) p)",
        *COLUMNS
    )
}

#[derive(Insertable)]
#[diesel(table_name = payments)]
pub struct NewPayment<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub package_id: Option<Uuid>,
    pub plan_id: Option<Uuid>,
    pub gateway: Gateway,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub status: PaymentStatus,
    pub gateway_data: serde_json::Value,
    pub idempotency_key: Option<&'a str>,
    pub request_hash: Option<&'a str>,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert(conn: &mut AsyncPgConnection, p: &NewPayment<'_>) -> QueryResult<PaymentRow> {
    diesel::insert_into(payments::table)
        .values(p)
        .returning(PaymentRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn by_id(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<PaymentRow>> {
    payments::table
        .find(id)
        .select(PaymentRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The payments with these ids (one statement, for the loader).
pub async fn by_ids(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<PaymentRow>> {
    payments::table
        .filter(payments::id.eq_any(ids))
        .select(PaymentRow::as_select())
        .load(conn)
        .await
}

pub async fn by_key(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    key: &str,
) -> QueryResult<Option<PaymentRow>> {
    payments::table
        .filter(
            payments::user_id
                .eq(user)
                .and(payments::idempotency_key.eq(key)),
        )
        .select(PaymentRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Locks a payment for the rest of the transaction; by id or by the gateway's reference.
///
/// `FOR NO KEY UPDATE`, not `FOR UPDATE`: recording a webhook event first takes a `KEY SHARE`
/// lock on its payment (the foreign key), and `FOR UPDATE` conflicts with that, so two
/// different events for one payment arriving together would deadlock. Changes of a payment
/// never touch its key.
pub async fn lock(
    conn: &mut AsyncPgConnection,
    gateway: Gateway,
    id: Option<Uuid>,
    gateway_ref: Option<&str>,
) -> QueryResult<Option<PaymentRow>> {
    let base = payments::table
        .filter(payments::gateway.eq(gateway))
        .select(PaymentRow::as_select());
    match (id, gateway_ref) {
        (Some(id), _) => base
            .filter(payments::id.eq(id))
            .for_no_key_update()
            .first(conn)
            .await
            .optional(),
        (None, Some(r)) => base
            .filter(payments::gateway_ref.eq(r))
            .for_no_key_update()
            .first(conn)
            .await
            .optional(),
        (None, None) => Ok(None),
    }
}

pub async fn set_checkout(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    url: &str,
    gateway_ref: Option<&str>,
) -> QueryResult<PaymentRow> {
    diesel::update(payments::table.find(id))
        .set((
            payments::checkout_url.eq(url),
            payments::gateway_ref.eq(gateway_ref),
        ))
        .returning(PaymentRow::as_returning())
        .get_result(conn)
        .await
}

/// Moves a pending payment to `status`; false if it was no longer pending.
pub async fn settle(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    status: PaymentStatus,
    credits_granted: i64,
    note: Option<serde_json::Value>,
) -> QueryResult<bool> {
    let paid_at = (status == PaymentStatus::Completed).then(Utc::now);
    let n = diesel::update(
        payments::table
            .find(id)
            .filter(payments::status.eq(PaymentStatus::Pending)),
    )
    .set((
        payments::status.eq(status),
        payments::credits_granted.eq(credits_granted),
        payments::paid_at.eq(paid_at),
        payments::gateway_data.eq(
            diesel::dsl::sql::<diesel::sql_types::Jsonb>("gateway_data || ")
                .bind::<diesel::sql_types::Jsonb, _>(note.unwrap_or_else(|| serde_json::json!({}))),
        ),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Expires pending payments past their time; returns how many.
pub async fn expire_overdue(conn: &mut AsyncPgConnection) -> QueryResult<usize> {
    diesel::update(
        payments::table
            .filter(payments::status.eq(PaymentStatus::Pending))
            .filter(payments::expires_at.lt(diesel::dsl::now)),
    )
    .set(payments::status.eq(PaymentStatus::Expired))
    .execute(conn)
    .await
}

/// A user's payments, newest first, after the keyset (created_at, id).
pub async fn list(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<PaymentRow>> {
    let mut q = payments::table
        .filter(payments::user_id.eq(user))
        .select(PaymentRow::as_select())
        .order((payments::created_at.desc(), payments::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some((at, id)) = after {
        q = q.filter(
            payments::created_at
                .lt(at)
                .or(payments::created_at.eq(at).and(payments::id.lt(id))),
        );
    }
    q.load(conn).await
}

/// Records a webhook event; `false` if this gateway event was seen before (a replay).
pub async fn record_event(
    conn: &mut AsyncPgConnection,
    gateway: Gateway,
    event_id: &str,
    payment: Option<Uuid>,
    payload: &serde_json::Value,
) -> QueryResult<bool> {
    let n = diesel::insert_into(payment_events::table)
        .values((
            payment_events::id.eq(Uuid::now_v7()),
            payment_events::gateway.eq(gateway),
            payment_events::event_id.eq(event_id),
            payment_events::payment_id.eq(payment),
            payment_events::payload.eq(payload),
        ))
        .on_conflict((payment_events::gateway, payment_events::event_id))
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(n == 1)
}

pub async fn finish_event(
    conn: &mut AsyncPgConnection,
    gateway: Gateway,
    event_id: &str,
    payment: Option<Uuid>,
    error: Option<&str>,
) -> QueryResult<()> {
    diesel::update(
        payment_events::table
            .filter(payment_events::gateway.eq(gateway))
            .filter(payment_events::event_id.eq(event_id)),
    )
    .set((
        payment_events::processed_at.eq(diesel::dsl::now),
        payment_events::payment_id.eq(payment),
        payment_events::processing_error.eq(error),
    ))
    .execute(conn)
    .await
    .map(|_| ())
}
