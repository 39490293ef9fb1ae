//! The `easel` command: `serve` (default), `migrate`, `schema`, `create-admin`, and `bench`
//! when built with the `bench` feature.

use clap::{Parser, Subcommand};
use easel::{config::Config, server};

/// mimalloc instead of glibc malloc: allocation-heavy GraphQL responses (a feed page builds
/// hundreds of small values) spent about a third of the server's CPU in malloc/free.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Easel: a GraphQL API server for AI image-generation apps.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (the default). Without DATABASE_URL it manages its own PostgreSQL.
    Serve,
    /// Run generation workers only (EASEL_WORKERS of them), without the HTTP server.
    Worker,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL) to stdout.
    Schema,
    /// Measure a capability (seeds its data set in the configured database first).
    #[cfg(feature = "bench")]
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
    /// Make an account an admin (creating it when missing). A new email account takes its
    /// password from EASEL_ADMIN_PASSWORD.
    CreateAdmin {
        /// Phone number of the account (signs in with one-time codes).
        #[arg(long, conflicts_with = "email", required_unless_present = "email")]
        phone: Option<String>,
        /// Email of the account.
        #[arg(long)]
        email: Option<String>,
    },
}

#[cfg(feature = "bench")]
#[derive(Subcommand)]
enum Bench {
    /// `galleryFeed` over HTTP at a fixed concurrency, beside pgbench running its SQL.
    Gallery {
        /// Seconds each side runs.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Concurrent clients (HTTP clients and pgbench clients alike).
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Characters per feed page.
        #[arg(long, default_value_t = 20)]
        first: i64,
        /// The pgbench binary.
        #[arg(long, default_value = "pgbench")]
        pgbench: String,
        /// pgbench's query protocol (its `-M`): `simple` plans every statement each time, as
        /// the server does for its dynamically built statements; `prepared` plans once.
        #[arg(long, default_value = "simple", value_parser = ["simple", "extended", "prepared"])]
        pgbench_protocol: String,
        /// Also measure the server with these environment variables set (comma-separated
        /// `NAME=value`s; one more row per use), e.g. `--also EASEL_QUERY_PLANNER=false`.
        #[arg(long, value_parser = parse_env_list)]
        also: Vec<Vec<(String, String)>>,
    },
    /// Generation: `generate` over HTTP, jobs completed by workers, and the latency from a
    /// job's commit to its event at many websocket subscribers.
    Generation {
        /// Seconds the `generate` clients run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrent HTTP clients calling `generate`.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Workers draining the queue (default: EASEL_WORKERS).
        #[arg(long)]
        workers: Option<usize>,
        /// Concurrent websocket subscribers.
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        /// Jobs committed while the subscribers watch.
        #[arg(long, default_value_t = 200)]
        events: usize,
        /// Milliseconds between two of those jobs.
        #[arg(long, default_value_t = 50)]
        interval_ms: u64,
        /// Milliseconds between two jobs when all subscribers watch one user (every job is
        /// delivered to every subscriber); default: `--interval-ms` × ⌈subscribers / 1000⌉,
        /// at most as many deliveries per second as 1,000 subscribers at `--interval-ms`.
        #[arg(long)]
        fanout_interval_ms: Option<u64>,
        /// Width and height of the rendered images.
        #[arg(long, default_value_t = 64)]
        size: i32,
    },
    /// Several `easel serve` and `easel worker` processes on one database under mixed
    /// traffic (feed reads, `generate`, job subscriptions): per-process and total
    /// throughput, cross-process event latency, and PostgreSQL's share of the CPU.
    Cluster {
        /// Numbers of API processes, one row each.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
        api: Vec<usize>,
        /// `easel worker` processes.
        #[arg(long, default_value_t = 2)]
        worker_processes: usize,
        /// Workers in each worker process.
        #[arg(long, default_value_t = 2)]
        workers_each: usize,
        /// Seconds each row is measured.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Anonymous clients reading `galleryFeed` back to back.
        #[arg(long, default_value_t = 16)]
        readers: usize,
        /// Users calling `generate` at a steady pace.
        #[arg(long, default_value_t = 20)]
        generators: usize,
        /// Milliseconds between one generator's calls.
        #[arg(long, default_value_t = 500)]
        generate_interval_ms: u64,
        /// Websocket subscribers to `myGenerationJobs` (one user each).
        #[arg(long, default_value_t = 500)]
        subscribers: usize,
    },
}

/// `NAME=value,NAME=value` (the variables of `easel bench gallery --also`).
#[cfg(feature = "bench")]
fn parse_env_list(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                Ok((name.trim().to_string(), value.to_string()))
            }
            _ => Err(format!("`{pair}` is not NAME=value")),
        })
        .collect()
}

/// Raises this process's soft limit on open files to its hard limit: a server holds one
/// descriptor per client connection and websocket, and the usual soft limit (1024) is far
/// below what `EASEL_MAX_CONNECTIONS` allows. Returns the limits now in force (soft, hard;
/// `None` is unlimited).
fn raise_open_files_limit() -> (std::io::Result<()>, Option<u64>, Option<u64>) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = if limit.current == limit.maximum {
        Ok(())
    } else {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )
        .map_err(std::io::Error::from)
    };
    let now = getrlimit(Resource::Nofile);
    (raised, now.current, now.maximum)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Schema) = cli.command {
        print!("{}", easel::schema::sdl());
        return Ok(());
    }
    let config = Config::from_env()?;
    server::init_tracing(&config);
    let serves = matches!(cli.command, None | Some(Command::Serve));
    #[cfg(feature = "bench")]
    let serves = serves || matches!(cli.command, Some(Command::Bench { .. }));
    if serves {
        let (raised, soft, hard) = raise_open_files_limit();
        let show = |l: Option<u64>| l.map_or("unlimited".to_string(), |l| l.to_string());
        match raised {
            Ok(()) => tracing::info!(soft = show(soft), hard = show(hard), "open files limit"),
            Err(e) => tracing::warn!(
                error = %e,
                soft = show(soft),
                hard = show(hard),
                "could not raise the open files limit"
            ),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => server::serve(config).await,
            Command::Worker => server::work(config).await,
            Command::Migrate => {
                let database = server::Database::open(&config).await?;
                database.close().await;
                Ok(())
            }
            Command::CreateAdmin { phone, email } => {
                let database = server::Database::open(&config).await?;
                let result = async {
                    let state = server::app_state(config, &database.url)?;
                    let password = std::env::var("EASEL_ADMIN_PASSWORD").ok();
                    easel::accounts::service::create_admin(
                        &state,
                        phone.as_deref(),
                        email.as_deref(),
                        password.as_deref(),
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message()))
                }
                .await;
                database.close().await;
                let user = result?;
                println!("{} is now an admin", user.id);
                Ok(())
            }
            #[cfg(feature = "bench")]
            Command::Bench {
                what:
                    Bench::Gallery {
                        seconds,
                        concurrency,
                        first,
                        pgbench,
                        pgbench_protocol,
                        also,
                    },
            } => {
                easel::bench::gallery(
                    config,
                    easel::bench::BenchOptions {
                        seconds,
                        concurrency,
                        first,
                        pgbench,
                        pgbench_protocol,
                        variants: also,
                    },
                )
                .await
            }
            #[cfg(feature = "bench")]
            Command::Bench {
                what:
                    Bench::Generation {
                        seconds,
                        concurrency,
                        workers,
                        subscribers,
                        events,
                        interval_ms,
                        fanout_interval_ms,
                        size,
                    },
            } => {
                let workers = workers.unwrap_or(config.workers).max(1);
                easel::bench::generation(
                    config,
                    easel::bench::GenerationOptions {
                        seconds,
                        concurrency,
                        workers,
                        subscribers,
                        events,
                        interval: std::time::Duration::from_millis(interval_ms),
                        fanout_interval: std::time::Duration::from_millis(
                            fanout_interval_ms
                                .unwrap_or(interval_ms * subscribers.div_ceil(1000).max(1) as u64),
                        ),
                        size,
                    },
                )
                .await
            }
            #[cfg(feature = "bench")]
            Command::Bench {
                what:
                    Bench::Cluster {
                        api,
                        worker_processes,
                        workers_each,
                        seconds,
                        readers,
                        generators,
                        generate_interval_ms,
                        subscribers,
                    },
            } => {
                easel::bench::cluster(
                    config,
                    easel::bench::ClusterOptions {
                        api: api.into_iter().map(|p| p.max(1)).collect(),
                        worker_processes: worker_processes.max(1),
                        workers_each: workers_each.max(1),
                        seconds,
                        readers,
                        generators,
                        generate_interval: std::time::Duration::from_millis(generate_interval_ms),
                        subscribers: subscribers.max(generators),
                    },
                )
                .await
            }
            Command::Schema => unreachable!("handled above"),
        }
    });
    // Whatever still runs (a blocking task, a request past the grace period) must not keep
    // a stopping process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}
