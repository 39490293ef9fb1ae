//! `easel bench generation`: `generate` over HTTP, jobs completed by workers, and the
//! latency from a job's commit to its event at many websocket subscribers. Each HTTP or
//! websocket phase runs against a fresh `easel serve` child process (its peak RSS reported);
//! the clients, the jobs committed for the latency runs and the workers of the drain run in
//! the benchmark process.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use super::{
    count, measure, ms, percentile,
    server::{self as child, ServerEnv, ServerProcess, mib},
};
use crate::{
    config::Config,
    db,
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
    /// Pause between two of those jobs when all subscribers watch one user.
    pub fanout_interval: Duration,
    /// Width and height of the rendered images.
    pub size: i32,
}

/// Websocket connections being opened at once (the others wait): keeps the server's accept
/// queue short while thousands connect.
const CONNECTING: usize = 200;

/// The read buffer of each subscriber's socket. tungstenite's default (128 KiB) is zeroed
/// before every read: with it the benchmark process peaked at 1.4 GiB with 10,000
/// subscribers (250 MiB with this one), and each delivered event cost it a 128 KiB memset,
/// CPU taken from the server on the same cores. An event is a few hundred bytes.
const CLIENT_READ_BUFFER: usize = 4 * 1024;

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
pub(super) async fn generation_users(
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
    // A socket per subscriber in both processes, and the rest (pools, HTTP clients, files).
    let open_files = child::ensure_open_files(o.subscribers as u64 + 1024)?;
    // The bench issues the subscribers' tokens: the child server must accept them.
    let jwt_secret = match &config.jwt_secret {
        Some(s) => secrecy::ExposeSecret::expose_secret(s).to_string(),
        None => format!(
            "{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        ),
    };
    config.jwt_secret = Some(secrecy::SecretString::from(jwt_secret.clone()));
    let log = config.data_dir.join("bench-server.log");
    let mut env = ServerEnv::default();
    env.set("EASEL_DB_POOL_SIZE", config.db_pool_size.max(o.concurrency))
        // The fan-out case watches one user's jobs from every socket: lift the per-user cap.
        .set(
            "EASEL_WS_MAX_SUBSCRIPTIONS_PER_USER",
            config
                .ws_max_subscriptions_per_user
                .max(o.subscribers + o.concurrency),
        )
        .set(
            "EASEL_MAX_CONNECTIONS",
            config.max_connections.max(2 * o.subscribers + 64),
        )
        .set("EASEL_JWT_SECRET", &jwt_secret)
        // Jobs stay queued while the server runs: the workers of the drain run in this process.
        .set("EASEL_WORKERS", 0)
        .set("EASEL_SHUTDOWN_GRACE_SECS", 5);
    config.db_pool_size = config.db_pool_size.max(o.workers + 4);
    let state = server::app_state(config, url)?;
    let mut conn = db::conn(&state.pool)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    let users = generation_users(&mut conn, o.subscribers.max(o.concurrency)).await?;
    let token = |user: uuid::Uuid| {
        let (jwt, _) = state.keys.issue(user, Role::User, uuid::Uuid::now_v7());
        format!("Bearer {jwt}")
    };
    // This process's workers (the drain) follow job events too.
    let listener_task = state.events.spawn_listener(state.db_url.to_string());
    state.events.listening().await;

    println!();
    println!(
        "server: a fresh `easel serve` child process per phase (log: {}), environment: {}",
        log.display(),
        env.describe()
    );
    println!(
        "limits lifted for the benchmark: EASEL_WS_MAX_SUBSCRIPTIONS_PER_USER (every subscriber may be one user), EASEL_MAX_CONNECTIONS (a permit per websocket and HTTP connection); no limit keyed by client IP applies to `generate` or websockets"
    );
    println!(
        "open files limit (soft, both processes): {}",
        open_files.map_or("unlimited".to_string(), |n| n.to_string())
    );

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
    let server = ServerProcess::start(url, &env, &log).await?;
    let enqueue = measure(
        &server,
        &client,
        &requests,
        o.concurrency,
        (Duration::from_secs(1), Duration::from_secs(o.seconds)),
    )
    .await;
    let enqueue_idle = server.idle_rate();
    let enqueue_rss = server.stop().await?;
    let (enqueue, enqueue_statements) = enqueue?;
    drop(client);

    // (c) event latency at `subscribers` websocket subscribers, two ways.
    let subscribers = &users[..o.subscribers];
    let mut shapes = Vec::new();
    for (same_user, interval) in [(false, o.interval), (true, o.fanout_interval)] {
        let server = ServerProcess::start(url, &env, &log).await?;
        let latency =
            event_latency(&state, &server, subscribers, same_user, interval, o, &token).await;
        let idle = server.idle_rate();
        let rss = server.stop().await?;
        shapes.push((latency?, interval, (rss, idle)));
    }

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
    listener_task.abort();

    println!();
    println!(
        "generation: {} users, {} HTTP clients for {} s, {} workers (procedural, zero delay, {}x{} PNG + thumbnail), {} websocket subscribers, {} events",
        users.len(),
        o.concurrency,
        o.seconds,
        o.workers,
        o.size,
        o.size,
        o.subscribers,
        o.events,
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
    let names = [
        "event latency, each subscriber its own user's jobs",
        "event latency, all subscribers on one user's jobs",
    ];
    for (name, (l, interval, _)) in names.iter().zip(&shapes) {
        println!(
            "| {name} | {:.0} deliveries | {:.2} | {:.2} | {} | {} | {} events {} ms apart, max {:.2} ms, {:.1} SQL statements/job |",
            l.delivered as f64 / l.elapsed.as_secs_f64(),
            ms(l.p50),
            ms(l.p99),
            l.delivered,
            l.expected - l.delivered,
            o.events,
            interval.as_millis(),
            ms(l.max),
            l.statements_per_event
        );
    }
    println!();
    println!(
        "server peak RSS: {:.1} MiB (enqueue; idle background {:.1} SQL statements/s, not counted above)",
        mib(enqueue_rss),
        enqueue_idle
    );
    for (name, (_, _, (rss, idle))) in names.iter().zip(&shapes) {
        println!(
            "server peak RSS: {:.1} MiB ({} subscribers, {}; idle background {:.1} SQL statements/s, not counted above)",
            mib(*rss),
            o.subscribers,
            name.trim_start_matches("event latency, "),
            idle
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

/// Opens one `graphql-transport-ws` connection to `server` per entry of `users` (every one
/// as `users[0]` when `same_user`), at most [`CONNECTING`] at a time, each subscribed to
/// `myGenerationJobs`; once the server runs all those subscriptions, commits `o.events` jobs
/// `interval` apart through `generate` in this process (round robin over the users) and
/// measures, for every delivery, the time from the job's commit (the instant the committing
/// call returned) to the moment the subscriber's socket yielded the message.
async fn event_latency(
    state: &crate::AppState,
    server: &ServerProcess,
    users: &[uuid::Uuid],
    same_user: bool,
    interval: Duration,
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
    // Each subscriber says once whether it subscribed (or why not).
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    let ws_url = format!("ws://{}/graphql/ws", server.addr());
    let connect = Arc::new(tokio::sync::Semaphore::new(CONNECTING));
    let mut clients = Vec::with_capacity(users.len());
    for user in users {
        let who = if same_user { users[0] } else { *user };
        let init = json!({ "authorization": token(who) });
        let url = ws_url.clone();
        let tx = tx.clone();
        let mut ready = Some(ready_tx.clone());
        let connect = connect.clone();
        clients.push(tokio::spawn(async move {
            let result = async {
                let permit = connect.acquire().await?;
                let mut request = url.into_client_request()?;
                request
                    .headers_mut()
                    .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
                let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                    .read_buffer_size(CLIENT_READ_BUFFER);
                let (mut socket, _) =
                    tokio_tungstenite::connect_async_with_config(request, Some(config), false)
                        .await?;
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
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(()));
                }
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
                match ready.take() {
                    Some(ready) => {
                        let _ = ready.send(Err(format!("{e:#}")));
                    }
                    None => eprintln!("subscriber: {e:#}"),
                }
            }
        }));
    }
    drop(tx);
    drop(ready_tx);
    for _ in 0..users.len() {
        let subscribed = ready_rx
            .recv()
            .await
            .context("a subscriber vanished before it subscribed")?;
        if let Err(e) = subscribed {
            for c in &clients {
                c.abort();
            }
            anyhow::bail!("a subscriber failed to subscribe: {e}");
        }
    }
    // The last `subscribe` messages may still be on their way: wait until the server runs
    // every subscription, then a little more for their streams to start listening.
    let waiting = Instant::now();
    loop {
        let running = server.metric("easel_websocket_operations").await?;
        if running >= users.len() as f64 {
            break;
        }
        anyhow::ensure!(
            waiting.elapsed() < Duration::from_secs(60),
            "the server runs {running} subscriptions of {} after 60 s",
            users.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut committed: HashMap<String, Instant> = HashMap::new();
    let server_before = server.reading().await?;
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
        tokio::time::sleep(interval).await;
    }
    // Let the last deliveries arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let elapsed = started.elapsed();
    let statements = state.statements.get() - statements_before
        + server.statements_since(&server_before).await?;
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
