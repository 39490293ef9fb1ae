//! `easel bench`: the benchmarks, built with the `bench` feature
//! (`cargo build --release --features bench`). [`gallery`] seeds a realistic gallery and
//! compares `galleryFeed` over HTTP with `pgbench` running its SQL (the loader path's
//! statements, and one hand-written statement that is the limit); [`generation`] measures
//! `generate`, the workers and the delivery of job events to many websocket subscribers.
//! [`cluster`] runs several API and worker processes on one database under mixed traffic.
//! The server under measurement is `easel serve` in a child process ([`server`]), so that its
//! peak RSS can be reported; the load generators stay in the benchmark process.
//! Tools, not tests: nothing here asserts a time.
#![cfg(feature = "bench")]

mod cluster;
mod gallery;
mod generation;
mod server;

pub use cluster::{ClusterOptions, cluster};
pub use gallery::{BenchOptions, gallery};
pub use generation::{GenerationOptions, generation};

use std::time::{Duration, Instant};

use server::ServerProcess;

/// What a run of HTTP clients measured.
struct Run {
    ok: u64,
    errors: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

/// A warm-up of `warm` (connections, caches), then the measured run of `length` with
/// [`drive_each`] against `server`'s `/graphql`; returns the run and the SQL statements the
/// server ran for it (read from its `/metrics`, its idle background subtracted).
async fn measure(
    server: &ServerProcess,
    client: &reqwest::Client,
    requests: &[(String, Option<String>)],
    concurrency: usize,
    (warm, length): (Duration, Duration),
) -> anyhow::Result<(Run, u64)> {
    let endpoint = format!("http://{}/graphql", server.addr());
    drive_each(client, &endpoint, requests, concurrency, warm).await?;
    let before = server.reading().await?;
    let run = drive_each(client, &endpoint, requests, concurrency, length).await?;
    Ok((run, server.statements_since(&before).await?))
}

/// Runs `concurrency` HTTP clients for `length`, client `i` sending `requests[i % len]` (a
/// body and an optional `Authorization` header) again and again.
async fn drive_each(
    client: &reqwest::Client,
    endpoint: &str,
    requests: &[(String, Option<String>)],
    concurrency: usize,
    length: Duration,
) -> anyhow::Result<Run> {
    let started = Instant::now();
    let deadline = started + length;
    let mut tasks = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let client = client.clone();
        let endpoint = endpoint.to_string();
        let (body, auth) = requests[i % requests.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let mut req = client
                    .post(&endpoint)
                    .header("content-type", "application/json");
                if let Some(a) = &auth {
                    req = req.header("authorization", a);
                }
                let resp = req.body(body.clone()).send().await;
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
    Ok(Run {
        ok: all.len() as u64,
        errors,
        elapsed,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
    })
}

#[derive(diesel::QueryableByName)]
struct CountRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// The `n` a counting query (`SELECT count(*) AS n ...`) answers.
async fn count(conn: &mut diesel_async::AsyncPgConnection, sql: &str) -> anyhow::Result<i64> {
    use diesel_async::RunQueryDsl;
    Ok(diesel::sql_query(sql).get_result::<CountRow>(conn).await?.n)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
