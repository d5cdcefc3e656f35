//! `AgentManager`: one node's rollout, start to finish.
//!
//! ```text
//! record version ─▶ pre-flight (static checks + otelcol validate) ─▶ canary (shadow collector)
//!   ─▶ push (atomic write) ─▶ reload (SIGHUP) ─▶ verify (health, canary line, settle)
//!   ─▶ mark applied            └─ on failure: mark failed, roll back to the last good version
//! ```
//!
//! A config that fails pre-flight or the canary never reaches the running
//! collector. One rollout at a time: `apply` holds a lock for its duration.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use steward_config::validate::{ValidateError, otelcol_validate, static_check};
use steward_registry::store::{ConfigVersion, VersionStore};
use tokio::sync::Mutex;

use crate::AgentError;
use crate::atomic::write_atomic;
use crate::canary::{CanaryVerdict, canary_reload};
use crate::runner::CollectorRunner;
use crate::verify::{Endpoints, verify_reload};

#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The file the collector loads.
    pub config_path: PathBuf,
    /// The node's own collector binary, for `validate` and the canary.
    pub binary: PathBuf,
    /// Run the shadow collector before every reload.
    pub canary: bool,
    pub canary_timeout: Duration,
    /// How long a reloaded collector has to answer and read a canary line.
    pub verify_timeout: Duration,
    /// How long it must keep running after that.
    pub settle: Duration,
    /// The minimal known-good config used when nothing in the history is
    /// good (e.g. the canary-only config `generate_config(&[], …)` gives).
    pub fallback: Option<String>,
}

impl AgentSettings {
    pub fn new(config_path: PathBuf, binary: PathBuf) -> Self {
        AgentSettings {
            config_path,
            binary,
            canary: true,
            canary_timeout: Duration::from_secs(15),
            verify_timeout: Duration::from_secs(20),
            settle: Duration::from_secs(1),
            fallback: None,
        }
    }
}

/// How a rollout ended. Every outcome is recorded in the version history.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The collector runs the new version and passed verification.
    Applied { version: String },
    /// The collector already runs exactly this version.
    Unchanged { version: String },
    /// Pre-flight refused it; the collector was not touched.
    Refused { version: String, reason: String },
    /// The shadow collector could not deliver a marker; not applied.
    CanaryFailed { version: String, reason: String },
    /// Applied, failed verification, and the previous version is back.
    RolledBack { version: String, reason: String, restored: Option<String> },
}

/// What the manager did on its own, for the health monitor and repair.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// The collector kept crashing; the fallback (`restored`) now runs.
    CrashLoop { crashes: usize, failed: Option<String>, restored: Option<String> },
}

/// What `auto_apply_fallback_config` replaced, and with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FellBack {
    /// The version that was running and failing, if it was in the history.
    pub failed: Option<String>,
    /// The version now running; `None` when there was nothing to fall back to.
    pub restored: Option<String>,
}

/// What the node's collector has: the hash of its file and of the version
/// the history says was applied last.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Current {
    pub on_disk: Option<String>,
    pub applied: Option<String>,
}

impl Current {
    /// Whether the collector already runs `hash`, verified.
    pub fn runs(&self, hash: &str) -> bool {
        self.on_disk.as_deref() == Some(hash) && self.applied.as_deref() == Some(hash)
    }
}

/// What a push wrote over and which process it asked to reload: what
/// verification and a rollback need, kept by the workflow engine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pushed {
    /// The pushed version's hash.
    pub hash: String,
    /// The hash of the file it replaced, if different; always in the history.
    pub previous: Option<String>,
    /// The collector that was asked to reload; `None` if none ran.
    pub pid: Option<u32>,
}

pub struct AgentManager<R, V> {
    runner: R,
    versions: V,
    settings: AgentSettings,
    http: reqwest::Client,
    rollout: Mutex<()>,
    /// When the push whose verification (or rollback) has not ended yet
    /// began, in Unix ms; 0 when none. The collector is reloading, so a
    /// health check now would judge a moving target.
    reloading_since: std::sync::atomic::AtomicI64,
    /// One more at every push or rollback (see `reload_epoch`).
    reload_epoch: std::sync::atomic::AtomicU64,
    events: tokio::sync::broadcast::Sender<AgentEvent>,
}

pub fn content_hash(yaml: &str) -> String {
    hex::encode(Sha256::digest(yaml.as_bytes()))
}

pub fn short(hash: &str) -> String {
    format!("cfg-{}", &hash[..hash.len().min(12)])
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl<R: CollectorRunner, V: VersionStore> AgentManager<R, V> {
    pub fn new(runner: R, versions: V, settings: AgentSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("a reqwest client with rustls builds");
        let (events, _) = tokio::sync::broadcast::channel(64);
        AgentManager {
            runner,
            versions,
            settings,
            http,
            rollout: Mutex::new(()),
            reloading_since: std::sync::atomic::AtomicI64::new(0),
            reload_epoch: std::sync::atomic::AtomicU64::new(0),
            events,
        }
    }

    /// Whether a pushed config is still being verified or rolled back: the
    /// health monitor holds its verdicts meanwhile (a reload briefly takes
    /// the health endpoint down, and a restart then would be a false repair).
    /// A step that never ended (its task was cancelled) stops counting once
    /// the longest verification could have ended.
    pub fn reloading(&self) -> bool {
        let since = self.reloading_since.load(std::sync::atomic::Ordering::SeqCst);
        let longest = (self.settings.verify_timeout * 2 + self.settings.settle).as_millis() as i64;
        since != 0 && now_ms().saturating_sub(since) < longest + 30_000
    }

    fn set_reloading(&self, on: bool) {
        let since = if on { now_ms() } else { 0 };
        if on {
            self.reload_epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.reloading_since.store(since, std::sync::atomic::Ordering::SeqCst);
    }

    /// Counts the reloads begun so far. A health round that sees it change
    /// overlapped a reload: what it saw of the collector was a moving target.
    pub fn reload_epoch(&self) -> u64 {
        self.reload_epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn settings(&self) -> &AgentSettings {
        &self.settings
    }

    pub fn runner(&self) -> &R {
        &self.runner
    }

    pub fn versions(&self) -> &V {
        &self.versions
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<AgentEvent> {
        self.events.subscribe()
    }

    /// Watches the runner for crash loops and answers each with the fallback
    /// config (seed: `RepairController.auto_apply_fallback_config`), until the
    /// runner's event stream ends.
    pub async fn guard_crash_loops(
        &self,
        mut runner_events: tokio::sync::broadcast::Receiver<crate::runner::RunnerEvent>,
    ) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match runner_events.recv().await {
                Ok(crate::runner::RunnerEvent::CrashLoop { crashes, .. }) => {
                    let why = format!("crash loop: {crashes} exits");
                    match self.auto_apply_fallback_config(&why).await {
                        Ok(FellBack { failed, restored }) => {
                            let event = AgentEvent::CrashLoop { crashes, failed, restored };
                            let _ = self.events.send(event);
                        }
                        Err(err) => tracing::error!(error = %err, "fallback failed"),
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// The seed's `auto_apply_fallback_config`: what the collector runs is
    /// failing (`why`): mark it failed, write the last good version (else the
    /// minimal fallback) and restart on it.
    pub async fn auto_apply_fallback_config(&self, why: &str) -> Result<FellBack, AgentError> {
        let _rollout = self.rollout.lock().await;
        let failing =
            std::fs::read_to_string(&self.settings.config_path).ok().map(|y| content_hash(&y));
        if let Some(hash) = &failing
            && self.versions.get(hash).await?.is_some()
        {
            self.versions.mark_failed(hash, why, now_ms()).await?;
        }
        let target = match self.versions.last_good(failing.as_deref()).await? {
            Some(version) => Some(version.yaml),
            None => self.settings.fallback.clone(),
        };
        let Some(yaml) = target else {
            return Ok(FellBack { failed: failing.map(|h| short(&h)), restored: None });
        };
        let hash = content_hash(&yaml);
        self.versions.record(&hash, &yaml, &format!("fallback: {why}"), now_ms()).await?;
        write_atomic(&self.settings.config_path, yaml.as_bytes()).map_err(|source| {
            AgentError::Write { path: self.settings.config_path.clone(), source }
        })?;
        self.runner.restart().await?;
        let endpoints = Endpoints::from_yaml(&yaml)?;
        self.verify(&endpoints, &short(&hash))
            .await
            .map_err(|reason| AgentError::RollbackFailed { version: short(&hash), reason })?;
        self.versions.mark_applied(&hash, now_ms()).await?;
        tracing::warn!(version = %short(&hash), %why, "fallback config applied");
        Ok(FellBack { failed: failing.map(|h| short(&h)), restored: Some(short(&hash)) })
    }

    /// Rolls `yaml` out to this node; `reason` says why it was made. The
    /// steps are public too, for the workflow engine, which runs each as an
    /// activity of its own and records it ([`Self::current`],
    /// [`Self::validate_config`], [`Self::canary_reload`],
    /// [`Self::push_config`], [`Self::verify_reload`],
    /// [`Self::rollback_config`]).
    pub async fn apply(&self, yaml: &str, reason: &str) -> Result<Outcome, AgentError> {
        let hash = content_hash(yaml);
        let version = short(&hash);
        let current = self.current().await?;
        if current.runs(&hash) {
            return Ok(Outcome::Unchanged { version });
        }
        if let Err(reason) = self.validate_config(yaml, reason).await? {
            return Ok(Outcome::Refused { version, reason });
        }
        if self.settings.canary
            && let CanaryVerdict::Failed { reason } = self.canary_reload(yaml).await?
        {
            return Ok(Outcome::CanaryFailed { version, reason });
        }
        let pushed = self.push_config(yaml, reason).await?;
        match self.verify_reload(&pushed).await? {
            Ok(()) => Ok(Outcome::Applied { version }),
            Err(reason) => {
                let restored = self.rollback_config(pushed.previous.as_deref(), &hash).await?;
                Ok(Outcome::RolledBack { version, reason, restored })
            }
        }
    }

    /// What the collector's file holds and what the history says runs.
    pub async fn current(&self) -> Result<Current, AgentError> {
        let on_disk =
            std::fs::read_to_string(&self.settings.config_path).ok().map(|y| content_hash(&y));
        let applied = self.versions.applied().await?.map(|v| v.hash);
        Ok(Current { on_disk, applied })
    }

    /// Records `yaml` as a version and pre-flights it (seed:
    /// `validate_config`). `Ok(Err(reason))` is a refusal, recorded as the
    /// version's failure; `Err` is a failure to check at all.
    pub async fn validate_config(
        &self,
        yaml: &str,
        reason: &str,
    ) -> Result<Result<(), String>, AgentError> {
        let hash = content_hash(yaml);
        self.versions.record(&hash, yaml, reason, now_ms()).await?;
        match self.preflight(yaml).await {
            Ok(()) => Ok(Ok(())),
            Err(refusal) => {
                self.versions.mark_failed(&hash, &refusal, now_ms()).await?;
                Ok(Err(refusal))
            }
        }
    }

    /// Runs `yaml` in a shadow collector (seed: `canary_reload`); a failure
    /// is recorded as the version's.
    pub async fn canary_reload(&self, yaml: &str) -> Result<CanaryVerdict, AgentError> {
        let hash = content_hash(yaml);
        let version = short(&hash);
        let verdict =
            canary_reload(&self.settings.binary, yaml, self.settings.canary_timeout).await;
        match &verdict {
            CanaryVerdict::Passed { took } => tracing::info!(%version, ?took, "canary passed"),
            CanaryVerdict::Skipped => tracing::info!(%version, "no logs pipeline: canary skipped"),
            CanaryVerdict::Failed { reason } => {
                self.versions.mark_failed(&hash, &format!("canary: {reason}"), now_ms()).await?;
            }
        }
        Ok(verdict)
    }

    /// Writes `yaml` atomically and asks the collector to reload (seed:
    /// `push_config_to_collector` + `reload_collector`). What was on disk is
    /// recorded in the history first, so a rollback can always find it.
    /// Pushing the same bytes twice is harmless: the second push rewrites
    /// identical content and reloads again.
    pub async fn push_config(&self, yaml: &str, reason: &str) -> Result<Pushed, AgentError> {
        let _rollout = self.rollout.lock().await;
        let hash = content_hash(yaml);
        self.versions.record(&hash, yaml, reason, now_ms()).await?;
        let previous = match std::fs::read_to_string(&self.settings.config_path) {
            Ok(old) => {
                let old_hash = content_hash(&old);
                if old_hash != hash && self.versions.get(&old_hash).await?.is_none() {
                    self.versions.record(&old_hash, &old, "found on disk", now_ms()).await?;
                }
                Some(old_hash).filter(|old| *old != hash)
            }
            Err(_) => None,
        };
        self.set_reloading(true);
        let pid = self.runner.pid();
        let reloaded = match write_atomic(&self.settings.config_path, yaml.as_bytes()) {
            Ok(()) => self.runner.reload().await,
            Err(source) => {
                Err(AgentError::Write { path: self.settings.config_path.clone(), source })
            }
        };
        if let Err(err) = reloaded {
            self.set_reloading(false);
            return Err(err);
        }
        Ok(Pushed { hash, previous, pid: pid.or_else(|| self.runner.pid()) })
    }

    /// Checks the reloaded collector (seed: `verify_reload`) and records the
    /// verdict: applied, or failed with the reason (`Ok(Err(reason))`).
    pub async fn verify_reload(&self, pushed: &Pushed) -> Result<Result<(), String>, AgentError> {
        let version = short(&pushed.hash);
        let verdict = match self.versions.get(&pushed.hash).await? {
            None => Err(format!("{version} is not in the history")),
            Some(stored) => match Endpoints::from_yaml(&stored.yaml) {
                Err(err) => Err(err.to_string()),
                // A SIGHUP reload keeps the process. Another PID (or none)
                // means it exited on the new file; restarts would load the
                // same file again, so verification fails now instead of
                // after `verify_timeout`.
                Ok(endpoints) => match pushed.pid {
                    None => Err(crate::verify::EXITED.to_owned()),
                    Some(reloaded) => {
                        self.verify_while(&endpoints, &version, || {
                            self.runner.pid() == Some(reloaded)
                        })
                        .await
                    }
                },
            },
        };
        self.set_reloading(false);
        match &verdict {
            Ok(()) => {
                self.versions.mark_applied(&pushed.hash, now_ms()).await?;
                tracing::info!(%version, "applied");
            }
            Err(reason) => {
                tracing::error!(%version, %reason, "verification failed");
                self.versions.mark_failed(&pushed.hash, reason, now_ms()).await?;
            }
        }
        Ok(verdict)
    }

    /// Static checks, then the node's own binary (seed: `validate_config`).
    async fn preflight(&self, yaml: &str) -> Result<(), String> {
        let problems = static_check(yaml);
        if !problems.is_empty() {
            return Err(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "));
        }
        let dir =
            self.settings.config_path.parent().map(PathBuf::from).unwrap_or_else(|| ".".into());
        let binary = self.settings.binary.clone();
        let yaml = yaml.to_owned();
        // Validating runs a process; keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            let candidate = tempfile::Builder::new()
                .prefix(".candidate-")
                .suffix(".yaml")
                .tempfile_in(&dir)
                .or_else(|_| tempfile::NamedTempFile::new())
                .map_err(|e| format!("cannot write the candidate: {e}"))?;
            std::fs::write(candidate.path(), &yaml)
                .map_err(|e| format!("cannot write the candidate: {e}"))?;
            match otelcol_validate(&binary, candidate.path(), &Default::default()) {
                Ok(()) => Ok(()),
                Err(ValidateError::Refused(refusal)) => Err(refusal.message),
                Err(other) => Err(other.to_string()),
            }
        })
        .await
        .map_err(|e| format!("validation task: {e}"))?
    }

    /// Verifies a collector that was just (re)started.
    async fn verify(&self, endpoints: &Endpoints, version: &str) -> Result<(), String> {
        self.verify_while(endpoints, version, || self.runner.pid().is_some()).await
    }

    async fn verify_while(
        &self,
        endpoints: &Endpoints,
        version: &str,
        alive: impl Fn() -> bool,
    ) -> Result<(), String> {
        verify_reload(
            &self.http,
            endpoints,
            alive,
            self.settings.verify_timeout,
            self.settings.settle,
            version,
        )
        .await
    }

    /// The seed's `rollback_config`: writes back what ran before
    /// (`previous`, a version hash, else the last good version other than
    /// `failed`), restarts the collector on it (a SIGHUP with a bad file may
    /// have killed it) and verifies it. Returns the version restored, if any.
    pub async fn rollback_config(
        &self,
        previous: Option<&str>,
        failed: &str,
    ) -> Result<Option<String>, AgentError> {
        let _rollout = self.rollout.lock().await;
        let target = match previous {
            Some(hash) => self.versions.get(hash).await?.map(|v| v.yaml),
            None => None,
        };
        let target = match target {
            Some(yaml) => Some(yaml),
            None => self.versions.last_good(Some(failed)).await?.map(|v| v.yaml),
        };
        let Some(yaml) = target else {
            tracing::error!("nothing to roll back to");
            return Ok(None);
        };
        let hash = content_hash(&yaml);
        self.set_reloading(true);
        let restored = self.restore(&yaml, &hash).await;
        self.set_reloading(false);
        restored
    }

    async fn restore(&self, yaml: &str, hash: &str) -> Result<Option<String>, AgentError> {
        let hash = hash.to_owned();
        write_atomic(&self.settings.config_path, yaml.as_bytes()).map_err(|source| {
            AgentError::Write { path: self.settings.config_path.clone(), source }
        })?;
        self.runner.restart().await?;
        let endpoints = Endpoints::from_yaml(yaml)?;
        match self.verify(&endpoints, &short(&hash)).await {
            Ok(()) => {
                if self.versions.get(&hash).await?.is_some() {
                    self.versions.mark_applied(&hash, now_ms()).await?;
                }
                Ok(Some(short(&hash)))
            }
            Err(reason) => Err(AgentError::RollbackFailed { version: short(&hash), reason }),
        }
    }

    /// Rolls back on request (`steward config rollback [VERSION]`): to
    /// `version`, or to the last good version before the applied one.
    pub async fn rollback(&self, version: Option<&str>) -> Result<Outcome, AgentError> {
        let target: Option<ConfigVersion> = match version {
            Some(v) => Some(
                self.versions
                    .get(v)
                    .await?
                    .ok_or_else(|| AgentError::UnknownVersion(v.to_owned()))?,
            ),
            None => {
                let applied = self.versions.applied().await?;
                self.versions.last_good(applied.as_ref().map(|a| a.hash.as_str())).await?
            }
        };
        let target = target.ok_or(AgentError::NoRollbackTarget)?;
        self.apply(&target.yaml, &format!("rollback to {}", short(&target.hash))).await
    }

    /// The hold on the reconcile loop, if one stands (see [`crate::hold`]).
    pub fn hold(&self) -> Option<crate::Hold> {
        crate::hold::read_hold(&self.settings.config_path)
    }

    /// Holds the loop at `version`: it will not roll out over a choice made
    /// by hand until [`AgentManager::release_hold`].
    pub fn set_hold(&self, version: &str, reason: &str) -> Result<crate::Hold, AgentError> {
        let hold = crate::Hold {
            version: version.to_owned(),
            reason: reason.to_owned(),
            since_ms: now_ms(),
        };
        crate::hold::write_hold(&self.settings.config_path, &hold)?;
        Ok(hold)
    }

    /// `true` if a hold was released.
    pub fn release_hold(&self) -> Result<bool, AgentError> {
        crate::hold::release_hold(&self.settings.config_path)
    }
}
