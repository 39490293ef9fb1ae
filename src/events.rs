//! Events other processes must hear about (balances now, job statuses later). A change
//! writes `pg_notify` on its own connection inside its own transaction, so subscribers only
//! see committed state, on every server process. Each process holds ONE listening connection
//! (reconnecting with backoff) that feeds a broadcast hub; subscription streams filter it.

use std::{sync::Arc, time::Duration};

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

/// The PostgreSQL channel every event travels on.
pub const CHANNEL: &str = "easel_events";

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
}

/// Queues `event` for delivery when the surrounding transaction commits.
pub async fn notify(conn: &mut AsyncPgConnection, event: &Event) -> diesel::QueryResult<()> {
    let payload = serde_json::to_string(event).expect("events serialise");
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
    /// Set once the listener is subscribed (tests wait for it).
    ready: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new()
    }
}

impl EventHub {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        EventHub {
            tx,
            ready: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }

    /// A receiver of every event from now on. A receiver that falls more than 4096 events
    /// behind gets `Lagged` and must end its stream rather than silently miss events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Changes each time the LISTEN connection goes down or comes (back) up: after a change
    /// to up, whoever keeps state fed by events reloads it (events sent while down are lost).
    pub fn connections(&self) -> tokio::sync::watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// Resolves once the LISTEN connection is up.
    pub async fn listening(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
    }

    /// Runs the LISTEN connection until the process ends, reconnecting with backoff.
    pub fn spawn_listener(&self, url: String) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match hub.listen(&url).await {
                    Ok(()) => backoff = Duration::from_millis(200),
                    Err(e) => {
                        tracing::warn!(error = %e, "event listener lost its connection; reconnecting")
                    }
                }
                hub.ready.send_replace(false);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        })
    }

    async fn listen(&self, url: &str) -> anyhow::Result<()> {
        let mut conn = AsyncPgConnection::establish(url).await?;
        diesel::sql_query(format!("LISTEN {CHANNEL}"))
            .execute(&mut conn)
            .await?;
        self.ready.send_replace(true);
        let mut stream = std::pin::pin!(conn.notifications_stream());
        while let Some(n) = stream.next().await {
            let n = n?;
            match serde_json::from_str::<Event>(&n.payload) {
                Ok(event) => {
                    let _ = self.tx.send(event);
                }
                Err(e) => tracing::warn!(error = %e, payload = %n.payload, "unreadable event"),
            }
        }
        Ok(())
    }
}
