//! The embedded engine, the default: the loop runs inside the Steward
//! process and keeps a durable history in the store (`WorkflowHistory`).
//!
//! Each activity attempt is written as `running` before it starts and
//! finished with its result or error. After a crash, [`EmbeddedEngine::run`]
//! first resumes the node's unfinished cycle: it runs the same cycle code
//! again, and every call whose completed step is in the history (same
//! position, activity and input hash) returns the recorded result instead of
//! running. Only the step that was in flight, and what follows it, run again,
//! so a config that was pushed is not pushed twice. The cycle code is
//! deterministic given activity results ([`crate::cycle`]), which is what
//! makes this replay sound.
//!
//! On shutdown the activity in flight finishes, the next is not started, and
//! the cycle stays `running` in the history: it is "parked" and resumes at
//! the next start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use steward_registry::store::{
    CycleStatus, NewStep, StepEnd, StepRecord, StepStatus, StoreError, WorkflowHistory,
};
use tokio::sync::{Notify, broadcast};

use crate::activities::{Activity, ActivityPolicies, Dispatch, now_ms};
use crate::cycle::{CycleOutcome, CycleSettings, Executor, Stop, Trigger, reconcile_cycle};
use crate::retry::{ActivityError, AttemptEnd, run_with_retry};
use crate::trigger::Triggers;

/// The `engine` column of the history.
pub const ENGINE: &str = "embedded";

/// What a cycle did, for whoever watches the loop (logs, health, tests).
#[derive(Debug, Clone, PartialEq)]
pub struct CycleReport {
    pub cycle_id: i64,
    pub trigger: Trigger,
    /// Whether this cycle was picked up from the history after a restart.
    pub resumed: bool,
    pub outcome: Result<CycleOutcome, Stop>,
    /// Activities run (not replayed) in this run of the cycle.
    pub executed: usize,
    /// Activities answered from the history.
    pub replayed: usize,
    pub took: Duration,
}

/// Asks a running engine to stop: the activity in flight finishes, the
/// cycle parks, the loop returns.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Shutdown {
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }
}

pub struct EmbeddedEngine<D, H> {
    dispatch: Arc<D>,
    history: H,
    node: String,
    policies: ActivityPolicies,
    cycle: CycleSettings,
    shutdown: Shutdown,
    reports: broadcast::Sender<CycleReport>,
}

impl<D: Dispatch, H: WorkflowHistory> EmbeddedEngine<D, H> {
    pub fn new(
        dispatch: Arc<D>,
        history: H,
        node: impl Into<String>,
        policies: ActivityPolicies,
        cycle: CycleSettings,
    ) -> Self {
        let (reports, _) = broadcast::channel(64);
        EmbeddedEngine {
            dispatch,
            history,
            node: node.into(),
            policies,
            cycle,
            shutdown: Shutdown::default(),
            reports,
        }
    }

    /// Uses `shutdown` (shared with whoever handles signals) instead of
    /// the engine's own.
    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<CycleReport> {
        self.reports.subscribe()
    }

    pub fn history(&self) -> &H {
        &self.history
    }

    /// The loop: resume what a crash left, a startup cycle, then a cycle per
    /// trigger until the triggers end or [`Shutdown::trigger`].
    pub async fn run(&self, mut triggers: Triggers) -> Result<(), StoreError> {
        if let Some(report) = self.resume().await? {
            self.publish(report);
        }
        if !self.shutdown.is_triggered() {
            let report = self.run_cycle(Trigger::Startup).await?;
            self.publish(report);
            triggers.reset_period();
        }
        while !self.shutdown.is_triggered() {
            let trigger = tokio::select! {
                trigger = triggers.next() => match trigger {
                    Some(trigger) => trigger,
                    None => break,
                },
                () = self.shutdown.wait() => break,
            };
            // A store that is down fails this cycle, not the loop: the next
            // trigger tries again.
            match self.run_cycle(trigger).await {
                Ok(report) => self.publish(report),
                Err(err) => tracing::error!(error = %err, "cycle could not be recorded"),
            }
        }
        Ok(())
    }

    fn publish(&self, report: CycleReport) {
        match &report.outcome {
            Ok(outcome) if outcome.is_success() => tracing::info!(
                cycle = report.cycle_id,
                trigger = report.trigger.as_str(),
                resumed = report.resumed,
                took_ms = report.took.as_millis() as u64,
                "{}",
                outcome.summary()
            ),
            Ok(outcome) => tracing::warn!(
                cycle = report.cycle_id,
                trigger = report.trigger.as_str(),
                "{}",
                outcome.summary()
            ),
            Err(stop) => tracing::warn!(cycle = report.cycle_id, "cycle stopped: {stop}"),
        }
        let _ = self.reports.send(report);
    }

    /// Resumes this node's unfinished cycle, if a crash (or a shutdown) left one.
    pub async fn resume(&self) -> Result<Option<CycleReport>, StoreError> {
        let Some(cycle) = self.history.unfinished(&self.node, ENGINE).await? else {
            return Ok(None);
        };
        let Some(trigger) = Trigger::from_name(&cycle.trigger) else {
            // Written by a newer Steward: it cannot be replayed faithfully.
            self.history
                .finish_cycle(cycle.id, CycleStatus::Failed, "abandoned: unknown trigger", now_ms())
                .await?;
            return Ok(None);
        };
        let steps = self.history.steps(cycle.id).await?;
        tracing::info!(cycle = cycle.id, steps = steps.len(), "resuming an unfinished cycle");
        Ok(Some(self.execute(cycle.id, trigger, steps, true).await?))
    }

    /// Runs one new cycle.
    pub async fn run_cycle(&self, trigger: Trigger) -> Result<CycleReport, StoreError> {
        let cycle_id =
            self.history.begin_cycle(&self.node, ENGINE, trigger.as_str(), now_ms()).await?;
        self.execute(cycle_id, trigger, Vec::new(), false).await
    }

    async fn execute(
        &self,
        cycle_id: i64,
        trigger: Trigger,
        steps: Vec<StepRecord>,
        resumed: bool,
    ) -> Result<CycleReport, StoreError> {
        let started = Instant::now();
        let mut replay: BTreeMap<i64, Vec<StepRecord>> = BTreeMap::new();
        for step in steps {
            replay.entry(step.seq).or_default().push(step);
        }
        let mut x = Recorded {
            engine: self,
            cycle_id,
            seq: 0,
            replaying: !replay.is_empty(),
            replay,
            executed: 0,
            replayed: 0,
        };
        let outcome = reconcile_cycle(&mut x, trigger, self.cycle).await;
        let (executed, replayed) = (x.executed, x.replayed);
        match &outcome {
            Ok(CycleOutcome::Unchanged { .. }) if !resumed => {
                self.history.forget_cycle(cycle_id).await?;
            }
            // Waiting (held, or a candidate that failed recently) says
            // something the first time; the same wait every period does not.
            Ok(waiting @ (CycleOutcome::Held { .. } | CycleOutcome::KnownBad { .. }))
                if !resumed && self.repeats(cycle_id, &waiting.summary()).await? =>
            {
                self.history.forget_cycle(cycle_id).await?;
            }
            Ok(done) => {
                self.history
                    .finish_cycle(cycle_id, CycleStatus::Done, &done.summary(), now_ms())
                    .await?
            }
            Err(Stop::Failed(err)) => {
                self.history
                    .finish_cycle(cycle_id, CycleStatus::Failed, &err.to_string(), now_ms())
                    .await?
            }
            // Left `running`: the next start resumes it.
            Err(Stop::Parked(_)) => {}
        }
        Ok(CycleReport {
            cycle_id,
            trigger,
            resumed,
            outcome,
            executed,
            replayed,
            took: started.elapsed(),
        })
    }
}

impl<D: Dispatch, H: WorkflowHistory> EmbeddedEngine<D, H> {
    /// Whether this node's last finished cycle before `cycle_id` ended with
    /// the same `summary`.
    async fn repeats(&self, cycle_id: i64, summary: &str) -> Result<bool, StoreError> {
        // Other nodes sharing a PostgreSQL store interleave their cycles; a
        // few dozen rows back is far enough to find this node's last one.
        let recent = self.history.recent_cycles(50).await?;
        let previous = recent
            .iter()
            .find(|c| c.node == self.node && c.id != cycle_id && c.status != CycleStatus::Running);
        Ok(previous.and_then(|c| c.outcome.as_deref()) == Some(summary))
    }
}

/// The executor of one cycle: replays recorded steps, runs and records the rest.
struct Recorded<'a, D, H> {
    engine: &'a EmbeddedEngine<D, H>,
    cycle_id: i64,
    seq: i64,
    /// Recorded attempts by position, from a cycle being resumed.
    replay: BTreeMap<i64, Vec<StepRecord>>,
    /// Still answering from the history; off at the first step that must run.
    replaying: bool,
    executed: usize,
    replayed: usize,
}

fn input_hash(input: &serde_json::Value) -> String {
    hex::encode(Sha256::digest(input.to_string().as_bytes()))
}

impl<D: Dispatch, H: WorkflowHistory> Executor for Recorded<'_, D, H> {
    async fn call<I, O>(&mut self, activity: Activity, input: &I) -> Result<O, Stop>
    where
        I: Serialize + Sync,
        O: DeserializeOwned,
    {
        let seq = self.seq;
        self.seq += 1;
        let name = activity.name();
        let input = serde_json::to_value(input)
            .map_err(|err| ActivityError::fatal(name, format!("input does not encode: {err}")))?;
        let hash = input_hash(&input);
        let prior = self.replay.remove(&seq).unwrap_or_default();
        if self.replaying {
            let done = prior.iter().find(|step| {
                step.status == StepStatus::Completed
                    && step.activity == name
                    && step.input_hash == hash
            });
            if let Some(result) = done.and_then(|step| step.result.as_deref())
                && let Ok(output) = serde_json::from_str::<O>(result)
            {
                tracing::info!(
                    cycle = self.cycle_id,
                    seq,
                    activity = name,
                    "replayed from history"
                );
                self.replayed += 1;
                return Ok(output);
            }
            if prior.iter().any(|step| step.activity != name || step.input_hash != hash) {
                tracing::warn!(
                    cycle = self.cycle_id,
                    seq,
                    activity = name,
                    "history differs from this run (another Steward version?); running from here"
                );
            }
            self.replaying = false;
        }
        if self.engine.shutdown.is_triggered() {
            return Err(Stop::Parked(activity));
        }
        self.executed += 1;
        let options = self.engine.policies.options(activity);
        let first = prior.iter().map(|step| step.attempt).max().unwrap_or(0);
        let history = &self.engine.history;
        let cycle_id = self.cycle_id;
        let step_id = AtomicI64::new(0);
        let attempt_started = std::sync::Mutex::new(Instant::now());
        let record_error = |err: StoreError| {
            ActivityError::retryable(name, format!("cannot record the attempt: {err}"))
        };
        let output = run_with_retry(
            name,
            &options,
            || self.engine.dispatch.run(activity, input.clone()),
            |n| {
                let step = NewStep {
                    cycle_id,
                    seq,
                    activity: name,
                    attempt: first + i64::from(n),
                    input_hash: &hash,
                    started_ms: now_ms(),
                };
                *attempt_started.lock().expect("not poisoned") = Instant::now();
                let step_id = &step_id;
                async move {
                    let id = history.step_started(step).await.map_err(record_error)?;
                    step_id.store(id, Ordering::SeqCst);
                    Ok(())
                }
            },
            |_, end| {
                let took = attempt_started.lock().expect("not poisoned").elapsed();
                let id = step_id.load(Ordering::SeqCst);
                let (result, error) = match end {
                    AttemptEnd::Ok(value) => (Some(value.to_string()), None),
                    AttemptEnd::Err(err) => (None, Some(err.message.clone())),
                };
                async move {
                    let end = match (&result, &error) {
                        (Some(result), _) => StepEnd::Completed { result },
                        (None, error) => StepEnd::Failed { error: error.as_deref().unwrap_or("") },
                    };
                    history
                        .step_finished(id, end, took.as_millis() as i64)
                        .await
                        .map_err(record_error)
                }
            },
        )
        .await?;
        serde_json::from_value(output).map_err(|err| {
            Stop::Failed(ActivityError::fatal(name, format!("output does not decode: {err}")))
        })
    }
}
