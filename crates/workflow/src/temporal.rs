//! The Temporal engine (`workflow.engine: temporal`): the reconcile loop runs
//! as a Temporal workflow, and Steward is its worker. Temporal keeps the
//! durable history: a Steward that dies mid-cycle is replaced by the next
//! worker on the same task queue, which continues the workflow where it was
//! (completed activities are not run again; the one in flight is retried
//! once its start-to-close timeout expires).
//!
//! - The same activities as the embedded engine ([`crate::activities`]),
//!   registered by their seed names (`docker_watch`, `push_config`, …).
//! - The same cycle code ([`crate::cycle::reconcile_cycle`]), run inside the
//!   workflow through [`TemporalExecutor`], which schedules each call as an
//!   activity with its timeout and retry policy.
//! - The workflow waits for a `nudge` signal (Steward's debounced discovery
//!   events) or a durable timer (the period), and continues as new every
//!   `cycles_per_run` cycles so its history stays bounded.
//!
//! One workflow per node: id `steward-reconcile-<node>`, task queue
//! `steward-<node>` unless configured, so a node's activities (which touch
//! its files and its collector) only ever run on that node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use steward_agent::Pushed;
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, RetryPolicy as TemporalRetry, Url,
    WorkflowIdConflictPolicy, WorkflowSignalOptions, WorkflowStartOptions,
};
use temporalio_common::ActivityDefinition;
use temporalio_common::error::IncomingError;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError as TemporalActivityError};
use temporalio_sdk::workflows::select;
use temporalio_sdk::{
    ActivityExecutionError, ActivityOptions as TemporalActivityOptions, ApplicationFailure,
    CancellableFuture, ContinueAsNewOptions, Runtime, SyncWorkflowContext, Worker, WorkerOptions,
    WorkflowContext, WorkflowResult,
};

use crate::activities::{
    Activities, Activity, ActivityPolicies, AlertInput, BuildInput, Built, ConfigInput,
    CurrentState, RegisterInput, RegistryView, RollbackInput, Rolled, Sent, Verdict, WatchInput,
    Watched,
};
use crate::cycle::{CycleSettings, Executor, Stop, Trigger, reconcile_cycle};
use crate::embedded::Shutdown;
use crate::retry::{ActivityError, ActivityOptions};
use crate::trigger::Triggers;

/// The workflow type name in Temporal.
pub const WORKFLOW_TYPE: &str = "steward_reconcile";

/// Where the engine connects and what it names things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporalSettings {
    /// `host:port` of the frontend.
    pub address: String,
    pub namespace: String,
    pub task_queue: String,
    pub workflow_id: String,
    pub cycles_per_run: u32,
    pub period: Duration,
}

impl TemporalSettings {
    pub fn for_node(node: &str, address: &str, namespace: &str) -> Self {
        TemporalSettings {
            address: address.to_owned(),
            namespace: namespace.to_owned(),
            task_queue: format!("steward-{node}"),
            workflow_id: format!("steward-reconcile-{node}"),
            cycles_per_run: 100,
            period: Duration::from_secs(15),
        }
    }
}

/// The workflow's input: everything the loop decides with, since workflow
/// code may not read local configuration. Carried across continue-as-new.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopInput {
    pub cycles_per_run: u32,
    pub period_ms: u64,
    pub cycle: CycleSettings,
    /// Options per activity name.
    pub options: BTreeMap<String, ActivityOptions>,
    /// Nudges and resync requests that arrived during the previous run.
    pub pending: Pending,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub nudges: u32,
    /// A full resync was asked for (a Steward worker (re)started).
    pub resync: bool,
}

// ---------------------------------------------------------------------------
// The workflow.

#[workflow]
#[derive(Default)]
pub struct ReconcileWorkflow {
    pending: Pending,
}

#[workflow_methods]
impl ReconcileWorkflow {
    #[run(name = "steward_reconcile")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: LoopInput) -> WorkflowResult<()> {
        ctx.state_mut(|s| {
            s.pending.nudges += input.pending.nudges;
            s.pending.resync |= input.pending.resync;
        });
        for _ in 0..input.cycles_per_run.max(1) {
            let trigger = next_trigger(ctx, Duration::from_millis(input.period_ms)).await?;
            let mut x = TemporalExecutor { ctx, options: &input.options };
            let outcome = reconcile_cycle(&mut x, trigger, input.cycle).await;
            if !ctx.is_replaying() {
                match outcome {
                    Ok(outcome) => {
                        tracing::info!(trigger = trigger.as_str(), "{}", outcome.summary())
                    }
                    Err(stop) => {
                        tracing::warn!(trigger = trigger.as_str(), "cycle stopped: {stop}")
                    }
                }
            }
        }
        let pending = ctx.state(|s| s.pending);
        ctx.continue_as_new(LoopInput { pending, ..input }, ContinueAsNewOptions::default())?;
        unreachable!("continue_as_new always ends the run")
    }

    /// A debounced discovery event (`"event"`), or a worker that started and
    /// wants a full resync (`"resync"`).
    #[signal(name = "nudge")]
    pub fn nudge(&mut self, _ctx: &mut SyncWorkflowContext<Self>, kind: String) {
        if kind == "resync" {
            self.pending.resync = true;
        } else {
            self.pending.nudges += 1;
        }
    }
}

/// Waits for a nudge or the period, whichever first, and says which.
async fn next_trigger(
    ctx: &mut WorkflowContext<ReconcileWorkflow>,
    period: Duration,
) -> WorkflowResult<Trigger> {
    let pending = |s: &ReconcileWorkflow| s.pending.nudges > 0 || s.pending.resync;
    if !ctx.state(pending) {
        let mut timer = ctx.timer(period);
        // Biased: a nudge already buffered wins over the timer.
        let nudged = select! {
            woke = ctx.wait_condition(pending) => { woke?; true }
            _ = timer => false,
        };
        if !nudged {
            return Ok(Trigger::Period);
        }
        // Dropping a timer does not cancel it.
        timer.cancel();
    }
    Ok(ctx.state_mut(|s| {
        let trigger = if s.pending.resync { Trigger::Startup } else { Trigger::Event };
        s.pending = Pending::default();
        trigger
    }))
}

/// Schedules activities by their seed name with JSON payloads: the same
/// JSON the typed activities decode.
struct ByName(Activity);

impl ActivityDefinition for ByName {
    type Input = serde_json::Value;
    type Output = serde_json::Value;

    fn name(&self) -> &str {
        self.0.name()
    }
}

struct TemporalExecutor<'a> {
    ctx: &'a WorkflowContext<ReconcileWorkflow>,
    options: &'a BTreeMap<String, ActivityOptions>,
}

fn temporal_options(options: &ActivityOptions) -> TemporalActivityOptions {
    let retry = &options.retry;
    TemporalActivityOptions::with_start_to_close_timeout(options.timeout)
        .retry_policy(
            TemporalRetry::builder()
                .initial_interval(retry.initial_interval)
                .backoff_coefficient(retry.backoff_coefficient)
                .maximum_interval(retry.maximum_interval)
                .maximum_attempts(retry.maximum_attempts.max(1))
                .build(),
        )
        .build()
}

impl Executor for TemporalExecutor<'_> {
    async fn call<I, O>(&mut self, activity: Activity, input: &I) -> Result<O, Stop>
    where
        I: Serialize + Sync,
        O: DeserializeOwned,
    {
        let name = activity.name();
        let input = serde_json::to_value(input)
            .map_err(|err| ActivityError::fatal(name, format!("input does not encode: {err}")))?;
        let options = self.options.get(name).ok_or_else(|| {
            ActivityError::fatal(name, "no options for this activity in the workflow input")
        })?;
        match self.ctx.execute_activity(ByName(activity), input, temporal_options(options)).await {
            Ok(output) => serde_json::from_value(output).map_err(|err| {
                Stop::Failed(ActivityError::fatal(name, format!("output does not decode: {err}")))
            }),
            Err(ActivityExecutionError::Failed(failure)) => {
                let (message, retryable) = match failure.cause() {
                    Some(IncomingError::Application(app)) => {
                        (app.to_string(), !app.is_non_retryable())
                    }
                    other => (format!("{other:?}"), true),
                };
                Err(Stop::Failed(ActivityError { activity: name.to_owned(), message, retryable }))
            }
            Err(other) => Err(Stop::Failed(ActivityError::retryable(name, other.to_string()))),
        }
    }
}

// ---------------------------------------------------------------------------
// The activities, registered with the worker under their seed names.

pub struct TemporalActivities {
    inner: Arc<Activities>,
}

fn to_temporal(err: ActivityError) -> TemporalActivityError {
    TemporalActivityError::application(
        ApplicationFailure::builder(err.message)
            .type_name(if err.retryable { "Retryable" } else { "NonRetryable" }.to_owned())
            .non_retryable(!err.retryable)
            .build(),
    )
}

#[activities]
impl TemporalActivities {
    #[activity(name = "docker_watch")]
    pub async fn docker_watch(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: WatchInput,
    ) -> Result<Vec<Watched>, TemporalActivityError> {
        self.inner
            .observed(Activity::DockerWatch, self.inner.docker_watch(input))
            .await
            .map_err(to_temporal)
    }

    #[activity(name = "k8s_watch")]
    pub async fn k8s_watch(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: WatchInput,
    ) -> Result<Vec<Watched>, TemporalActivityError> {
        self.inner
            .observed(Activity::K8sWatch, self.inner.k8s_watch(input))
            .await
            .map_err(to_temporal)
    }

    #[activity(name = "log_dir_watch")]
    pub async fn log_dir_watch(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: WatchInput,
    ) -> Result<Vec<Watched>, TemporalActivityError> {
        self.inner
            .observed(Activity::LogDirWatch, self.inner.log_dir_watch(input))
            .await
            .map_err(to_temporal)
    }

    #[activity(name = "register_or_update_registry")]
    pub async fn register_or_update_registry(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: RegisterInput,
    ) -> Result<RegistryView, TemporalActivityError> {
        self.inner
            .observed(
                Activity::RegisterOrUpdateRegistry,
                self.inner.register_or_update_registry(input),
            )
            .await
            .map_err(to_temporal)
    }

    #[activity(name = "current_config")]
    pub async fn current_config(
        self: Arc<Self>,
        _ctx: ActivityContext,
        candidate: String,
    ) -> Result<CurrentState, TemporalActivityError> {
        self.inner
            .observed(Activity::CurrentConfig, self.inner.current_config(candidate))
            .await
            .map_err(to_temporal)
    }

    #[activity(name = "build_config")]
    pub async fn build_config(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: BuildInput,
    ) -> Result<Built, TemporalActivityError> {
        self.inner
            .observed(Activity::BuildConfig, self.inner.build_config(input))
            .await
            .map_err(to_temporal)
    }

    #[activity(name = "validate_config")]
    pub async fn validate_config(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ConfigInput,
    ) -> Result<Verdict, TemporalActivityError> {
        self.inner
            .observed(Activity::ValidateConfig, self.inner.validate_config(input))
            .await
            .map_err(to_temporal)
    }

    #[activity(name = "canary_reload")]
    pub async fn canary_reload(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ConfigInput,
    ) -> Result<Verdict, TemporalActivityError> {
        self.inner
            .observed(Activity::CanaryReload, self.inner.canary_reload(input))
            .await
            .map_err(to_temporal)
    }

    #[activity(name = "push_config")]
    pub async fn push_config(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ConfigInput,
    ) -> Result<Pushed, TemporalActivityError> {
        self.inner
            .observed(Activity::PushConfig, self.inner.push_config(input))
            .await
            .map_err(to_temporal)
    }

    #[activity(name = "verify_reload")]
    pub async fn verify_reload(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: Pushed,
    ) -> Result<Verdict, TemporalActivityError> {
        self.inner
            .observed(Activity::VerifyReload, self.inner.verify_reload(input))
            .await
            .map_err(to_temporal)
    }

    #[activity(name = "rollback_config")]
    pub async fn rollback_config(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: RollbackInput,
    ) -> Result<Rolled, TemporalActivityError> {
        self.inner
            .observed(Activity::RollbackConfig, self.inner.rollback_config(input))
            .await
            .map_err(to_temporal)
    }

    #[activity(name = "send_alert")]
    pub async fn send_alert(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: AlertInput,
    ) -> Result<Sent, TemporalActivityError> {
        self.inner
            .observed(Activity::SendAlert, self.inner.send_alert(input))
            .await
            .map_err(to_temporal)
    }
}

// ---------------------------------------------------------------------------
// The engine.

#[derive(Debug, thiserror::Error)]
pub enum TemporalError {
    #[error("Temporal at {address}: {detail}")]
    Connect { address: String, detail: String },
    #[error("Temporal worker: {0}")]
    Worker(String),
}

/// How long one connection attempt may take, all in: `connect_timeout`
/// bounds only TCP, and the handshake RPC has a fixed 30 s of its own.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// Connects, retrying with bounded backoff (1 s → 30 s) and logging every
/// failure, until connected or `shutdown`. Returns `None` on shutdown.
pub async fn connect(settings: &TemporalSettings, shutdown: &Shutdown) -> Option<Client> {
    let mut backoff = Duration::from_secs(1);
    let mut attempt = 1u32;
    loop {
        match try_connect(settings).await {
            Ok(client) => return Some(client),
            Err(err) => {
                tracing::error!(attempt, retry_in = ?backoff, "{err}");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.wait() => return None,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
        attempt += 1;
    }
}

/// One connection attempt, bounded by [`CONNECT_DEADLINE`].
pub async fn try_connect(settings: &TemporalSettings) -> Result<Client, TemporalError> {
    let fail =
        |detail: String| TemporalError::Connect { address: settings.address.clone(), detail };
    let url = Url::parse(&format!("http://{}", settings.address))
        .map_err(|err| fail(format!("not a host:port: {err}")))?;
    let options = ConnectionOptions::new(url)
        .identity(format!("steward@{}", settings.task_queue))
        .connect_timeout(Duration::from_secs(5))
        .build();
    let connection = tokio::time::timeout(CONNECT_DEADLINE, Connection::connect(options))
        .await
        .map_err(|_| fail(format!("no answer within {CONNECT_DEADLINE:?}")))?
        .map_err(|err| fail(format!("cannot connect: {err}")))?;
    Client::new(connection, ClientOptions::new(settings.namespace.clone()).build())
        .map_err(|err| fail(format!("client: {err}")))
}

/// Runs the node's loop on Temporal until `shutdown`: connects (retrying),
/// starts the node's workflow unless it already runs, runs the worker, and
/// forwards debounced discovery events as `nudge` signals.
pub async fn run(
    settings: TemporalSettings,
    activities: Arc<Activities>,
    mut triggers: Triggers,
    policies: ActivityPolicies,
    cycle: CycleSettings,
    shutdown: Shutdown,
) -> Result<(), TemporalError> {
    let Some(client) = connect(&settings, &shutdown).await else {
        return Ok(());
    };
    let input = LoopInput {
        cycles_per_run: settings.cycles_per_run,
        period_ms: settings.period.as_millis() as u64,
        cycle,
        options: Activity::ALL
            .into_iter()
            .map(|a| (a.name().to_owned(), policies.options(a)))
            .collect(),
        pending: Pending { nudges: 0, resync: true },
    };
    let start =
        WorkflowStartOptions::new(settings.task_queue.clone(), settings.workflow_id.clone())
            .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
            .build();
    // With a start that can fail transiently (the server just came up),
    // retry like the connection: logged, bounded backoff, stoppable.
    let mut backoff = Duration::from_secs(1);
    loop {
        match client.start_workflow(ReconcileWorkflow::run, input.clone(), start.clone()).await {
            Ok(handle) => {
                tracing::info!(
                    workflow = %settings.workflow_id, run = ?handle.run_id(),
                    task_queue = %settings.task_queue, "Temporal workflow running"
                );
                break;
            }
            Err(err) => {
                tracing::error!(retry_in = ?backoff, "starting the Temporal workflow: {err}")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.wait() => return Ok(()),
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
    let latest = client.get_workflow_handle::<ReconcileWorkflow>(settings.workflow_id.clone());
    // A worker that (re)starts asks for a full resync, as the embedded
    // engine's startup cycle does.
    if let Err(err) = latest
        .signal(ReconcileWorkflow::nudge, "resync".to_owned(), WorkflowSignalOptions::default())
        .await
    {
        tracing::warn!("asking the workflow for a resync: {err}");
    }

    let runtime = Runtime::from_current_tokio(Default::default())
        .map_err(|err| TemporalError::Worker(err.to_string()))?;
    let options = WorkerOptions::new(settings.task_queue.clone())
        .register_activities(TemporalActivities { inner: activities })
        .register_workflow::<ReconcileWorkflow>()
        .map_err(|err| TemporalError::Worker(err.to_string()))?
        .graceful_shutdown_period(Duration::from_secs(5))
        .build();
    let mut worker = Worker::new(&runtime, client.clone(), options)
        .map_err(|err| TemporalError::Worker(err.to_string()))?;
    let stop_worker = worker.shutdown_handle();

    let forward = async {
        loop {
            let trigger = tokio::select! {
                trigger = triggers.next() => trigger,
                () = shutdown.wait() => None,
            };
            match trigger {
                // The workflow has its own durable timer for the period.
                Some(Trigger::Period) | Some(Trigger::Startup) => {}
                Some(Trigger::Event) => {
                    let signal = latest.signal(
                        ReconcileWorkflow::nudge,
                        "event".to_owned(),
                        WorkflowSignalOptions::default(),
                    );
                    if let Err(err) = signal.await {
                        tracing::warn!("nudging the Temporal workflow: {err}");
                    }
                }
                None => break,
            }
        }
        stop_worker();
    };
    // The worker's future is not Send (it runs workflow code on a local
    // executor): it is driven here, beside the forwarder, not spawned.
    let (ran, ()) = tokio::join!(worker.run(), forward);
    ran.map_err(|err| TemporalError::Worker(err.to_string()))
}
