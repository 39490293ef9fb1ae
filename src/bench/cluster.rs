//! `easel bench cluster`: P `easel serve` processes and W `easel worker` processes on one
//! database, driven with mixed traffic from this process: anonymous `galleryFeed` readers,
//! users calling `generate` at a steady pace, and websocket subscribers to `myGenerationJobs`,
//! each kind spread round robin over the API processes. A job is queued on one API process,
//! run by a worker process, and its event reaches a subscriber on (usually) another API
//! process through PostgreSQL's NOTIFY. For each P it prints the throughput of every process
//! and in total, the event latency from the job's completion to the subscriber's socket
//! across processes, and where the CPU went: PostgreSQL, the API processes, the workers and
//! this load generator, as shares of the machine. Tools, not tests: nothing asserts a time.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use serde_json::json;

use super::{
    count,
    gallery::{BenchOptions, FEED, pgbench, pgbench_scratch, seed, seeded_characters},
    generation::generation_users,
    ms, percentile, post_ok,
    server::{ServerEnv, ServerProcess, ensure_open_files},
    shared_jwt_secret, subscribe_ws,
};
use crate::{
    config::Config,
    db,
    server::{self, Database},
};

/// What `easel bench cluster` measures.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The numbers of API processes to run, one table row each (e.g. 1, 2, 4).
    pub api: Vec<usize>,
    /// `easel worker` processes.
    pub worker_processes: usize,
    /// Workers in each worker process (`EASEL_WORKERS`).
    pub workers_each: usize,
    /// Seconds each row is measured.
    pub seconds: u64,
    /// Anonymous HTTP clients reading `galleryFeed(first: 20)` back to back.
    pub readers: usize,
    /// Users calling `generate`, each once per `generate_interval`.
    pub generators: usize,
    /// Pause between one generator's calls.
    pub generate_interval: Duration,
    /// Websocket subscribers to `myGenerationJobs`, one user each (the generators' users
    /// among them).
    pub subscribers: usize,
}

const GENERATE: &str = "mutation Gen($input: GenerateInput!) { generate(input: $input) { id } }";
const MY_JOBS: &str = "subscription { myGenerationJobs { id status completedAt } }";

/// Runs the cluster benchmark on the configured database (embedded by default).
pub async fn cluster(config: Config, options: ClusterOptions) -> anyhow::Result<()> {
    let database = Database::open(&config).await?;
    let result = run(config, &database.url, &options).await;
    database.close().await;
    result
}

/// CPU seconds a process has used (`utime + stime`, and with `children` the `cutime +
/// cstime` of the children it has waited for), from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32, children: bool) -> f64 {
    // Linux reports these in USER_HZ, 100 on every architecture Easel runs on.
    const TICKS: f64 = 100.0;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // `rest` starts at field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    let at = |field: usize| fields.get(field - 3).copied().unwrap_or(0);
    let mut ticks = at(14) + at(15);
    if children {
        ticks += at(16) + at(17);
    }
    ticks as f64 / TICKS
}

/// The whole machine's busy CPU seconds so far (every core; `/proc/stat`'s first line, all
/// but idle and iowait).
fn machine_busy() -> f64 {
    const TICKS: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: u64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .map(|(_, t)| t)
        .sum();
    busy as f64 / TICKS
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// PostgreSQL's CPU seconds so far: the postmaster with the children it reaped, plus every
/// live child (backends, background writer, WAL writer, ...).
fn postgres_cpu(postmaster: u32) -> f64 {
    let mut total = cpu_seconds(postmaster, true);
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if parent_of(pid) == Some(postmaster) {
                total += cpu_seconds(pid, false);
            }
        }
    }
    total
}

#[derive(diesel::QueryableByName)]
struct PidRow {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

/// An `easel worker` child process.
struct WorkerProcess {
    child: tokio::process::Child,
    pid: u32,
    log: PathBuf,
}

impl WorkerProcess {
    async fn start(url: &str, workers: usize, log: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::create(log)?;
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("worker")
            .env("DATABASE_URL", url)
            .env("EASEL_WORKERS", workers.to_string())
            .env("EASEL_PROCEDURAL_DELAY_MS", "0")
            .env("EASEL_SHUTDOWN_GRACE_SECS", "5")
            // Its start is read from its log ("Easel workers running").
            .env("EASEL_LOG", "info")
            .env("EASEL_LOG_FORMAT", "pretty")
            .env("EASEL_DB_POOL_SIZE", (workers + 2).to_string())
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .context("starting `easel worker`")?;
        let pid = child.id().context("the worker exited at once")?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("`easel worker` exited with {status}; see {}", log.display());
            }
            if std::fs::read_to_string(log)?.contains("workers running") {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "`easel worker` did not start in 60 s; see {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(WorkerProcess {
            child,
            pid,
            log: log.to_path_buf(),
        })
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            eprintln!("`easel worker` ({}) killed after 30 s", self.log.display());
            self.child.kill().await?;
        }
        Ok(())
    }
}

/// What one API process's clients got during a row.
#[derive(Default, Clone)]
struct PerServer {
    reads: Vec<Duration>,
    read_errors: u64,
    generates: u64,
    generate_errors: u64,
    /// Event latencies measured by this process's subscribers.
    events: Vec<Duration>,
}

/// One row: P API processes.
struct Row {
    api: usize,
    elapsed: Duration,
    servers: Vec<PerServer>,
    jobs_done: i64,
    queued_after: i64,
    cpu: Cpu,
    cores: f64,
}

/// CPU seconds used during a row, by kind of process.
#[derive(Default)]
struct Cpu {
    postgres: f64,
    api: Vec<f64>,
    workers: Vec<f64>,
    bench: f64,
    /// Every process of the machine (the rest is the benchmark's neighbours).
    machine: f64,
}

/// What every row shares.
struct Setup<'a> {
    state: crate::AppState,
    url: &'a str,
    env: ServerEnv,
    data_dir: PathBuf,
    o: &'a ClusterOptions,
    users: Vec<uuid::Uuid>,
    /// The benchmark database's postmaster (its CPU and its children's are PostgreSQL's).
    postmaster: u32,
    cores: f64,
}

impl Setup<'_> {
    /// An `Authorization` header value for `user` (the child servers share the JWT secret).
    fn token(&self, user: uuid::Uuid) -> String {
        let (jwt, _) =
            self.state
                .keys
                .issue(user, crate::accounts::Role::User, uuid::Uuid::now_v7());
        format!("Bearer {jwt}")
    }
}

impl Cpu {
    /// What the machine's other processes used: the busy time that none of the measured
    /// processes accounts for.
    fn others(&self) -> f64 {
        let ours = self.postgres
            + self.api.iter().sum::<f64>()
            + self.workers.iter().sum::<f64>()
            + self.bench;
        (self.machine - ours).max(0.0)
    }
}

async fn run(mut config: Config, url: &str, o: &ClusterOptions) -> anyhow::Result<()> {
    ensure_open_files((o.subscribers + o.readers + o.generators) as u64 * 2 + 1024)?;
    let jwt_secret = shared_jwt_secret(&mut config);
    let data_dir = config.data_dir.clone();
    let mut env = ServerEnv::default();
    env.set("EASEL_WORKERS", 0)
        .set("EASEL_JWT_SECRET", &jwt_secret)
        .set("EASEL_SHUTDOWN_GRACE_SECS", 5)
        .set(
            "EASEL_MAX_CONNECTIONS",
            config
                .max_connections
                .max(2 * (o.subscribers + o.readers + o.generators) + 64),
        );
    let state = server::app_state(config, url)?;
    let mut conn = db::conn(&state.pool)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    if seeded_characters(&mut conn).await? < 50_000 {
        println!("seeding 2,000 users, 50,000 characters, 150,000 images ...");
        seed(&mut conn, 2_000, 50_000).await?;
    }
    let users = generation_users(&mut conn, o.subscribers.max(o.generators)).await?;
    let backend: PidRow = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query("SELECT pg_backend_pid() AS pid"),
        &mut conn,
    )
    .await?;
    let postmaster = parent_of(backend.pid as u32)
        .filter(|p| *p > 1 && std::path::Path::new(&format!("/proc/{p}")).exists())
        .context("PostgreSQL must run on this machine (its CPU is read from /proc)")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;

    println!();
    println!(
        "cluster: P `easel serve` processes (EASEL_WORKERS=0) and {} `easel worker` processes x {} workers (procedural, zero delay, 64x64 PNG) on one PostgreSQL; {} s per row; {} cores",
        o.worker_processes, o.workers_each, o.seconds, cores
    );
    println!(
        "traffic from this process, round robin over the API processes: {} anonymous readers of galleryFeed(first: 20) back to back, {} users calling `generate` every {} ms each, {} websocket subscribers to myGenerationJobs (one user each; generators call a different API process than their subscriber's)",
        o.readers,
        o.generators,
        o.generate_interval.as_millis(),
        o.subscribers
    );
    println!("server environment: {}", env.describe());

    drop(conn);
    let setup = Setup {
        state,
        url,
        env,
        data_dir,
        o,
        users,
        postmaster,
        cores,
    };
    let mut rows = Vec::new();
    for &p in &o.api {
        let row = run_row(&setup, p).await?;
        print_row(&row, o);
        rows.push(row);
    }
    println!();
    println!(
        "| API processes | feed reads/s | read p99 ms | generate/s | jobs done/s | events/s | event p50 ms | event p99 ms | PostgreSQL CPU | API CPU | worker CPU | load generator CPU | other processes | idle |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        let secs = row.elapsed.as_secs_f64();
        let mut reads: Vec<Duration> = row.servers.iter().flat_map(|s| s.reads.clone()).collect();
        reads.sort();
        let mut events: Vec<Duration> = row.servers.iter().flat_map(|s| s.events.clone()).collect();
        events.sort();
        let share = |cpu: f64| format!("{:.0} %", 100.0 * cpu / (secs * row.cores));
        println!(
            "| {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} |",
            row.api,
            reads.len() as f64 / secs,
            ms(percentile(&reads, 0.99)),
            row.servers.iter().map(|s| s.generates).sum::<u64>() as f64 / secs,
            row.jobs_done as f64 / secs,
            events.len() as f64 / secs,
            ms(percentile(&events, 0.50)),
            ms(percentile(&events, 0.99)),
            share(row.cpu.postgres),
            share(row.cpu.api.iter().sum()),
            share(row.cpu.workers.iter().sum()),
            share(row.cpu.bench),
            share(row.cpu.others()),
            share((secs * row.cores - row.cpu.machine).max(0.0)),
        );
    }
    // The limit for events: transactions that do nothing but NOTIFY a payload of a job
    // event's size, from pgbench, with a listener on the channel (PostgreSQL serialises the
    // commits of notifying transactions on one queue lock).
    let mut listener = {
        use diesel_async::AsyncConnection;
        diesel_async::AsyncPgConnection::establish(url).await?
    };
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("LISTEN easel_bench_ceiling"),
        &mut listener,
    )
    .await?;
    let payload = serde_json::to_string(&crate::events::Event::Job {
        job_id: uuid::Uuid::now_v7(),
        user_id: uuid::Uuid::now_v7(),
        status: "succeeded".into(),
        seq: 123_456,
    })?;
    let ceiling_options = BenchOptions {
        seconds: o.seconds.min(10),
        concurrency: 4,
        first: 0,
        pgbench: "pgbench".into(),
        pgbench_protocol: "prepared".into(),
        variants: Vec::new(),
    };
    let ceiling = pgbench(
        &ceiling_options,
        url,
        &format!("SELECT pg_notify('easel_bench_ceiling', '{payload}');\n"),
        &pgbench_scratch(&setup.data_dir)?,
    )
    .await;
    drop(listener);
    match ceiling {
        Ok(c) => println!(
            "NOTIFY ceiling (pgbench, 4 clients, {} s, one pg_notify of {} bytes per transaction, one listener): {:.0} notifying commits/s, p50 {:.2} ms, p99 {:.2} ms, {} failed",
            ceiling_options.seconds,
            payload.len(),
            c.tps,
            ms(c.p50),
            ms(c.p99),
            c.failed
        ),
        Err(e) => println!("NOTIFY ceiling not measured (pgbench): {e:#}"),
    }
    println!(
        "(CPU: shares of the machine, {cores} cores x the row's seconds; event latency from the job's completedAt, the start of the worker's finishing transaction, to the subscriber's socket)"
    );
    Ok(())
}

async fn run_row(setup: &Setup<'_>, p: usize) -> anyhow::Result<Row> {
    let o = setup.o;
    let mut servers = Vec::with_capacity(p);
    for i in 0..p {
        let log = setup.data_dir.join(format!("bench-cluster-api-{i}.log"));
        let mut env = setup.env.clone();
        env.set(
            "EASEL_DB_POOL_SIZE",
            (o.readers + o.generators).div_ceil(p).clamp(4, 32),
        );
        servers.push(ServerProcess::start(setup.url, &env, &log).await?);
    }
    let mut workers = Vec::with_capacity(o.worker_processes);
    for i in 0..o.worker_processes {
        let log = setup.data_dir.join(format!("bench-cluster-worker-{i}.log"));
        workers.push(WorkerProcess::start(setup.url, o.workers_each, &log).await?);
    }
    let result = drive(setup, &servers, &workers).await;
    for w in workers {
        w.stop().await?;
    }
    for s in servers {
        s.stop().await?;
    }
    result
}

async fn drive(
    setup: &Setup<'_>,
    servers: &[ServerProcess],
    workers: &[WorkerProcess],
) -> anyhow::Result<Row> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let (o, users, postmaster, cores) = (setup.o, &setup.users, setup.postmaster, setup.cores);
    let p = servers.len();
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    // Subscribers: user i on API process i % P.
    let (event_tx, mut event_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Duration)>();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<anyhow::Result<()>>();
    let connecting = Arc::new(tokio::sync::Semaphore::new(100));
    let mut subscribers = Vec::new();
    for (i, user) in users.iter().take(o.subscribers).enumerate() {
        let server = i % p;
        let url = format!("ws://{}/graphql/ws", servers[server].addr());
        let init = json!({ "authorization": setup.token(*user) });
        let (event_tx, ready_tx, measuring, connecting) = (
            event_tx.clone(),
            ready_tx.clone(),
            measuring.clone(),
            connecting.clone(),
        );
        subscribers.push(tokio::spawn(async move {
            let setup = async {
                let _permit = connecting.acquire().await?;
                subscribe_ws(&url, init, MY_JOBS).await
            }
            .await;
            let mut socket = match setup {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            while let Some(Ok(msg)) = socket.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                    continue;
                };
                if v["type"] == "ping" {
                    let _ = socket
                        .send(Message::text(json!({ "type": "pong" }).to_string()))
                        .await;
                    continue;
                }
                let job = &v["payload"]["data"]["myGenerationJobs"];
                if job["status"] != "SUCCEEDED" || !measuring.load(Ordering::Relaxed) {
                    continue;
                }
                // From the job's completion (its finishing transaction, on a worker process)
                // to this socket, on the same machine's clock.
                let Some(done) = job["completedAt"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                else {
                    continue;
                };
                let latency = chrono::Utc::now().signed_duration_since(done);
                let _ = event_tx.send((server, latency.to_std().unwrap_or_default()));
            }
        }));
    }
    drop(ready_tx);
    drop(event_tx);
    for _ in 0..subscribers.len() {
        ready_rx
            .recv()
            .await
            .context("a subscriber vanished")?
            .context("a subscriber failed to subscribe")?;
    }
    // Every server runs its share of the subscriptions.
    let waiting = Instant::now();
    for (i, server) in servers.iter().enumerate() {
        let share = (0..o.subscribers).filter(|n| n % p == i).count() as f64;
        while server.metric("easel_websocket_operations").await? < share {
            anyhow::ensure!(
                waiting.elapsed() < Duration::from_secs(60),
                "the subscriptions did not all start in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(o.readers + o.generators)
        .timeout(Duration::from_secs(30))
        .build()?;
    let feed = json!({ "query": FEED, "variables": { "n": 20 } }).to_string();
    let mut tasks = Vec::new();
    // Readers: reader i on API process i % P.
    for i in 0..o.readers {
        let server = i % p;
        let endpoint = format!("http://{}/graphql", servers[server].addr());
        let (client, feed, measuring, stop) = (
            client.clone(),
            feed.clone(),
            measuring.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut mine = PerServer::default();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = post_ok(&client, &endpoint, None, &feed).await;
                if !measuring.load(Ordering::Relaxed) {
                } else if ok {
                    mine.reads.push(t.elapsed());
                } else {
                    mine.read_errors += 1;
                }
            }
            (server, mine)
        }));
    }
    // Generators: user i on API process (i + 1) % P, so the job's event travels to the
    // subscriber's process through the database.
    for (i, user) in users.iter().take(o.generators).enumerate() {
        let server = (i + 1) % p;
        let endpoint = format!("http://{}/graphql", servers[server].addr());
        let body = json!({ "query": GENERATE, "variables": { "input": {
            "kind": "CHARACTER_GENERATION",
            "prompt": "a lighthouse at dusk, cluster benchmark",
            "params": { "width": 64, "height": 64 },
        }}})
        .to_string();
        let auth = setup.token(*user);
        let (client, measuring, stop, interval) = (
            client.clone(),
            measuring.clone(),
            stop.clone(),
            o.generate_interval,
        );
        tasks.push(tokio::spawn(async move {
            let mut mine = PerServer::default();
            // Spread the generators' calls over the interval.
            tokio::time::sleep(interval * i as u32 / 64).await;
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let ok = post_ok(&client, &endpoint, Some(&auth), &body).await;
                if !measuring.load(Ordering::Relaxed) {
                } else if ok {
                    mine.generates += 1;
                } else {
                    mine.generate_errors += 1;
                }
            }
            (server, mine)
        }));
    }

    let mut conn = db::conn(&setup.state.pool)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    const DONE: &str = "SELECT count(*) AS n FROM generation_jobs WHERE status = 'succeeded'";
    // Warm up (connections, caches, the first jobs through the workers), then measure.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu = |servers: &[ServerProcess], workers: &[WorkerProcess]| Cpu {
        postgres: postgres_cpu(postmaster),
        api: servers.iter().map(|s| cpu_seconds(s.pid(), true)).collect(),
        workers: workers.iter().map(|w| cpu_seconds(w.pid, true)).collect(),
        bench: cpu_seconds(std::process::id(), false),
        machine: machine_busy(),
    };
    let done_before = count(&mut conn, DONE).await?;
    let before = cpu(servers, workers);
    let started = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(o.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let after = cpu(servers, workers);
    let jobs_done = count(&mut conn, DONE).await? - done_before;
    stop.store(true, Ordering::Relaxed);
    let mut per_server = vec![PerServer::default(); p];
    for task in tasks {
        let (server, mine) = task.await?;
        let s = &mut per_server[server];
        s.reads.extend(mine.reads);
        s.read_errors += mine.read_errors;
        s.generates += mine.generates;
        s.generate_errors += mine.generate_errors;
    }
    for s in &subscribers {
        s.abort();
    }
    while let Ok((server, latency)) = event_rx.try_recv() {
        per_server[server].events.push(latency);
    }
    for s in &mut per_server {
        s.reads.sort();
        s.events.sort();
    }
    let queued_after = count(
        &mut conn,
        "SELECT count(*) AS n FROM generation_jobs WHERE status IN ('queued', 'processing')",
    )
    .await?;
    // The workers finish what is queued, so the next row starts from an empty queue.
    let draining = Instant::now();
    while count(
        &mut conn,
        "SELECT count(*) AS n FROM generation_jobs WHERE status IN ('queued', 'processing')",
    )
    .await?
        > 0
        && draining.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(Row {
        api: p,
        elapsed,
        servers: per_server,
        jobs_done,
        queued_after,
        cpu: Cpu {
            postgres: after.postgres - before.postgres,
            api: after
                .api
                .iter()
                .zip(&before.api)
                .map(|(a, b)| a - b)
                .collect(),
            workers: after
                .workers
                .iter()
                .zip(&before.workers)
                .map(|(a, b)| a - b)
                .collect(),
            bench: after.bench - before.bench,
            machine: after.machine - before.machine,
        },
        cores,
    })
}

fn print_row(row: &Row, o: &ClusterOptions) {
    let secs = row.elapsed.as_secs_f64();
    println!();
    println!(
        "P = {}: {} jobs completed ({:.1}/s), {} queued or running at the end",
        row.api,
        row.jobs_done,
        row.jobs_done as f64 / secs,
        row.queued_after
    );
    println!(
        "| process | feed reads/s | read p50 ms | read p99 ms | errors | generate/s | events/s | event p50 ms | event p99 ms | CPU (% of one core) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let core = |cpu: f64| format!("{:.0} %", 100.0 * cpu / secs);
    for (i, s) in row.servers.iter().enumerate() {
        println!(
            "| api {i} | {:.0} | {:.1} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            s.reads.len() as f64 / secs,
            ms(percentile(&s.reads, 0.50)),
            ms(percentile(&s.reads, 0.99)),
            s.read_errors + s.generate_errors,
            s.generates as f64 / secs,
            s.events.len() as f64 / secs,
            ms(percentile(&s.events, 0.50)),
            ms(percentile(&s.events, 0.99)),
            core(row.cpu.api[i]),
        );
    }
    for (i, cpu) in row.cpu.workers.iter().copied().enumerate() {
        println!(
            "| worker {i} ({} workers) | | | | | | | | | {} |",
            o.workers_each,
            core(cpu)
        );
    }
    println!(
        "| PostgreSQL (every backend) | | | | | | | | | {} |",
        core(row.cpu.postgres)
    );
    println!(
        "| load generator (this process) | | | | | | | | | {} |",
        core(row.cpu.bench)
    );
    println!(
        "| other processes on the machine | | | | | | | | | {} |",
        core(row.cpu.others())
    );
}
