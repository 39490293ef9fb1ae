//! A private PostgreSQL cluster driven through the machine's own server programs
//! (`initdb`, `pg_ctl`): the embedded default database of `easel serve`, and the throwaway
//! cluster of the test suite.
//!
//! The cluster listens only on a unix socket inside its own directory (no TCP port), trusts
//! local connections (the directory's permissions are the access control), and, because
//! `initdb` refuses to run as root, runs as an unprivileged OS user when Easel runs as root.

use std::{
    fs,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

/// The database superuser the embedded cluster is created with.
pub const SUPERUSER: &str = "easel";
const PORT: u16 = 5432;
/// Unix socket paths are limited to 107 bytes; keep room for `/.s.PGSQL.5432`.
const MAX_SOCKET_DIR_LEN: usize = 90;

const NOT_FOUND_HELP: &str = "Easel could not find the PostgreSQL server programs (initdb, pg_ctl, postgres) it needs to run its embedded database. Install PostgreSQL 13 or newer (Debian/Ubuntu: `apt-get install postgresql`; Fedora: `dnf install postgresql-server`; macOS: `brew install postgresql@15`), then either put its bin directory on PATH or set EASEL_PG_BIN_DIR to it; or set DATABASE_URL to use a PostgreSQL server you already run.";

/// Where the server programs are.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    pub bin_dir: PathBuf,
}

impl PgBinaries {
    /// Finds the binaries: `explicit`, then PATH, then `pg_config --bindir`, then the newest
    /// `/usr/lib/postgresql/*/bin`.
    pub fn discover(explicit: Option<&Path>) -> anyhow::Result<Self> {
        let usable = |dir: &Path| {
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|b| dir.join(b).is_file())
        };
        if let Some(dir) = explicit {
            if usable(dir) {
                return Ok(Self {
                    bin_dir: dir.to_path_buf(),
                });
            }
            bail!(
                "EASEL_PG_BIN_DIR={} holds no initdb/pg_ctl/postgres. {NOT_FOUND_HELP}",
                dir.display()
            );
        }
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                // PATH often holds symlinks (e.g. /usr/local/bin/initdb); use the real directory
                // so that pg_ctl finds `postgres` beside itself.
                if let Ok(real) = fs::canonicalize(dir.join("initdb"))
                    && let Some(parent) = real.parent()
                {
                    candidates.push(parent.to_path_buf());
                }
            }
        }
        if let Ok(out) = Command::new("pg_config")
            .arg("--bindir")
            .stderr(Stdio::null())
            .output()
            && out.status.success()
        {
            candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
        if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
            let mut versions: Vec<(u32, PathBuf)> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                    Some((v, e.path().join("bin")))
                })
                .collect();
            versions.sort_by_key(|v| std::cmp::Reverse(v.0));
            candidates.extend(versions.into_iter().map(|(_, p)| p));
        }
        candidates
            .into_iter()
            .find(|d| usable(d))
            .map(|bin_dir| Self { bin_dir })
            .ok_or_else(|| anyhow::anyhow!(NOT_FOUND_HELP))
    }

    fn cmd(&self, program: &str) -> Command {
        Command::new(self.bin_dir.join(program))
    }
}

/// The OS identity the cluster runs as: the current user, or a named unprivileged one.
#[derive(Debug, Clone)]
pub enum RunAs {
    CurrentUser,
    User { name: String, uid: u32, gid: u32 },
}

impl RunAs {
    /// The current user, unless that is root: then `preferred` (or `nobody`).
    pub fn for_current_process(preferred: &str) -> anyhow::Result<Self> {
        if id(&["-u"])? != 0 {
            return Ok(RunAs::CurrentUser);
        }
        for name in [preferred, "postgres", "nobody"] {
            if let (Ok(uid), Ok(gid)) = (id(&["-u", name]), id(&["-g", name])) {
                return Ok(RunAs::User {
                    name: name.to_string(),
                    uid,
                    gid,
                });
            }
        }
        bail!(
            "Easel runs as root and PostgreSQL refuses to; no unprivileged user (`{preferred}`, `postgres`, `nobody`) exists to run the embedded database. Create one (`useradd --system postgres`), set EASEL_PG_USER, or set DATABASE_URL."
        )
    }

    fn apply(&self, cmd: &mut Command) {
        if let RunAs::User { uid, gid, .. } = self {
            cmd.uid(*uid).gid(*gid);
        }
    }

    /// Makes `path` (and, if `recursive`, everything below it) belong to this user.
    fn own(&self, path: &Path, recursive: bool) -> anyhow::Result<()> {
        let RunAs::User { uid, gid, .. } = self else {
            return Ok(());
        };
        std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
            .with_context(|| format!("chown {}", path.display()))?;
        if recursive && path.is_dir() {
            for entry in fs::read_dir(path)? {
                self.own(&entry?.path(), true)?;
            }
        }
        Ok(())
    }
}

fn id(args: &[&str]) -> anyhow::Result<u32> {
    let out = Command::new("id")
        .args(args)
        .stderr(Stdio::null())
        .output()
        .context("running `id`")?;
    if !out.status.success() {
        bail!("id {args:?} failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// How a cluster is created.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Trade durability for speed (`fsync=off`, ...): for throwaway test clusters only.
    pub ephemeral: bool,
}

/// A running cluster (started by us, or found running on our data directory).
#[derive(Debug)]
pub struct EmbeddedPostgres {
    bins: PgBinaries,
    run_as: RunAs,
    pgdata: PathBuf,
    socket_dir: PathBuf,
    /// Held while this process owns the cluster (an advisory lock on `<pgdata>.lock`). A
    /// process that finds the cluster running while another live process holds the lock (a
    /// serving `easel`, while `easel create-admin` or `migrate` runs beside it) uses the
    /// cluster but never stops it; a cluster left running by a process that died has no
    /// owner, and the next process takes it over.
    owner_lock: Option<fs::File>,
}

impl EmbeddedPostgres {
    /// Initialises `pgdata` on first use and starts the cluster (or adopts one already
    /// running there), waiting until it accepts connections.
    pub fn start(
        bins: PgBinaries,
        run_as: RunAs,
        pgdata: &Path,
        options: &ClusterOptions,
    ) -> anyhow::Result<Self> {
        let pgdata = absolute(pgdata)?;
        if let RunAs::User { name, .. } = &run_as {
            check_reachable(&pgdata, name)?;
        }
        let socket_dir = socket_dir_for(&pgdata);
        let mut pg = Self {
            bins,
            run_as,
            pgdata,
            socket_dir,
            owner_lock: None,
        };
        if !pg.pgdata.join("PG_VERSION").exists() {
            pg.initdb()?;
        }
        pg.owner_lock = pg.try_own()?;
        let running = pg.is_running();
        match (running, pg.owner_lock.is_some()) {
            (true, false) => {
                tracing::info!(pgdata = %pg.pgdata.display(), "embedded PostgreSQL is run by another Easel process; using it and leaving it running");
            }
            (true, true) => {
                tracing::info!(pgdata = %pg.pgdata.display(), "embedded PostgreSQL was left running by a process that is gone; taking it over");
            }
            (false, _) => {
                pg.write_settings(options)?;
                pg.pg_ctl_start()?;
            }
        }
        Ok(pg)
    }

    /// Takes the owner lock when no live process holds it.
    fn try_own(&self) -> anyhow::Result<Option<fs::File>> {
        let mut path = self.pgdata.clone().into_os_string();
        path.push(".lock");
        if let Some(parent) = Path::new(&path).parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", Path::new(&path).display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", Path::new(&path).display()))
            }
        }
    }

    fn initdb(&self) -> anyhow::Result<()> {
        fs::create_dir_all(&self.pgdata)
            .with_context(|| format!("creating {}", self.pgdata.display()))?;
        if fs::read_dir(&self.pgdata)?.next().is_some() {
            bail!(
                "{} is not empty but holds no PostgreSQL cluster (no PG_VERSION); move its contents away or choose another EASEL_DATA_DIR",
                self.pgdata.display()
            );
        }
        fs::set_permissions(&self.pgdata, fs::Permissions::from_mode(0o700))?;
        self.run_as.own(&self.pgdata, true)?;
        tracing::info!(pgdata = %self.pgdata.display(), "initialising embedded PostgreSQL cluster");
        let mut cmd = self.bins.cmd("initdb");
        cmd.arg("-D").arg(&self.pgdata).args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-instructions",
        ]);
        self.run(cmd, "initdb")
    }

    /// Settings are rewritten at every start so a moved data directory still works.
    fn write_settings(&self, options: &ClusterOptions) -> anyhow::Result<()> {
        let conf = self.pgdata.join("postgresql.conf");
        let main =
            fs::read_to_string(&conf).with_context(|| format!("reading {}", conf.display()))?;
        let include = "include_if_exists = 'easel.conf'";
        if !main.contains(include) {
            fs::write(
                &conf,
                format!("{main}\n# Easel's settings, rewritten at every start\n{include}\n"),
            )?;
        }
        let mut settings = format!(
            "listen_addresses = ''\nunix_socket_directories = '{}'\nport = {PORT}\nmax_connections = 200\n",
            self.socket_dir.display().to_string().replace('\'', "''")
        );
        if options.ephemeral {
            settings.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        let path = self.pgdata.join("easel.conf");
        fs::write(&path, settings)?;
        self.run_as.own(&path, false)?;
        if self.socket_dir != self.pgdata {
            fs::create_dir_all(&self.socket_dir)?;
            fs::set_permissions(&self.socket_dir, fs::Permissions::from_mode(0o700))?;
            self.run_as.own(&self.socket_dir, false)?;
        }
        Ok(())
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let mut cmd = self.bins.cmd("pg_ctl");
        cmd.arg("-D")
            .arg(&self.pgdata)
            .arg("-l")
            .arg(self.log_file())
            .args(["-w", "-t", "120", "start"])
            // Own process group: a Ctrl-C in the terminal reaches Easel, which drains requests
            // and then stops the database itself.
            .process_group(0);
        self.run(cmd, "pg_ctl start").with_context(|| {
            format!(
                "the embedded PostgreSQL did not start; see {}",
                self.log_file().display()
            )
        })
    }

    fn is_running(&self) -> bool {
        let mut cmd = self.bins.cmd("pg_ctl");
        cmd.arg("-D")
            .arg(&self.pgdata)
            .arg("status")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.run_as.apply(&mut cmd);
        cmd.current_dir("/");
        cmd.status().map(|s| s.success()).unwrap_or(false)
    }

    /// Stops the cluster (fast shutdown: open sessions are ended, data is flushed), unless it
    /// was already running when this process found it: then its owner stops it.
    pub fn stop(&self) -> anyhow::Result<()> {
        if self.owner_lock.is_none() || !self.is_running() {
            return Ok(());
        }
        let mut cmd = self.bins.cmd("pg_ctl");
        cmd.arg("-D")
            .arg(&self.pgdata)
            .args(["-m", "fast", "-w", "-t", "60", "stop"]);
        self.run(cmd, "pg_ctl stop")
    }

    /// A connection string for `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!(
            "host={} port={PORT} user={SUPERUSER} dbname={database} application_name=easel",
            self.socket_dir.display()
        )
    }

    pub fn pgdata(&self) -> &Path {
        &self.pgdata
    }

    /// Whether this process owns the cluster (and so stops it in [`Self::stop`]).
    pub fn owned(&self) -> bool {
        self.owner_lock.is_some()
    }

    pub fn log_file(&self) -> PathBuf {
        self.pgdata.join("postmaster.log")
    }

    /// A shell command line that stops this cluster, for watchdogs.
    pub fn stop_command(&self) -> String {
        format!(
            "'{}' -D '{}' -m immediate stop",
            self.bins.bin_dir.join("pg_ctl").display(),
            self.pgdata.display()
        )
    }

    pub fn run_as(&self) -> &RunAs {
        &self.run_as
    }

    fn run(&self, mut cmd: Command, what: &str) -> anyhow::Result<()> {
        self.run_as.apply(&mut cmd);
        // The unprivileged user may not be allowed into the current directory.
        cmd.current_dir("/").stdin(Stdio::null());
        let out = cmd.output().with_context(|| format!("running {what}"))?;
        if !out.status.success() {
            bail!(
                "{what} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        Ok(())
    }
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

/// The socket lives in the data directory unless that path is too long for a unix socket.
fn socket_dir_for(pgdata: &Path) -> PathBuf {
    if pgdata.as_os_str().len() <= MAX_SOCKET_DIR_LEN {
        return pgdata.to_path_buf();
    }
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    pgdata.hash(&mut h);
    std::env::temp_dir().join(format!("easel-pg-{:016x}", h.finish()))
}

/// When the cluster runs as another user, every ancestor of its directory must let that user
/// pass; say so clearly instead of letting initdb fail obscurely.
fn check_reachable(pgdata: &Path, user: &str) -> anyhow::Result<()> {
    let mut dir = pgdata.parent();
    while let Some(d) = dir {
        if let Ok(meta) = fs::metadata(d)
            && meta.permissions().mode() & 0o001 == 0
        {
            bail!(
                "the embedded database runs as the unprivileged user `{user}` (Easel was started as root), but `{}` does not let other users through (mode {:o}). Choose an EASEL_DATA_DIR outside it (e.g. /var/lib/easel), or `chmod o+x {}`.",
                d.display(),
                meta.permissions().mode() & 0o777,
                d.display()
            );
        }
        dir = d.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_bin_dir_without_binaries_explains_what_to_install() {
        let err = PgBinaries::discover(Some(Path::new("/nonexistent")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("EASEL_PG_BIN_DIR=/nonexistent"), "{err}");
        assert!(err.contains("apt-get install postgresql"), "{err}");
    }

    #[test]
    fn long_data_dirs_get_a_short_socket_dir() {
        let short = Path::new("/srv/easel/data/postgres");
        assert_eq!(socket_dir_for(short), short);
        let long = PathBuf::from(format!("/srv/{}/postgres", "x".repeat(120)));
        let dir = socket_dir_for(&long);
        assert!(
            dir.as_os_str().len() <= MAX_SOCKET_DIR_LEN,
            "{}",
            dir.display()
        );
        assert_eq!(dir, socket_dir_for(&long), "stable across starts");
    }
}
