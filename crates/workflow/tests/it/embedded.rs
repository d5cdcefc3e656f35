use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use steward_registry::store::{CycleStatus, SqliteStore, StepStatus, WorkflowHistory};
use steward_workflow::cycle::{CycleOutcome, CycleSettings, Stop, Trigger};
use steward_workflow::{
    Activity, ActivityError, ActivityPolicies, Dispatch, EmbeddedEngine, Shutdown,
};

/// Answers from a script per activity (then a default), counts calls, and
/// can hang `verify_reload` (a crash mid-verification) or trigger a
/// shutdown while `validate_config` runs.
#[derive(Default)]
struct Scripted {
    scripts: Mutex<BTreeMap<&'static str, VecDeque<Result<Value, ActivityError>>>>,
    calls: Mutex<Vec<&'static str>>,
    hang_verify: bool,
    shutdown_on_validate: Option<Shutdown>,
}

impl Scripted {
    fn count(&self, activity: Activity) -> usize {
        self.calls.lock().unwrap().iter().filter(|a| **a == activity.name()).count()
    }

    fn script(self, activity: Activity, answers: Vec<Result<Value, ActivityError>>) -> Self {
        self.scripts.lock().unwrap().insert(activity.name(), answers.into());
        self
    }
}

fn default_answer(activity: Activity) -> Value {
    match activity {
        Activity::DockerWatch | Activity::K8sWatch | Activity::LogDirWatch => json!([]),
        Activity::RegisterOrUpdateRegistry => json!({"sources": [], "changes": 0}),
        Activity::BuildConfig => {
            json!({"yaml": "y", "hash": "h", "version": "cfg-h", "sources": 0})
        }
        Activity::CurrentConfig => {
            json!({"current": {"on_disk": "g", "applied": "g"}, "candidate_failed": null})
        }
        Activity::ValidateConfig | Activity::CanaryReload | Activity::VerifyReload => {
            json!({"ok": true, "reason": null})
        }
        Activity::PushConfig => json!({"hash": "h", "previous": "g", "pid": 7}),
        Activity::RollbackConfig => json!({"restored": "cfg-g"}),
        Activity::SendAlert => json!({"notifications": 0}),
    }
}

impl Dispatch for Scripted {
    async fn run(&self, activity: Activity, _input: Value) -> Result<Value, ActivityError> {
        self.calls.lock().unwrap().push(activity.name());
        if activity == Activity::VerifyReload && self.hang_verify {
            std::future::pending::<()>().await;
        }
        if activity == Activity::ValidateConfig
            && let Some(shutdown) = &self.shutdown_on_validate
        {
            shutdown.trigger();
        }
        let scripted =
            self.scripts.lock().unwrap().get_mut(activity.name()).and_then(VecDeque::pop_front);
        scripted.unwrap_or_else(|| Ok(default_answer(activity)))
    }
}

fn policies() -> ActivityPolicies {
    ActivityPolicies {
        canary_timeout: Duration::from_secs(1),
        verify_timeout: Duration::from_secs(1),
    }
}

const CANARY: CycleSettings = CycleSettings { canary: true };

async fn store(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("steward.db")).await.expect("open SQLite")
}

fn engine(dispatch: Arc<Scripted>, store: SqliteStore) -> EmbeddedEngine<Scripted, SqliteStore> {
    EmbeddedEngine::new(dispatch, store, "node-a", policies(), CANARY)
}

/// A crash while `verify_reload` runs (the cycle's future is dropped, as a
/// `kill -9` would): the history holds every completed step and the running
/// one. A new engine on the same store resumes that cycle: the nine steps
/// before verification are answered from the history (the push is not run
/// again), verification runs again, and the cycle ends applied, once.
#[tokio::test]
async fn a_crash_mid_cycle_resumes_from_the_history_without_pushing_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = Arc::new(Scripted { hang_verify: true, ..Scripted::default() });
    let crashed = engine(Arc::clone(&first), store(&dir).await);
    let run = tokio::time::timeout(Duration::from_millis(500), crashed.run_cycle(Trigger::Event));
    assert!(run.await.is_err(), "verification hangs: the cycle is cut off mid-flight");
    assert_eq!(first.count(Activity::PushConfig), 1);
    drop(crashed);

    let history = store(&dir).await;
    let open = history.unfinished("node-a", "embedded").await.expect("read").expect("left running");
    let steps = history.steps(open.id).await.expect("steps");
    assert_eq!(steps.len(), 10);
    assert_eq!(steps[9].activity, "verify_reload");
    assert_eq!(steps[9].status, StepStatus::Running);

    let second = Arc::new(Scripted::default());
    let restarted = engine(Arc::clone(&second), history);
    let report = restarted.resume().await.expect("resume").expect("a cycle to resume");
    assert_eq!(report.cycle_id, open.id);
    assert!(report.resumed);
    assert_eq!(report.outcome, Ok(CycleOutcome::Applied { version: "cfg-h".into(), sources: 0 }));
    assert_eq!(
        (report.replayed, report.executed),
        (9, 2),
        "verify and the alert ran; the rest was replayed"
    );
    assert_eq!(second.count(Activity::PushConfig), 0, "not pushed again");
    assert_eq!(second.count(Activity::VerifyReload), 1);

    let history = restarted.history();
    assert_eq!(history.unfinished("node-a", "embedded").await.expect("read"), None);
    let cycle = &history.recent_cycles(1).await.expect("read")[0];
    assert_eq!((cycle.id, cycle.status), (open.id, CycleStatus::Done));
    let steps = history.steps(open.id).await.expect("steps");
    let verify: Vec<(i64, StepStatus)> = steps
        .iter()
        .filter(|s| s.activity == "verify_reload")
        .map(|s| (s.attempt, s.status))
        .collect();
    assert_eq!(
        verify,
        vec![(1, StepStatus::Running), (2, StepStatus::Completed)],
        "the attempt in flight stays visible"
    );
    assert_eq!(steps.iter().filter(|s| s.activity == "push_config").count(), 1);
}

/// A shutdown while `validate_config` runs: validation finishes and is
/// recorded, the canary is not started, the cycle stays `running` (parked),
/// and the next start picks it up at the canary.
#[tokio::test]
async fn a_shutdown_parks_the_cycle_after_the_activity_in_flight() {
    let dir = tempfile::tempdir().expect("temp dir");
    let shutdown = Shutdown::default();
    let first =
        Arc::new(Scripted { shutdown_on_validate: Some(shutdown.clone()), ..Scripted::default() });
    let parked = engine(Arc::clone(&first), store(&dir).await).with_shutdown(shutdown);
    let report = parked.run_cycle(Trigger::Period).await.expect("recorded");
    assert_eq!(report.outcome, Err(Stop::Parked(Activity::CanaryReload)));
    assert_eq!(first.count(Activity::ValidateConfig), 1);
    assert_eq!(first.count(Activity::CanaryReload), 0);
    drop(parked);

    let second = Arc::new(Scripted::default());
    let next = engine(Arc::clone(&second), store(&dir).await);
    let report = next.resume().await.expect("resume").expect("the parked cycle");
    assert!(matches!(report.outcome, Ok(CycleOutcome::Applied { .. })), "{report:?}");
    assert_eq!(report.trigger, Trigger::Period, "resumed as what it was");
    assert_eq!(second.count(Activity::ValidateConfig), 0, "validation was recorded, not repeated");
    assert_eq!(second.count(Activity::CanaryReload), 1);
}

/// A retryable failure is retried with backoff and every attempt is in the
/// history; a fatal one is not retried and fails the cycle, recorded failed.
#[tokio::test]
async fn attempts_are_recorded_and_fatal_errors_fail_the_cycle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dispatch = Arc::new(Scripted::default().script(
        Activity::PushConfig,
        vec![
            Err(ActivityError::retryable("push_config", "EAGAIN")),
            Ok(default_answer(Activity::PushConfig)),
        ],
    ));
    let e = engine(Arc::clone(&dispatch), store(&dir).await);
    let report = e.run_cycle(Trigger::Event).await.expect("recorded");
    assert!(matches!(report.outcome, Ok(CycleOutcome::Applied { .. })), "{report:?}");
    let steps = e.history().steps(report.cycle_id).await.expect("steps");
    let push: Vec<(i64, StepStatus, Option<&str>)> = steps
        .iter()
        .filter(|s| s.activity == "push_config")
        .map(|s| (s.attempt, s.status, s.error.as_deref()))
        .collect();
    assert_eq!(
        push,
        vec![(1, StepStatus::Failed, Some("EAGAIN")), (2, StepStatus::Completed, None)]
    );

    let dispatch = Arc::new(Scripted::default().script(
        Activity::PushConfig,
        vec![
            Err(ActivityError::fatal("push_config", "disk full")),
            Ok(default_answer(Activity::PushConfig)),
        ],
    ));
    let e = engine(Arc::clone(&dispatch), store(&dir).await);
    let report = e.run_cycle(Trigger::Event).await.expect("recorded");
    assert!(
        matches!(&report.outcome, Err(Stop::Failed(err)) if err.message == "disk full"),
        "{report:?}"
    );
    assert_eq!(dispatch.count(Activity::PushConfig), 1, "not retried");
    let cycle = &e.history().recent_cycles(1).await.expect("read")[0];
    assert_eq!(cycle.status, CycleStatus::Failed);
    assert!(cycle.outcome.as_deref().unwrap_or("").contains("disk full"), "{cycle:?}");
}

/// A cycle that finds nothing to do leaves no rows behind; one that rolled
/// out stays in the history.
#[tokio::test]
async fn an_unchanged_cycle_leaves_no_history() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dispatch = Arc::new(Scripted::default().script(
        Activity::CurrentConfig,
        vec![Ok(json!({"current": {"on_disk": "h", "applied": "h"}, "candidate_failed": null}))],
    ));
    let e = engine(Arc::clone(&dispatch), store(&dir).await);
    let report = e.run_cycle(Trigger::Period).await.expect("recorded");
    assert_eq!(report.outcome, Ok(CycleOutcome::Unchanged { version: "cfg-h".into() }));
    assert_eq!(e.history().recent_cycles(10).await.expect("read"), vec![]);
    assert_eq!(e.history().steps(report.cycle_id).await.expect("read"), vec![]);
}

/// A cycle that waits (a hold, or a candidate that failed recently) is kept
/// the first time, not again while the wait is the same.
#[tokio::test]
async fn the_same_wait_is_recorded_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let held = json!({
        "current": {"on_disk": "g", "applied": "g"}, "candidate_failed": null,
        "held": {"version": "cfg-g", "reason": "rolled back via the API", "since_ms": 1}
    });
    let dispatch = Arc::new(
        Scripted::default()
            .script(Activity::CurrentConfig, vec![Ok(held.clone()), Ok(held.clone()), Ok(held)]),
    );
    let e = engine(Arc::clone(&dispatch), store(&dir).await);
    for _ in 0..3 {
        let report = e.run_cycle(Trigger::Period).await.expect("recorded");
        assert!(matches!(report.outcome, Ok(CycleOutcome::Held { .. })), "{report:?}");
    }
    let cycles = e.history().recent_cycles(10).await.expect("read");
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(cycles[0].outcome.as_deref().unwrap_or("").starts_with("held at cfg-g"), "{cycles:?}");
    assert_eq!(dispatch.count(Activity::PushConfig), 0, "nothing rolled out while held");
}
