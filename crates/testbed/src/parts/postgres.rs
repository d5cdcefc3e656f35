//! PostgreSQL 15 (Debian's package): the database Steward keeps its state in.
//! Each part is a fresh cluster made by `initdb` in the part's temp dir, with
//! trust authentication for one superuser, `steward`, on a loopback port.
//!
//! PostgreSQL refuses to run as root. Test bench machines often are root, so
//! then the cluster is created and run as the system's `postgres` user, which
//! the Debian package creates; the temp dir is handed over to it first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::READY_TIMEOUT;
use crate::{Error, Process, Result, Testbed, free_port, io_err};

/// The superuser `initdb` creates; tests connect as this user without a password.
const USER: &str = "steward";

/// How long one `pg_isready` or `initdb` may run before it counts as hung.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug)]
pub struct Postgres {
    process: Process,
    bin: PathBuf,
    port: u16,
}

/// The user to run the server as, when the test runs as root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl Postgres {
    pub async fn start(tb: &Testbed) -> Result<Self> {
        let bin = tb.bin("postgres-bin")?;
        let dir = Process::temp_dir("postgres")?;
        let data = dir.path().join("data");
        let sock = dir.path().join("sock");
        std::fs::create_dir(&sock).map_err(io_err(&sock))?;
        let run_as = run_as()?;
        if let Some(user) = run_as {
            chown_tree(dir.path(), user)?;
        }

        let mut initdb = tokio::process::Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", USER, "--no-sync", "--encoding=UTF8", "--locale=C"])
            .kill_on_drop(true);
        as_user(initdb.as_std_mut(), run_as, dir.path());
        let out = tokio::time::timeout(INITDB_TIMEOUT, initdb.output())
            .await
            .map_err(|_| Error::Timeout {
                what: "initdb".into(),
                waited: INITDB_TIMEOUT,
                last: "still running".into(),
            })?
            .map_err(|source| Error::Spawn { part: "initdb".into(), source })?;
        if !out.status.success() {
            return Err(Error::Unexpected {
                what: format!("initdb -D {}", data.display()),
                detail: format!(
                    "{}\n{}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }

        let port = free_port();
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", sock.display()))
            // Test data is thrown away with the temp dir; durability only costs time.
            .args(["-c", "fsync=off"]);
        as_user(&mut cmd, run_as, dir.path());
        let mut process = Process::spawn("postgres", cmd, dir)?;
        let isready = bin.join("pg_isready");
        process.wait_ready(READY_TIMEOUT, || probe_isready(&isready, port)).await?;
        Ok(Postgres { process, bin, port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A libpq connection URL for the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/postgres", self.port)
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    /// Runs `sql` with `psql` and returns its unaligned, tuples-only output,
    /// trimmed: `select 41+1` gives `"42"`.
    pub fn psql(&self, sql: &str) -> Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER, "-d", "postgres"])
            .args(["-v", "ON_ERROR_STOP=1", "-X", "-tAc", sql])
            // psql has no overall timeout; a bounded connect is what can hang.
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .map_err(|source| Error::Spawn { part: "psql".into(), source })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(Error::Unexpected {
                what: format!("psql -c {sql:?}"),
                detail: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
            })
        }
    }
}

/// `Ok(())` once `pg_isready` says the server accepts connections.
async fn probe_isready(isready: &Path, port: u16) -> std::result::Result<(), String> {
    let mut cmd = tokio::process::Command::new(isready);
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "2"]).kill_on_drop(true);
    match tokio::time::timeout(PROBE_TIMEOUT, cmd.output()).await {
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(format!(
            "pg_isready: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim()
        )),
        Ok(Err(err)) => Err(format!("pg_isready: {err}")),
        Err(_) => Err(format!("pg_isready did not answer within {PROBE_TIMEOUT:?}")),
    }
}

/// `Some(postgres user)` when running as root, `None` otherwise.
fn run_as() -> Result<Option<RunAs>> {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = Path::new("/etc/passwd");
    let text = std::fs::read_to_string(passwd).map_err(io_err(passwd))?;
    text.lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next() == Some("postgres")).then(|| {
                let uid = fields.nth(1)?.parse().ok()?;
                let gid = fields.next()?.parse().ok()?;
                Some(RunAs { uid, gid })
            })?
        })
        .map(Some)
        .ok_or_else(|| Error::Unexpected {
            what: "running PostgreSQL as root".into(),
            detail: "postgres refuses to run as root and /etc/passwd has no usable `postgres` \
                     user to run it as (the Debian postgresql package creates one)"
                .into(),
        })
}

/// Makes `cmd` run as `user` (if any), with `home` as its home directory.
fn as_user(cmd: &mut Command, user: Option<RunAs>, home: &Path) {
    use std::os::unix::process::CommandExt;
    if let Some(RunAs { uid, gid }) = user {
        // The group first: once the uid is dropped, changing the gid is no longer allowed.
        cmd.gid(gid).uid(uid).env("HOME", home);
    }
}

/// Hands `root` and everything under it to `user`.
fn chown_tree(root: &Path, user: RunAs) -> Result<()> {
    std::os::unix::fs::chown(root, Some(user.uid), Some(user.gid)).map_err(io_err(root))?;
    if root.is_dir() && !root.is_symlink() {
        for entry in std::fs::read_dir(root).map_err(io_err(root))? {
            let entry = entry.map_err(io_err(root))?;
            chown_tree(&entry.path(), user)?;
        }
    }
    Ok(())
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGTERM is PostgreSQL's "smart" shutdown, which waits for every
        // client to leave: a test's pooled connections would hold it until the
        // SIGKILL. SIGINT is the "fast" shutdown; `Process` then reaps it.
        self.process.signal(libc::SIGINT);
    }
}
