//! The outbox: messages (one-time codes by SMS, emails) are written in the same transaction as
//! the change that causes them, then delivered by a background task through a
//! [`MessageSender`], with retries and backoff. Delivery is at least once; the message id
//! travels as an idempotency key so a gateway can drop duplicates.

pub mod email;
pub mod sender;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

pub use email::SmtpSender;
pub use sender::{ChannelRouter, HttpSmsSender, LogSender, MemorySender, MessageSender, SendError};

use crate::{
    db::{self, DbPool, schema::outbox_messages},
    error::AppResult,
};

/// A message to deliver.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox_messages, check_for_backend(diesel::pg::Pg))]
pub struct OutboxMessage {
    pub id: Uuid,
    pub channel: String,
    pub destination: String,
    pub template: String,
    /// The subject line of an email (none for SMS).
    pub subject: Option<String>,
    pub body: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// Gives up on a message after this many tries.
pub const MAX_ATTEMPTS: i32 = 6;
const LEASE_SECS: i64 = 60;
const REDACTED: &str = "[delivered]";

/// Queues an SMS (call inside the transaction that causes it).
pub async fn enqueue_sms(
    conn: &mut AsyncPgConnection,
    destination: &str,
    template: &str,
    body: &str,
) -> QueryResult<Uuid> {
    enqueue(conn, "sms", destination, template, None, body).await
}

/// Queues a plain-text email (call inside the transaction that causes it). `template` names
/// what it is (`password_reset`, `payment_receipt`, ...) for the logs and metrics.
pub async fn enqueue_email(
    conn: &mut AsyncPgConnection,
    to: &str,
    template: &str,
    subject: &str,
    body: &str,
) -> QueryResult<Uuid> {
    enqueue(conn, "email", to, template, Some(subject), body).await
}

async fn enqueue(
    conn: &mut AsyncPgConnection,
    channel: &str,
    destination: &str,
    template: &str,
    subject: Option<&str>,
    body: &str,
) -> QueryResult<Uuid> {
    let id = Uuid::now_v7();
    diesel::insert_into(outbox_messages::table)
        .values((
            outbox_messages::id.eq(id),
            outbox_messages::channel.eq(channel),
            outbox_messages::destination.eq(destination),
            outbox_messages::template.eq(template),
            outbox_messages::subject.eq(subject),
            outbox_messages::body.eq(body),
        ))
        .execute(conn)
        .await?;
    Ok(id)
}

/// Claims up to `limit` due messages, leasing them for a minute so that no other process
/// sends them meanwhile (a crashed sender's lease simply runs out).
async fn claim_due(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<OutboxMessage>> {
    use diesel_async::AsyncConnection;
    conn.transaction(async |conn| {
        let due: Vec<Uuid> = outbox_messages::table
            .filter(outbox_messages::status.eq("pending"))
            .filter(outbox_messages::next_attempt_at.le(diesel::dsl::now))
            .order(outbox_messages::next_attempt_at.asc())
            .limit(limit)
            .select(outbox_messages::id)
            .for_update()
            .skip_locked()
            .load(conn)
            .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        diesel::update(outbox_messages::table.filter(outbox_messages::id.eq_any(&due)))
            .set((
                outbox_messages::next_attempt_at
                    .eq(Utc::now() + chrono::Duration::seconds(LEASE_SECS)),
                outbox_messages::attempts.eq(outbox_messages::attempts + 1),
            ))
            .returning(OutboxMessage::as_returning())
            .get_results(conn)
            .await
    })
    .await
}

async fn mark_sent(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    // The body of a one-time code is dropped once delivered: the database keeps no usable code.
    diesel::update(outbox_messages::table.find(id))
        .set((
            outbox_messages::status.eq("sent"),
            outbox_messages::sent_at.eq(diesel::dsl::now),
            outbox_messages::body.eq(REDACTED),
            outbox_messages::last_error.eq(None::<String>),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

async fn mark_failed(
    conn: &mut AsyncPgConnection,
    msg: &OutboxMessage,
    error: &str,
    permanent: bool,
) -> QueryResult<()> {
    let give_up = permanent || msg.attempts >= MAX_ATTEMPTS;
    let backoff = 2i64.pow(msg.attempts.clamp(0, 10) as u32).min(600);
    diesel::update(outbox_messages::table.find(msg.id))
        .set((
            outbox_messages::status.eq(if give_up { "failed" } else { "pending" }),
            outbox_messages::last_error.eq(error.chars().take(500).collect::<String>()),
            outbox_messages::next_attempt_at.eq(Utc::now() + chrono::Duration::seconds(backoff)),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// One delivery round: claims due messages and sends them. Returns how many were sent.
pub async fn deliver_due(pool: &DbPool, sender: &dyn MessageSender) -> AppResult<usize> {
    let batch = {
        let mut conn = db::conn(pool).await?;
        claim_due(&mut conn, 20).await?
    };
    let mut sent = 0;
    for msg in batch {
        let outcome = sender.send(&msg).await;
        let mut conn = db::conn(pool).await?;
        match outcome {
            Ok(()) => {
                mark_sent(&mut conn, msg.id).await?;
                sent += 1;
            }
            Err(SendError::Retryable(e)) => {
                tracing::warn!(message_id = %msg.id, attempt = msg.attempts, error = %e, "message not delivered; will retry");
                mark_failed(&mut conn, &msg, &e, false).await?;
            }
            Err(SendError::Permanent(e)) => {
                tracing::error!(message_id = %msg.id, error = %e, "message refused by the gateway; giving up");
                mark_failed(&mut conn, &msg, &e, true).await?;
            }
        }
    }
    Ok(sent)
}

/// Runs delivery rounds until the process ends: at once when woken, else every second.
pub fn spawn_delivery(
    pool: DbPool,
    sender: Arc<dyn MessageSender>,
    wakeup: Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match deliver_due(&pool, sender.as_ref()).await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e.log_line(), "outbox delivery round failed"),
            }
            tokio::select! {
                _ = wakeup.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    })
}
