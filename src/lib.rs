//! Easel: a GraphQL API server for AI image-generation apps.
//!
//! Shared machinery lives in [`db`], [`graphql`] and [`http`]; each capability owns a folder
//! (`model.rs` SQL, `service.rs` rules, `graphql.rs` API).

pub mod accounts;
pub mod config;
pub mod db;
pub mod enums;
pub mod error;
pub mod graphql;
pub mod http;
pub mod server;

use std::sync::Arc;

use config::Config;
use db::DbPool;

/// Process-wide state shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: DbPool,
}

impl AppState {
    pub fn new(config: Config, pool: DbPool) -> Self {
        AppState {
            config: Arc::new(config),
            pool,
        }
    }
}
