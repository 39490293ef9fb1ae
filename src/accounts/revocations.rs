//! Revoked sessions, so an access token stops working the moment its session is signed out,
//! caught reusing a refresh token, or its account is suspended or banned, rather than when
//! it expires.
//!
//! Access tokens are checked without a database round trip: every process keeps the set of
//! session families revoked within the last access-token lifetime (older ones need no entry:
//! their tokens have expired). A revocation is written to `sessions` and announced with
//! `pg_notify` in the same transaction; every process's event listener feeds it here, and
//! whenever the listener (re)connects the set is reloaded from `sessions`, so a revocation
//! announced while a process was cut off from the database is not missed. Open websockets
//! of a revoked session are closed (see `http::graphql`).

use std::{
    collections::HashMap,
    sync::RwLock,
    time::{Duration, Instant},
};

use diesel_async::AsyncPgConnection;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::events::{Event, EventHub};

/// The revoked session families this process knows of.
pub struct Revocations {
    /// Family → when the entry may be forgotten (its last access token has expired by then).
    families: RwLock<HashMap<Uuid, Instant>>,
    keep: Duration,
    revoked: broadcast::Sender<Uuid>,
    /// Set once the set was first loaded from the database.
    loaded: tokio::sync::watch::Sender<bool>,
}

impl Revocations {
    /// Remembers revocations for `access_ttl` (plus a minute of clock skew).
    pub fn new(access_ttl: Duration) -> Self {
        Revocations {
            families: RwLock::default(),
            keep: access_ttl + Duration::from_secs(60),
            revoked: broadcast::channel(1024).0,
            loaded: tokio::sync::watch::channel(false).0,
        }
    }

    /// Resolves once the revocations were loaded from the database (a serving process waits
    /// for it before it accepts requests).
    pub async fn loaded(&self) {
        let mut rx = self.loaded.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    /// Whether tokens of this session family are refused.
    pub fn is_revoked(&self, family: Uuid) -> bool {
        let families = self.families.read().unwrap_or_else(|e| e.into_inner());
        families
            .get(&family)
            .is_some_and(|until| *until > Instant::now())
    }

    /// Refuses the tokens of these families from now on, and tells open websockets.
    pub fn revoke(&self, families: &[Uuid]) {
        if families.is_empty() {
            return;
        }
        let now = Instant::now();
        {
            let mut map = self.families.write().unwrap_or_else(|e| e.into_inner());
            map.retain(|_, until| *until > now);
            for f in families {
                map.insert(*f, now + self.keep);
            }
        }
        for f in families {
            let _ = self.revoked.send(*f);
        }
    }

    /// Families revoked from now on (a receiver that lags must recheck [`Self::is_revoked`]).
    pub fn subscribe(&self) -> broadcast::Receiver<Uuid> {
        self.revoked.subscribe()
    }

    /// Loads every family revoked within the remembered window from the database.
    pub async fn reload(&self, conn: &mut AsyncPgConnection) -> diesel::QueryResult<usize> {
        let families = super::model::families_revoked_within(conn, self.keep).await?;
        self.revoke(&families);
        self.loaded.send_replace(true);
        Ok(families.len())
    }

    /// Follows revocations announced by every process: reloads from the database each time
    /// the event listener (re)connects, then applies each announcement.
    pub fn spawn_follower(
        self: &std::sync::Arc<Self>,
        hub: &EventHub,
        pool: crate::db::DbPool,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let hub = hub.clone();
        tokio::spawn(async move {
            let mut connected = hub.connections();
            loop {
                // Subscribe first, then reload: nothing announced in between is lost.
                let mut events = hub.subscribe();
                loop {
                    match crate::db::conn(&pool).await {
                        Ok(mut conn) => match this.reload(&mut conn).await {
                            Ok(n) => {
                                tracing::debug!(revoked = n, "revoked sessions loaded");
                                break;
                            }
                            Err(e) => tracing::warn!(error = %e, "loading revoked sessions"),
                        },
                        Err(_) => tracing::warn!("loading revoked sessions: no connection"),
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                loop {
                    tokio::select! {
                        event = events.recv() => match event {
                            Ok(Event::SessionsRevoked { families, .. }) => this.revoke(&families),
                            Ok(_) => {}
                            // Fell behind: start over from the database.
                            Err(broadcast::error::RecvError::Lagged(_)) => break,
                            Err(broadcast::error::RecvError::Closed) => return,
                        },
                        // The listener reconnected: announcements may have been missed.
                        changed = connected.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            break;
                        }
                    }
                }
            }
        })
    }
}

/// Announces revoked families to every process (call inside the revoking transaction).
pub async fn announce(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    families: &[Uuid],
) -> diesel::QueryResult<()> {
    // A notification carries at most 8,000 bytes: 100 ids fit easily.
    for chunk in families.chunks(100) {
        crate::events::notify(
            conn,
            &Event::SessionsRevoked {
                user_id,
                families: chunk.to_vec(),
            },
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_families_are_refused_until_their_tokens_expired() {
        let r = Revocations::new(Duration::from_secs(900));
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut rx = r.subscribe();
        r.revoke(&[a]);
        assert!(r.is_revoked(a));
        assert!(!r.is_revoked(b));
        assert_eq!(rx.try_recv().unwrap(), a);

        let short = Revocations {
            keep: Duration::ZERO,
            ..Revocations::new(Duration::ZERO)
        };
        short.revoke(&[a]);
        assert!(
            !short.is_revoked(a),
            "forgotten once every token has expired"
        );
    }
}
