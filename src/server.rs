//! Start-up and shutdown: the database (given or embedded), migrations, the HTTP server.

use std::{future::Future, net::SocketAddr};

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::{net::TcpListener, sync::watch};

use crate::{
    AppState,
    config::{Config, LogFormat},
    db::{
        self,
        embedded::{ClusterOptions, EmbeddedPostgres, PgBinaries, RunAs},
    },
    http,
};

/// The name of the application database inside the embedded cluster.
pub const EMBEDDED_DATABASE: &str = "easel";

/// The database a process uses: the one `DATABASE_URL` names, or the embedded cluster.
pub struct Database {
    pub url: String,
    /// Where migrations run: `DATABASE_DIRECT_URL` when set (their advisory lock is held for
    /// the session, which a transaction-mode pooler does not keep), else `url`.
    pub direct_url: String,
    embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Resolves the database and brings its schema up to date.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let database = match &config.database_url {
            Some(url) => Database {
                url: url.expose_secret().to_string(),
                direct_url: direct_url(config, url.expose_secret()),
                embedded: None,
            },
            None => Self::start_embedded(config).await?,
        };
        match database.migrate().await {
            Ok(()) => Ok(database),
            Err(e) => {
                database.close().await;
                Err(e)
            }
        }
    }

    async fn start_embedded(config: &Config) -> anyhow::Result<Self> {
        let bins = PgBinaries::discover(config.pg_bin_dir.as_deref())?;
        let run_as = RunAs::for_current_process(&config.pg_user)?;
        let pgdata = config.embedded_pg_dir();
        let pg = tokio::task::spawn_blocking(move || {
            EmbeddedPostgres::start(bins, run_as, &pgdata, &ClusterOptions::default())
        })
        .await??;
        tracing::info!(pgdata = %pg.pgdata().display(), "embedded PostgreSQL running");
        let database = Database {
            url: pg.url(EMBEDDED_DATABASE),
            direct_url: pg.url(EMBEDDED_DATABASE),
            embedded: Some(pg),
        };
        let admin = database
            .embedded
            .as_ref()
            .map(|pg| pg.url("postgres"))
            .unwrap_or_default();
        if let Err(e) = db::create_database(&admin, EMBEDDED_DATABASE, None).await {
            database.close().await;
            return Err(e);
        }
        Ok(database)
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let applied = db::run_migrations(&self.direct_url).await?;
        if applied.is_empty() {
            tracing::info!("database schema is up to date");
        } else {
            tracing::info!(migrations = ?applied, "applied migrations");
        }
        Ok(())
    }

    /// Stops the embedded cluster, if this process manages one.
    pub async fn close(self) {
        if let Some(pg) = self.embedded {
            match tokio::task::spawn_blocking(move || pg.stop()).await {
                Ok(Ok(())) => tracing::info!("embedded PostgreSQL stopped"),
                Ok(Err(e)) => {
                    tracing::error!(error = format!("{e:#}"), "stopping embedded PostgreSQL")
                }
                Err(e) => tracing::error!(error = %e, "stopping embedded PostgreSQL"),
            }
        }
    }
}

/// `easel worker`: runs generation workers (and the reaper) without the HTTP server. On
/// SIGINT/SIGTERM the workers stop claiming, running jobs may finish within
/// `EASEL_SHUTDOWN_GRACE_SECS`, and those still running then go back to the queue.
pub async fn work(config: Config) -> anyhow::Result<()> {
    let stop = shutdown_signal();
    let database = Database::open(&config).await?;
    let n = config.workers.max(1);
    let grace = config.shutdown_grace;
    let state = app_state(config, &database.url)?;
    let listener = state.events.spawn_listener(state.db_url.to_string());
    state.events.listening().await;
    let tasks = [
        listener,
        crate::generation::worker::spawn_reaper(&state),
        state.metrics.follow_listener(&state.events),
    ];
    let http = match state.config.worker_bind {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding EASEL_WORKER_BIND {addr}"))?;
            let bound = listener.local_addr()?;
            let router = http::worker_router(state.clone());
            tracing::info!("worker probes and metrics at http://{bound}/");
            Some(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!(error = %e, "worker HTTP stopped");
                }
            }))
        }
        None => None,
    };
    let workers =
        crate::generation::worker::spawn_workers(&state, state.provider.clone(), n, "worker");
    tracing::info!(
        workers = n,
        provider = state.provider.name(),
        "Easel workers running"
    );
    stop.await;
    tracing::info!("stopping workers: no new jobs; running ones may finish within {grace:?}");
    workers.shutdown(grace).await;
    for t in tasks.into_iter().chain(http) {
        t.abort();
    }
    database.close().await;
    Ok(())
}

/// Builds the shared state over a database URL.
/// `DATABASE_DIRECT_URL` when set, else `url` (the database is reached directly).
fn direct_url(config: &Config, url: &str) -> String {
    match &config.database_direct_url {
        Some(direct) => direct.expose_secret().to_string(),
        None => url.to_string(),
    }
}

pub fn app_state(config: Config, url: &str) -> anyhow::Result<AppState> {
    let statements = db::StatementCounter::default();
    let pool = db::build_counted_pool(
        url,
        config.db_pool_size,
        config.db_pool_timeout,
        config.db_connect_timeout,
        statements.clone(),
    )?;
    let replica = match &config.database_read_url {
        Some(read_url) => Some(db::build_counted_pool(
            read_url.expose_secret(),
            config.db_pool_size,
            config.db_pool_timeout,
            config.db_connect_timeout,
            statements.clone(),
        )?),
        None => None,
    };
    // The LISTEN connection needs a session of its own: never through a transaction pooler.
    let listen_url = direct_url(&config, url);
    let state = AppState::new(config, pool, &listen_url)?.with_statements(statements);
    Ok(match replica {
        Some(replica) => state.with_read_pool(replica),
        None => state,
    })
}

/// `easel serve`: runs until SIGINT/SIGTERM, then, within `EASEL_SHUTDOWN_GRACE_SECS`, drains
/// requests, closes websockets (1001 after completing their operations) and lets running jobs
/// finish (releasing the rest to the queue), and stops the database.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let stop = shutdown_signal();
    let database = Database::open(&config).await?;
    let result = serve_on(config, &database.url, stop).await;
    database.close().await;
    result
}

async fn serve_on(
    config: Config,
    url: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let bind = config.bind;
    let grace = config.shutdown_grace;
    let options = http::serve::ServeOptions::from_config(&config);
    let graphiql = config.graphiql;
    let state = app_state(config, url)?;
    if state.config.metrics
        && state.config.metrics_token.is_none()
        && state.config.env == crate::config::Environment::Production
    {
        tracing::warn!(
            "GET /metrics is open to anyone who can reach this server: set EASEL_METRICS_TOKEN, or keep /metrics off the public proxy"
        );
    }
    let background = spawn_background(&state);
    // No request may be served with a revoked session's token.
    state.revocations.loaded().await;
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    let addr = listener.local_addr()?;
    let base = base_url(addr);
    if graphiql {
        tracing::info!("Easel is ready at {base} (GraphiQL at {base})");
    } else {
        tracing::info!("Easel is ready at {base} (GraphQL at {base}graphql)");
    }
    let (stop, stopping) = watch::channel(false);
    let websockets = http::Websockets::new(state.config.max_connections, stopping.clone());
    let router = http::router_with(state, websockets.clone());
    let mut stopped = stopping.clone();
    let server = tokio::spawn(http::serve::serve(listener, router, options, async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    shutdown.await;
    tracing::info!(
        "shutting down: finishing open requests and running jobs, closing websockets (grace {grace:?})"
    );
    stop.send_replace(true);
    // Requests and websockets drain while the workers finish their jobs, within one grace.
    let http = async {
        let _ = server.await;
        websockets.closed().await;
    };
    let (drained, ()) = tokio::join!(
        tokio::time::timeout(grace, http),
        background.shutdown(grace)
    );
    if drained.is_err() {
        tracing::warn!("requests or websockets still open after {grace:?}; closing them");
    }
    Ok(())
}

/// The background tasks of a serving process.
pub struct Background {
    /// Outbox delivery, clean-up, the event listener, payment expiry, the job reaper.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The in-process generation workers.
    pub workers: crate::generation::worker::Workers,
}

impl Background {
    /// Stops everything at once.
    pub fn abort(&self) {
        self.workers.abort();
        for task in &self.tasks {
            task.abort();
        }
    }

    /// Stops the workers gracefully ([`crate::generation::worker::Workers::shutdown`]), then
    /// the other tasks.
    pub async fn shutdown(self, grace: std::time::Duration) {
        self.workers.shutdown(grace).await;
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The background tasks of a serving process: outbox delivery, rate-limit clean-up, the event
/// listener, payment expiry (with the purge of chat threads deleted long ago), the job reaper
/// the data-export builder and `EASEL_WORKERS` generation workers.
pub fn spawn_background(state: &AppState) -> Background {
    let delivery = crate::outbox::spawn_delivery(
        state.pool.clone(),
        std::sync::Arc::new(crate::outbox::ChannelRouter {
            sms: state.sender.clone(),
            email: state.email_sender.clone(),
        }),
        state.outbox_wakeup.clone(),
    );
    let pool = state.pool.clone();
    let prune = tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every.tick().await;
            if let Ok(mut conn) = pool.get().await {
                let _ = crate::ratelimit::prune(&mut conn).await;
                let _ = crate::gallery::service::prune_view_marks(&mut conn).await;
                let _ = crate::accounts::service::prune_oauth_states(&mut conn).await;
            }
        }
    });
    let follower = state.metrics.follow_listener(&state.events);
    let listener = state.events.spawn_listener(state.db_url.to_string());
    let revocations = state
        .revocations
        .spawn_follower(&state.events, state.pool.clone());
    let app = state.clone();
    let expiry = tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            every.tick().await;
            match crate::payments::service::expire_overdue(&app).await {
                Ok(n) if n > 0 => tracing::info!(expired = n, "expired unpaid payments"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e.log_line(), "expiring payments"),
            }
            match crate::payments::service::end_overdue_subscriptions(&app).await {
                Ok(n) if n > 0 => {
                    tracing::info!(ended = n, "ended subscriptions whose time was up")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e.log_line(), "ending subscriptions"),
            }
            match crate::chat::service::purge_deleted(&app).await {
                Ok(n) if n > 0 => {
                    tracing::info!(purged = n, "purged chat threads deleted long ago")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e.log_line(), "purging deleted chat threads"),
            }
        }
    });
    let tasks = vec![
        delivery,
        prune,
        listener,
        revocations,
        expiry,
        follower,
        crate::generation::worker::spawn_reaper(state),
        crate::rights::service::spawn_sweeper(state),
        crate::rights::export::spawn_exporter(state),
    ];
    let workers = crate::generation::worker::spawn_workers(
        state,
        state.provider.clone(),
        state.config.workers,
        "worker",
    );
    Background { tasks, workers }
}

fn base_url(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let host = if addr.is_ipv6() && !addr.ip().is_unspecified() {
        format!("[{host}]")
    } else {
        host
    };
    format!("http://{host}:{}/", addr.port())
}

/// A future that resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when
/// this is called, not when the future is first polled: a signal that arrives while the
/// process is still starting (the database, the workers) is kept for the shutdown path
/// instead of killing the process with jobs claimed.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut terminate = signal(SignalKind::terminate()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! { () = wait(interrupt.take()) => {}, () = wait(terminate.take()) => {} }
    }
}

/// Installs the log subscriber (pretty or JSON, filtered by `EASEL_LOG`).
pub fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
