//! The workflow history suite: one set of checks, generic over
//! [`WorkflowHistory`], run against SQLite and a real PostgreSQL from the
//! test bench, each directly and through [`AnyStore::open`].

use crate::bench::{Bench, PgBench, SqliteBench, ViaAny};
use steward_registry::store::{
    CycleStatus, NewStep, StepEnd, StepStatus, StoreError, WorkflowHistory,
};

async fn check_all<B: Bench<Store: WorkflowHistory>>(bench: &B) {
    let name = "workflow_resume";
    bench.create(name).await;
    let store = bench.open(name).await;
    an_interrupted_cycle_is_found_with_its_steps(&store).await;
    bench.close(store).await;
    // What a crashed process left is there for the next one.
    let store = bench.open(name).await;
    let open = store.unfinished("node-a", "embedded").await.expect("unfinished");
    assert_eq!(open.map(|c| c.trigger), Some("event".to_owned()), "survives reopening");
    bench.close(store).await;

    let name = "workflow_corrupt";
    bench.create(name).await;
    let store = bench.open(name).await;
    store.begin_cycle("node-a", "embedded", "period", 1).await.expect("begin");
    bench.close(store).await;
    bench.raw_sql(name, "UPDATE workflow_cycles SET status = 'zombie'", None).await;
    let store = bench.open(name).await;
    let err = store.unfinished("node-a", "embedded").await;
    // 'zombie' is not 'running', so the query does not see it; the listing does.
    assert_eq!(err.expect("unfinished ignores other statuses"), None);
    match store.recent_cycles(10).await {
        Err(StoreError::CorruptWorkflow { what, reason }) => {
            assert_eq!(what, "cycle 1");
            assert!(reason.contains("zombie"), "{reason}");
        }
        other => panic!("a corrupt status is an error naming the row: {other:?}"),
    }
    bench.close(store).await;
}

async fn an_interrupted_cycle_is_found_with_its_steps<S: WorkflowHistory>(store: &S) {
    assert_eq!(store.unfinished("node-a", "embedded").await.expect("none yet"), None);
    let done = store.begin_cycle("node-a", "embedded", "startup", 10).await.expect("begin");
    store.finish_cycle(done, CycleStatus::Done, "unchanged", 20).await.expect("finish");
    let other_node = store.begin_cycle("node-b", "embedded", "period", 30).await.expect("b");
    let open = store.begin_cycle("node-a", "embedded", "event", 40).await.expect("begin");
    assert!(open > done && open > other_node, "ids grow");

    let step = |seq, activity, attempt| NewStep {
        cycle_id: open,
        seq,
        activity,
        attempt,
        input_hash: "ab12",
        started_ms: 50,
    };
    let first = store.step_started(step(0, "build_config", 1)).await.expect("start");
    store
        .step_finished(first, StepEnd::Completed { result: "{\"hash\":\"x\0y\"}" }, 7)
        .await
        .expect("finish");
    let failed = store.step_started(step(1, "push_config", 1)).await.expect("start");
    store.step_finished(failed, StepEnd::Failed { error: "EAGAIN" }, 3).await.expect("fail");
    store.step_started(step(1, "push_config", 2)).await.expect("start");

    let found = store.unfinished("node-a", "embedded").await.expect("unfinished").expect("one");
    assert_eq!((found.id, found.status, found.started_ms), (open, CycleStatus::Running, 40));
    let steps = store.steps(open).await.expect("steps");
    let summary: Vec<(i64, &str, i64, StepStatus)> =
        steps.iter().map(|s| (s.seq, s.activity.as_str(), s.attempt, s.status)).collect();
    assert_eq!(
        summary,
        vec![
            (0, "build_config", 1, StepStatus::Completed),
            (1, "push_config", 1, StepStatus::Failed),
            (1, "push_config", 2, StepStatus::Running),
        ]
    );
    assert_eq!(steps[0].result.as_deref(), Some("{\"hash\":\"x\u{FFFD}y\"}"), "NUL replaced");
    assert_eq!((steps[0].duration_ms, steps[1].error.as_deref()), (Some(7), Some("EAGAIN")));
    assert_eq!(steps[2].duration_ms, None, "in flight");

    store.finish_cycle(open, CycleStatus::Done, "applied cfg-1", 60).await.expect("finish");
    assert_eq!(store.unfinished("node-a", "embedded").await.expect("none"), None);
    let recent = store.recent_cycles(2).await.expect("recent");
    assert_eq!(recent.iter().map(|c| c.id).collect::<Vec<_>>(), vec![open, other_node]);
    assert_eq!(recent[0].outcome.as_deref(), Some("applied cfg-1"));
    assert_eq!(recent[0].finished_ms, Some(60));
    store.forget_cycle(done).await.expect("forget");
    let recent = store.recent_cycles(10).await.expect("recent");
    assert!(recent.iter().all(|c| c.id != done), "forgotten");
    assert_eq!(store.steps(done).await.expect("steps"), vec![]);
    assert_eq!(store.steps(open).await.expect("steps").len(), 3, "others untouched");
    // Reopen the cycle for the reopening check in `check_all`.
    let again = store.begin_cycle("node-a", "embedded", "event", 70).await.expect("begin");
    assert!(again > open);
}

#[tokio::test]
async fn sqlite() {
    check_all(&SqliteBench::new()).await;
}

#[tokio::test]
async fn sqlite_through_any_store() {
    check_all(&ViaAny(&SqliteBench::new())).await;
}

#[tokio::test]
async fn postgres() {
    let bench = PgBench::start().await;
    check_all(&bench).await;
    check_all(&ViaAny(&bench)).await;
}
