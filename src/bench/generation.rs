//! `easel bench generation`: `generate` over HTTP, jobs completed by workers, and the
//! latency from a job's commit to its event at many websocket subscribers.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use super::{count, measure, ms, percentile};
use crate::{
    config::Config,
    db, http,
    server::{self, Database},
};

/// What `easel bench generation` measures.
#[derive(Debug, Clone)]
pub struct GenerationOptions {
    /// Seconds the enqueue run lasts.
    pub seconds: u64,
    /// Concurrent HTTP clients calling `generate`.
    pub concurrency: usize,
    /// Workers draining the queue (the procedural provider at zero delay).
    pub workers: usize,
    /// Concurrent websocket subscribers.
    pub subscribers: usize,
    /// Jobs committed while the subscribers watch (one event each).
    pub events: usize,
    /// Pause between two of those jobs.
    pub interval: Duration,
    /// Width and height of the rendered images.
    pub size: i32,
}

const GENERATE: &str =
    "mutation Gen($input: GenerateInput!) { generate(input: $input) { id status costCredits } }";
const MY_JOBS: &str = "subscription { myGenerationJobs { id status } }";

#[derive(diesel::QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: uuid::Uuid,
}

/// Runs the generation benchmark on the configured database (embedded by default).
pub async fn generation(config: Config, options: GenerationOptions) -> anyhow::Result<()> {
    let database = Database::open(&config).await?;
    let result = run_generation(config, &database.url, &options).await;
    database.close().await;
    result
}

/// Users `GENBENCH1..n`, each with a credit account holding a billion credits (written with
/// its ledger row, so the ledger invariant holds).
async fn generation_users(
    conn: &mut diesel_async::AsyncPgConnection,
    n: usize,
) -> anyhow::Result<Vec<uuid::Uuid>> {
    use diesel_async::RunQueryDsl;
    let statements = [
        format!(
            "INSERT INTO users (id, phone, username, referral_code) \
             SELECT gen_random_uuid(), '+1888' || lpad(g::text, 8, '0'), 'genbench_' || g, \
                    'GENBENCH' || g \
             FROM generate_series(1, {n}) g ON CONFLICT DO NOTHING"
        ),
        "WITH a AS (INSERT INTO credit_accounts (user_id, balance, total_earned, last_transaction_at) \
                    SELECT id, 1000000000, 1000000000, now() FROM users \
                    WHERE referral_code LIKE 'GENBENCH%' ON CONFLICT DO NOTHING RETURNING user_id) \
         INSERT INTO credit_transactions (id, user_id, kind, amount, balance_after, description) \
         SELECT gen_random_uuid(), user_id, 'signup_bonus', 1000000000, 1000000000, 'Benchmark credits' \
         FROM a"
            .to_string(),
        // The benchmark calls `generate` far faster than a person could.
        "UPDATE operation_prices SET per_minute_limit = NULL, daily_limit = NULL \
         WHERE operation = 'generate.character'"
            .to_string(),
    ];
    for sql in statements {
        diesel::sql_query(sql).execute(conn).await?;
    }
    let rows: Vec<IdRow> = diesel::sql_query(format!(
        "SELECT id FROM users WHERE referral_code LIKE 'GENBENCH%' \
         ORDER BY substr(referral_code, 9)::int LIMIT {n}"
    ))
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

async fn run_generation(
    mut config: Config,
    url: &str,
    o: &GenerationOptions,
) -> anyhow::Result<()> {
    use crate::{
        accounts::Role,
        generation::{providers::Procedural, worker},
    };
    config.db_pool_size = config.db_pool_size.max(o.concurrency).max(o.workers + 4);
    // The fan-out case watches one user's jobs from every socket: lift the per-user cap.
    config.ws_max_subscriptions_per_user = config
        .ws_max_subscriptions_per_user
        .max(o.subscribers + o.concurrency);
    config.max_connections = config.max_connections.max(2 * o.subscribers + 64);
    let state = server::app_state(config, url)?;
    let mut conn = db::conn(&state.pool)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    let users = generation_users(&mut conn, o.subscribers.max(o.concurrency)).await?;
    let token = |user: uuid::Uuid| {
        let (jwt, _) = state.keys.issue(user, Role::User, uuid::Uuid::now_v7());
        format!("Bearer {jwt}")
    };

    let listener_task = state.events.spawn_listener(state.db_url.to_string());
    state.events.listening().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(http::serve::serve(
        listener,
        http::router(state.clone()),
        http::serve::ServeOptions::from_config(&state.config),
        std::future::pending(),
    ));
    let endpoint = format!("http://{addr}/graphql");

    // (a) `generate` over HTTP, no workers running.
    let input = json!({
        "kind": "CHARACTER_GENERATION",
        "prompt": "a lighthouse at dusk, benchmark",
        "params": { "width": o.size, "height": o.size, "steps": 20 },
    });
    let body = json!({ "query": GENERATE, "variables": { "input": input } }).to_string();
    let requests: Vec<(String, Option<String>)> = users
        .iter()
        .take(o.concurrency)
        .map(|u| (body.clone(), Some(token(*u))))
        .collect();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(o.concurrency)
        .build()?;
    let (enqueue, enqueue_statements) = measure(
        &state,
        &client,
        &endpoint,
        &requests,
        o.concurrency,
        (Duration::from_secs(1), Duration::from_secs(o.seconds)),
    )
    .await?;

    // (c) event latency at `subscribers` websocket subscribers, two ways.
    let ws_url = format!("ws://{addr}/graphql/ws");
    let spread = event_latency(&state, &ws_url, &users[..o.subscribers], false, o, &token).await?;
    let fanout = event_latency(&state, &ws_url, &users[..o.subscribers], true, o, &token).await?;

    // (b) drain the queue with `workers` procedural workers at zero delay.
    let queued = count(
        &mut conn,
        "SELECT count(*) AS n FROM generation_jobs WHERE status = 'queued'",
    )
    .await?;
    let done_before = count(
        &mut conn,
        "SELECT count(*) AS n FROM generation_jobs WHERE status IN ('succeeded', 'failed')",
    )
    .await?;
    let started = Instant::now();
    let workers = worker::spawn_workers(
        &state,
        std::sync::Arc::new(Procedural {
            delay: Duration::ZERO,
        }),
        o.workers,
        "bench",
    );
    let cap = Duration::from_secs(o.seconds.max(10) * 6);
    let mut left;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = count(
            &mut conn,
            "SELECT count(*) AS n FROM generation_jobs WHERE status IN ('queued', 'processing')",
        )
        .await?;
        if left == 0 || started.elapsed() > cap {
            break;
        }
    }
    let drain = started.elapsed();
    workers.abort();
    let done = count(
        &mut conn,
        "SELECT count(*) AS n FROM generation_jobs WHERE status IN ('succeeded', 'failed')",
    )
    .await?
        - done_before;
    let failed = count(
        &mut conn,
        "SELECT count(*) AS n FROM generation_jobs WHERE status = 'failed'",
    )
    .await?;
    drop(conn);
    server.abort();
    listener_task.abort();

    println!();
    println!(
        "generation: {} users, {} HTTP clients for {} s, {} workers (procedural, zero delay, {}x{} PNG + thumbnail), {} websocket subscribers, {} events {} ms apart",
        users.len(),
        o.concurrency,
        o.seconds,
        o.workers,
        o.size,
        o.size,
        o.subscribers,
        o.events,
        o.interval.as_millis()
    );
    println!("| what | rate /s | p50 ms | p99 ms | count | errors / missed | notes |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| enqueue: `generate` over HTTP | {:.0} | {:.2} | {:.2} | {} | {} | {:.1} SQL statements/job |",
        enqueue.ok as f64 / enqueue.elapsed.as_secs_f64(),
        ms(enqueue.p50),
        ms(enqueue.p99),
        enqueue.ok,
        enqueue.errors,
        enqueue_statements as f64 / enqueue.ok.max(1) as f64
    );
    println!(
        "| complete: {} workers drain {} queued jobs | {:.0} | | | {} | {} failed, {} left | {:.1} s |",
        o.workers,
        queued,
        done as f64 / drain.as_secs_f64(),
        done,
        failed,
        left,
        drain.as_secs_f64()
    );
    for (name, l) in [
        (
            "event latency, each subscriber its own user's jobs",
            &spread,
        ),
        ("event latency, all subscribers on one user's jobs", &fanout),
    ] {
        println!(
            "| {name} | {:.0} deliveries | {:.2} | {:.2} | {} | {} | max {:.2} ms, {:.1} SQL statements/job |",
            l.delivered as f64 / l.elapsed.as_secs_f64(),
            ms(l.p50),
            ms(l.p99),
            l.delivered,
            l.expected - l.delivered,
            ms(l.max),
            l.statements_per_event
        );
    }
    Ok(())
}

struct Latency {
    delivered: u64,
    expected: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// SQL statements per committed job (its `generate` included).
    statements_per_event: f64,
}

/// Opens one `graphql-transport-ws` connection per entry of `users` (every one as `users[0]`
/// when `same_user`), each subscribed to `myGenerationJobs`, then commits `events` jobs
/// `interval` apart through `generate` in this process (round robin over the users) and
/// measures, for every delivery, the time from the job's commit (the instant the committing
/// call returned) to the moment the subscriber's socket yielded the message.
async fn event_latency(
    state: &crate::AppState,
    ws_url: &str,
    users: &[uuid::Uuid],
    same_user: bool,
    o: &GenerationOptions,
    token: &impl Fn(uuid::Uuid) -> String,
) -> anyhow::Result<Latency> {
    use std::{collections::HashMap, sync::Arc};

    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

    use crate::{
        accounts::{Role, viewer::ViewerUser},
        generation::{
            GenerationKind,
            service::{self, GenerateParams, GenerateRequest},
        },
    };

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let connect = Arc::new(tokio::sync::Semaphore::new(64));
    let mut clients = Vec::with_capacity(users.len());
    for user in users {
        let who = if same_user { users[0] } else { *user };
        let init = json!({ "authorization": token(who) });
        let url = ws_url.to_string();
        let tx = tx.clone();
        let ready = ready_tx.clone();
        let connect = connect.clone();
        clients.push(tokio::spawn(async move {
            let result = async {
                let permit = connect.acquire().await?;
                let mut request = url.into_client_request()?;
                request
                    .headers_mut()
                    .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
                let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
                socket
                    .send(Message::text(
                        json!({ "type": "connection_init", "payload": init }).to_string(),
                    ))
                    .await?;
                match socket.next().await {
                    Some(Ok(Message::Text(t))) if t.contains("connection_ack") => {}
                    other => anyhow::bail!("no connection_ack: {other:?}"),
                }
                socket
                    .send(Message::text(
                        json!({ "id": "1", "type": "subscribe", "payload": { "query": MY_JOBS } })
                            .to_string(),
                    ))
                    .await?;
                drop(permit);
                let _ = ready.send(());
                while let Some(msg) = socket.next().await {
                    let at = Instant::now();
                    match msg? {
                        Message::Text(t) => {
                            if t.contains("\"type\":\"ping\"") {
                                socket
                                    .send(Message::text(json!({ "type": "pong" }).to_string()))
                                    .await?;
                            } else if let Some(rest) = t.split("\"id\":\"").nth(2) {
                                // {"id":"1","type":"next","payload":{"data":{"myGenerationJobs":{"id":"<job>",...
                                let job = rest.split('"').next().unwrap_or_default();
                                let _ = tx.send((job.to_string(), at));
                            }
                        }
                        Message::Close(_) => break,
                        _ => {}
                    }
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                eprintln!("subscriber: {e:#}");
            }
        }));
    }
    drop(tx);
    drop(ready_tx);
    for _ in 0..users.len() {
        ready_rx
            .recv()
            .await
            .context("a subscriber failed to connect")?;
    }
    // The last `subscribe` messages are still being executed by the server.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut committed: HashMap<String, Instant> = HashMap::new();
    let statements_before = state.statements.get();
    let started = Instant::now();
    let mut expected = 0u64;
    for i in 0..o.events {
        let user = if same_user {
            users[0]
        } else {
            users[i % users.len()]
        };
        let viewer = ViewerUser {
            id: user,
            role: Role::User,
            session_id: uuid::Uuid::now_v7(),
            expires_at: i64::MAX,
        };
        let job = service::generate(
            state,
            &viewer,
            GenerateRequest {
                kind: GenerationKind::CharacterGeneration,
                prompt: Some("a lighthouse at dusk, event benchmark".into()),
                negative_prompt: None,
                character_id: None,
                input_image_ids: Vec::new(),
                output_count: None,
                params: GenerateParams {
                    width: Some(o.size),
                    height: Some(o.size),
                    ..GenerateParams::default()
                },
                idempotency_key: None,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
        committed.insert(job.id.to_string(), Instant::now());
        expected += if same_user { users.len() as u64 } else { 1 };
        tokio::time::sleep(o.interval).await;
    }
    // Let the last deliveries arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let elapsed = started.elapsed();
    let statements = state.statements.get() - statements_before;
    for c in &clients {
        c.abort();
    }
    let mut latencies = Vec::new();
    while let Ok((job, at)) = rx.try_recv() {
        if let Some(t) = committed.get(&job) {
            latencies.push(at.saturating_duration_since(*t));
        }
    }
    latencies.sort();
    Ok(Latency {
        delivered: latencies.len() as u64,
        expected,
        elapsed,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
        statements_per_event: statements as f64 / o.events.max(1) as f64,
    })
}
