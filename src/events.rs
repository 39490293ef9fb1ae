//! Events other processes must hear about (balances, job statuses, revocations). A change
//! writes `pg_notify` on its own connection inside its own transaction, so subscribers only
//! see committed state, on every server process. Each process holds ONE listening connection
//! (reconnecting with backoff) that feeds a broadcast hub; subscription streams filter it.
//!
//! Notifications sent while the listening connection is down are lost: PostgreSQL keeps none
//! for a listener that is gone. So each time the connection is (back) up the hub broadcasts
//! [`Event::Resync`] ahead of every notification of the new connection, and whoever follows
//! state fed by events catches up from the tables (job streams re-read `job_events` after the
//! last sequence they delivered, balance streams re-read the account, the revocation set is
//! reloaded). Anything committed after the `LISTEN` arrives as a notification as well, so a
//! follower skips what it already delivered.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// The PostgreSQL channel every event travels on.
pub const CHANNEL: &str = "easel_events";

/// The first wait before reconnecting, doubled after each failed try up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Something that happened.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A ledger entry changed a user's balance.
    CreditBalance {
        user_id: Uuid,
        balance: i64,
        transaction_id: Uuid,
    },
    /// Session families were revoked (sign-out, refresh-token reuse, a suspended account):
    /// their access tokens stop working on every process.
    SessionsRevoked { user_id: Uuid, families: Vec<Uuid> },
    /// A generation job changed status.
    Job {
        job_id: Uuid,
        user_id: Uuid,
        status: String,
        seq: i64,
    },
    /// Something happened in a chat thread (a message, a job's progress, a rename, ...):
    /// event `seq` of the thread's own sequence (`chat_events`).
    Chat {
        thread_id: Uuid,
        user_id: Uuid,
        seq: i64,
    },
    /// The listening connection is (back) up: notifications sent while it was down were
    /// lost, so followers catch up from the database. Sent by the hub itself, never through
    /// PostgreSQL (it is neither serialised nor read from a payload).
    #[serde(skip)]
    Resync,
}

/// Queues `event` for delivery when the surrounding transaction commits.
pub async fn notify(conn: &mut AsyncPgConnection, event: &Event) -> diesel::QueryResult<()> {
    let payload = serde_json::to_string(event)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(CHANNEL)
        .bind::<Text, _>(payload)
        .execute(conn)
        .await
        .map(|_| ())
}

/// The process-wide fan-out of events.
#[derive(Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Event>,
    /// Whether the listener is subscribed right now (tests and `/readyz` read it).
    ready: Arc<watch::Sender<bool>>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new()
    }
}

/// Marks the hub down when the listener task ends (aborted, or panicked): a process whose
/// listener is gone is not ready.
struct DownOnDrop(Arc<watch::Sender<bool>>);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        self.0.send_replace(false);
    }
}

impl EventHub {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        EventHub {
            tx,
            ready: Arc::new(watch::channel(false).0),
        }
    }

    /// A receiver of every event from now on. A receiver that falls more than 4096 events
    /// behind gets `Lagged` and must end its stream rather than silently miss events. After
    /// an [`Event::Resync`] it must catch up from the database.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Changes each time the LISTEN connection goes down or comes (back) up: after a change
    /// to up, whoever keeps state fed by events reloads it (events sent while down are lost).
    pub fn connections(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// Whether the LISTEN connection is up right now.
    pub fn is_listening(&self) -> bool {
        *self.ready.borrow()
    }

    /// Resolves once the LISTEN connection is up.
    pub async fn listening(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
    }

    /// Runs the LISTEN connection until the process ends, reconnecting with backoff. Losing
    /// the connection is logged once (WARN) and getting it back once (INFO); the failed tries
    /// in between only at DEBUG.
    pub fn spawn_listener(&self, url: String) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        tokio::spawn(async move {
            let _down = DownOnDrop(hub.ready.clone());
            let mut backoff = MIN_BACKOFF;
            // Since when the listener has been down (None: up, or never connected yet).
            let mut down_since: Option<Instant> = None;
            let mut connected_once = false;
            loop {
                match hub.connect(&url).await {
                    Ok(mut conn) => {
                        match down_since.take() {
                            Some(since) => tracing::info!(
                                down_ms = since.elapsed().as_millis() as u64,
                                "event listener reconnected; open subscriptions catch up on what they missed"
                            ),
                            None => tracing::debug!("event listener connected"),
                        }
                        connected_once = true;
                        backoff = MIN_BACKOFF;
                        hub.ready.send_replace(true);
                        // Ahead of every notification of this connection.
                        let _ = hub.tx.send(Event::Resync);
                        let lost = hub.relay(&mut conn).await;
                        hub.ready.send_replace(false);
                        down_since = Some(Instant::now());
                        tracing::warn!(
                            error = %format!("{lost:#}"),
                            "event listener lost its connection; reconnecting (events sent meanwhile are caught up afterwards)"
                        );
                    }
                    Err(e) if down_since.is_none() && !connected_once => {
                        down_since = Some(Instant::now());
                        tracing::warn!(
                            error = %format!("{e:#}"),
                            "event listener cannot connect; retrying"
                        );
                    }
                    Err(e) => {
                        down_since.get_or_insert_with(Instant::now);
                        tracing::debug!(error = %format!("{e:#}"), "event listener still cannot connect");
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        })
    }

    async fn connect(&self, url: &str) -> anyhow::Result<AsyncPgConnection> {
        let mut conn = AsyncPgConnection::establish(url).await?;
        diesel::sql_query(format!("LISTEN {CHANNEL}"))
            .execute(&mut conn)
            .await?;
        Ok(conn)
    }

    /// Feeds the hub from `conn` until the connection fails; returns why it ended.
    async fn relay(&self, conn: &mut AsyncPgConnection) -> anyhow::Error {
        let mut stream = std::pin::pin!(conn.notifications_stream());
        while let Some(n) = stream.next().await {
            let n = match n {
                Ok(n) => n,
                Err(e) => return e.into(),
            };
            match serde_json::from_str::<Event>(&n.payload) {
                Ok(event) => {
                    let _ = self.tx.send(event);
                }
                Err(e) => tracing::warn!(error = %e, payload = %n.payload, "unreadable event"),
            }
        }
        anyhow::anyhow!("the connection closed")
    }
}

/// Runs a read that catches up after [`Event::Resync`]. The database has just come back, so
/// a pooled connection may still be a dead one from before: the read is tried up to five
/// times over about three seconds; the last error is logged and returned.
pub async fn catch_up<T, F, Fut>(mut read: F) -> AppResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = AppResult<T>>,
{
    let mut wait = Duration::from_millis(200);
    let mut tries = 1;
    loop {
        match read().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let why = match &e {
                    AppError::Internal(err) => format!("{err:#}"),
                    other => other.message(),
                };
                if tries >= 5 {
                    tracing::warn!(error = %why, "could not catch up on events after a reconnect");
                    return Err(e);
                }
                tracing::debug!(error = %why, tries, "catching up after a reconnect; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
                tries += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resync_never_travels_through_postgres() {
        assert!(serde_json::to_string(&Event::Resync).is_err());
        assert!(serde_json::from_str::<Event>(r#"{"type":"resync"}"#).is_err());
    }
}
