//! One child process of the test bench: its temp dir, its log, its lifetime.

use std::fs::File;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{Error, Result, io_err};

/// How long a part gets to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A free TCP port on 127.0.0.1.
///
/// The port is free when this returns; another process could take it before
/// the part binds it. Parts that fail to bind then fail their readiness wait
/// with the reason in their log, which is rare enough not to warrant retries.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding 127.0.0.1:0 must work on a machine that runs the test bench")
}

/// Polls `probe` every `interval` until it returns `Ok`, for at most `timeout`.
///
/// `probe` says why it is not done yet with `Err(reason)`; the last reason ends
/// up in the timeout error, so a failed wait explains itself.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, String>>,
{
    let start = Instant::now();
    let interval = Duration::from_millis(100);
    loop {
        match probe().await {
            Ok(value) => return Ok(value),
            Err(last) if start.elapsed() >= timeout => {
                return Err(Error::Timeout {
                    what: what.to_owned(),
                    waited: start.elapsed(),
                    last,
                });
            }
            Err(_) => tokio::time::sleep(interval).await,
        }
    }
}

/// A running part. Dropping it stops the process group (SIGTERM, then SIGKILL
/// after a grace period) and removes its temp dir, unless the part never became
/// ready or the current thread is panicking: then the dir is kept and its path
/// and log tail are printed.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    dir: Option<TempDir>,
    log_path: PathBuf,
    /// Set when the part failed to become ready: its dir is worth keeping.
    keep_dir: bool,
}

impl Process {
    /// A fresh temp dir for a part, named after it.
    pub fn temp_dir(name: &str) -> Result<TempDir> {
        tempfile::Builder::new()
            .prefix(&format!("steward-{name}-"))
            .tempdir()
            .map_err(io_err(std::env::temp_dir()))
    }

    /// Spawns `cmd` in its own process group, with stdout and stderr appended to
    /// `<dir>/<name>.log`. The process group lets [`Process::stop`] reach the
    /// part's own children (the OpAMP supervisor runs a collector, for one).
    pub fn spawn(name: &str, cmd: Command, dir: TempDir) -> Result<Self> {
        let mut process = Self::spawn_in(name, cmd, dir.path())?;
        process.dir = Some(dir);
        Ok(process)
    }

    /// Like [`Process::spawn`], in a directory the caller owns and keeps: for
    /// parts that are restarted on the same data (a Docker Engine).
    pub fn spawn_in(name: &str, mut cmd: Command, dir: &Path) -> Result<Self> {
        let log_path = dir.join(format!("{name}.log"));
        let log =
            File::options().create(true).append(true).open(&log_path).map_err(io_err(&log_path))?;
        let log_err = log.try_clone().map_err(io_err(&log_path))?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(log_err).process_group(0);
        let child = cmd.spawn().map_err(|source| Error::Spawn { part: name.to_owned(), source })?;
        Ok(Process { name: name.to_owned(), child, dir: None, log_path, keep_dir: false })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The part's temp dir: its data, config and log live here.
    pub fn dir(&self) -> &Path {
        match &self.dir {
            Some(dir) => dir.path(),
            None => self.log_path.parent().unwrap_or(Path::new("/")),
        }
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `max_bytes` of the log, for error messages.
    pub fn log_tail(&self, max_bytes: u64) -> String {
        let Ok(mut file) = File::open(&self.log_path) else {
            return String::from("(no log)");
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(max_bytes)));
        let mut tail = Vec::new();
        let _ = file.read_to_end(&mut tail);
        String::from_utf8_lossy(&tail).into_owned()
    }

    /// The exit status, once the process has exited.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// `Err` with the exit status and log tail if the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::Exited {
                part: self.name.clone(),
                status: status.to_string(),
                log_tail: self.log_tail(4096),
            }),
            Err(err) => Err(Error::Exited {
                part: self.name.clone(),
                status: format!("unknown: {err}"),
                log_tail: self.log_tail(4096),
            }),
        }
    }

    /// Waits until `probe` succeeds, failing early if the process exits.
    pub async fn wait_ready<F, Fut>(&mut self, timeout: Duration, mut probe: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<(), String>>,
    {
        let what = format!("`{}` to answer", self.name);
        let this = &mut *self;
        let result = eventually(&what, timeout, || {
            let exited = this.check_running().err();
            let fut = probe();
            async move {
                if let Some(exited) = exited {
                    // Surface the exit as the final answer: waiting longer cannot help.
                    return Ok(Err(exited));
                }
                fut.await.map(Ok)
            }
        })
        .await;
        if !matches!(result, Ok(Ok(()))) {
            self.keep_dir = true;
        }
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(exited)) => Err(exited),
            Err(Error::Timeout { what, waited, last }) => Err(Error::Timeout {
                what,
                waited,
                last: format!("{last}\nlast log lines of {}:\n{}", self.name, self.log_tail(2048)),
            }),
            Err(other) => Err(other),
        }
    }

    /// Hands the temp dir over (to a restarted part); this handle then
    /// removes nothing on drop.
    pub fn take_dir(&mut self) -> Option<TempDir> {
        self.dir.take()
    }

    /// Removes the temp dir on drop even though the part failed to become
    /// ready: for failures the caller has understood and handled.
    pub fn discard_dir_on_drop(&mut self) {
        self.keep_dir = false;
    }

    /// Sends `signal` to the part's process group.
    pub fn signal(&self, signal: libc::c_int) {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) has no memory-safety preconditions; a stale pgid only yields ESRCH.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }

    /// Asks only the group's leader to stop (SIGTERM to its pid), waits up to
    /// [`STOP_GRACE`] for it, then stops the rest of the group. For parts that
    /// shut their own children down in order (dockerd stops containerd).
    pub fn stop_leader_first(&mut self) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
    }

    /// Stops the part: SIGTERM to its group, SIGKILL after [`STOP_GRACE`].
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            // The leader is gone, but children it started may still run.
            self.signal(libc::SIGKILL);
            return;
        }
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                self.signal(libc::SIGKILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
        if (self.keep_dir || std::thread::panicking())
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!(
                "test bench: kept {} for `{}`; log {}; its tail:\n{}",
                kept.display(),
                self.name,
                kept.join(format!("{}.log", self.name)).display(),
                self.log_tail(2048)
            );
        }
    }
}
