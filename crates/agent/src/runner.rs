//! The two ways a node's collector runs, behind one trait.
//!
//! - [`Supervised`]: Steward starts the collector as its child and restarts it
//!   when it dies, with bounded backoff; several deaths in a short window are
//!   a crash loop, reported as a [`RunnerEvent`] so the manager can fall back.
//! - [`Signalled`]: systemd or Kubernetes runs the collector; Steward only
//!   writes the file and signals the PID from a pid file.
//!
//! Either way a reload is SIGHUP: the collector shuts its service down and
//! loads the file again. With an invalid file it exits, which is why a config
//! is validated before it is written.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast};

use crate::AgentError;

/// What happened to the collector process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunnerEvent {
    Started {
        pid: u32,
    },
    Exited {
        pid: u32,
        status: String,
    },
    /// `crashes` unexpected exits within `window`: restarting alone will not help.
    CrashLoop {
        crashes: usize,
        window: Duration,
    },
}

pub trait CollectorRunner: Send + Sync {
    /// Asks the collector to load its config file again (SIGHUP).
    fn reload(&self) -> impl Future<Output = Result<(), AgentError>> + Send;
    /// Stops the collector and starts it again on the current file.
    fn restart(&self) -> impl Future<Output = Result<(), AgentError>> + Send;
    /// The collector's PID, if it runs.
    fn pid(&self) -> Option<u32>;
}

/// How long a collector gets to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

fn signal(pid: u32, sig: libc::c_int) -> Result<(), AgentError> {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(AgentError::Signal { pid, source: std::io::Error::last_os_error() })
    }
}

/// Whether a process with `pid` exists. EPERM means it exists but belongs
/// to another user (a collector run by its own service user): alive.
pub fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// How the supervisor restarts a collector that died.
#[derive(Debug, Clone)]
pub struct SuperviseSettings {
    pub binary: PathBuf,
    pub config: PathBuf,
    /// Extra arguments after `--config FILE`.
    pub args: Vec<String>,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// A process that ran this long resets the backoff.
    pub healthy_after: Duration,
    /// This many unexpected exits within `crash_window` is a crash loop.
    pub crash_limit: usize,
    pub crash_window: Duration,
}

impl SuperviseSettings {
    pub fn new(binary: PathBuf, config: PathBuf) -> Self {
        SuperviseSettings {
            binary,
            config,
            args: Vec::new(),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            healthy_after: Duration::from_secs(10),
            crash_limit: 5,
            crash_window: Duration::from_secs(60),
        }
    }
}

/// A collector run as Steward's child. Dropping it stops the collector.
pub struct Supervised {
    pid: Arc<AtomicU32>,
    /// Set before a deliberate stop, so the exit is not counted as a crash.
    expected_exit: Arc<AtomicBool>,
    started: Arc<Notify>,
    /// Cuts a crash backoff short: the file changed, so waiting cannot help.
    wake: Arc<Notify>,
    events: broadcast::Sender<RunnerEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl Supervised {
    /// Starts the collector and keeps it running.
    pub fn start(settings: SuperviseSettings) -> Self {
        let (events, _) = broadcast::channel(256);
        let pid = Arc::new(AtomicU32::new(0));
        let expected_exit = Arc::new(AtomicBool::new(false));
        let started = Arc::new(Notify::new());
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(supervise(
            settings,
            Arc::clone(&pid),
            Arc::clone(&expected_exit),
            Arc::clone(&started),
            Arc::clone(&wake),
            events.clone(),
        ));
        Supervised { pid, expected_exit, started, wake, events, task }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<RunnerEvent> {
        self.events.subscribe()
    }

    /// Waits until a process runs (at most `timeout`).
    pub async fn running(&self, timeout: Duration) -> Result<u32, AgentError> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.started.notified();
            if let Some(pid) = self.pid() {
                return Ok(pid);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                return Err(AgentError::NotRunning { waited: timeout });
            }
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.expected_exit.store(true, Ordering::SeqCst);
        self.task.abort();
        if let Some(pid) = self.pid() {
            let _ = signal(pid, libc::SIGTERM);
        }
    }
}

async fn supervise(
    settings: SuperviseSettings,
    pid_slot: Arc<AtomicU32>,
    expected_exit: Arc<AtomicBool>,
    started: Arc<Notify>,
    wake: Arc<Notify>,
    events: broadcast::Sender<RunnerEvent>,
) {
    let mut backoff = settings.backoff_min;
    let mut crashes: VecDeque<Instant> = VecDeque::new();
    loop {
        let spawned = tokio::process::Command::new(&settings.binary)
            .arg("--config")
            .arg(&settings.config)
            .args(&settings.args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(err) => {
                tracing::error!(binary = %settings.binary.display(), error = %err, "cannot start the collector");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(settings.backoff_max);
                continue;
            }
        };
        let pid = child.id().unwrap_or(0);
        let since = Instant::now();
        pid_slot.store(pid, Ordering::SeqCst);
        started.notify_waiters();
        let _ = events.send(RunnerEvent::Started { pid });
        tracing::info!(pid, "collector started");

        let status = child.wait().await;
        pid_slot.store(0, Ordering::SeqCst);
        let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        let _ = events.send(RunnerEvent::Exited { pid, status: status.clone() });
        if expected_exit.swap(false, Ordering::SeqCst) {
            // A deliberate restart: start again at once.
            backoff = settings.backoff_min;
            continue;
        }
        tracing::warn!(pid, %status, "collector exited; restarting");
        if since.elapsed() >= settings.healthy_after {
            backoff = settings.backoff_min;
        }
        let now = Instant::now();
        crashes.push_back(now);
        while crashes.front().is_some_and(|t| now.duration_since(*t) > settings.crash_window) {
            crashes.pop_front();
        }
        if crashes.len() >= settings.crash_limit {
            tracing::error!(crashes = crashes.len(), "collector crash loop");
            let _ = events.send(RunnerEvent::CrashLoop {
                crashes: crashes.len(),
                window: settings.crash_window,
            });
            crashes.clear();
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = wake.notified() => tracing::info!("restart requested: backoff cut short"),
        }
        backoff = (backoff * 2).min(settings.backoff_max);
    }
}

impl CollectorRunner for Supervised {
    async fn reload(&self) -> Result<(), AgentError> {
        let pid = self.running(Duration::from_secs(10)).await?;
        signal(pid, libc::SIGHUP)
    }

    async fn restart(&self) -> Result<(), AgentError> {
        let Some(pid) = self.pid() else {
            // Not running: the supervisor is waiting out a crash backoff (up
            // to `backoff_max`). The file has changed since, so start now.
            self.wake.notify_one();
            return self.running(Duration::from_secs(30)).await.map(drop);
        };
        self.expected_exit.store(true, Ordering::SeqCst);
        match signal(pid, libc::SIGTERM) {
            Ok(()) => {}
            // It exited on its own since `pid()` (a crash loop): the
            // supervisor brings it back, now rather than after the backoff.
            Err(AgentError::Signal { source, .. })
                if source.raw_os_error() == Some(libc::ESRCH) =>
            {
                self.wake.notify_one();
            }
            Err(err) => return Err(err),
        }
        let started = Instant::now();
        let mut killed = false;
        while started.elapsed() < Duration::from_secs(30) {
            if self.pid().is_some_and(|new| new != pid) {
                return Ok(());
            }
            // A hung (or stopped) collector ignores SIGTERM; it must not
            // stop the repair that is trying to replace it.
            if !killed && started.elapsed() >= STOP_GRACE && self.pid() == Some(pid) {
                tracing::warn!(pid, "collector ignored SIGTERM; killing it");
                let _ = signal(pid, libc::SIGKILL);
                killed = true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(AgentError::NotRunning { waited: Duration::from_secs(30) })
    }

    fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::SeqCst)).filter(|pid| *pid != 0)
    }
}

/// A collector run by systemd or Kubernetes, found through its pid file.
#[derive(Debug, Clone)]
pub struct Signalled {
    pub pid_file: PathBuf,
}

impl Signalled {
    fn read_pid(&self) -> Result<u32, AgentError> {
        let text = std::fs::read_to_string(&self.pid_file)
            .map_err(|source| AgentError::PidFile { path: self.pid_file.clone(), source })?;
        text.trim().parse().map_err(|_| AgentError::PidFile {
            path: self.pid_file.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not a pid: {text:?}"),
            ),
        })
    }
}

impl CollectorRunner for Signalled {
    async fn reload(&self) -> Result<(), AgentError> {
        signal(self.read_pid()?, libc::SIGHUP)
    }

    /// SIGTERM, then wait for the process manager to start a new process.
    async fn restart(&self) -> Result<(), AgentError> {
        let old = self.read_pid()?;
        signal(old, libc::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(new) = self.read_pid()
                && new != old
                && alive(new)
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(AgentError::NotRunning { waited: Duration::from_secs(30) })
    }

    fn pid(&self) -> Option<u32> {
        self.read_pid().ok().filter(|pid| alive(*pid))
    }
}

/// Either runner, chosen from `steward.yaml` at run time, so the workflow
/// and the binary need no type parameter for it.
pub enum AnyRunner {
    Supervised(Supervised),
    Signalled(Signalled),
}

impl CollectorRunner for AnyRunner {
    async fn reload(&self) -> Result<(), AgentError> {
        match self {
            AnyRunner::Supervised(runner) => runner.reload().await,
            AnyRunner::Signalled(runner) => runner.reload().await,
        }
    }

    async fn restart(&self) -> Result<(), AgentError> {
        match self {
            AnyRunner::Supervised(runner) => runner.restart().await,
            AnyRunner::Signalled(runner) => runner.restart().await,
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            AnyRunner::Supervised(runner) => runner.pid(),
            AnyRunner::Signalled(runner) => runner.pid(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn another_users_process_is_alive_and_a_missing_one_is_not() {
        // PID 1 always exists: as root kill(1, 0) succeeds, as any other
        // user it fails with EPERM; both mean alive.
        assert!(super::alive(1));
        assert!(super::alive(std::process::id()));
        // Above the kernel's largest pid_max (2^22): no such process.
        assert!(!super::alive(1 << 23));
    }
}
