//! Issue #16: Easel through a real PgBouncer in transaction mode. The pool goes through the
//! pooler (prepared statements supported by `max_prepared_statements`, PgBouncer 1.21 or
//! newer); the LISTEN connection and migrations go straight to PostgreSQL
//! (`DATABASE_DIRECT_URL`), because a transaction pooler hands a session to other clients
//! between transactions.
//!
//! PgBouncer comes from `EASEL_PGBOUNCER`, else `/opt/pgbouncer/bin/pgbouncer` (what `.ci/run`
//! builds from Debian's source package), else `pgbouncer` on PATH.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use easel::db::embedded::{RunAs, SUPERUSER};
use futures_util::future::join_all;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, fresh_database, user};

/// The pooler's server connections: fewer than the app's pool, so transactions of different
/// clients share server connections (which is what breaks session state).
const SERVER_POOL: usize = 3;

fn pgbouncer_program() -> PathBuf {
    let candidates = [
        std::env::var_os("EASEL_PGBOUNCER").map(PathBuf::from),
        Some(PathBuf::from("/opt/pgbouncer/bin/pgbouncer")),
    ];
    if let Some(found) = candidates.into_iter().flatten().find(|p| p.is_file()) {
        return found;
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("pgbouncer"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        panic!(
            "PgBouncer 1.21 or newer is needed for this test: run .ci/run (it builds 1.24.1 from \
             Debian's source package into /opt/pgbouncer) or set EASEL_PGBOUNCER"
        )
    })
}

/// `(major, minor)` of `pgbouncer --version` ("PgBouncer 1.24.1").
fn version_of(program: &Path) -> (u32, u32) {
    let out = Command::new(program).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected `pgbouncer --version`: {text}"));
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// A running PgBouncer in front of the test cluster; stopped and removed on drop.
struct PgBouncer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl PgBouncer {
    /// Starts PgBouncer in transaction mode in front of the server `direct_url` (a libpq
    /// key/value string with `host=<socket dir>`), forwarding every database name.
    async fn start(direct_url: &str) -> Self {
        let program = pgbouncer_program();
        let version = version_of(&program);
        assert!(
            version >= (1, 21),
            "{} is PgBouncer {}.{}: transaction mode carries prepared statements only from 1.21 \
             (max_prepared_statements)",
            program.display(),
            version.0,
            version.1
        );
        let socket = direct_url
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("host="))
            .expect("the test cluster's socket directory");
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let short = Uuid::now_v7().simple().to_string();
        let dir = std::env::temp_dir().join(format!("easel-pgbouncer-{}", &short[20..]));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("users.txt"), format!("\"{SUPERUSER}\" \"\"\n")).unwrap();
        let ini = format!(
            "[databases]\n\
             * = host={socket} port=5432\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {dir}/users.txt\n\
             admin_users = {SUPERUSER}\n\
             pool_mode = transaction\n\
             max_prepared_statements = 200\n\
             default_pool_size = {SERVER_POOL}\n\
             max_client_conn = 200\n\
             logfile = {dir}/pgbouncer.log\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
        let (_, run_as) = crate::support::pg_programs();
        let mut cmd = Command::new(&program);
        cmd.arg(dir.join("pgbouncer.ini"))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // PgBouncer refuses to run as root.
        if let RunAs::User { uid, gid, .. } = &run_as {
            for entry in std::fs::read_dir(&dir).unwrap() {
                std::os::unix::fs::chown(entry.unwrap().path(), Some(*uid), Some(*gid)).unwrap();
            }
            std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid)).unwrap();
            cmd.uid(*uid).gid(*gid);
        }
        let child = cmd.spawn().expect("starting pgbouncer");
        let bouncer = PgBouncer { child, port, dir };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return bouncer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("pgbouncer did not listen: {}", bouncer.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    /// The URL of `database` through the pooler.
    fn url(&self, database: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={SUPERUSER} dbname={database} application_name=easel",
            self.port
        )
    }

    /// Runs a `SHOW ...` command on PgBouncer's admin console (simple protocol, with psql);
    /// returns the rows as column → value maps.
    fn show(&self, what: &str) -> Vec<std::collections::HashMap<String, String>> {
        let (bins, _) = crate::support::pg_programs();
        let out = Command::new(bins.bin_dir.join("psql"))
            .args([
                "-X",
                "-A",
                "-F",
                "\t",
                "-P",
                "footer=off",
                "-c",
                &format!("SHOW {what}"),
            ])
            .arg(self.url("pgbouncer"))
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "SHOW {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split('\t')
            .map(str::to_string)
            .collect();
        lines
            .map(|line| {
                header
                    .iter()
                    .cloned()
                    .zip(line.split('\t').map(str::to_string))
                    .collect()
            })
            .collect()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn database_name(url: &str) -> &str {
    url.split_whitespace()
        .find_map(|kv| kv.strip_prefix("dbname="))
        .expect("dbname in the URL")
}

const GENERATE: &str = "mutation($i: GenerateInput!) { generate(input: $i) { id status } }";

/// Sign-ups, concurrent generation jobs run by workers, job events over a websocket, feed and
/// history reads, all with the pool going through PgBouncer in transaction mode with fewer
/// server connections than the app's pool: every request succeeds, events arrive, the ledger
/// balances, and PgBouncer shows that it multiplexed the transactions and carried the
/// prepared statements.
#[tokio::test]
async fn everything_works_through_pgbouncer_in_transaction_mode() {
    let direct = fresh_database().await;
    let bouncer = PgBouncer::start(&direct).await;
    let pooled = bouncer.url(database_name(&direct));
    let app = TestApp::spawn_on(pooled.clone(), |c| {
        c.database_direct_url = Some(secrecy::SecretString::from(direct.clone()));
        c.db_pool_size = 8;
        c.workers = 2;
    })
    .await;
    assert_eq!(
        &*app.state.db_url, direct,
        "the LISTEN connection goes straight to PostgreSQL"
    );

    let users = join_all((0..4).map(|n| user(&app, 7100 + n))).await;
    let (token, _) = &users[0];
    let mut ws = app.ws_as(token).await;
    ws.subscribe("subscription { myGenerationJobs { id status } }", json!({}))
        .await;

    // Three jobs per user, all at once.
    let app_ref = &app;
    let requests = users.iter().flat_map(|(token, _)| {
        (0..3).map(move |i| {
            let input = json!({ "i": {
                "kind": "CHARACTER_GENERATION",
                "prompt": format!("a lantern {i}"),
                "outputCount": 1,
                "params": { "width": 64, "height": 64, "seed": i },
            }});
            async move { app_ref.gql_as(token, GENERATE, input).await }
        })
    });
    let mut jobs = Vec::new();
    for (status, body) in join_all(requests).await {
        assert_eq!(status, 200, "{body}");
        assert!(body["errors"].is_null(), "{body}");
        jobs.push(body["data"]["generate"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(jobs.len(), 12);

    // Reads at the same time as the workers write.
    let reads = (0..40).map(|i| {
        let (token, _) = &users[i % users.len()];
        let app = &app;
        async move {
            let query = match i % 3 {
                0 => "{ galleryFeed(first: 10) { edges { node { id } } } }",
                1 => "{ me { id credits { balance } } }",
                _ => "{ creditHistory(first: 20) { edges { node { amount } } } }",
            };
            app.gql_as(token, query, json!({})).await
        }
    });
    for (status, body) in join_all(reads).await {
        assert_eq!(status, 200, "{body}");
        assert!(body["errors"].is_null(), "{body}");
    }

    // The first user's three jobs reach SUCCEEDED on the websocket (LISTEN on the direct
    // connection; the NOTIFYs were sent through the pooler inside the workers' transactions).
    let mine: std::collections::HashSet<String> = jobs[..3].iter().cloned().collect();
    let mut done = std::collections::HashSet::new();
    while done != mine {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.recv())
            .await
            .expect("job events over the websocket")
            .unwrap()
            .unwrap();
        let job = &msg["payload"]["data"]["myGenerationJobs"];
        assert!(msg["payload"]["errors"].is_null(), "{msg}");
        if job["status"] == "SUCCEEDED" {
            done.insert(job["id"].as_str().unwrap().to_string());
        }
    }
    // Every job of every user succeeds.
    const JOBS: &str = "{ generationJobs(first: 10) { edges { node { status } } } }";
    for (n, (token, _)) in users.iter().enumerate() {
        let mut statuses = Vec::new();
        for _ in 0..400 {
            let (_, body) = app.gql_as(token, JOBS, json!({})).await;
            statuses = body["data"]["generationJobs"]["edges"]
                .as_array()
                .unwrap_or_else(|| panic!("{body}"))
                .iter()
                .map(|e| e["node"]["status"].clone())
                .collect::<Vec<Value>>();
            if statuses.iter().all(|s| s == "SUCCEEDED") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(statuses, vec![json!("SUCCEEDED"); 3], "user {n}");
    }
    app.assert_ledger_ok().await;

    // PgBouncer's own account: it served the app's pool over at most SERVER_POOL server
    // connections, moved transactions between them, and the app's prepared statements went
    // through its statement tracking.
    let name = database_name(&direct);
    let servers = bouncer
        .show("SERVERS")
        .into_iter()
        .filter(|s| s.get("database").map(String::as_str) == Some(name))
        .count();
    assert!(
        (1..=SERVER_POOL).contains(&servers),
        "{servers} server connections\n{}",
        bouncer.log()
    );
    let stats = bouncer
        .show("STATS")
        .into_iter()
        .find(|s| s.get("database").map(String::as_str) == Some(name))
        .expect("stats for the database");
    let number = |column: &str| -> u64 {
        stats
            .get(column)
            .unwrap_or_else(|| panic!("no {column} in {stats:?}"))
            .parse()
            .unwrap()
    };
    let clients = bouncer
        .show("CLIENTS")
        .into_iter()
        .filter(|c| c.get("database").map(String::as_str) == Some(name))
        .count();
    assert!(
        clients > SERVER_POOL,
        "the app held {clients} client connections, more than the {SERVER_POOL} server ones"
    );
    assert!(number("total_xact_count") >= 100, "{stats:?}");
    assert!(
        number("total_server_assignment_count") > SERVER_POOL as u64,
        "transactions were assigned to server connections afresh: {stats:?}"
    );
    assert!(number("total_client_parse_count") > 0, "{stats:?}");
    assert!(
        number("total_server_parse_count") >= servers as u64,
        "each server connection had the statements it was asked to run prepared: {stats:?}"
    );
}
