//! Easel: a GraphQL API server for AI image-generation apps.
//!
//! Shared machinery lives in [`db`], [`graphql`] and [`http`]; each capability owns a folder
//! (`model.rs` SQL, `service.rs` rules, `graphql.rs` API).

pub mod accounts;
pub mod audit;
pub mod bench;
pub mod config;
pub mod credits;
pub mod db;
pub mod enums;
pub mod error;
pub mod gallery;
pub mod graphql;
pub mod http;
pub mod outbox;
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
    /// Where images and thumbnails are stored.
    pub media: Arc<storage::MediaStore>,
    /// SQL statements run on the pool (set by [`AppState::with_statements`]).
    pub statements: db::StatementCounter,
}

impl AppState {
    pub fn new(config: Config, pool: DbPool) -> anyhow::Result<Self> {
        let keys = Keys::from_config(&config)?;
        let sender: Arc<dyn MessageSender> = match &config.sms_sender {
            SmsSender::Log => Arc::new(LogSender),
            SmsSender::Http { url, token } => {
                Arc::new(HttpSmsSender::new(url.clone(), token.clone()))
            }
        };
        let media = storage::MediaStore::local(&config.media_dir(), &config.media_base_url)?;
        Ok(AppState {
            media: Arc::new(media),
            statements: db::StatementCounter::default(),
            config: Arc::new(config),
            pool,
            keys: Arc::new(keys),
            sender,
            outbox_wakeup: Arc::new(tokio::sync::Notify::new()),
        })
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

    /// Replaces the message sender (tests, embedding).
    pub fn with_sender(mut self, sender: Arc<dyn MessageSender>) -> Self {
        self.sender = sender;
        self
    }
}
