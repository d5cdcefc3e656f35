//! One reconcile cycle, written once for both engines: the seed's loop body
//! as a sequence of activity calls through an [`Executor`].
//!
//! ```text
//! docker_watch, k8s_watch, log_dir_watch ─▶ register_or_update_registry ─▶ build_config
//!   ─▶ current_config ─▶ plan_rollout ─┬─ unchanged / known bad: stop
//!                                      └─ validate_config ─▶ canary_reload ─▶ push_config
//!                                         ─▶ verify_reload ─▶ send_alert (resolve)
//!                                              └─ failed: rollback_config ─▶ send_alert
//! ```
//!
//! The cycle is deterministic given the activities' results: it reads no
//! clock and no randomness, and decides only from what activities returned.
//! That is what lets the embedded engine replay a crashed cycle from its
//! history, and what Temporal requires of a workflow. The decision itself,
//! [`plan_rollout`], is a pure function.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::activities::{
    Activity, AlertInput, BuildInput, Built, ConfigInput, CurrentState, RegisterInput,
    RegistryView, RollbackInput, Rolled, Sent, Verdict, WatchInput, Watched,
};
use crate::retry::ActivityError;
use steward_agent::Pushed;

/// The alert check rollout failures fire under.
pub const ROLLOUT_CHECK: &str = "config_rollout";

/// Why a cycle ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The first cycle after Steward starts: a full resync.
    Startup,
    /// Discovery changed the registry (debounced).
    Event,
    /// The safety-net period: a full resync.
    Period,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::Event => "event",
            Trigger::Period => "period",
        }
    }

    pub fn from_name(name: &str) -> Option<Trigger> {
        [Trigger::Startup, Trigger::Event, Trigger::Period].into_iter().find(|t| t.as_str() == name)
    }

    /// Whether the cycle takes full discovery snapshots.
    pub fn resync(self) -> bool {
        !matches!(self, Trigger::Event)
    }
}

/// Why a cycle stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stop {
    /// An activity failed for good (its retries are spent, or the error is
    /// not retryable).
    #[error(transparent)]
    Failed(#[from] ActivityError),
    /// Steward is shutting down: the activity in flight finished, the next
    /// one was not started; the cycle resumes at the next start.
    #[error("parked for shutdown before {0}")]
    Parked(Activity),
}

/// Calls activities on behalf of a cycle: locally with a recorded history
/// (embedded) or through a workflow engine (Temporal). Not `Send`: Temporal
/// runs workflow code on a single-threaded local executor.
pub trait Executor {
    fn call<I, O>(
        &mut self,
        activity: Activity,
        input: &I,
    ) -> impl Future<Output = Result<O, Stop>>
    where
        I: Serialize + Sync,
        O: DeserializeOwned;
}

/// How a cycle ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum CycleOutcome {
    /// The collector already runs the config the registry gives.
    Unchanged {
        version: String,
    },
    /// The candidate failed recently; it is not tried again yet.
    KnownBad {
        version: String,
        reason: String,
    },
    /// A version chosen by hand holds the loop; the candidate waits.
    Held {
        version: String,
        held: String,
        reason: String,
    },
    Applied {
        version: String,
        sources: usize,
    },
    Refused {
        version: String,
        reason: String,
    },
    CanaryFailed {
        version: String,
        reason: String,
    },
    RolledBack {
        version: String,
        reason: String,
        restored: Option<String>,
    },
}

impl CycleOutcome {
    /// Whether the node's collector is where it should be.
    pub fn is_success(&self) -> bool {
        matches!(self, CycleOutcome::Unchanged { .. } | CycleOutcome::Applied { .. })
    }

    /// One line for logs and the history.
    /// A short label for metrics: the variant's name.
    pub fn kind(&self) -> &'static str {
        match self {
            CycleOutcome::Unchanged { .. } => "unchanged",
            CycleOutcome::KnownBad { .. } => "known_bad",
            CycleOutcome::Held { .. } => "held",
            CycleOutcome::Applied { .. } => "applied",
            CycleOutcome::Refused { .. } => "refused",
            CycleOutcome::CanaryFailed { .. } => "canary_failed",
            CycleOutcome::RolledBack { .. } => "rolled_back",
        }
    }

    pub fn summary(&self) -> String {
        match self {
            CycleOutcome::Unchanged { version } => format!("unchanged {version}"),
            CycleOutcome::KnownBad { version, reason } => {
                format!("skipped {version}: failed recently ({reason})")
            }
            CycleOutcome::Held { version, held, reason } => {
                format!("held at {held} ({reason}); {version} waits")
            }
            CycleOutcome::Applied { version, sources } => {
                format!("applied {version} ({sources} sources)")
            }
            CycleOutcome::Refused { version, reason } => format!("refused {version}: {reason}"),
            CycleOutcome::CanaryFailed { version, reason } => {
                format!("canary failed for {version}: {reason}")
            }
            CycleOutcome::RolledBack { version, reason, restored } => format!(
                "{version} failed verification ({reason}); rolled back to {}",
                restored.as_deref().unwrap_or("nothing")
            ),
        }
    }
}

/// What to do with a candidate config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Unchanged,
    KnownBad { reason: String },
    Held { version: String, reason: String },
    Rollout,
}

/// The reconcile decision, pure: roll out unless the collector already runs
/// the candidate, verified; a candidate that failed recently waits, and so
/// does every candidate while a version chosen by hand holds the loop.
pub fn plan_rollout(built: &Built, state: &CurrentState) -> Plan {
    if state.current.runs(&built.hash) {
        Plan::Unchanged
    } else if let Some(hold) = &state.held {
        Plan::Held { version: hold.version.clone(), reason: hold.reason.clone() }
    } else if let Some(reason) = &state.candidate_failed {
        Plan::KnownBad { reason: reason.clone() }
    } else {
        Plan::Rollout
    }
}

/// Options a cycle runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleSettings {
    /// Run the shadow collector before each push.
    pub canary: bool,
}

/// One cycle of the loop. `Err` only when an activity failed for good or
/// the engine parked it; every rollout verdict is an `Ok` outcome.
pub async fn reconcile_cycle<X: Executor>(
    x: &mut X,
    trigger: Trigger,
    settings: CycleSettings,
) -> Result<CycleOutcome, Stop> {
    let watch = WatchInput { resync: trigger.resync() };
    let mut watched: Vec<Watched> = Vec::new();
    for activity in [Activity::DockerWatch, Activity::K8sWatch, Activity::LogDirWatch] {
        match x.call::<_, Vec<Watched>>(activity, &watch).await {
            Ok(found) => watched.extend(found),
            // A discovery that cannot answer leaves its sources as they are;
            // the registry and the rest of the cycle go on.
            Err(Stop::Failed(err)) => tracing::warn!(%err, "discovery failed"),
            Err(stop) => return Err(stop),
        }
    }
    let view: RegistryView =
        x.call(Activity::RegisterOrUpdateRegistry, &RegisterInput { watched }).await?;
    let sources = view.sources.len();
    let built: Built = x.call(Activity::BuildConfig, &BuildInput { sources: view.sources }).await?;
    let state: CurrentState = x.call(Activity::CurrentConfig, &built.hash).await?;
    let version = built.version.clone();
    match plan_rollout(&built, &state) {
        Plan::Unchanged => return Ok(CycleOutcome::Unchanged { version }),
        Plan::KnownBad { reason } => return Ok(CycleOutcome::KnownBad { version, reason }),
        Plan::Held { version: held, reason } => {
            return Ok(CycleOutcome::Held { version, held, reason });
        }
        Plan::Rollout => {}
    }

    let reason = format!("{sources} sources ({} cycle)", trigger.as_str());
    let input = ConfigInput { yaml: built.yaml, reason };
    let valid: Verdict = x.call(Activity::ValidateConfig, &input).await?;
    if let Some(reason) = failure(&valid) {
        alert(x, false, &format!("{version} refused: {reason}")).await?;
        return Ok(CycleOutcome::Refused { version, reason });
    }
    if settings.canary {
        let canary: Verdict = x.call(Activity::CanaryReload, &input).await?;
        if let Some(reason) = failure(&canary) {
            alert(x, false, &format!("canary failed for {version}: {reason}")).await?;
            return Ok(CycleOutcome::CanaryFailed { version, reason });
        }
    }
    let pushed: Pushed = x.call(Activity::PushConfig, &input).await?;
    let verified: Verdict = x.call(Activity::VerifyReload, &pushed).await?;
    if let Some(reason) = failure(&verified) {
        let rollback = RollbackInput { previous: pushed.previous.clone(), failed: pushed.hash };
        let rolled: Rolled = x.call(Activity::RollbackConfig, &rollback).await?;
        let outcome = CycleOutcome::RolledBack { version, reason, restored: rolled.restored };
        alert(x, false, &outcome.summary()).await?;
        return Ok(outcome);
    }
    alert(x, true, "").await?;
    Ok(CycleOutcome::Applied { version, sources })
}

fn failure(verdict: &Verdict) -> Option<String> {
    (!verdict.ok).then(|| verdict.reason.clone().unwrap_or_else(|| "no reason given".into()))
}

async fn alert<X: Executor>(x: &mut X, healthy: bool, evidence: &str) -> Result<(), Stop> {
    let input = AlertInput { check: ROLLOUT_CHECK.into(), healthy, evidence: evidence.to_owned() };
    match x.call::<_, Sent>(Activity::SendAlert, &input).await {
        Ok(_) => Ok(()),
        // An alert that cannot be delivered must not undo or block the
        // rollout it reports on; it is logged, and the next failure retries.
        Err(Stop::Failed(err)) => {
            tracing::error!(%err, "alert not delivered");
            Ok(())
        }
        Err(stop) => Err(stop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use steward_agent::Current;

    /// Answers each call from a script, and keeps the calls.
    struct Scripted {
        answers: VecDeque<(Activity, Result<serde_json::Value, Stop>)>,
        calls: Vec<(Activity, serde_json::Value)>,
    }

    impl Scripted {
        fn new(answers: Vec<(Activity, Result<serde_json::Value, Stop>)>) -> Self {
            Scripted { answers: answers.into(), calls: Vec::new() }
        }

        fn names(&self) -> Vec<&'static str> {
            self.calls.iter().map(|(a, _)| a.name()).collect()
        }
    }

    impl Executor for Scripted {
        async fn call<I, O>(&mut self, activity: Activity, input: &I) -> Result<O, Stop>
        where
            I: Serialize + Sync,
            O: DeserializeOwned,
        {
            self.calls.push((activity, serde_json::to_value(input).unwrap()));
            let (expected, answer) = self.answers.pop_front().expect("an answer is scripted");
            assert_eq!(expected, activity, "call order");
            answer.map(|v| serde_json::from_value(v).expect("scripted output decodes"))
        }
    }

    fn ok(
        activity: Activity,
        value: serde_json::Value,
    ) -> (Activity, Result<serde_json::Value, Stop>) {
        (activity, Ok(value))
    }

    fn built(hash: &str) -> serde_json::Value {
        serde_json::json!({"yaml": "y", "hash": hash, "version": format!("cfg-{hash}"), "sources": 1})
    }

    fn state(
        on_disk: Option<&str>,
        applied: Option<&str>,
        failed: Option<&str>,
    ) -> serde_json::Value {
        serde_json::to_value(CurrentState {
            current: Current { on_disk: on_disk.map(Into::into), applied: applied.map(Into::into) },
            candidate_failed: failed.map(Into::into),
            held: None,
        })
        .unwrap()
    }

    fn prelude(
        hash: &str,
        st: serde_json::Value,
    ) -> Vec<(Activity, Result<serde_json::Value, Stop>)> {
        vec![
            ok(Activity::DockerWatch, serde_json::json!([])),
            ok(Activity::K8sWatch, serde_json::json!([])),
            ok(Activity::LogDirWatch, serde_json::json!([])),
            ok(
                Activity::RegisterOrUpdateRegistry,
                serde_json::json!({"sources": [], "changes": 0}),
            ),
            ok(Activity::BuildConfig, built(hash)),
            ok(Activity::CurrentConfig, st),
        ]
    }

    const ON: CycleSettings = CycleSettings { canary: true };

    #[test]
    fn the_plan_is_unchanged_only_when_file_and_history_agree() {
        let b: Built = serde_json::from_value(built("h")).unwrap();
        let plan = |s| plan_rollout(&b, &serde_json::from_value(s).unwrap());
        assert_eq!(plan(state(Some("h"), Some("h"), None)), Plan::Unchanged);
        assert_eq!(
            plan(state(Some("h"), Some("g"), None)),
            Plan::Rollout,
            "pushed, never verified"
        );
        assert_eq!(plan(state(Some("g"), Some("h"), None)), Plan::Rollout, "file replaced by hand");
        assert_eq!(
            plan(state(Some("g"), Some("g"), Some("bad"))),
            Plan::KnownBad { reason: "bad".into() }
        );
    }

    #[tokio::test]
    async fn a_hold_keeps_the_candidate_out_and_records_why() {
        let mut st: CurrentState =
            serde_json::from_value(state(Some("g"), Some("g"), Some("bad"))).unwrap();
        st.held = Some(steward_agent::Hold {
            version: "cfg-g".into(),
            reason: "rolled back via the API".into(),
            since_ms: 1,
        });
        let b: Built = serde_json::from_value(built("h")).unwrap();
        assert_eq!(
            plan_rollout(&b, &st),
            Plan::Held { version: "cfg-g".into(), reason: "rolled back via the API".into() },
            "a hold comes before a known-bad candidate"
        );
        let mut x = Scripted::new(prelude("h", serde_json::to_value(&st).unwrap()));
        let outcome = reconcile_cycle(&mut x, Trigger::Event, ON).await.unwrap();
        assert_eq!(outcome.kind(), "held");
        assert_eq!(x.calls.len(), 6, "no rollout step: {:?}", x.names());
        // The collector already running the candidate is not a hold's business.
        st.current =
            steward_agent::Current { on_disk: Some("h".into()), applied: Some("h".into()) };
        assert_eq!(plan_rollout(&b, &st), Plan::Unchanged);
    }

    #[tokio::test]
    async fn a_cycle_with_nothing_changed_does_nothing() {
        let mut x = Scripted::new(prelude("h", state(Some("h"), Some("h"), None)));
        let outcome = reconcile_cycle(&mut x, Trigger::Period, ON).await.unwrap();
        assert_eq!(outcome, CycleOutcome::Unchanged { version: "cfg-h".into() });
        assert_eq!(x.calls.len(), 6, "no rollout step: {:?}", x.names());
        assert_eq!(x.calls[0].1, serde_json::json!({"resync": true}));
    }

    #[tokio::test]
    async fn a_change_is_validated_canaried_pushed_verified_and_resolves_the_alert() {
        let mut script = prelude("h", state(Some("g"), Some("g"), None));
        let pushed = serde_json::json!({"hash": "h", "previous": "g", "pid": 42});
        script.extend([
            ok(Activity::ValidateConfig, serde_json::json!({"ok": true, "reason": null})),
            ok(Activity::CanaryReload, serde_json::json!({"ok": true, "reason": null})),
            ok(Activity::PushConfig, pushed.clone()),
            ok(Activity::VerifyReload, serde_json::json!({"ok": true, "reason": null})),
            ok(Activity::SendAlert, serde_json::json!({"notifications": 0})),
        ]);
        let mut x = Scripted::new(script);
        let outcome = reconcile_cycle(&mut x, Trigger::Event, ON).await.unwrap();
        assert_eq!(outcome, CycleOutcome::Applied { version: "cfg-h".into(), sources: 0 });
        assert_eq!(x.calls[0].1, serde_json::json!({"resync": false}), "events skip snapshots");
        assert_eq!(x.calls[9].1, pushed, "verify gets what push returned");
        assert_eq!(x.calls[10].1["healthy"], true);
    }

    #[tokio::test]
    async fn a_failed_verification_rolls_back_to_what_was_replaced_and_alerts() {
        let mut script = prelude("h", state(Some("g"), Some("g"), None));
        script.extend([
            ok(Activity::ValidateConfig, serde_json::json!({"ok": true, "reason": null})),
            ok(Activity::PushConfig, serde_json::json!({"hash": "h", "previous": "g", "pid": 42})),
            ok(Activity::VerifyReload, serde_json::json!({"ok": false, "reason": "exited"})),
            ok(Activity::RollbackConfig, serde_json::json!({"restored": "cfg-g"})),
            (
                Activity::SendAlert,
                Err(Stop::Failed(ActivityError::retryable("send_alert", "down"))),
            ),
        ]);
        let mut x = Scripted::new(script);
        let outcome = reconcile_cycle(&mut x, Trigger::Period, CycleSettings { canary: false })
            .await
            .unwrap();
        assert_eq!(
            outcome,
            CycleOutcome::RolledBack {
                version: "cfg-h".into(),
                reason: "exited".into(),
                restored: Some("cfg-g".into())
            },
            "an undeliverable alert does not fail the cycle"
        );
        assert_eq!(x.calls[9].1, serde_json::json!({"previous": "g", "failed": "h"}));
        assert_eq!(x.calls[10].1["healthy"], false);
    }

    #[tokio::test]
    async fn a_refusal_alerts_and_pushes_nothing() {
        let mut script = prelude("h", state(Some("g"), Some("g"), None));
        script.extend([
            ok(Activity::ValidateConfig, serde_json::json!({"ok": false, "reason": "bad key"})),
            ok(Activity::SendAlert, serde_json::json!({"notifications": 1})),
        ]);
        let mut x = Scripted::new(script);
        let outcome = reconcile_cycle(&mut x, Trigger::Period, ON).await.unwrap();
        assert_eq!(
            outcome,
            CycleOutcome::Refused { version: "cfg-h".into(), reason: "bad key".into() }
        );
        assert!(!x.names().contains(&"push_config"));
    }

    #[tokio::test]
    async fn a_failed_discovery_is_skipped_but_a_park_stops_the_cycle() {
        let mut script = prelude("h", state(Some("h"), Some("h"), None));
        script[0] = (
            Activity::DockerWatch,
            Err(Stop::Failed(ActivityError::retryable("docker_watch", "down"))),
        );
        let mut x = Scripted::new(script);
        assert!(reconcile_cycle(&mut x, Trigger::Period, ON).await.unwrap().is_success());

        let mut script = prelude("h", state(Some("g"), Some("g"), None));
        script.push((Activity::ValidateConfig, Err(Stop::Parked(Activity::ValidateConfig))));
        let mut x = Scripted::new(script);
        assert_eq!(
            reconcile_cycle(&mut x, Trigger::Period, ON).await,
            Err(Stop::Parked(Activity::ValidateConfig))
        );
    }
}
