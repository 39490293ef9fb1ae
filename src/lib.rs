//! Easel: a GraphQL API server for AI image-generation apps.
//!
//! Shared machinery lives in [`db`], [`graphql`] and [`http`]; each capability owns a folder
//! (`model.rs` SQL, `service.rs` rules, `graphql.rs` API).

pub mod accounts;
pub mod audit;
pub mod config;
pub mod credits;
pub mod db;
pub mod enums;
pub mod error;
pub mod events;
pub mod generation;
pub mod graphql;
pub mod http;
pub mod outbox;
pub mod payments;
pub mod ratelimit;
pub mod server;
pub mod storage;

use std::sync::Arc;

use accounts::tokens::Keys;
use config::{Config, SmsSender};
use db::DbPool;
use outbox::{HttpSmsSender, LogSender, MessageSender};

/// Process-wide state shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: DbPool,
    /// Signing keys for access tokens and one-time codes.
    pub keys: Arc<Keys>,
    /// Where outbox messages are delivered.
    pub sender: Arc<dyn MessageSender>,
    /// Wakes the outbox delivery task when a message was queued.
    pub outbox_wakeup: Arc<tokio::sync::Notify>,
    /// Committed events from every server process (fed by one LISTEN connection).
    pub events: events::EventHub,
    /// The database this process uses (the event listener opens its own connection).
    pub db_url: Arc<str>,
    /// The enabled payment gateways.
    pub gateways: Arc<payments::service::Gateways>,
    /// Where images live.
    pub media: storage::MediaStore,
    /// The image provider workers render with.
    pub provider: Arc<dyn generation::providers::ImageProvider>,
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
        Ok(AppState {
            gateways: payments::service::shared(&config),
            media: storage::MediaStore::local(
                &config.data_dir.join("media"),
                &format!("{}/media", config.public_url),
            )?,
            provider: generation::providers::from_config(&config),
            config: Arc::new(config),
            pool,
            keys: Arc::new(keys),
            sender,
            outbox_wakeup: Arc::new(tokio::sync::Notify::new()),
            events: events::EventHub::new(),
            db_url: Arc::from(db_url),
        })
    }

    /// Replaces the message sender (tests, embedding).
    pub fn with_sender(mut self, sender: Arc<dyn MessageSender>) -> Self {
        self.sender = sender;
        self
    }
}
