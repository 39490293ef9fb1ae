//! `easel bench gallery`: seeds a realistic gallery (2,000 users, 50,000 characters,
//! 150,000 images), drives `galleryFeed` over real HTTP at a fixed concurrency, then runs
//! `pgbench` with the same statements at the same concurrency on the same database.
//! A tool, not a test: nothing here asserts a time.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::Context;
use serde_json::json;

use crate::{
    config::Config,
    db,
    gallery::model::{self, FeedFilter, FeedOrder},
    http,
    server::{self, Database},
};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub seconds: u64,
    pub concurrency: usize,
    pub first: i64,
    pub pgbench: String,
}

const FEED: &str = "query Feed($n: Int) { galleryFeed(first: $n) { edges { cursor node { id name styleType likeCount owner { id username displayName } primaryImage { url thumbnailUrl width height } images(first: 4) { id thumbnailUrl } averageRating } } pageInfo { hasNextPage endCursor } } }";

/// Runs the gallery benchmark on the configured database (embedded by default).
pub async fn gallery(config: Config, options: BenchOptions) -> anyhow::Result<()> {
    let database = Database::open(&config).await?;
    let result = run(config, &database.url, &options).await;
    database.close().await;
    result
}

async fn run(mut config: Config, url: &str, o: &BenchOptions) -> anyhow::Result<()> {
    config.db_pool_size = config.db_pool_size.max(o.concurrency);
    let state = server::app_state(config, url)?;
    let mut conn = db::conn(&state.pool)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    let have = model::bench_characters(&mut conn).await?;
    if have < 50_000 {
        println!("seeding 2,000 users, 50,000 characters, 150,000 images ...");
        let started = Instant::now();
        model::bench_seed(&mut conn, 2_000, 50_000).await?;
        println!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    }
    let page = model::feed(
        &mut conn,
        &FeedFilter::default(),
        FeedOrder::Newest,
        false,
        None,
        o.first,
    )
    .await?;
    drop(conn);
    let script = model::bench_pgbench_script(&page, o.first);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = http::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let endpoint = format!("http://{addr}/graphql");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(o.concurrency)
        .build()?;
    let body = json!({ "query": FEED, "variables": { "n": o.first } }).to_string();

    // Warm up connections and caches, and check the answer once.
    let check: serde_json::Value = client
        .post(&endpoint)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await?
        .json()
        .await?;
    let edges = check["data"]["galleryFeed"]["edges"]
        .as_array()
        .with_context(|| format!("unexpected answer: {check}"))?;
    anyhow::ensure!(edges.len() as i64 == o.first, "a short page: {check}");
    drive(
        &client,
        &endpoint,
        &body,
        o.concurrency,
        Duration::from_secs(2),
    )
    .await?;
    let statements_before = state.statements.get();
    let run = drive(
        &client,
        &endpoint,
        &body,
        o.concurrency,
        Duration::from_secs(o.seconds),
    )
    .await?;
    let statements = state.statements.get() - statements_before;
    server.abort();

    let file = std::env::temp_dir().join(format!("easel-bench-{}.sql", std::process::id()));
    std::fs::write(&file, &script)?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let output = tokio::process::Command::new(&o.pgbench)
        .args(["-n", "-c", &o.concurrency.to_string()])
        .args(["-j", &threads.min(o.concurrency).to_string()])
        .args(["-T", &o.seconds.to_string(), "-f"])
        .arg(&file)
        .arg(url)
        .output()
        .await
        .with_context(|| format!("running {}", o.pgbench))?;
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&output.stdout);
    let tps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .with_context(|| {
            format!(
                "no tps in pgbench output:\n{text}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;

    let rps = run.ok as f64 / run.elapsed.as_secs_f64();
    println!();
    println!(
        "galleryFeed(first: {}) with owner, primaryImage, images(first: 4), averageRating; concurrency {}, {} s",
        o.first, o.concurrency, o.seconds
    );
    println!("| what | requests/s | p50 ms | p99 ms | errors | SQL statements/request |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| Easel over HTTP | {rps:.0} | {:.2} | {:.2} | {} | {:.2} |",
        run.p50.as_secs_f64() * 1e3,
        run.p99.as_secs_f64() * 1e3,
        run.errors,
        statements as f64 / run.ok.max(1) as f64
    );
    println!(
        "| pgbench, same {} statements | {tps:.0} | | | | {} |",
        script.lines().count(),
        script.lines().count()
    );
    println!("| Easel / pgbench | {:.2} | | | | |", rps / tps);
    Ok(())
}

struct Run {
    ok: u64,
    errors: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

async fn drive(
    client: &reqwest::Client,
    endpoint: &str,
    body: &str,
    concurrency: usize,
    length: Duration,
) -> anyhow::Result<Run> {
    let started = Instant::now();
    let deadline = started + length;
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let client = client.clone();
        let endpoint = endpoint.to_string();
        let body = body.to_string();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let resp = client
                    .post(&endpoint)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(b) if !b.windows(9).any(|w| w == b"\"errors\":") => {
                            latencies.push(t.elapsed())
                        }
                        _ => errors += 1,
                    },
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    all.sort();
    let at = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Run {
        ok: all.len() as u64,
        errors,
        elapsed,
        p50: at(0.50),
        p99: at(0.99),
    })
}
