//! Prometheus metrics, served at `GET /metrics` (`EASEL_METRICS`, `EASEL_METRICS_TOKEN`).
//!
//! Each [`AppState`] owns its registry (a `metrics-exporter-prometheus` recorder that is never
//! installed as the global one), so two servers in one process (the tests) count apart.
//! Counters and histograms are kept as things happen; the gauges of the database pool, the
//! job queue, websockets and the event listener, and the count of SQL statements, are read
//! when `/metrics` is scraped.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `easel_http_requests_total` | counter | `route`, `operation`, `method`, `status` |
//! | `easel_http_request_duration_seconds` | histogram | `route`, `operation`, `method` |
//! | `easel_graphql_errors_total` | counter | `code` (`extensions.code`) |
//! | `easel_db_pool_connections` | gauge | `state` (`in_use`, `idle`, `max`) |
//! | `easel_db_pool_waiting` | gauge | |
//! | `easel_db_statements_total` | counter | |
//! | `easel_db_replica_fallbacks_total` | counter | | (reads meant for `DATABASE_READ_URL` that the primary answered because the replica gave no connection)
//! | `easel_jobs` | gauge | `status` (every job status) |
//! | `easel_jobs_oldest_queued_age_seconds` | gauge | |
//! | `easel_worker_jobs_total` | counter | `outcome` (`succeeded`, `failed`, `requeued`, `cancelled`, `released`, `lost_lease`) |
//! | `easel_reaper_jobs_total` | counter | `outcome` (`timed_out`, `failed`, `requeued`) |
//! | `easel_websocket_connections` | gauge | |
//! | `easel_websocket_operations` | gauge | |
//! | `easel_event_listener_connected` | gauge | |
//! | `easel_event_listener_reconnects_total` | counter | |
//! | `easel_credits_charged_total` | counter | |
//! | `easel_credits_refunded_total` | counter | |

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use metrics::{Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// The most distinct operation names counted; later new names are counted as `other`.
pub const MAX_OPERATION_NAMES: usize = 200;
/// The longest operation name counted as itself.
pub const MAX_OPERATION_NAME_LEN: usize = 64;

const METADATA: Metadata<'static> = Metadata::new("easel", Level::INFO, Some("easel::metrics"));

/// Latency buckets, in seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A process's metrics registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    operations: Mutex<HashSet<String>>,
    websockets: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        Metrics {
            inner: Arc::new(Inner {
                recorder,
                handle,
                operations: Mutex::default(),
                websockets: AtomicI64::new(0),
            }),
        }
    }

    fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.to_string()))
            .collect();
        Key::from_parts(name, labels)
    }

    /// Adds `n` to counter `name` with `labels`.
    pub fn count(&self, name: &'static str, labels: &[(&'static str, &str)], n: u64) {
        self.inner
            .recorder
            .register_counter(&Self::key(name, labels), &METADATA)
            .increment(n);
    }

    /// Sets gauge `name` with `labels`.
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        self.inner
            .recorder
            .register_gauge(&Self::key(name, labels), &METADATA)
            .set(value);
    }

    /// Records one observation of histogram `name`.
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        self.inner
            .recorder
            .register_histogram(&Self::key(name, labels), &METADATA)
            .record(value);
    }

    /// The label an operation name is counted under: itself while it is a plain GraphQL name
    /// of at most [`MAX_OPERATION_NAME_LEN`] characters among the first
    /// [`MAX_OPERATION_NAMES`] distinct ones seen, else `other`.
    pub fn operation_label(&self, name: &str) -> String {
        let plain = !name.is_empty()
            && name.len() <= MAX_OPERATION_NAME_LEN
            && name.bytes().enumerate().all(|(i, b)| {
                b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit())
            });
        // Names of our own making (`anonymous`, `batch`, ...) are not GraphQL names: they
        // come in lower case, and an operation may be called the same only by the client.
        if !plain {
            return "other".into();
        }
        let mut seen = self
            .inner
            .operations
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if seen.contains(name) {
            return name.into();
        }
        if seen.len() >= MAX_OPERATION_NAMES {
            return "other".into();
        }
        seen.insert(name.to_string());
        name.into()
    }

    /// One more (or one less) open websocket.
    pub fn websocket_opened(&self) -> WebsocketGuard {
        self.inner.websockets.fetch_add(1, Ordering::Relaxed);
        WebsocketGuard(self.clone())
    }

    /// Counts one HTTP request.
    pub fn http_request(
        &self,
        route: &str,
        operation: &str,
        method: &str,
        status: u16,
        elapsed: Duration,
    ) {
        let status = status.to_string();
        self.count(
            "easel_http_requests_total",
            &[
                ("route", route),
                ("operation", operation),
                ("method", method),
                ("status", &status),
            ],
            1,
        );
        self.observe(
            "easel_http_request_duration_seconds",
            &[
                ("route", route),
                ("operation", operation),
                ("method", method),
            ],
            elapsed.as_secs_f64(),
        );
    }

    /// Counts GraphQL errors by `extensions.code` (`NONE` when an error carries none).
    pub fn graphql_errors<'a>(&self, codes: impl IntoIterator<Item = Option<&'a str>>) {
        for code in codes {
            let code = code.filter(|c| c.len() <= 40).unwrap_or("NONE");
            self.count("easel_graphql_errors_total", &[("code", code)], 1);
        }
    }

    /// Counts a read that fell back from the replica to the primary.
    pub fn replica_fallback(&self) {
        self.count("easel_db_replica_fallbacks_total", &[], 1);
    }

    /// Counts credits charged (a positive `amount`).
    pub fn credits_charged(&self, amount: i64) {
        if amount > 0 {
            self.count("easel_credits_charged_total", &[], amount as u64);
        }
    }

    /// Counts credits refunded (a positive `amount`).
    pub fn credits_refunded(&self, amount: i64) {
        if amount > 0 {
            self.count("easel_credits_refunded_total", &[], amount as u64);
        }
    }

    /// Follows the event listener's connection: counts each reconnection after the first
    /// connection (runs until the hub is dropped).
    pub fn follow_listener(&self, events: &crate::events::EventHub) -> tokio::task::JoinHandle<()> {
        let metrics = self.clone();
        let mut connections = events.connections();
        tokio::spawn(async move {
            let mut was_up = *connections.borrow_and_update();
            let mut ups = u64::from(was_up);
            metrics.count("easel_event_listener_reconnects_total", &[], 0);
            while connections.changed().await.is_ok() {
                let up = *connections.borrow_and_update();
                if up && !was_up {
                    ups += 1;
                    if ups > 1 {
                        metrics.count("easel_event_listener_reconnects_total", &[], 1);
                    }
                }
                was_up = up;
            }
        })
    }

    /// The text exposition, after reading the gauges of `state`.
    pub async fn render(&self, state: &crate::AppState) -> String {
        let pool = state.pool.status();
        let in_use = pool.size.saturating_sub(pool.available);
        self.gauge(
            "easel_db_pool_connections",
            &[("state", "in_use")],
            in_use as f64,
        );
        self.gauge(
            "easel_db_pool_connections",
            &[("state", "idle")],
            pool.available as f64,
        );
        self.gauge(
            "easel_db_pool_connections",
            &[("state", "max")],
            pool.max_size as f64,
        );
        self.gauge("easel_db_pool_waiting", &[], pool.waiting as f64);
        // SQL statements run on the pool's connections (`db::StatementCounter`); the scrape's
        // own queue reads below count from the next scrape on.
        self.inner
            .recorder
            .register_counter(&Self::key("easel_db_statements_total", &[]), &METADATA)
            .absolute(state.statements.get());
        self.gauge(
            "easel_websocket_connections",
            &[],
            self.inner.websockets.load(Ordering::Relaxed) as f64,
        );
        self.gauge(
            "easel_websocket_operations",
            &[],
            state.ws_operations.total() as f64,
        );
        let listening = *state.events.connections().borrow();
        self.gauge(
            "easel_event_listener_connected",
            &[],
            if listening { 1.0 } else { 0.0 },
        );
        match crate::generation::service::queue_stats(state).await {
            Ok(stats) => {
                for status in crate::generation::JobStatus::ALL {
                    let n = stats
                        .counts
                        .iter()
                        .find(|(s, _)| s == status)
                        .map_or(0, |(_, n)| *n);
                    self.gauge("easel_jobs", &[("status", status.as_str())], n as f64);
                }
                self.gauge(
                    "easel_jobs_oldest_queued_age_seconds",
                    &[],
                    stats.oldest_queued_age_seconds,
                );
            }
            Err(e) => tracing::warn!(error = %e.log_line(), "metrics: reading the job queue"),
        }
        self.inner.handle.run_upkeep();
        self.inner.handle.render()
    }
}

/// Counts a websocket as open until dropped.
pub struct WebsocketGuard(Metrics);

impl Drop for WebsocketGuard {
    fn drop(&mut self) {
        self.0.inner.websockets.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_bounded() {
        let m = Metrics::new();
        assert_eq!(m.operation_label("Me"), "Me");
        assert_eq!(m.operation_label("a-b"), "other");
        assert_eq!(m.operation_label("1abc"), "other");
        assert_eq!(m.operation_label(""), "other");
        assert_eq!(m.operation_label(&"x".repeat(65)), "other");
        for i in 0..MAX_OPERATION_NAMES * 2 {
            let _ = m.operation_label(&format!("Op{i}"));
        }
        assert_eq!(m.operation_label("Me"), "Me");
        assert_eq!(m.operation_label("Op1"), "Op1");
        assert_eq!(m.operation_label("Op399"), "other");
    }

    #[test]
    fn renders_the_text_format() {
        let m = Metrics::new();
        m.count("easel_test_total", &[("code", "X")], 2);
        m.http_request("/graphql", "Me", "POST", 200, Duration::from_millis(3));
        let text = m.inner.handle.render();
        assert!(text.contains("easel_test_total{code=\"X\"} 2"), "{text}");
        assert!(
            text.contains("easel_http_request_duration_seconds_bucket{route=\"/graphql\",operation=\"Me\",method=\"POST\",le=\"0.005\"} 1"),
            "{text}"
        );
    }
}
