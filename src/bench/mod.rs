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
                if post_ok(&client, &endpoint, auth.as_deref(), &body).await {
                    latencies.push(t.elapsed());
                } else {
                    errors += 1;
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

/// The JWT secret the benchmark issues its users' tokens with, which its child servers must
/// accept: the configured one, else a random one set in `config`.
fn shared_jwt_secret(config: &mut crate::config::Config) -> String {
    let secret = match &config.jwt_secret {
        Some(s) => secrecy::ExposeSecret::expose_secret(s).to_string(),
        None => format!(
            "{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        ),
    };
    config.jwt_secret = Some(secrecy::SecretString::from(secret.clone()));
    secret
}

/// A `graphql-transport-ws` client socket of the benchmarks.
type WsSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The read buffer of each benchmark subscriber's socket. tungstenite's default (128 KiB) is
/// zeroed before every read: with it the benchmark process peaked at 1.4 GiB with 10,000
/// subscribers (250 MiB with this one), and each delivered event cost it a 128 KiB memset, CPU
/// taken from the server on the same cores. An event is a few hundred bytes.
const CLIENT_READ_BUFFER: usize = 4 * 1024;

/// Opens a `graphql-transport-ws` connection to `url`, sends `connection_init` with `init`,
/// waits for the ack and subscribes (operation id `1`) to `query`.
async fn subscribe_ws(url: &str, init: serde_json::Value, query: &str) -> anyhow::Result<WsSocket> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(CLIENT_READ_BUFFER);
    let (mut socket, _) =
        tokio_tungstenite::connect_async_with_config(request, Some(config), false).await?;
    let init = serde_json::json!({ "type": "connection_init", "payload": init });
    socket.send(Message::text(init.to_string())).await?;
    match socket.next().await {
        Some(Ok(Message::Text(t))) if t.contains("connection_ack") => {}
        other => anyhow::bail!("no connection_ack: {other:?}"),
    }
    let subscribe =
        serde_json::json!({ "id": "1", "type": "subscribe", "payload": { "query": query } });
    socket.send(Message::text(subscribe.to_string())).await?;
    Ok(socket)
}

/// POSTs a GraphQL `body` (with `Authorization: auth` when given); whether it answered 200
/// without errors.
async fn post_ok(client: &reqwest::Client, endpoint: &str, auth: Option<&str>, body: &str) -> bool {
    let mut req = client
        .post(endpoint)
        .header("content-type", "application/json");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    match req.body(body.to_string()).send().await {
        Ok(r) if r.status().is_success() => r
            .bytes()
            .await
            .is_ok_and(|b| !b.windows(9).any(|w| w == b"\"errors\":")),
        _ => false,
    }
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
