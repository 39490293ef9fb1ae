//! Easel: a GraphQL API server for AI image-generation apps.
//!
//! Layers, each using only those below it (the README's Architecture section has the map):
//! the toolkit ([`error`], [`graphql`], [`viewer`], [`db`], [`events`], [`outbox`], ...); the
//! capabilities ([`accounts`], [`credits`], [`payments`], [`growth`], [`gallery`],
//! [`generation`], [`chat`], [`moderation`], [`admin`]), each
//! with `model` (SQL), `service` (rules; what other capabilities call), `graphql` (API) and
//! `loaders`; [`schema`]; [`http`]; [`server`]. [`AppState`] is the composition root.

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod bench;
pub mod chat;
pub mod config;
pub mod credits;
pub mod db;
pub mod enums;
pub mod error;
pub mod events;
pub mod gallery;
pub mod generation;
pub mod graphql;
pub mod growth;
pub mod http;
pub mod idempotency;
pub mod metrics;
pub mod moderation;
pub mod outbox;
pub mod payments;
pub mod ratelimit;
pub mod rights;
pub mod schema;
pub mod server;
pub mod storage;
pub mod viewer;

use std::sync::Arc;

use accounts::tokens::Keys;
use config::{Config, SmsSender};
use db::DbPool;
use outbox::{HttpSmsSender, LogSender, MessageSender, SmtpSender};

/// Process-wide state shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: DbPool,
    /// The replica's pool (`DATABASE_READ_URL`), for reads that may lag; see
    /// [`AppState::read_conn`].
    pub read_pool: Option<DbPool>,
    /// Viewers who wrote through this process lately (they read from the primary).
    pub recent_writers: Arc<db::RecentWriters>,
    /// Signing keys for access tokens and one-time codes.
    pub keys: Arc<Keys>,
    /// Where outbox SMS are delivered.
    pub sender: Arc<dyn MessageSender>,
    /// Where outbox emails are delivered: the SMTP server of `EASEL_SMTP_URL`, else the log.
    pub email_sender: Arc<dyn MessageSender>,
    /// Wakes the outbox delivery task when a message was queued.
    pub outbox_wakeup: Arc<tokio::sync::Notify>,
    /// Committed events from every server process (fed by one LISTEN connection).
    pub events: events::EventHub,
    /// The URL the event listener opens its own (session) connection to: `DATABASE_DIRECT_URL`
    /// when set, else the database the pool uses.
    pub db_url: Arc<str>,
    /// The enabled payment gateways.
    pub gateways: Arc<payments::service::Gateways>,
    /// The image provider workers render with: [`AppState::providers`], which picks each
    /// job's provider and model and falls back in each kind's order.
    pub provider: Arc<dyn generation::providers::ImageProvider>,
    /// The enabled providers (`EASEL_PROVIDERS`): `generate` checks a request's provider and
    /// model against them and plans its job.
    pub providers: Arc<generation::providers::Providers>,
    /// Where images and thumbnails are stored.
    pub media: Arc<storage::MediaStore>,
    /// SQL statements run on the pool (set by [`AppState::with_statements`]).
    pub statements: db::StatementCounter,
    /// Job rows read once per event for all the subscribers that show it.
    pub job_snapshots: Arc<generation::snapshots::JobSnapshots>,
    /// Revoked sessions, whose access tokens are refused.
    pub revocations: Arc<accounts::revocations::Revocations>,
    /// Operations running on websockets, per user (`EASEL_WS_MAX_SUBSCRIPTIONS_PER_USER`).
    pub ws_operations: Arc<http::limits::PerUser>,
    /// This process's Prometheus registry (`GET /metrics`).
    pub metrics: metrics::Metrics,
    /// What happens in every sign-up transaction beyond the account itself (referrals).
    pub sign_up_hook: Arc<dyn accounts::service::SignUpHook>,
}

impl AppState {
    pub fn new(config: Config, pool: DbPool, db_url: &str) -> anyhow::Result<Self> {
        let keys = Keys::from_config(&config)?;
        let sender: Arc<dyn MessageSender> = match &config.sms_sender {
            SmsSender::Log => Arc::new(LogSender),
            SmsSender::Http { url, token } => {
                Arc::new(HttpSmsSender::new(url.clone(), token.clone()))
            }
        };
        let email_sender: Arc<dyn MessageSender> = match &config.email.smtp_url {
            None => {
                if config.env == config::Environment::Production {
                    tracing::warn!(
                        "EASEL_SMTP_URL is not set: emails (verification, password resets, receipts) only reach the log"
                    );
                }
                Arc::new(LogSender)
            }
            Some(url) => {
                let ca = match &config.email.smtp_ca_file {
                    Some(path) => Some(std::fs::read(path).map_err(|e| {
                        anyhow::anyhow!("EASEL_SMTP_CA_FILE {}: {e}", path.display())
                    })?),
                    None => None,
                };
                Arc::new(SmtpSender::new(
                    url,
                    config.email.smtp_password.as_ref(),
                    &config.email.from,
                    ca.as_deref(),
                )?)
            }
        };
        let media_base = if config.media_base_url.is_empty() {
            format!("{}/media", config.public_url)
        } else {
            config.media_base_url.clone()
        };
        let media = storage::MediaStore::from_config(&config, &media_base)?;
        let providers = Arc::new(generation::providers::Providers::from_config(&config));
        Ok(AppState {
            gateways: payments::service::shared(&config),
            provider: providers.clone(),
            providers,
            media: Arc::new(media),
            statements: db::StatementCounter::default(),
            job_snapshots: Arc::default(),
            revocations: Arc::new(accounts::revocations::Revocations::new(
                config.access_token_ttl,
            )),
            ws_operations: Arc::new(http::limits::PerUser::new(
                config.ws_max_subscriptions_per_user,
            )),
            recent_writers: Arc::new(db::RecentWriters::new(config.read_your_writes)),
            config: Arc::new(config),
            pool,
            read_pool: None,
            keys: Arc::new(keys),
            sender,
            email_sender,
            outbox_wakeup: Arc::new(tokio::sync::Notify::new()),
            events: events::EventHub::new(),
            db_url: Arc::from(db_url),
            metrics: metrics::Metrics::new(),
            sign_up_hook: Arc::new(growth::service::Referrals),
        })
    }

    /// Reads that may lag go to `replica`.
    pub fn with_read_pool(mut self, replica: DbPool) -> Self {
        self.read_pool = Some(replica);
        self
    }

    /// A connection for a read that may lag behind the primary by the replication delay: the
    /// replica's, unless `viewer` wrote through this process within
    /// `EASEL_READ_YOUR_WRITES_SECS` (they read their own writes from the primary), or there
    /// is no replica, or it gives no connection in time (then the primary answers, and a
    /// warning is logged).
    pub async fn read_conn(&self, viewer: Option<uuid::Uuid>) -> error::AppResult<db::DbConn> {
        let Some(replica) = &self.read_pool else {
            return db::conn(&self.pool).await;
        };
        if viewer.is_some_and(|v| self.recent_writers.recent(v)) {
            return db::conn(&self.pool).await;
        }
        match db::conn(replica).await {
            Ok(conn) => Ok(conn),
            Err(e) => {
                tracing::warn!(error = %e.log_line(), "the read replica gave no connection; reading from the primary");
                self.metrics.replica_fallback();
                db::conn(&self.pool).await
            }
        }
    }

    /// Uses the statement counter the pool's connections report to.
    pub fn with_statements(mut self, statements: db::StatementCounter) -> Self {
        self.statements = statements;
        self
    }

    /// Replaces the media store (another `object_store` backend, tests).
    pub fn with_media(mut self, media: storage::MediaStore) -> Self {
        self.media = Arc::new(media);
        self
    }

    /// Replaces the SMS sender (tests, embedding).
    pub fn with_sender(mut self, sender: Arc<dyn MessageSender>) -> Self {
        self.sender = sender;
        self
    }
}
