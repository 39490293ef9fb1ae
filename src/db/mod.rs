//! Database access: the connection pool, migrations, and the embedded cluster.

pub mod embedded;
mod fragment;
pub mod schema;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use diesel::{Connection, sql_types::Text};
use diesel_async::{
    AsyncPgConnection, RunQueryDsl,
    async_connection_wrapper::AsyncConnectionWrapper,
    pooled_connection::{
        AsyncDieselConnectionManager, ManagerConfig,
        deadpool::{Object, Pool},
    },
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::AppResult;

pub use fragment::{
    Fragment, LiteralLimit, decode_json, json_object, literal_limit, present, select_list,
};

/// The pool of database connections every request draws from.
pub type DbPool = Pool<AsyncPgConnection>;
/// One pooled connection.
pub type DbConn = Object<AsyncPgConnection>;

/// The migrations under `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Counts the SQL statements run on a pool's connections (the pool's own liveness check is
/// not counted): what the statement-count tests and the benchmark read.
#[derive(Debug, Clone, Default)]
pub struct StatementCounter(Arc<AtomicU64>);

impl StatementCounter {
    /// Statements run so far.
    pub fn get(&self) -> u64 {
        AtomicU64::load(&self.0, Ordering::Relaxed)
    }
}

/// The query deadpool's `Verified` recycling runs before handing out a connection.
fn is_pool_ping(query: &dyn diesel::connection::DebugQuery) -> bool {
    query.to_string() == "SELECT $1 -- binds: [1]"
}

/// Builds the pool. `wait` bounds how long a request waits for a free connection, and
/// `connect` how long opening a new one may take; past either the request fails cleanly.
pub fn build_pool(
    url: &str,
    size: usize,
    wait: Duration,
    connect: Duration,
) -> anyhow::Result<DbPool> {
    build_counted_pool(url, size, wait, connect, StatementCounter::default())
}

/// [`build_pool`] whose connections count their statements into `counter`.
pub fn build_counted_pool(
    url: &str,
    size: usize,
    wait: Duration,
    connect: Duration,
    counter: StatementCounter,
) -> anyhow::Result<DbPool> {
    let mut config = ManagerConfig::default();
    // Checking out a connection costs no round trip: a broken connection is detected by the
    // query that hits it (diesel-async marks it broken and the pool drops it).
    config.recycling_method = diesel_async::pooled_connection::RecyclingMethod::Fast;
    config.custom_setup = Box::new(move |url| {
        let counter = counter.clone();
        Box::pin(async move {
            use diesel::connection::{Instrumentation, InstrumentationEvent};
            use diesel_async::AsyncConnection;
            let mut conn = AsyncPgConnection::establish(url).await?;
            let count = move |event: InstrumentationEvent<'_>| {
                if let InstrumentationEvent::StartQuery { query, .. } = event
                    && !is_pool_ping(query)
                {
                    AtomicU64::fetch_add(&counter.0, 1, Ordering::Relaxed);
                }
            };
            fn instrument(f: impl Instrumentation) -> impl Instrumentation {
                f
            }
            conn.set_instrumentation(instrument(count));
            Ok(conn)
        })
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(wait))
        .create_timeout(Some(connect))
        .recycle_timeout(Some(connect))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .context("building the database pool")
}

/// Who wrote recently, in this process: their reads go to the primary for `window` after
/// their last mutation, so they read what they wrote even when the replica lags.
pub struct RecentWriters {
    window: Duration,
    marks: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, std::time::Instant>>,
}

impl RecentWriters {
    /// The most marks kept before expired ones are swept.
    const SWEEP_AT: usize = 10_000;

    pub fn new(window: Duration) -> Self {
        RecentWriters {
            window,
            marks: Default::default(),
        }
    }

    fn marks(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<uuid::Uuid, std::time::Instant>> {
        self.marks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `user` is writing now.
    pub fn mark(&self, user: uuid::Uuid) {
        let mut marks = self.marks();
        if marks.len() >= Self::SWEEP_AT {
            let window = self.window;
            marks.retain(|_, at| at.elapsed() < window);
        }
        marks.insert(user, std::time::Instant::now());
    }

    /// Whether `user` wrote within the window.
    pub fn recent(&self, user: uuid::Uuid) -> bool {
        self.marks()
            .get(&user)
            .is_some_and(|at| at.elapsed() < self.window)
    }
}

/// Takes a connection from the pool, or fails with `Busy` when none frees up in time.
///
/// The pool's checkout future (about 2 KB) is boxed: unboxed it would sit inside every
/// future that awaits a connection, and async-graphql allocates and moves each field's
/// future at the size of the largest field of its type, so one connection-using field made
/// every trivial field of `Character` cost 2 KB.
pub async fn conn(pool: &DbPool) -> AppResult<DbConn> {
    Ok(Box::pin(pool.get()).await?)
}

/// The advisory lock migrations run under (any 64-bit key no other code uses).
const MIGRATION_LOCK: i64 = 0x6561_7365_6c5f_6d69;

/// Applies pending migrations; returns the versions applied now. Processes that start together
/// (API replicas, workers and a migration job during a rollout) take turns on an advisory lock:
/// the first applies what is pending, the others find nothing left to do.
pub async fn run_migrations(url: &str) -> anyhow::Result<Vec<String>> {
    with_sync_connection(url, |conn| {
        let lock = diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"));
        diesel::RunQueryDsl::execute(lock, conn).context("waiting for the migration lock")?;
        let done = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| anyhow::anyhow!(e))
            .map(|done| done.iter().map(|v| v.to_string()).collect());
        // Released with the session too (the connection closes after this).
        let unlock = diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
        let _ = diesel::RunQueryDsl::execute(unlock, conn);
        done
    })
    .await
}

/// Reverts every applied migration, newest first (used by the down/up test).
pub async fn revert_all_migrations(url: &str) -> anyhow::Result<Vec<String>> {
    with_sync_connection(url, |conn| {
        let done = conn
            .revert_all_migrations(MIGRATIONS)
            .map_err(|e| anyhow::anyhow!(e))?;
        Ok(done.iter().map(|v| v.to_string()).collect())
    })
    .await
}

/// Migrations need diesel's synchronous `Connection`: wrap the async one on a blocking thread
/// (no libpq involved).
async fn with_sync_connection<T: Send + 'static>(
    url: &str,
    f: impl FnOnce(&mut AsyncConnectionWrapper<AsyncPgConnection>) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        let mut conn = <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(&url)
            .context("connecting to the database for migrations")?;
        f(&mut conn)
    })
    .await?
}

/// The newest migration version compiled into this binary.
pub fn latest_migration_version() -> String {
    use diesel::migration::MigrationSource;
    let migrations = MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS).unwrap_or_default();
    migrations
        .iter()
        .map(|m| m.name().version().to_string())
        .max()
        .unwrap_or_default()
}

#[derive(diesel::QueryableByName)]
struct Version {
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    version: Option<String>,
}

/// The newest migration version applied to the connected database.
pub async fn applied_migration_version(
    conn: &mut AsyncPgConnection,
) -> diesel::QueryResult<Option<String>> {
    let row: Version =
        diesel::sql_query("SELECT max(version) AS version FROM __diesel_schema_migrations")
            .get_result(conn)
            .await?;
    Ok(row.version)
}

#[derive(diesel::QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

/// Creates `name` on the server behind `admin_url` unless it exists, optionally as a copy
/// of `template`.
pub async fn create_database(
    admin_url: &str,
    name: &str,
    template: Option<&str>,
) -> anyhow::Result<bool> {
    use diesel_async::AsyncConnection;
    let mut conn = AsyncPgConnection::establish(admin_url)
        .await
        .context("connecting to PostgreSQL")?;
    let found: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<Text, _>(name)
            .get_result(&mut conn)
            .await?;
    if found.exists {
        return Ok(false);
    }
    let mut sql = format!("CREATE DATABASE {}", quote_ident(name));
    if let Some(t) = template {
        sql.push_str(&format!(" TEMPLATE {}", quote_ident(t)));
    }
    diesel::sql_query(sql).execute(&mut conn).await?;
    Ok(true)
}

/// Quotes an SQL identifier (database names are not bindable parameters).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
