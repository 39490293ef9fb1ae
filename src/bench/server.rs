//! The server under measurement: `easel serve` in a child process (this same binary, over the
//! benchmark's database), so that its peak RSS is its own and the load generator (HTTP and
//! websocket clients, which stay in the benchmark process) is not counted in it.
//!
//! The child inherits the benchmark's environment, plus:
//!
//! | variable | value |
//! |---|---|
//! | `DATABASE_URL` | the benchmark's database (the embedded cluster's, by default) |
//! | `EASEL_BIND` | `127.0.0.1:<a free port>` |
//! | `EASEL_METRICS` | `true` (its SQL statement count is read from `/metrics`) |
//! | `EASEL_METRICS_TOKEN` | a random token of this run |
//!
//! and whatever the benchmark adds for its shape (see [`ServerEnv`]), all printed in the
//! benchmark's header. Its log goes to a file next to the data (`<EASEL_DATA_DIR>/bench-server.log`).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Context;

/// How long a child server may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a child server may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the idle server's own statements (outbox polling, the job reaper) are counted
/// after start-up, to subtract them from what its clients cost.
const IDLE_WINDOW: Duration = Duration::from_secs(3);

/// The variables a benchmark sets for its child servers (on top of those in the module
/// documentation), in the order they were set.
#[derive(Debug, Clone, Default)]
pub(super) struct ServerEnv(Vec<(String, String)>);

impl ServerEnv {
    /// Sets `name` to `value` (replacing an earlier value).
    pub(super) fn set(&mut self, name: &str, value: impl ToString) -> &mut Self {
        let value = value.to_string();
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value,
            None => self.0.push((name.to_string(), value)),
        }
        self
    }

    /// This environment with `more` set on top.
    pub(super) fn with(&self, more: &[(String, String)]) -> Self {
        let mut env = self.clone();
        for (name, value) in more {
            env.set(name, value);
        }
        env
    }

    /// `NAME=value, ...` for the header, secrets (`*SECRET*`, `*TOKEN*`) masked.
    pub(super) fn describe(&self) -> String {
        let mut all = vec![
            "DATABASE_URL=<the bench database>".to_string(),
            "EASEL_BIND=127.0.0.1:<free port>".to_string(),
            "EASEL_METRICS=true".to_string(),
            "EASEL_METRICS_TOKEN=<random>".to_string(),
        ];
        all.extend(self.0.iter().map(|(name, value)| {
            if name.contains("SECRET") || name.contains("TOKEN") {
                format!("{name}=<the bench's>")
            } else {
                format!("{name}={value}")
            }
        }));
        all.join(", ")
    }
}

/// A running `easel serve` child process.
pub(super) struct ServerProcess {
    child: tokio::process::Child,
    pid: u32,
    addr: SocketAddr,
    metrics_token: String,
    client: reqwest::Client,
    log: PathBuf,
    /// Statements one scrape of `/metrics` runs itself (its job queue gauges).
    scrape_cost: u64,
    /// Statements per second the server runs on its own when idle.
    idle_rate: f64,
}

/// A reading of a server's statement counter.
pub(super) struct Reading {
    statements: u64,
    at: Instant,
}

impl ServerProcess {
    /// Starts `easel serve` over `database_url` with `env`, logging to `log`, and waits until
    /// its `/readyz` answers 200.
    pub(super) async fn start(
        database_url: &str,
        env: &ServerEnv,
        log: &Path,
    ) -> anyhow::Result<Self> {
        // A free port: the kernel picks one, which is released for the child to bind.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let metrics_token = format!("{:032x}", rand::random::<u128>());
        let file = std::fs::File::create(log)
            .with_context(|| format!("creating the server log {}", log.display()))?;
        let mut command = tokio::process::Command::new(
            std::env::current_exe().context("finding this program to run `easel serve`")?,
        );
        command
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("EASEL_BIND", addr.to_string())
            .env("EASEL_METRICS", "true")
            .env("EASEL_METRICS_TOKEN", &metrics_token)
            .envs(env.0.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
        let child = command.spawn().context("starting `easel serve`")?;
        let pid = child.id().context("the server exited at once")?;
        let mut server = ServerProcess {
            child,
            pid,
            addr,
            metrics_token,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            log: log.to_path_buf(),
            scrape_cost: 0,
            idle_rate: 0.0,
        };
        let started = Instant::now();
        let ready = format!("http://{addr}/readyz");
        loop {
            if let Some(status) = server.child.try_wait()? {
                anyhow::bail!(
                    "`easel serve` exited with {status} before it was ready; its log ends with:\n{}",
                    server.log_tail()
                );
            }
            if let Ok(r) = server.client.get(&ready).send().await
                && r.status().is_success()
            {
                break;
            }
            if started.elapsed() > READY_TIMEOUT {
                anyhow::bail!(
                    "`easel serve` was not ready after {READY_TIMEOUT:?}; its log ends with:\n{}",
                    server.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // What the server costs when nobody calls it, measured after its start-up work.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let a = server.statements().await?;
        let b = server.statements().await?;
        server.scrape_cost = b.saturating_sub(a);
        let idle = server.reading().await?;
        tokio::time::sleep(IDLE_WINDOW).await;
        let ran = server.statements_since(&idle).await?;
        server.idle_rate = ran as f64 / idle.at.elapsed().as_secs_f64();
        Ok(server)
    }

    /// Statements per second the server runs on its own when idle (subtracted by
    /// [`Self::statements_since`]).
    pub(super) fn idle_rate(&self) -> f64 {
        self.idle_rate
    }

    /// The server's process id.
    pub(super) fn pid(&self) -> u32 {
        self.pid
    }

    /// Where the server listens.
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The value of the unlabelled metric `name` in the server's `/metrics` (0 when absent).
    pub(super) async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = self
            .client
            .get(format!("http://{}/metrics", self.addr))
            .bearer_auth(&self.metrics_token)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .find_map(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0))
    }

    /// SQL statements the server has run so far (`easel_db_statements_total`).
    async fn statements(&self) -> anyhow::Result<u64> {
        Ok(self.metric("easel_db_statements_total").await? as u64)
    }

    /// The server's statement count now.
    pub(super) async fn reading(&self) -> anyhow::Result<Reading> {
        Ok(Reading {
            statements: self.statements().await?,
            at: Instant::now(),
        })
    }

    /// The statements the server ran for its clients since `from`: the counter's growth,
    /// less the statements of the scrape that took `from` and the idle rate over the time
    /// passed (rounded).
    pub(super) async fn statements_since(&self, from: &Reading) -> anyhow::Result<u64> {
        let now = self.statements().await?;
        let idle = (self.idle_rate * from.at.elapsed().as_secs_f64()).round() as u64;
        Ok(now
            .saturating_sub(from.statements)
            .saturating_sub(self.scrape_cost)
            .saturating_sub(idle))
    }

    /// The server's peak resident set size so far (`VmHWM`), in bytes.
    pub(super) fn peak_rss(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .context("no VmHWM in /proc/<pid>/status")
    }

    /// Reads the peak RSS, then stops the server with SIGTERM (killing it if it has not
    /// exited after [`STOP_TIMEOUT`]); returns the peak RSS in bytes.
    pub(super) async fn stop(mut self) -> anyhow::Result<u64> {
        let peak = self.peak_rss();
        let pid = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .context("a process id out of range")?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .context("sending SIGTERM to the server")?;
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    eprintln!(
                        "`easel serve` stopped with {status}; its log ends with:\n{}",
                        self.log_tail()
                    );
                }
            }
            Err(_) => {
                eprintln!("`easel serve` still running {STOP_TIMEOUT:?} after SIGTERM: killed");
                self.child.kill().await?;
            }
        }
        peak
    }

    /// The last lines of the server's log.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// Makes sure this process may open `needed` files (sockets): raises the soft limit to the
/// hard one, and when even the hard limit is lower, raises the hard limit too (which only
/// root, or CAP_SYS_RESOURCE, may do). Child processes inherit the limits. Returns the soft
/// limit now in force (`None`: unlimited).
pub(super) fn ensure_open_files(needed: u64) -> anyhow::Result<Option<u64>> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let enough = |l: Option<u64>| l.is_none_or(|l| l >= needed);
    if enough(limit.current) {
        return Ok(limit.current);
    }
    let maximum = if enough(limit.maximum) {
        limit.maximum
    } else {
        Some(needed)
    };
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: maximum,
            maximum,
        },
    )
    .with_context(|| {
        format!(
            "raising the open files limit to {needed} (soft {:?}, hard {:?}); raise it with `ulimit -n` or run as root",
            limit.current, limit.maximum
        )
    })?;
    Ok(getrlimit(Resource::Nofile).current)
}

/// `MiB` of a byte count.
pub(super) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
