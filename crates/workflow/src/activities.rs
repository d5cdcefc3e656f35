//! The seed's activities: plain async functions with typed inputs and
//! outputs, each the one place its side effect happens. The engines call
//! them by [`Activity`] name with JSON in and out ([`Dispatch`]), which is
//! what lets the embedded engine record and replay them and Temporal ship
//! them to a worker.
//!
//! Every activity is safe to run again with the same input: discovery and
//! building read, the registry resync is level-triggered, a push of the same
//! bytes rewrites the same file, verification only looks.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use steward_agent::runner::AnyRunner;
use steward_agent::{AgentManager, Current, Pushed};
use steward_discovery::docker::{DockerDiscovery, DockerSettings};
use steward_discovery::logdir::{LogDirDiscovery, LogDirSettings};
use steward_discovery::static_files::{StaticDiscovery, StaticSource};
use steward_discovery::{Discovery, Event, Observed, Origin};
use steward_health::alerts::{AlertBook, AlertPolicy, AlertSink, Observation, Sinks};
use steward_registry::store::{AnyStore, VersionStatus, VersionStore};
use steward_registry::{LogSource, LogSourceRegistry};

use crate::retry::{ActivityError, ActivityOptions, RetryPolicy, error_chain as chain};

/// The activities, by the names the seed gives them (without `_activity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    DockerWatch,
    /// Kubernetes discovery does not exist yet: always reports nothing.
    K8sWatch,
    /// Log directories (kubelet, podman) and static globs.
    LogDirWatch,
    RegisterOrUpdateRegistry,
    /// What the collector runs now, and whether a candidate failed recently.
    CurrentConfig,
    BuildConfig,
    ValidateConfig,
    CanaryReload,
    PushConfig,
    VerifyReload,
    RollbackConfig,
    SendAlert,
}

impl Activity {
    pub const ALL: [Activity; 12] = [
        Activity::DockerWatch,
        Activity::K8sWatch,
        Activity::LogDirWatch,
        Activity::RegisterOrUpdateRegistry,
        Activity::CurrentConfig,
        Activity::BuildConfig,
        Activity::ValidateConfig,
        Activity::CanaryReload,
        Activity::PushConfig,
        Activity::VerifyReload,
        Activity::RollbackConfig,
        Activity::SendAlert,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Activity::DockerWatch => "docker_watch",
            Activity::K8sWatch => "k8s_watch",
            Activity::LogDirWatch => "log_dir_watch",
            Activity::RegisterOrUpdateRegistry => "register_or_update_registry",
            Activity::CurrentConfig => "current_config",
            Activity::BuildConfig => "build_config",
            Activity::ValidateConfig => "validate_config",
            Activity::CanaryReload => "canary_reload",
            Activity::PushConfig => "push_config",
            Activity::VerifyReload => "verify_reload",
            Activity::RollbackConfig => "rollback_config",
            Activity::SendAlert => "send_alert",
        }
    }
}

impl std::fmt::Display for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Timeouts and retries per activity. The rollout steps that end in a
/// verdict (validate, canary, verify) are not retried: their failure is an
/// answer, and the next cycle asks again only once the candidate changes or
/// `retry_failed_after` has passed.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityPolicies {
    pub canary_timeout: Duration,
    pub verify_timeout: Duration,
}

impl ActivityPolicies {
    pub fn options(&self, activity: Activity) -> ActivityOptions {
        let secs = Duration::from_secs;
        let (timeout, retry) = match activity {
            Activity::DockerWatch | Activity::LogDirWatch => (secs(30), RetryPolicy::attempts(3)),
            Activity::K8sWatch => (secs(5), RetryPolicy::ONCE),
            Activity::RegisterOrUpdateRegistry | Activity::CurrentConfig => {
                (secs(30), RetryPolicy::attempts(5))
            }
            Activity::BuildConfig => (secs(60), RetryPolicy::ONCE),
            // `otelcol validate` is one short process; its refusal is final.
            Activity::ValidateConfig => (secs(60), RetryPolicy::attempts(2)),
            Activity::CanaryReload => (self.canary_timeout + secs(15), RetryPolicy::attempts(2)),
            Activity::PushConfig => (secs(30), RetryPolicy::attempts(5)),
            // Verification waits for the collector itself: the verify
            // timeout, a settle time and the health calls. A failed
            // verification is a verdict, not an error; errors are a store
            // that did not answer or a worker that died mid-check, worth
            // another look.
            Activity::VerifyReload => {
                (self.verify_timeout * 2 + secs(15), RetryPolicy::attempts(3))
            }
            Activity::RollbackConfig => (secs(90), RetryPolicy::attempts(3)),
            Activity::SendAlert => (secs(60), RetryPolicy::attempts(5)),
        };
        ActivityOptions { timeout, retry }
    }
}

// ---------------------------------------------------------------------------
// Inputs and outputs.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchInput {
    /// Take a full snapshot. Cycles started by an event skip it: the event
    /// stream has already brought the registry up to date.
    pub resync: bool,
}

/// What one discovery reported. `sources: None` means "nothing to say"
/// (skipped or failed); the registry then keeps what it has for that origin
/// rather than draining it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watched {
    pub origin: Origin,
    pub sources: Option<Vec<Observed>>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterInput {
    pub watched: Vec<Watched>,
}

/// The registry after the update, as the config generator takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryView {
    pub sources: Vec<steward_config::Source>,
    pub changes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildInput {
    pub sources: Vec<steward_config::Source>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Built {
    pub yaml: String,
    pub hash: String,
    pub version: String,
    pub sources: usize,
}

/// What `current_config` found for a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrentState {
    pub current: Current,
    /// The candidate failed less than `retry_failed_after` ago: do not roll
    /// it out again yet.
    pub candidate_failed: Option<String>,
    /// A version was chosen by hand (applied or rolled back through the API
    /// or the CLI): leave the collector alone until the hold is released.
    /// Defaulted so histories recorded before holds existed still replay.
    #[serde(default)]
    pub held: Option<steward_agent::Hold>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigInput {
    pub yaml: String,
    pub reason: String,
}

/// A step's answer: passed, or not and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub ok: bool,
    pub reason: Option<String>,
}

impl Verdict {
    pub fn from_result(result: Result<(), String>) -> Self {
        match result {
            Ok(()) => Verdict { ok: true, reason: None },
            Err(reason) => Verdict { ok: false, reason: Some(reason) },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackInput {
    pub previous: Option<String>,
    pub failed: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rolled {
    pub restored: Option<String>,
}

/// One observation of the rollout, for the alert book: unhealthy fires an
/// alert, healthy resolves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertInput {
    pub check: String,
    pub healthy: bool,
    pub evidence: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    pub notifications: usize,
}

// ---------------------------------------------------------------------------
// Observation: what Steward's own metrics see of the activities.

/// Told of every activity attempt run (not replayed) by either engine.
pub trait Observer: Send + Sync {
    /// An attempt ended after `took`: `Ok(passed)` with its verdict (always
    /// `true` for activities that give none), or the error.
    fn activity(&self, activity: Activity, took: Duration, result: Result<bool, &ActivityError>);
}

/// An activity's output, judged: a refused config or a failed verification
/// is an answer, not an error, but it did not pass.
pub trait Judged {
    fn passed(&self) -> bool {
        true
    }
}

impl Judged for Vec<Watched> {}
impl Judged for RegistryView {}
impl Judged for Built {}
impl Judged for CurrentState {}
impl Judged for Pushed {}
impl Judged for Rolled {}
impl Judged for Sent {}
impl Judged for Verdict {
    fn passed(&self) -> bool {
        self.ok
    }
}

// ---------------------------------------------------------------------------
// Dispatch.

/// Runs an activity by name on JSON: what an engine needs from the
/// activities, and what tests replace.
pub trait Dispatch: Send + Sync + 'static {
    fn run(
        &self,
        activity: Activity,
        input: serde_json::Value,
    ) -> impl Future<Output = Result<serde_json::Value, ActivityError>> + Send;
}

fn decode<T: DeserializeOwned>(
    activity: Activity,
    input: serde_json::Value,
) -> Result<T, ActivityError> {
    serde_json::from_value(input)
        .map_err(|err| ActivityError::fatal(activity.name(), format!("bad input: {err}")))
}

fn encode<T: Serialize>(activity: Activity, output: T) -> Result<serde_json::Value, ActivityError> {
    serde_json::to_value(output)
        .map_err(|err| ActivityError::fatal(activity.name(), format!("bad output: {err}")))
}

/// What the activities need to know beyond the objects they drive.
#[derive(Debug, Clone)]
pub struct ActivitySettings {
    pub node: String,
    pub docker: DockerSettings,
    pub log_dirs: LogDirSettings,
    pub static_sources: Vec<StaticSource>,
    pub pipeline: steward_config::PipelineSettings,
    /// A candidate that failed is not tried again for this long, unless the
    /// sources change (which makes another candidate).
    pub retry_failed_after: Duration,
}

/// The real activities, over the node's registry, collector and alert sinks.
pub struct Activities {
    settings: ActivitySettings,
    registry: Arc<LogSourceRegistry<AnyStore>>,
    agent: Arc<AgentManager<AnyRunner, AnyStore>>,
    alerts: tokio::sync::Mutex<AlertBook>,
    sinks: Sinks,
    observer: Option<Arc<dyn Observer>>,
}

impl Activities {
    pub fn new(
        settings: ActivitySettings,
        registry: Arc<LogSourceRegistry<AnyStore>>,
        agent: Arc<AgentManager<AnyRunner, AnyStore>>,
        sinks: Sinks,
        policy: AlertPolicy,
    ) -> Self {
        Activities {
            settings,
            registry,
            agent,
            alerts: tokio::sync::Mutex::new(AlertBook::new(policy)),
            sinks,
            observer: None,
        }
    }

    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Runs one activity's future and tells the observer how it ended. Both
    /// engines call every activity through here.
    pub async fn observed<T: Judged>(
        &self,
        activity: Activity,
        run: impl Future<Output = Result<T, ActivityError>>,
    ) -> Result<T, ActivityError> {
        let started = std::time::Instant::now();
        let result = run.await;
        if let Some(observer) = &self.observer {
            observer.activity(activity, started.elapsed(), result.as_ref().map(Judged::passed));
        }
        result
    }

    pub async fn docker_watch(&self, input: WatchInput) -> Result<Vec<Watched>, ActivityError> {
        if !input.resync || !self.settings.docker.enabled {
            return Ok(vec![]);
        }
        let snapshot = DockerDiscovery::new(self.settings.docker.clone()).snapshot().await;
        let sources = snapshot
            .map_err(|err| ActivityError::retryable(Activity::DockerWatch.name(), chain(&err)))?;
        Ok(vec![Watched { origin: Origin::Docker, sources: Some(sources), error: None }])
    }

    /// Kubernetes discovery is a later issue; until then this reports
    /// nothing, which leaves the registry's other origins alone.
    pub async fn k8s_watch(&self, _input: WatchInput) -> Result<Vec<Watched>, ActivityError> {
        Ok(vec![])
    }

    pub async fn log_dir_watch(&self, input: WatchInput) -> Result<Vec<Watched>, ActivityError> {
        if !input.resync {
            return Ok(vec![]);
        }
        let mut out = Vec::new();
        if self.settings.log_dirs.enabled {
            let snapshot = LogDirDiscovery::new(self.settings.log_dirs.clone()).snapshot().await;
            out.push(match snapshot {
                Ok(sources) => {
                    Watched { origin: Origin::LogDir, sources: Some(sources), error: None }
                }
                Err(err) => {
                    Watched { origin: Origin::LogDir, sources: None, error: Some(chain(&err)) }
                }
            });
        }
        let statics = StaticDiscovery::new(self.settings.static_sources.clone())
            .map_err(|err| ActivityError::fatal(Activity::LogDirWatch.name(), chain(&err)))?;
        out.push(match statics.snapshot().await {
            Ok(sources) => Watched { origin: Origin::Static, sources: Some(sources), error: None },
            Err(err) => Watched { origin: Origin::Static, sources: None, error: Some(chain(&err)) },
        });
        Ok(out)
    }

    pub async fn register_or_update_registry(
        &self,
        input: RegisterInput,
    ) -> Result<RegistryView, ActivityError> {
        let name = Activity::RegisterOrUpdateRegistry.name();
        let mut changes = 0;
        for watched in input.watched {
            match watched.sources {
                Some(sources) => {
                    let event = Event::Resync { origin: watched.origin, sources };
                    changes += self
                        .registry
                        .apply(&event)
                        .await
                        .map_err(|err| ActivityError::retryable(name, chain(&err)))?
                        .len();
                }
                None => {
                    if let Some(error) = watched.error {
                        tracing::warn!(origin = %watched.origin, %error, "discovery failed; its sources are kept as they are");
                    }
                }
            }
        }
        changes += self
            .registry
            .drain_tick()
            .await
            .map_err(|err| ActivityError::retryable(name, chain(&err)))?
            .len();
        let sources = self.registry.list_sources().await.iter().map(config_source).collect();
        Ok(RegistryView { sources, changes })
    }

    /// Pure: the same sources give the same bytes and hash. Tens of
    /// milliseconds for thousands of sources, so off the async workers.
    pub async fn build_config(&self, input: BuildInput) -> Result<Built, ActivityError> {
        let pipeline = self.settings.pipeline.clone();
        tokio::task::spawn_blocking(move || build(&input.sources, &pipeline)).await.map_err(
            |err| ActivityError::retryable(Activity::BuildConfig.name(), err.to_string()),
        )?
    }

    pub async fn current_config(&self, candidate: String) -> Result<CurrentState, ActivityError> {
        let name = Activity::CurrentConfig.name();
        let current = self
            .agent
            .current()
            .await
            .map_err(|err| ActivityError::retryable(name, chain(&err)))?;
        let stored = self
            .agent
            .versions()
            .get(&candidate)
            .await
            .map_err(|err| ActivityError::retryable(name, chain(&err)))?;
        let now = now_ms();
        let candidate_failed = stored.and_then(|v| match (v.status, v.failed_ms) {
            (VersionStatus::Failed, Some(at))
                if now.saturating_sub(at) < self.settings.retry_failed_after.as_millis() as i64 =>
            {
                v.failure
            }
            _ => None,
        });
        Ok(CurrentState { current, candidate_failed, held: self.agent.hold() })
    }

    pub async fn validate_config(&self, input: ConfigInput) -> Result<Verdict, ActivityError> {
        let verdict =
            self.agent.validate_config(&input.yaml, &input.reason).await.map_err(|err| {
                ActivityError::retryable(Activity::ValidateConfig.name(), chain(&err))
            })?;
        Ok(Verdict::from_result(verdict))
    }

    pub async fn canary_reload(&self, input: ConfigInput) -> Result<Verdict, ActivityError> {
        use steward_agent::canary::CanaryVerdict;
        let verdict =
            self.agent.canary_reload(&input.yaml).await.map_err(|err| {
                ActivityError::retryable(Activity::CanaryReload.name(), chain(&err))
            })?;
        Ok(match verdict {
            CanaryVerdict::Passed { .. } | CanaryVerdict::Skipped => Verdict::from_result(Ok(())),
            CanaryVerdict::Failed { reason } => Verdict::from_result(Err(reason)),
        })
    }

    pub async fn push_config(&self, input: ConfigInput) -> Result<Pushed, ActivityError> {
        self.agent
            .push_config(&input.yaml, &input.reason)
            .await
            .map_err(|err| ActivityError::retryable(Activity::PushConfig.name(), chain(&err)))
    }

    pub async fn verify_reload(&self, input: Pushed) -> Result<Verdict, ActivityError> {
        let verdict =
            self.agent.verify_reload(&input).await.map_err(|err| {
                ActivityError::retryable(Activity::VerifyReload.name(), chain(&err))
            })?;
        Ok(Verdict::from_result(verdict))
    }

    pub async fn rollback_config(&self, input: RollbackInput) -> Result<Rolled, ActivityError> {
        let restored =
            self.agent.rollback_config(input.previous.as_deref(), &input.failed).await.map_err(
                |err| ActivityError::retryable(Activity::RollbackConfig.name(), chain(&err)),
            )?;
        Ok(Rolled { restored })
    }

    pub async fn send_alert(&self, input: AlertInput) -> Result<Sent, ActivityError> {
        let observation = if input.healthy {
            Observation::healthy(&self.settings.node, &input.check)
        } else {
            Observation::unhealthy(&self.settings.node, &input.check, &input.evidence)
        };
        let notes = {
            let mut book = self.alerts.lock().await;
            let now = SystemTime::now();
            let mut notes: Vec<_> = book.observe(&observation, now).into_iter().collect();
            notes.extend(book.tick(now));
            notes
        };
        self.sinks
            .send(&notes)
            .await
            .map_err(|err| ActivityError::retryable(Activity::SendAlert.name(), chain(&err)))?;
        Ok(Sent { notifications: notes.len() })
    }
}

impl Dispatch for Activities {
    async fn run(
        &self,
        activity: Activity,
        input: serde_json::Value,
    ) -> Result<serde_json::Value, ActivityError> {
        let a = activity;
        match activity {
            Activity::DockerWatch => {
                encode(a, self.observed(a, self.docker_watch(decode(a, input)?)).await?)
            }
            Activity::K8sWatch => {
                encode(a, self.observed(a, self.k8s_watch(decode(a, input)?)).await?)
            }
            Activity::LogDirWatch => {
                encode(a, self.observed(a, self.log_dir_watch(decode(a, input)?)).await?)
            }
            Activity::RegisterOrUpdateRegistry => encode(
                a,
                self.observed(a, self.register_or_update_registry(decode(a, input)?)).await?,
            ),
            Activity::CurrentConfig => {
                encode(a, self.observed(a, self.current_config(decode(a, input)?)).await?)
            }
            Activity::BuildConfig => {
                encode(a, self.observed(a, self.build_config(decode(a, input)?)).await?)
            }
            Activity::ValidateConfig => {
                encode(a, self.observed(a, self.validate_config(decode(a, input)?)).await?)
            }
            Activity::CanaryReload => {
                encode(a, self.observed(a, self.canary_reload(decode(a, input)?)).await?)
            }
            Activity::PushConfig => {
                encode(a, self.observed(a, self.push_config(decode(a, input)?)).await?)
            }
            Activity::VerifyReload => {
                encode(a, self.observed(a, self.verify_reload(decode(a, input)?)).await?)
            }
            Activity::RollbackConfig => {
                encode(a, self.observed(a, self.rollback_config(decode(a, input)?)).await?)
            }
            Activity::SendAlert => {
                encode(a, self.observed(a, self.send_alert(decode(a, input)?)).await?)
            }
        }
    }
}

/// The `build_config` activity's body (seed:
/// `OtelConfigBuilder.generate_log_pipeline`, via `steward-config`).
pub fn build(
    sources: &[steward_config::Source],
    pipeline: &steward_config::PipelineSettings,
) -> Result<Built, ActivityError> {
    let rendered = steward_config::generate_config(sources, pipeline)
        .map_err(|err| ActivityError::fatal(Activity::BuildConfig.name(), err.to_string()))?;
    Ok(Built {
        version: rendered.version(),
        hash: rendered.hash,
        yaml: rendered.yaml,
        sources: sources.len(),
    })
}

/// A registry source as the config generator takes it: active ones and
/// draining tombstones alike are collected.
pub fn config_source(source: &LogSource) -> steward_config::Source {
    steward_config::Source {
        id: source.id.to_string(),
        path: source.path.to_string_lossy().into_owned(),
        labels: source.labels.clone().into_iter().collect(),
        state: Some(source.state.as_str().to_owned()),
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
