//! The `easel` command: `serve` (default), `migrate`, `schema`, `create-admin`, `bench`.

use clap::{Parser, Subcommand};
use easel::{config::Config, server};

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
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Schema) = cli.command {
        print!("{}", easel::graphql::sdl());
        return Ok(());
    }
    let config = Config::from_env()?;
    server::init_tracing(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
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
            Command::Bench {
                what:
                    Bench::Gallery {
                        seconds,
                        concurrency,
                        first,
                        pgbench,
                    },
            } => {
                easel::bench::gallery(
                    config,
                    easel::bench::BenchOptions {
                        seconds,
                        concurrency,
                        first,
                        pgbench,
                    },
                )
                .await
            }
            Command::Schema => unreachable!("handled above"),
        }
    })
}
