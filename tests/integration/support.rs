//! Test support: one throwaway PostgreSQL cluster per test run, a migrated template
//! database, one fresh database per test, and a real HTTP server on an ephemeral port.
//!
//! Set `TEST_DATABASE_URL` to use an existing server instead (its role needs CREATEDB).

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    process::{Command, Stdio},
    sync::{Arc, Mutex, OnceLock},
};

use diesel_async::{AsyncConnection, AsyncPgConnection};
use easel::{
    AppState,
    config::Config,
    db::{
        self,
        embedded::{ClusterOptions, EmbeddedPostgres, PgBinaries, RunAs},
    },
    http,
    outbox::MemorySender,
    server,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};
use uuid::Uuid;

struct Cluster {
    /// A connection string to the maintenance database, for CREATE DATABASE.
    admin_url: String,
    template: String,
    _pg: Option<EmbeddedPostgres>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static CREATE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        // A thread of its own: the set-up blocks, and migrations need a runtime of their own.
        std::thread::spawn(start_cluster)
            .join()
            .expect("test cluster set-up panicked")
    })
}

fn start_cluster() -> Cluster {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let template = format!("easel_template_{}", std::process::id());
    let (admin_url, pg) = match std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        Some(url) => (url, None),
        None => {
            let pg = start_throwaway_cluster();
            (pg.url("postgres"), Some(pg))
        }
    };
    runtime.block_on(async {
        db::create_database(&admin_url, &template, None)
            .await
            .expect("creating the template database");
        db::run_migrations(&with_database(&admin_url, &template))
            .await
            .expect("migrating the template");
    });
    Cluster {
        admin_url,
        template,
        _pg: pg,
    }
}

/// The PostgreSQL programs (`EASEL_PG_BIN_DIR` or discovered) and the user test clusters run
/// as.
pub fn pg_programs() -> (PgBinaries, RunAs) {
    let bins = PgBinaries::discover(
        std::env::var_os("EASEL_PG_BIN_DIR")
            .map(PathBuf::from)
            .as_deref(),
    )
    .expect("PostgreSQL server binaries");
    let run_as = RunAs::for_current_process("postgres").expect("a user to run PostgreSQL");
    (bins, run_as)
}

fn start_throwaway_cluster() -> EmbeddedPostgres {
    let (bins, run_as) = pg_programs();
    let root = std::env::temp_dir().join(format!(
        "easel-test-{}-{}",
        std::process::id(),
        Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&root).unwrap();
    if let RunAs::User { uid, gid, .. } = &run_as {
        std::os::unix::fs::chown(&root, Some(*uid), Some(*gid)).unwrap();
    }
    let pg = EmbeddedPostgres::start(
        bins,
        run_as.clone(),
        &root.join("pg"),
        &ClusterOptions { ephemeral: true },
    )
    .expect("starting the throwaway test cluster");
    spawn_watchdog(&pg, &root, &run_as);
    pg
}

/// Statics are never dropped, so a detached shell stops the cluster and removes its files
/// once this test process has exited.
fn spawn_watchdog(pg: &EmbeddedPostgres, root: &std::path::Path, run_as: &RunAs) {
    let script = format!(
        "while [ -d /proc/{pid} ] || kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{root}'",
        pid = std::process::id(),
        stop = pg.stop_command(),
        root = root.display()
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    use std::os::unix::process::CommandExt;
    cmd.process_group(0).current_dir("/");
    if let RunAs::User { uid, gid, .. } = run_as {
        cmd.uid(*uid).gid(*gid);
    }
    // It must outlive this process, so it is never waited for.
    #[expect(
        clippy::zombie_processes,
        reason = "the watchdog outlives the test process by design"
    )]
    let _watchdog = cmd.spawn().expect("starting the test cluster watchdog");
}

/// `url` with its database replaced by `name` (URL or key=value form).
pub fn with_database(url: &str, name: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = url
            .split_once('?')
            .map_or((url, None), |(b, q)| (b, Some(q)));
        let scheme_end = base.find("://").unwrap() + 3;
        let host_end = base[scheme_end..]
            .find('/')
            .map_or(base.len(), |i| scheme_end + i);
        let mut out = format!("{}/{name}", &base[..host_end]);
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        out
    } else {
        let mut parts: Vec<String> = url
            .split_whitespace()
            .filter(|p| !p.starts_with("dbname="))
            .map(String::from)
            .collect();
        parts.push(format!("dbname={name}"));
        parts.join(" ")
    }
}

/// `errors[0].extensions.code` of a GraphQL answer.
pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

/// `errors[0].extensions.field` of a GraphQL answer.
pub fn field(body: &Value) -> &str {
    body["errors"][0]["extensions"]["field"]
        .as_str()
        .unwrap_or("<none>")
}

#[derive(diesel::QueryableByName)]
struct Scalar {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// A fresh, migrated database for one test; returns its connection string.
pub async fn fresh_database() -> String {
    let c = cluster();
    let name = format!("easel_test_{}", Uuid::now_v7().simple());
    // CREATE DATABASE ... TEMPLATE needs the template free of sessions; serialise creations.
    let _guard = CREATE_LOCK.lock().await;
    db::create_database(&c.admin_url, &name, Some(&c.template))
        .await
        .expect("creating a test database");
    with_database(&c.admin_url, &name)
}

/// A fresh database with no migrations applied.
pub async fn blank_database() -> String {
    let c = cluster();
    let name = format!("easel_blank_{}", Uuid::now_v7().simple());
    db::create_database(&c.admin_url, &name, None)
        .await
        .unwrap();
    with_database(&c.admin_url, &name)
}

/// The default configuration for tests (no environment read).
pub fn test_config() -> Config {
    let mut config = Config::from_lookup(|_| None).unwrap();
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.workers = 0;
    config.procedural_delay = std::time::Duration::from_millis(300);
    config.jwt_secret = Some(secrecy::SecretString::from(format!(
        "test-secret-{}",
        Uuid::now_v7()
    )));
    config.data_dir =
        std::env::temp_dir().join(format!("easel-test-data-{}", Uuid::now_v7().simple()));
    config.db_pool_size = 8;
    config
}

/// The SMS inbox of a database: every app on one database delivers its outbox into the same
/// one (whichever process's delivery task claims a message, the test's phone receives it).
fn phones_of(db_url: &str) -> Arc<MemorySender> {
    static PHONES: OnceLock<Mutex<HashMap<String, Arc<MemorySender>>>> = OnceLock::new();
    PHONES
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(db_url.to_string())
        .or_default()
        .clone()
}

/// A running server on its own database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub db_url: String,
    pub state: AppState,
    pub client: reqwest::Client,
    /// Every SMS the server delivered, as a phone would receive them.
    pub sms: Arc<MemorySender>,
    /// The server's background tasks (outbox delivery, clean-up).
    pub background: server::Background,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> Self {
        let db_url = fresh_database().await;
        Self::spawn_on(db_url, configure).await
    }

    pub async fn spawn_on(db_url: String, configure: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_adjusted(db_url, configure, |state| state).await
    }

    /// Like [`TestApp::spawn_on`], with the state adjusted before the server starts (another
    /// media store, ...).
    pub async fn spawn_adjusted(
        db_url: String,
        configure: impl FnOnce(&mut Config),
        adjust: impl FnOnce(easel::AppState) -> easel::AppState,
    ) -> Self {
        let mut config = test_config();
        configure(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        config.public_url = format!("http://{addr}");
        let sms = phones_of(&db_url);
        let state = adjust(
            server::app_state(config, &db_url)
                .unwrap()
                .with_sender(sms.clone()),
        );
        let background = server::spawn_background(&state);
        state.events.listening().await;
        // As a serving process does; an unmigrated database (the readiness test) has no
        // sessions to load from.
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            state.revocations.loaded(),
        )
        .await;
        let router = http::router(state.clone());
        let options = http::serve::ServeOptions::from_config(&state.config);
        tokio::spawn(http::serve::serve(
            listener,
            router,
            options,
            std::future::pending(),
        ));
        TestApp {
            addr,
            db_url,
            state,
            client: reqwest::Client::new(),
            sms,
            background,
        }
    }

    /// Stops the background tasks, so only requests touch the database (statement counts).
    pub fn stop_background(&self) {
        self.background.abort();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs a GraphQL operation anonymously; returns the status and the JSON body.
    pub async fn gql(&self, query: &str, variables: Value) -> (u16, Value) {
        self.gql_with(None, query, variables).await
    }

    /// POSTs a GraphQL operation with `Authorization: Bearer <token>`.
    pub async fn gql_as(&self, token: &str, query: &str, variables: Value) -> (u16, Value) {
        self.gql_with(Some(token), query, variables).await
    }

    pub async fn gql_with(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// Asks for a code for `phone` and returns it once the SMS arrived (waits up to 5 s).
    pub async fn request_code(&self, phone: &str) -> String {
        let normalized = easel::accounts::phone::normalize(phone, "phone").unwrap();
        let before = self.sms_count(&normalized);
        let (status, body) = self.gql(REQUEST_OTP, json!({ "phone": phone })).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["errors"].is_null(), "{body}");
        for _ in 0..100 {
            let sent = self.sms.sent();
            let mine: Vec<_> = sent
                .iter()
                .filter(|m| m.destination == normalized)
                .collect();
            if mine.len() > before {
                let body = &mine.last().unwrap().body;
                return body
                    .split_whitespace()
                    .find(|w| w.len() == 7 && w.ends_with('.'))
                    .map(|w| w[..6].to_string())
                    .expect("a code in the SMS");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no SMS reached {phone}");
    }

    /// A fresh admin's access token (promoted through the `easel create-admin` service).
    pub async fn admin_token(&self, phone: &str) -> String {
        let auth = self.sign_up_by_phone(phone).await;
        easel::accounts::service::create_admin(&self.state, Some(phone), None, None)
            .await
            .unwrap();
        // The role travels in the token: refresh to get one that says ADMIN.
        let (_, body) = self
            .gql(
                "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken user { role } } }",
                json!({ "t": auth["refreshToken"] }),
            )
            .await;
        assert_eq!(
            body["data"]["refreshSession"]["user"]["role"], "ADMIN",
            "{body}"
        );
        body["data"]["refreshSession"]["accessToken"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Fails the test unless every balance equals its ledger, none is negative, every
    /// completed package payment has exactly one purchase entry and every paid subscription
    /// period its one grant (also checked when every test's app is dropped).
    pub async fn assert_ledger_ok(&self) {
        let mut conn = self.db().await;
        let problems = easel::credits::model::ledger_violations(&mut conn)
            .await
            .unwrap();
        assert!(problems.is_empty(), "ledger invariant broken: {problems:?}");
    }

    /// What the money invariant check reports once `sql` ran, in a transaction never
    /// committed (the database stays whole for the check at the end of the test): how a test
    /// shows that the check catches a broken rule.
    pub async fn violations_after(&self, sql: &str) -> Vec<String> {
        use diesel_async::{AsyncConnection, RunQueryDsl};
        let mut conn = self.db().await;
        conn.begin_test_transaction().await.unwrap();
        diesel::sql_query(sql).execute(&mut conn).await.unwrap();
        easel::credits::model::ledger_violations(&mut conn)
            .await
            .unwrap()
    }

    /// How many SMS reached `phone`.
    pub fn sms_count(&self, phone: &str) -> usize {
        self.sms
            .sent()
            .iter()
            .filter(|m| m.destination == phone)
            .count()
    }

    /// Signs in a new user by phone; returns the AuthPayload JSON.
    pub async fn sign_up_by_phone(&self, phone: &str) -> Value {
        let code = self.request_code(phone).await;
        let (_, body) = self
            .gql(VERIFY_OTP, json!({ "phone": phone, "code": code }))
            .await;
        assert!(body["errors"].is_null(), "{body}");
        body["data"]["verifyOtp"].clone()
    }

    /// Runs `sql`, which selects one bigint column named `n`.
    pub async fn scalar(&self, sql: &str) -> i64 {
        use diesel_async::RunQueryDsl;
        let mut conn = self.db().await;
        diesel::sql_query(sql)
            .get_result::<Scalar>(&mut conn)
            .await
            .unwrap()
            .n
    }

    /// Runs a statement to arrange a test.
    pub async fn exec(&self, sql: &str) {
        use diesel_async::RunQueryDsl;
        let mut conn = self.db().await;
        diesel::sql_query(sql).execute(&mut conn).await.unwrap();
    }

    /// A direct database connection, for arranging and checking state.
    pub async fn db(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.db_url).await.unwrap()
    }

    /// Opens a `graphql-transport-ws` connection on `path` and completes the handshake.
    pub async fn ws(&self, path: &str, init: Value) -> WsClient {
        WsClient::connect(&format!("ws://{}{path}", self.addr), init)
            .await
            .expect("websocket handshake")
    }
}

impl Drop for TestApp {
    /// After every test that did not fail otherwise, the money invariants hold on its
    /// database: every balance equals its ledger and none is negative, every completed package
    /// payment has one purchase entry, every paid subscription period its one grant (see
    /// `ledger_violations`). A database the test stopped or never migrated is skipped.
    ///
    /// Each app has its own data directory (media, development JWT secret): remove it, so
    /// test runs do not fill the temporary directory with uploaded images.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state.config.data_dir);
        if std::thread::panicking() {
            return;
        }
        let url = self.db_url.clone();
        // A runtime of its own on a thread of its own: the test's runtime is the caller.
        let checked = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let wait = std::time::Duration::from_secs(10);
                let mut conn = tokio::time::timeout(wait, AsyncPgConnection::establish(&url))
                    .await
                    .ok()?
                    .ok()?;
                tokio::time::timeout(wait, easel::credits::model::ledger_violations(&mut conn))
                    .await
                    .ok()?
                    .ok()
            })
        })
        .join()
        .unwrap();
        if let Some(problems) = checked {
            assert!(
                problems.is_empty(),
                "ledger invariant broken at the end of the test: {problems:?}"
            );
        }
    }
}

pub const REQUEST_OTP: &str = "mutation($phone: String!) { requestOtp(input: { phone: $phone }) { expiresAt resendAfterSeconds } }";
pub const VERIFY_OTP: &str = "mutation($phone: String!, $code: String!, $ref: String) { \
    verifyOtp(input: { phone: $phone, code: $code, referralCode: $ref }) { \
    accessToken accessTokenExpiresAt refreshToken isNewUser user { id phone role referralCode } } }";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A minimal `graphql-transport-ws` client.
pub struct WsClient {
    socket: Socket,
    next_id: u32,
}

impl WsClient {
    pub async fn connect(url: &str, init: Value) -> Result<Self, String> {
        let mut client = Self::open(url, "graphql-transport-ws").await?;
        client
            .send(json!({ "type": "connection_init", "payload": init }))
            .await;
        match client.recv().await {
            Some(Ok(msg)) if msg["type"] == "connection_ack" => Ok(client),
            other => Err(format!("no connection_ack: {other:?}")),
        }
    }

    /// Opens a websocket speaking `protocol` and sends nothing yet (no `connection_init`).
    pub async fn open(url: &str, protocol: &'static str) -> Result<Self, String> {
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| e.to_string())?;
        Ok(WsClient { socket, next_id: 0 })
    }

    /// Sends a `ping` and waits for its `pong`: every message sent before it was handled.
    /// Fails when any other message arrives first.
    pub async fn sync(&mut self) {
        self.send(json!({ "type": "ping" })).await;
        let msg = self.recv().await;
        assert!(
            matches!(&msg, Some(Ok(m)) if m["type"] == "pong"),
            "expected the pong, got {msg:?}"
        );
    }

    pub async fn send(&mut self, msg: Value) {
        self.socket
            .send(Message::text(msg.to_string()))
            .await
            .unwrap();
    }

    /// The next protocol message; `Err((code, reason))` when the server closed the socket.
    pub async fn recv(&mut self) -> Option<Result<Value, (u16, String)>> {
        let wait = std::time::Duration::from_secs(10);
        loop {
            let msg = tokio::time::timeout(wait, self.socket.next())
                .await
                .expect("websocket message in time")?;
            match msg {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "ping" {
                        self.send(json!({ "type": "pong" })).await;
                        continue;
                    }
                    return Some(Ok(v));
                }
                Ok(Message::Close(frame)) => {
                    return Some(Err(frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()))));
                }
                Ok(_) => continue,
                Err(e) => return Some(Err((1006, e.to_string()))),
            }
        }
    }

    /// The raw text of the next protocol message (pings answered), to read its key order.
    pub async fn recv_text(&mut self) -> String {
        let wait = std::time::Duration::from_secs(10);
        loop {
            let msg = tokio::time::timeout(wait, self.socket.next())
                .await
                .expect("websocket message in time")
                .expect("socket open")
                .expect("websocket frame");
            if let Message::Text(text) = msg {
                if serde_json::from_str::<Value>(&text).unwrap()["type"] == "ping" {
                    self.send(json!({ "type": "pong" })).await;
                    continue;
                }
                return text.to_string();
            }
        }
    }

    /// Starts an operation; returns its id.
    pub async fn subscribe(&mut self, query: &str, variables: Value) -> String {
        self.next_id += 1;
        let id = self.next_id.to_string();
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } })).await;
        id
    }
}

/// Starts the real `easel` binary (no `DATABASE_URL` unless `env` sets one) on an ephemeral
/// port; returns the process and its base URL (`http://127.0.0.1:<port>/`).
pub async fn start_binary(env: &[(&str, &str)]) -> (tokio::process::Child, String) {
    start_command(&[], env, "Easel is ready at ").await
}

/// Starts `easel <args>` with `env`, and waits until it logs `ready`; returns the process
/// and the word after `ready` in that line.
pub async fn start_command(
    args: &[&str],
    env: &[(&str, &str)],
    ready: &str,
) -> (tokio::process::Child, String) {
    let (child, base, _lines) = start_command_logged(args, env, ready).await;
    (child, base)
}

/// [`start_binary`], also handing back the log lines (stderr) written after the ready line.
pub async fn start_binary_logged(
    env: &[(&str, &str)],
) -> (
    tokio::process::Child,
    String,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    start_command_logged(&[], env, "Easel is ready at ").await
}

/// [`start_command`], also handing back the log lines written after the ready line.
pub async fn start_command_logged(
    args: &[&str],
    env: &[(&str, &str)],
    ready: &str,
) -> (
    tokio::process::Child,
    String,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_easel"));
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env("EASEL_BIND", "127.0.0.1:0")
        .env("EASEL_LOG_FORMAT", "json")
        .env("EASEL_WORKERS", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(at) = line.find(ready) {
                let rest = &line[at + ready.len()..];
                let end = rest.find([' ', '"']).unwrap_or(rest.len());
                return rest[..end].to_string();
            }
        }
        panic!("easel exited before it was ready");
    })
    .await
    .expect("easel ready within 60 s");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line);
        }
    });
    (child, base, rx)
}

/// Sends SIGTERM and expects a clean exit within 30 s.
pub async fn stop_binary(child: &mut tokio::process::Child) {
    sigterm(child);
    exited(child).await;
}

/// Sends SIGTERM.
pub fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// Expects a clean exit within 30 s.
pub async fn exited(child: &mut tokio::process::Child) {
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
        .await
        .expect("exit within 30 s")
        .unwrap();
    assert!(status.success(), "clean exit after SIGTERM: {status}");
}

/// Signs up a user with the phone `+1415555<n>`; returns (access token, user id).
pub async fn user(app: &TestApp, n: u32) -> (String, String) {
    let auth = app.sign_up_by_phone(&format!("+1415555{n:04}")).await;
    (
        auth["accessToken"].as_str().unwrap().to_string(),
        auth["user"]["id"].as_str().unwrap().to_string(),
    )
}

/// A user who became a vendor; returns a token carrying the vendor role, and the id.
pub async fn vendor(app: &TestApp, n: u32, business: &str) -> (String, String) {
    let auth = app.sign_up_by_phone(&format!("+1415555{n:04}")).await;
    let (_, body) = app
        .gql_as(
            auth["accessToken"].as_str().unwrap(),
            "mutation($b: String!) { becomeVendor(input: { businessName: $b }) { role } }",
            json!({ "b": business }),
        )
        .await;
    assert_eq!(body["data"]["becomeVendor"]["role"], "VENDOR", "{body}");
    let (_, body) = app
        .gql(
            "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }",
            json!({ "t": auth["refreshToken"] }),
        )
        .await;
    (
        body["data"]["refreshSession"]["accessToken"]
            .as_str()
            .unwrap()
            .to_string(),
        auth["user"]["id"].as_str().unwrap().to_string(),
    )
}

impl TestApp {
    /// A `graphql-transport-ws` connection signed in with `token`.
    pub async fn ws_as(&self, token: &str) -> WsClient {
        self.ws(
            "/graphql/ws",
            json!({ "authorization": format!("Bearer {token}") }),
        )
        .await
    }
}
