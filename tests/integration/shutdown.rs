//! Shutdown against the real `easel` binary: SIGTERM closes websockets cleanly (their
//! operations complete, then 1001), running jobs finish within the grace period, and jobs
//! still running after it go back to the queue at once with their attempt not spent. Also:
//! a result that cannot be recorded leaves no files behind.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use easel::{
    accounts::viewer::ViewerUser,
    generation::{
        JobStatus, model as jobs,
        providers::{ImageProvider, Procedural},
        service,
        worker::{self, Ran},
    },
};
use secrecy::ExposeSecret;
use serde_json::json;
use uuid::Uuid;

use crate::generation::character_request;
use crate::support::{TestApp, WsClient, exited, sigterm, start_binary, start_command, user};

async fn viewer(app: &TestApp, n: u32) -> ViewerUser {
    let (token, id) = user(app, n).await;
    let claims = app.state.keys.verify(&token).unwrap();
    ViewerUser {
        id: id.parse().unwrap(),
        role: claims.role,
        session_id: claims.sid,
        expires_at: claims.exp,
    }
}

async fn job(app: &TestApp, id: Uuid) -> jobs::JobRow {
    jobs::by_id(&mut app.db().await, id).await.unwrap().unwrap()
}

async fn wait_processing(app: &TestApp, id: Uuid) -> jobs::JobRow {
    for _ in 0..1500 {
        let row = job(app, id).await;
        if row.status == JobStatus::Processing {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("job {id} was never claimed");
}

/// A data directory of its own for a binary (its media land there).
struct DataDir(PathBuf);

impl DataDir {
    fn new() -> Self {
        DataDir(std::env::temp_dir().join(format!("easel-shutdown-{}", Uuid::now_v7().simple())))
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// The environment of a binary on the test's database, accepting the test app's tokens.
fn env(app: &TestApp, secret: &str, data: &DataDir) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", app.db_url.clone()),
        ("EASEL_JWT_SECRET", secret.to_string()),
        ("EASEL_DATA_DIR", data.path().to_string()),
    ]
}

fn secret(app: &TestApp) -> String {
    app.state
        .config
        .jwt_secret
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_string()
}

fn with<'a>(
    base: &'a [(&'static str, String)],
    more: &[(&'static str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    base.iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(more.iter().copied())
        .collect()
}

const BALANCE: &str = "subscription { creditBalanceChanged { balance } }";

/// SIGTERM: every open websocket gets `complete` for each running operation, then a close
/// frame 1001 "Going away" (not a dropped connection), and the process exits without waiting
/// for the grace period.
#[tokio::test]
async fn sigterm_completes_subscriptions_then_closes_websockets_with_1001() {
    let app = TestApp::spawn().await;
    let (token, _) = user(&app, 3201).await;
    let data = DataDir::new();
    let secret = secret(&app);
    let base_env = env(&app, &secret, &data);
    let (mut child, base) =
        start_binary(&with(&base_env, &[("EASEL_SHUTDOWN_GRACE_SECS", "20")])).await;
    let url = format!("{}graphql/ws", base.replacen("http://", "ws://", 1));
    let mut ws = WsClient::connect(&url, json!({ "authorization": format!("Bearer {token}") }))
        .await
        .unwrap();
    let a = ws.subscribe(BALANCE, json!({})).await;
    let b = ws.subscribe(BALANCE, json!({})).await;
    ws.sync().await;
    let mut idle = WsClient::connect(&url, json!({})).await.unwrap();

    let started = Instant::now();
    sigterm(&child);
    let mut completed = Vec::new();
    loop {
        match ws.recv().await {
            Some(Ok(msg)) if msg["type"] == "complete" => {
                completed.push(msg["id"].as_str().unwrap().to_string());
            }
            Some(Err((code, reason))) => {
                assert_eq!((code, reason.as_str()), (1001, "Going away"));
                break;
            }
            other => panic!("expected complete, then a 1001 close; got {other:?}"),
        }
    }
    completed.sort();
    assert_eq!(completed, [a, b]);
    assert_eq!(
        idle.recv().await,
        Some(Err((1001, "Going away".to_string())))
    );
    exited(&mut child).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "closed sockets do not hold the shutdown: {:?}",
        started.elapsed()
    );
}

/// SIGTERM to `easel serve`: the running job finishes within the grace period; the queued
/// one is not claimed any more.
#[tokio::test]
async fn sigterm_lets_the_running_job_finish_and_claims_no_more() {
    let app = TestApp::spawn().await;
    let viewer = viewer(&app, 3202).await;
    let first = service::generate(&app.state, &viewer, character_request("first"))
        .await
        .unwrap();
    let second = service::generate(&app.state, &viewer, character_request("second"))
        .await
        .unwrap();
    let data = DataDir::new();
    let secret = secret(&app);
    let base_env = env(&app, &secret, &data);
    let (mut child, _) = start_binary(&with(
        &base_env,
        &[
            ("EASEL_WORKERS", "1"),
            ("EASEL_PROCEDURAL_DELAY_MS", "1500"),
            ("EASEL_SHUTDOWN_GRACE_SECS", "20"),
        ],
    ))
    .await;
    wait_processing(&app, first.id).await;
    sigterm(&child);
    exited(&mut child).await;

    let first = job(&app, first.id).await;
    assert_eq!((first.status, first.attempts), (JobStatus::Succeeded, 1));
    let second = job(&app, second.id).await;
    assert_eq!(
        (second.status, second.attempts, second.lease_owner),
        (JobStatus::Queued, 0, None)
    );
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM images WHERE job_id = '{}'",
            first.id
        ))
        .await,
        1
    );
    assert_eq!(
        files(&data.0.join("media")).len(),
        2,
        "the output and its thumbnail"
    );
    app.assert_ledger_ok().await;
}

/// SIGTERM to `easel worker` while a job runs longer than the grace period: the job is back
/// in the queue as soon as the process exited, its attempt not spent and its lease cleared;
/// another worker then completes it exactly once.
#[tokio::test]
async fn sigterm_releases_a_job_still_running_after_the_grace_period() {
    let app = TestApp::spawn().await;
    let viewer = viewer(&app, 3203).await;
    let queued = service::generate(&app.state, &viewer, character_request("long"))
        .await
        .unwrap();
    assert_eq!(queued.attempts, 0);
    let data = DataDir::new();
    let secret = secret(&app);
    let base_env = env(&app, &secret, &data);
    let (mut child, _) = start_command(
        &["worker"],
        &with(
            &base_env,
            &[
                ("EASEL_WORKERS", "1"),
                ("EASEL_PROCEDURAL_DELAY_MS", "120000"),
                ("EASEL_SHUTDOWN_GRACE_SECS", "1"),
                ("EASEL_JOB_LEASE_SECS", "60"),
            ],
        ),
        "Easel workers running",
    )
    .await;
    let claimed = wait_processing(&app, queued.id).await;
    assert_eq!(claimed.attempts, 1);
    assert!(claimed.lease_owner.is_some());
    let started = Instant::now();
    sigterm(&child);
    exited(&mut child).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "released at once after the grace, not at the lease's end: {:?}",
        started.elapsed()
    );

    let released = job(&app, queued.id).await;
    assert_eq!(
        (
            released.status,
            released.attempts,
            released.lease_owner.as_deref(),
            released.lease_expires_at
        ),
        (JobStatus::Queued, 0, None, None)
    );
    assert!(
        files(&data.0.join("media")).is_empty(),
        "nothing was stored"
    );

    let fast: Arc<dyn ImageProvider> = Arc::new(Procedural {
        delay: Duration::ZERO,
    });
    assert_eq!(
        worker::run_next(&app.state, fast.clone(), "rescuer")
            .await
            .unwrap(),
        Some(Ran::Succeeded)
    );
    assert_eq!(
        worker::run_next(&app.state, fast, "rescuer").await.unwrap(),
        None,
        "nothing else to do"
    );
    let done = job(&app, queued.id).await;
    assert_eq!((done.status, done.attempts), (JobStatus::Succeeded, 1));
    let count = |sql: String| {
        let app = &app;
        async move { app.scalar(&sql).await }
    };
    assert_eq!(
        count(format!(
            "SELECT count(*) AS n FROM images WHERE job_id = '{}'",
            queued.id
        ))
        .await,
        1
    );
    assert_eq!(
        count(format!(
            "SELECT count(*) AS n FROM credit_transactions WHERE job_id = '{}' AND kind = 'usage'",
            queued.id
        ))
        .await,
        1
    );
    assert_eq!(
        count("SELECT count(*) AS n FROM credit_transactions WHERE kind = 'refund'".into()).await,
        0
    );
    assert_eq!(
        count(format!(
            "SELECT count(*) AS n FROM job_events WHERE job_id = '{}' AND status = 'succeeded'",
            queued.id
        ))
        .await,
        1
    );
    app.assert_ledger_ok().await;
}

/// The worker stored a result's files, then the transaction recording it failed: the files
/// are deleted again.
#[tokio::test]
async fn outputs_whose_recording_fails_leave_no_files() {
    let app = TestApp::spawn().await;
    let viewer = viewer(&app, 3204).await;
    let doomed = service::generate(&app.state, &viewer, character_request("doomed"))
        .await
        .unwrap();
    // A real database failure inside the transaction that records the images.
    app.exec(
        "CREATE FUNCTION test_refuse_images() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
    )
    .await;
    app.exec(
        "CREATE TRIGGER test_refuse_images BEFORE INSERT ON images \
         FOR EACH ROW EXECUTE FUNCTION test_refuse_images()",
    )
    .await;
    let fast: Arc<dyn ImageProvider> = Arc::new(Procedural {
        delay: Duration::ZERO,
    });
    let media = app.state.config.media_dir();
    assert!(
        worker::run_next(&app.state, fast.clone(), "w1")
            .await
            .is_err(),
        "recording fails"
    );
    assert_eq!(files(&media), Vec::<PathBuf>::new());
    let row = job(&app, doomed.id).await;
    assert_ne!(row.status, JobStatus::Succeeded);
    assert_eq!(app.scalar("SELECT count(*) AS n FROM images").await, 0);

    // The same path with the database accepting the images keeps both files.
    app.exec("DROP TRIGGER test_refuse_images ON images").await;
    let kept = service::generate(&app.state, &viewer, character_request("kept"))
        .await
        .unwrap();
    assert_eq!(
        worker::run_next(&app.state, fast, "w2").await.unwrap(),
        Some(Ran::Succeeded)
    );
    assert_eq!(job(&app, kept.id).await.status, JobStatus::Succeeded);
    assert_eq!(files(&media).len(), 2);
}

/// `easel worker` with `EASEL_WORKER_BIND` answers its probes and its own metrics (the jobs it
/// ran, counted by that process), serves nothing else, and stops cleanly on SIGTERM.
#[tokio::test]
async fn a_worker_process_serves_its_probes_and_metrics() {
    let app = TestApp::spawn().await;
    let viewer = viewer(&app, 3210).await;
    let data = DataDir::new();
    let secret = secret(&app);
    let base_env = env(&app, &secret, &data);
    let (mut child, base) = start_command(
        &["worker"],
        &with(
            &base_env,
            &[
                ("EASEL_WORKERS", "1"),
                ("EASEL_PROCEDURAL_DELAY_MS", "0"),
                ("EASEL_WORKER_BIND", "127.0.0.1:0"),
                ("EASEL_METRICS_TOKEN", ""),
            ],
        ),
        "worker probes and metrics at ",
    )
    .await;
    let client = reqwest::Client::new();
    let get = |path: &str| {
        let url = format!("{}{}", base.trim_end_matches('/'), path);
        let client = client.clone();
        async move {
            let resp = client.get(url).send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await.0, 200);
    let (status, body) = get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    // A worker is not an API server.
    assert_eq!(get("/graphql").await.0, 404);
    assert_eq!(get("/").await.0, 404);

    let queued = service::generate(&app.state, &viewer, character_request("probed"))
        .await
        .unwrap();
    let mut done = job(&app, queued.id).await;
    for _ in 0..500 {
        if done.status.is_terminal() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        done = job(&app, queued.id).await;
    }
    assert_eq!(done.status, JobStatus::Succeeded);
    let (status, metrics) = get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics
            .lines()
            .any(|l| l == "easel_worker_jobs_total{outcome=\"succeeded\"} 1"),
        "the worker process counts the job it ran:\n{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "easel_event_listener_connected 1"),
        "{metrics}"
    );
    sigterm(&child);
    exited(&mut child).await;
}
