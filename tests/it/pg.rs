//! A throw-away PostgreSQL cluster per test: Debian's `postgresql` binaries (initdb, pg_ctl),
//! a data folder in a temporary directory, a free port on loopback, run as `nobody` when the
//! tests run as root (PostgreSQL refuses root). Stopped (immediately) when dropped.
//!
//! initdb runs once per build, into a template under the target folder; each cluster starts
//! from a copy of it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use dfdg_mock::journal::{Database, Location};

use crate::suites::{self, Suite};

/// The user the cluster runs as when the tests run as root.
const UNPRIVILEGED: &str = "nobody";

/// The database user initdb creates (trusted on loopback).
pub const USER: &str = "dfdg";

/// The PostgreSQL binaries, or why there are none.
fn binaries() -> Result<PathBuf, String> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "/usr/lib/postgresql does not exist".to_owned())?
        .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    found.sort();
    found
        .pop()
        .ok_or_else(|| "no /usr/lib/postgresql/*/bin/initdb".to_owned())
}

/// uid and gid of [`UNPRIVILEGED`] when running as root.
fn run_as() -> Option<(u32, u32)> {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|status| {
            status
                .lines()
                .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&UNPRIVILEGED))
            .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))
            .flatten()
    })
}

fn run(command: &mut Command, user: Option<(u32, u32)>) -> Output {
    use std::os::unix::process::CommandExt as _;
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    let output = command.output().expect("a PostgreSQL tool runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn chown(path: &Path, user: Option<(u32, u32)>) {
    if let Some((uid, gid)) = user {
        run(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(path),
            None,
        );
    }
}

/// The data folder initdb made for this build, made once (concurrent tests wait for it).
fn template(bin: &Path, user: Option<(u32, u32)>) -> PathBuf {
    static TEMPLATE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
            let version = bin
                .parent()
                .and_then(Path::file_name)
                .map_or("pg".into(), |v| v.to_string_lossy().into_owned());
            let done = root.join(format!("postgres-template-{version}"));
            if done.join("PG_VERSION").exists() {
                return done;
            }
            let work = tempfile::tempdir_in(root).unwrap();
            chown(work.path(), user);
            let data = work.path().join("data");
            run(
                Command::new(bin.join("initdb"))
                    .arg("-D")
                    .arg(&data)
                    .args(["-U", USER, "-A", "trust", "-E", "UTF8", "--no-sync"])
                    .arg("--no-instructions"),
                user,
            );
            // Another test binary may have won the race; either template is as good.
            let _ = std::fs::rename(&data, &done);
            done
        })
        .clone()
}

/// A running cluster.
pub struct Cluster {
    bin: PathBuf,
    user: Option<(u32, u32)>,
    data: PathBuf,
    pub port: u16,
    options: String,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// A fresh cluster, or `None` (with a note) when PostgreSQL is not installed and the
    /// Postgres suite is not required.
    pub fn start() -> Option<Cluster> {
        Cluster::start_with("")
    }

    /// A fresh cluster with extra `postgres` settings (`-c name=value …`).
    pub fn start_with(settings: &str) -> Option<Cluster> {
        Cluster::start_prepared(settings, |_| {})
    }

    /// A fresh cluster that accepts connections over TLS only, presenting `certificate` (PEM)
    /// with `key` (PEM): `hostssl` in pg_hba.conf, plain connections rejected.
    pub fn start_tls(certificate: &str, key: &str) -> Option<Cluster> {
        Cluster::start_prepared("-c ssl=on", |data| {
            std::fs::write(data.join("server.crt"), certificate).unwrap();
            std::fs::write(data.join("server.key"), key).unwrap();
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\n\
                 hostssl all all 127.0.0.1/32 trust\n\
                 hostnossl all all 127.0.0.1/32 reject\n",
            )
            .unwrap();
        })
    }

    /// A fresh cluster whose data folder `prepare` changes before the first start.
    fn start_prepared(settings: &str, prepare: impl FnOnce(&Path)) -> Option<Cluster> {
        let bin = suites::require(Suite::Postgres, binaries())?;
        let user = run_as();
        let template = template(&bin, user);
        let dir = tempfile::tempdir().unwrap();
        chown(dir.path(), user);
        let data = dir.path().join("data");
        run(Command::new("cp").arg("-a").arg(&template).arg(&data), None);
        prepare(&data);
        chown(&data, user);
        // PostgreSQL refuses a key file others may read.
        let key = data.join("server.key");
        if key.exists() {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let mut cluster = Cluster {
            bin,
            user,
            data,
            port: 0,
            options: String::new(),
            _dir: dir,
        };
        // A port free a moment ago; taken meanwhile, the start fails and another is tried.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            cluster.port = port;
            cluster.options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40 {settings}",
                cluster._dir.path().display()
            );
            if cluster.pg_ctl_start() {
                return Some(cluster);
            }
        }
        panic!("PostgreSQL did not start: see {}", cluster.log().display());
    }

    fn log(&self) -> PathBuf {
        self._dir.path().join("postgres.log")
    }

    /// Starts the server and waits (pg_ctl -w, bounded) until it accepts connections.
    fn pg_ctl_start(&self) -> bool {
        use std::os::unix::process::CommandExt as _;
        let mut command = Command::new(self.bin.join("pg_ctl"));
        command
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.log())
            .args(["-w", "-t", "60", "-o", &self.options, "start"]);
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        command.output().is_ok_and(|output| output.status.success())
    }

    /// Stops the server at once, as a crash would (no checkpoint; recovery on the next start).
    pub fn kill(&self) {
        run(
            Command::new(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "stop"]),
            self.user,
        );
    }

    /// Starts it again on the same port (after [`Cluster::kill`]).
    pub fn restart(&self) {
        assert!(
            self.pg_ctl_start(),
            "PostgreSQL did not start again: see {}",
            self.log().display()
        );
    }

    /// The URL of database `name` (created on first use by [`Cluster::database`]).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// A new, empty database and its URL.
    pub fn create(&self, name: &str) -> String {
        let psql = self.bin.join("psql");
        run(
            Command::new(psql)
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
                .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c"])
                .arg(format!("CREATE DATABASE {name}")),
            None,
        );
        self.url(name)
    }

    /// Runs SQL in database `name` with psql; its output.
    pub fn psql(&self, name: &str, sql: &str) -> String {
        let output = run(
            Command::new(self.bin.join("psql"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
                .args(["-d", name, "-v", "ON_ERROR_STOP=1", "-q", "-At", "-c", sql]),
            None,
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// A new database as a journal location.
    pub fn journal(&self, name: &str) -> Location {
        Location::Database(Arc::new(self.database(name)))
    }

    /// A new database, parsed.
    pub fn database(&self, name: &str) -> Database {
        self.create(name).parse().unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        use std::os::unix::process::CommandExt as _;
        let mut command = Command::new(self.bin.join("pg_ctl"));
        command
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        let _ = command.output();
    }
}
