//! Issue #16: reads that may lag go to a real streaming replica (`DATABASE_READ_URL`), made by
//! `pg_basebackup` from a primary this test starts; a viewer reads their own writes from the
//! primary; a replica that is down costs nothing but a fallback to the primary.

use std::{os::unix::process::CommandExt, path::PathBuf, time::Duration};

use diesel::{QueryableByName, sql_types::Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use easel::db::{
    self,
    embedded::{ClusterOptions, EmbeddedPostgres, RunAs, SUPERUSER},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::gallery::{basic, character};
use crate::support::{TestApp, user};

/// A primary and a hot standby streaming from it; both stopped and removed on drop.
struct Replicated {
    primary: EmbeddedPostgres,
    bin_dir: PathBuf,
    run_as: RunAs,
    root: PathBuf,
    standby: PathBuf,
    standby_socket: PathBuf,
}

impl Replicated {
    async fn start() -> Self {
        let (bins, run_as) = crate::support::pg_programs();
        let short = Uuid::now_v7().simple().to_string();
        let root = std::env::temp_dir().join(format!("easel-replica-{}", &short[20..]));
        let standby_socket = root.join("standby-socket");
        std::fs::create_dir_all(&standby_socket).unwrap();
        for dir in [&root, &standby_socket] {
            if let RunAs::User { uid, gid, .. } = &run_as {
                std::os::unix::fs::chown(dir, Some(*uid), Some(*gid)).unwrap();
            }
        }
        let primary = EmbeddedPostgres::start(
            bins.clone(),
            run_as.clone(),
            &root.join("primary"),
            &ClusterOptions { ephemeral: false },
        )
        .expect("starting the primary");
        let pair = Replicated {
            primary,
            bin_dir: bins.bin_dir,
            run_as,
            standby: root.join("standby"),
            standby_socket,
            root,
        };
        db::create_database(&pair.primary.url("postgres"), "easel", None)
            .await
            .unwrap();
        db::run_migrations(&pair.primary.url("easel"))
            .await
            .unwrap();
        // A base backup that writes the standby's settings (-R: standby.signal and
        // primary_conninfo), streaming the WAL it needs.
        pair.run(
            "pg_basebackup",
            &[
                "-D",
                &pair.standby.display().to_string(),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "-d",
                &pair.primary.url("postgres"),
            ],
        );
        let log = pair.standby.join("standby.log").display().to_string();
        let opts = format!("-k {} -p 5433", pair.standby_socket.display());
        pair.run(
            "pg_ctl",
            &[
                "-D",
                &pair.standby.display().to_string(),
                "-w",
                "-t",
                "60",
                "-l",
                &log,
                "-o",
                &opts,
                "start",
            ],
        );
        pair
    }

    fn command(&self, program: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(self.bin_dir.join(program));
        cmd.current_dir("/").stdin(std::process::Stdio::null());
        if let RunAs::User { uid, gid, .. } = &self.run_as {
            cmd.uid(*uid).gid(*gid);
        }
        cmd
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self.command(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }

    fn standby_url(&self) -> String {
        format!(
            "host={} port=5433 user={SUPERUSER} dbname=easel application_name=easel",
            self.standby_socket.display()
        )
    }

    async fn standby(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.standby_url())
            .await
            .unwrap()
    }

    /// Runs `sql` (one text column `v`) on the standby.
    async fn on_standby(&self, sql: &str) -> String {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            v: String,
        }
        let mut conn = self.standby().await;
        diesel::sql_query(sql)
            .get_result::<Row>(&mut conn)
            .await
            .unwrap()
            .v
    }

    /// Waits until the standby has replayed everything the primary has written so far.
    async fn caught_up(&self) {
        #[derive(QueryableByName)]
        struct Lsn {
            #[diesel(sql_type = Text)]
            v: String,
        }
        let mut primary = AsyncPgConnection::establish(&self.primary.url("easel"))
            .await
            .unwrap();
        let target = diesel::sql_query("SELECT pg_current_wal_lsn()::text AS v")
            .get_result::<Lsn>(&mut primary)
            .await
            .unwrap()
            .v;
        wait_for(|| async {
            self.on_standby(&format!(
                "SELECT (pg_last_wal_replay_lsn() >= '{target}')::text AS v"
            ))
            .await
                == "true"
        })
        .await;
    }

    fn stop_standby(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.standby.display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

impl Drop for Replicated {
    fn drop(&mut self) {
        for dir in [&self.standby, self.primary.pgdata()] {
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(dir)
                .args(["-m", "immediate", "stop"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

async fn wait_for<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "not within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const FEED: &str = "{ galleryFeed(first: 50) { edges { node { name } } } }";
const GALLERY: &str =
    "query($o: ID!) { gallery(owner: $o) { characters(first: 50) { edges { node { name } } } } }";

fn names(connection: &Value) -> Vec<String> {
    connection["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{connection}"))
        .iter()
        .map(|e| e["node"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn lagging_reads_use_the_replica_and_viewers_read_their_own_writes() {
    let pair = Replicated::start().await;
    assert_eq!(
        pair.on_standby("SELECT pg_is_in_recovery()::text AS v")
            .await,
        "true",
        "a hot standby"
    );
    let app = TestApp::spawn_on(pair.primary.url("easel"), |c| {
        c.database_read_url = Some(secrecy::SecretString::from(pair.standby_url()));
        c.read_your_writes = Duration::from_secs(60);
    })
    .await;
    let (owner, owner_id) = user(&app, 1601).await;
    let (other, _) = user(&app, 1602).await;
    character(&app, &owner, basic("Settled", true)).await;
    pair.caught_up().await;

    // The replica stops replaying: what the primary commits now, only the primary has.
    pair.on_standby("SELECT pg_wal_replay_pause()::text AS v")
        .await;
    wait_for(|| async {
        pair.on_standby("SELECT pg_get_wal_replay_pause_state() AS v")
            .await
            == "paused"
    })
    .await;
    character(&app, &owner, basic("Fresh", true)).await;

    let (_, body) = app.gql(FEED, json!({})).await;
    assert_eq!(
        names(&body["data"]["galleryFeed"]),
        ["Settled"],
        "an anonymous feed comes from the replica: {body}"
    );
    let (_, body) = app.gql_as(&other, GALLERY, json!({ "o": owner_id })).await;
    assert_eq!(
        names(&body["data"]["gallery"]["characters"]),
        ["Settled"],
        "another viewer reads the replica too: {body}"
    );
    let (_, body) = app.gql_as(&owner, GALLERY, json!({ "o": owner_id })).await;
    assert_eq!(
        names(&body["data"]["gallery"]["characters"]),
        ["Fresh", "Settled"],
        "the writer reads their own write from the primary: {body}"
    );
    let (_, body) = app.gql_as(&owner, FEED, json!({})).await;
    assert_eq!(names(&body["data"]["galleryFeed"]), ["Fresh", "Settled"]);

    // Replay resumes: everyone sees it.
    pair.on_standby("SELECT pg_wal_replay_resume()::text AS v")
        .await;
    wait_for(|| async {
        let (_, body) = app.gql(FEED, json!({})).await;
        names(&body["data"]["galleryFeed"]).len() == 2
    })
    .await;

    // The replica goes away: reads fall back to the primary.
    pair.stop_standby();
    let (_, body) = app.gql(FEED, json!({})).await;
    assert_eq!(
        names(&body["data"]["galleryFeed"]),
        ["Fresh", "Settled"],
        "{body}"
    );
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("easel_db_replica_fallbacks_total") && !l.ends_with(" 0")),
        "{metrics}"
    );
}
