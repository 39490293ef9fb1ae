//! Events that survive outages: the real PostgreSQL is stopped under open websocket
//! subscriptions, jobs finish meanwhile, and when the server's event listener is back every
//! subscription catches up, in order and exactly once. The test runs its own cluster, so
//! stopping it disturbs no other test.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use easel::{
    accounts::viewer::ViewerUser,
    db::{
        self,
        embedded::{ClusterOptions, EmbeddedPostgres, RunAs},
    },
    events::Event,
    generation::{service as jobs, worker},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{self, TestApp, WsClient};

/// A cluster of this test's own, which it stops and starts. Dropping it stops the cluster
/// and removes its files (also when the test fails).
struct OwnCluster {
    pg: EmbeddedPostgres,
    bin_dir: PathBuf,
    run_as: RunAs,
    root: PathBuf,
    /// Where the cluster listens when it is "hidden": up, but not where the server looks.
    hidden_socket: PathBuf,
}

impl OwnCluster {
    fn start() -> Self {
        let (bins, run_as) = crate::support::pg_programs();
        let short = Uuid::now_v7().simple().to_string();
        let root = std::env::temp_dir().join(format!("easel-outage-{}", &short[20..]));
        let hidden_socket = root.join("hidden");
        std::fs::create_dir_all(&hidden_socket).unwrap();
        for dir in [&root, &hidden_socket] {
            if let RunAs::User { uid, gid, .. } = &run_as {
                std::os::unix::fs::chown(dir, Some(*uid), Some(*gid)).unwrap();
            }
        }
        let pg = EmbeddedPostgres::start(
            bins.clone(),
            run_as.clone(),
            &root.join("pg"),
            &ClusterOptions { ephemeral: true },
        )
        .expect("starting the outage test's cluster");
        OwnCluster {
            pg,
            bin_dir: bins.bin_dir,
            run_as,
            root,
            hidden_socket,
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(self.bin_dir.join("pg_ctl"));
        cmd.arg("-D")
            .arg(self.pg.pgdata())
            .args(args)
            .current_dir("/")
            .stdin(std::process::Stdio::null())
            .process_group(0);
        if let RunAs::User { uid, gid, .. } = &self.run_as {
            cmd.uid(*uid).gid(*gid);
        }
        cmd
    }

    async fn run(&self, args: &[&str]) {
        let out = self.pg_ctl(args).output().await.unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }

    /// Fast shutdown: every session is ended, the server's listener among them.
    async fn stop(&self) {
        self.run(&["-m", "fast", "-w", "-t", "30", "stop"]).await;
    }

    /// Starts where the server finds it.
    async fn start_visible(&self) {
        let log = self.pg.log_file().display().to_string();
        self.run(&["-w", "-t", "30", "-l", &log, "start"]).await;
    }

    /// Starts listening on another socket only: the database is up (another process could
    /// commit), but the server cannot reach it.
    async fn start_hidden(&self) {
        let log = self.pg.log_file().display().to_string();
        let opts = format!("-k {}", self.hidden_socket.display());
        self.run(&["-w", "-t", "30", "-l", &log, "-o", &opts, "start"])
            .await;
    }

    fn hidden_url(&self, database: &str) -> String {
        format!(
            "host={} port=5432 user={} dbname={database}",
            self.hidden_socket.display(),
            db::embedded::SUPERUSER
        )
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let mut cmd = std::process::Command::new(self.bin_dir.join("pg_ctl"));
        cmd.arg("-D")
            .arg(self.pg.pgdata())
            .args(["-m", "immediate", "stop"])
            .current_dir("/")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let RunAs::User { uid, gid, .. } = &self.run_as {
            use std::os::unix::process::CommandExt;
            cmd.uid(*uid).gid(*gid);
        }
        let _ = cmd.status();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// What the server logs, as text (this thread's events: the test runs on one thread).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

async fn readyz(app: &TestApp) -> (u16, Value) {
    let resp = app.client.get(app.url("/readyz")).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Subscription messages by operation id, until `done` holds (10 s at most).
async fn collect(
    ws: &mut WsClient,
    seen: &mut std::collections::HashMap<String, Vec<Value>>,
    done: impl Fn(&std::collections::HashMap<String, Vec<Value>>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(seen) {
        assert!(Instant::now() < deadline, "messages so far: {seen:#?}");
        let msg = ws
            .recv()
            .await
            .expect("the socket stays open")
            .expect("a message");
        let id = msg["id"].as_str().unwrap_or("").to_string();
        seen.entry(id).or_default().push(msg);
    }
}

fn job_status(msg: &Value, field: &str) -> String {
    match msg["type"].as_str() {
        Some("next") => {
            let data = &msg["payload"]["data"][field];
            assert!(!data.is_null(), "{msg}");
            format!(
                "{} {}",
                data["id"].as_str().unwrap_or("?"),
                data["status"].as_str().unwrap()
            )
        }
        other => format!("<{}>", other.unwrap_or("?")),
    }
}

const GENERATE: &str = "mutation($i: GenerateInput!) { generate(input: $i) { id } }";

/// Open subscriptions to one job, to all of the viewer's jobs and to the balance; the
/// database goes away; while the server cannot reach it a worker elsewhere finishes the job
/// and another job is cancelled (refunded); the database comes back. Every subscription
/// gets what it missed, in order and once: the job ends with its terminal status, the
/// balance arrives once, and later events follow without duplicates. `/readyz` is 503 for
/// the outage and 200 after, and the server logs the outage once at each end.
#[tokio::test]
async fn subscriptions_catch_up_on_what_a_database_outage_hid() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let cluster = tokio::task::spawn_blocking(OwnCluster::start)
        .await
        .unwrap();
    let admin = cluster.pg.url("postgres");
    db::create_database(&admin, "easel", None).await.unwrap();
    db::run_migrations(&cluster.pg.url("easel")).await.unwrap();
    let app = TestApp::spawn_on(cluster.pg.url("easel"), |c| {
        c.db_pool_timeout = Duration::from_secs(1);
        c.db_connect_timeout = Duration::from_secs(1);
    })
    .await;

    let auth = app.sign_up_by_phone("+14155557001").await;
    let token = auth["accessToken"].as_str().unwrap().to_string();
    let claims = app.state.keys.verify(&token).unwrap();
    let viewer = ViewerUser {
        id: Uuid::parse_str(auth["user"]["id"].as_str().unwrap()).unwrap(),
        role: claims.role,
        session_id: claims.sid,
        expires_at: claims.exp,
    };
    let generate = async |prompt: &str| {
        let (_, body) = app
            .gql_as(
                &token,
                GENERATE,
                json!({ "i": { "kind": "CHARACTER_GENERATION", "prompt": prompt, "params": { "width": 64, "height": 64 } } }),
            )
            .await;
        body["data"]["generate"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"))
            .to_string()
    };
    let mut hub = app.state.events.subscribe();
    let a = generate("a lighthouse").await;
    let b = generate("a harbour").await;
    // Their notifications reach the hub a moment after the commits: let them pass before the
    // subscriptions open, so that those start with what follows.
    let (mut queued, mut charged) = (0, 0);
    while queued < 2 || charged < 2 {
        match tokio::time::timeout(Duration::from_secs(10), hub.recv()).await {
            Ok(Ok(Event::Job { user_id, .. })) if user_id == viewer.id => queued += 1,
            Ok(Ok(Event::CreditBalance { user_id, .. })) if user_id == viewer.id => charged += 1,
            Ok(Ok(_)) => {}
            other => panic!("the events of A and B: {other:?}"),
        }
    }
    drop(hub);

    let mut ws = app.ws_as(&token).await;
    // The job's subscription last: once its first message is here, the server has started
    // the two before it (each subscribes to the hub before its first database read).
    let credits_op = ws
        .subscribe(
            "subscription { creditBalanceChanged { balance dailyUsed } }",
            json!({}),
        )
        .await;
    let mine_op = ws
        .subscribe("subscription { myGenerationJobs { id status } }", json!({}))
        .await;
    let job_op = ws
        .subscribe(
            "subscription($id: ID!) { generationJobUpdated(id: $id) { id status } }",
            json!({ "id": a }),
        )
        .await;
    let mut got = std::collections::HashMap::new();
    collect(&mut ws, &mut got, |g| g.contains_key(&job_op)).await;
    // A live event proves the other two subscriptions are open before the outage.
    let c = generate("a boat").await;
    collect(&mut ws, &mut got, |g| {
        g.contains_key(&mine_op) && g.contains_key(&credits_op)
    })
    .await;

    // The outage.
    cluster.stop().await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    tokio::time::timeout(Duration::from_secs(5), async {
        while app.state.events.is_listening() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the server notices its listener is gone");
    // The database is back for others, not yet for this server: a worker elsewhere finishes
    // job A (PROCESSING, SUCCEEDED) and job B is cancelled (refunded).
    cluster.start_hidden().await;
    let mut config = support::test_config();
    config.data_dir = app.state.config.data_dir.clone();
    let elsewhere = easel::server::app_state(config, &cluster.hidden_url("easel")).unwrap();
    let ran = worker::run_next(&elsewhere, elsewhere.provider.clone(), "elsewhere")
        .await
        .unwrap();
    assert!(ran.is_some(), "the worker elsewhere ran job A");
    let cancelled = jobs::cancel(&elsewhere, &viewer, Uuid::parse_str(&b).unwrap())
        .await
        .unwrap();
    assert_eq!(cancelled.status.as_str(), "cancelled");
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "still cut off: {body}");
    drop(elsewhere);
    cluster.stop().await;
    cluster.start_visible().await;

    // Back: each subscription gets what it missed.
    collect(&mut ws, &mut got, |g| {
        g[&job_op].len() >= 4 && g[&mine_op].len() >= 4 && g[&credits_op].len() >= 2
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = readyz(&app).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "not ready again: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Later events follow, and nothing is sent twice.
    let (_, body) = app
        .gql_as(
            &token,
            "mutation($id: ID!) { cancelGenerationJob(id: $id) { status } }",
            json!({ "id": c }),
        )
        .await;
    assert_eq!(
        body["data"]["cancelGenerationJob"]["status"], "CANCELLED",
        "{body}"
    );
    collect(&mut ws, &mut got, |g| {
        g[&mine_op].len() >= 5 && g[&credits_op].len() >= 3
    })
    .await;
    // Give a duplicate the time to show up.
    let extra = tokio::time::timeout(Duration::from_millis(700), ws.recv()).await;
    assert!(
        extra.is_err(),
        "nothing more: {extra:?}\nafter: {got:#?}\nlog: {}",
        logs.text()
    );

    let statuses = |op: &str, field: &str| -> Vec<String> {
        got[op].iter().map(|m| job_status(m, field)).collect()
    };
    assert_eq!(
        statuses(&job_op, "generationJobUpdated"),
        [
            format!("{a} QUEUED"),
            format!("{a} PROCESSING"),
            format!("{a} SUCCEEDED"),
            "<complete>".to_string(),
        ]
    );
    assert_eq!(
        statuses(&mine_op, "myGenerationJobs"),
        [
            format!("{c} QUEUED"),
            format!("{a} PROCESSING"),
            format!("{a} SUCCEEDED"),
            format!("{b} CANCELLED"),
            format!("{c} CANCELLED"),
        ]
    );
    let accounts: Vec<&Value> = got[&credits_op]
        .iter()
        .map(|m| &m["payload"]["data"]["creditBalanceChanged"])
        .collect();
    let (_, now) = app
        .gql_as(
            &token,
            "{ me { credits { balance dailyUsed } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        accounts[2], &now["data"]["me"]["credits"],
        "the last one is the account now"
    );
    assert_ne!(
        accounts[1], accounts[0],
        "the one sent after the outage shows B's refund"
    );
    assert_ne!(accounts[2], accounts[1], "and then C's");

    let text = logs.text();
    let lines =
        |needle: &str| -> Vec<&str> { text.lines().filter(|l| l.contains(needle)).collect() };
    let lost = lines("event listener lost its connection");
    let back = lines("event listener reconnected");
    assert_eq!(lost.len(), 1, "{text}");
    assert_eq!(back.len(), 1, "{text}");
    assert!(lost[0].contains("WARN"), "{}", lost[0]);
    assert!(back[0].contains("INFO"), "{}", back[0]);
    assert!(
        !text.to_lowercase().contains("backtrace"),
        "one line per event, no backtraces: {text}"
    );
}

/// A process whose listener is gone (here: its task was stopped) is not ready, whatever the
/// database says: its subscriptions would hear nothing.
#[tokio::test]
async fn readyz_is_503_while_the_event_listener_is_down() {
    let app = TestApp::spawn().await;
    assert_eq!(readyz(&app).await.0, 200);
    app.stop_background();
    tokio::time::timeout(Duration::from_secs(5), async {
        while app.state.events.is_listening() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the hub knows its listener is gone");
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["reason"], "event listener not connected", "{body}");
}
