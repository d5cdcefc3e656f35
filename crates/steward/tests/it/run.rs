//! `steward run` end to end, with real parts: the test bench's Docker
//! Engine, the real `otelcol-steward` (run as a service manager would, with a
//! pid file; Steward reloads it by SIGHUP), VictoriaLogs as the store, SQLite
//! for Steward's state, and, for the Temporal engine, a real Temporal dev
//! server. Nothing is done by hand between a container's start and its line
//! in the store.

use std::time::Duration;

use serde_json::Value;
use steward_testbed::docker::{Container, connect};
use steward_testbed::node::{Node, NodeOptions};
use steward_testbed::parts::Temporal;
use steward_testbed::{Testbed, eventually};

const STEWARD: &str = env!("CARGO_BIN_EXE_steward");

fn json(node: &Node, args: &[&str]) -> Value {
    node.steward_json(args).unwrap_or_else(|err| panic!("{err}"))
}

fn versions(node: &Node) -> Vec<Value> {
    json(node, &["config", "history", "--output", "json", "--limit", "100"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn cycles(node: &Node) -> Vec<Value> {
    json(node, &["workflow", "history", "--output", "json", "--limit", "100"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn applied(node: &Node) -> Option<String> {
    versions(node)
        .into_iter()
        .find(|v| v["status"] == "applied")
        .and_then(|v| v["hash"].as_str().map(str::to_owned))
}

/// Waits until `needle` is in the store exactly `n` times.
async fn arrives(node: &Node, needle: &str, n: usize, timeout: Duration) {
    eventually(&format!("{n} × {needle:?} in VictoriaLogs"), timeout, || async {
        match node.count(needle).await {
            Ok(found) if found == n => Ok(()),
            Ok(found) => Err(format!("{found} found")),
            Err(err) => Err(err.to_string()),
        }
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"));
}

/// After a `kill -9` of Steward: the collector was never without a valid
/// config. It runs, answers once its SIGHUP reload is through, and the file
/// it has is accepted by the real binary.
async fn collector_kept_a_valid_config(node: &mut Node) {
    node.collector.check_running().expect("the collector survives Steward");
    eventually("the collector's health after the kill", Duration::from_secs(15), || async {
        node.collector_health().await.map_err(|err| err.to_string())
    })
    .await
    .expect("the collector answers");
    let out = node
        .steward_command(&["config", "validate", &node.config_path.display().to_string()])
        .output()
        .expect("validate");
    assert!(
        out.status.success(),
        "the file on disk is valid: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// After the restart: the interrupted rollout's container and a new one are
/// both collected, each line exactly once.
async fn collection_goes_on(node: &Node, tb: &Testbed, marker: &str, prefix: &str) {
    let (docker, host) = connect(tb).await.expect("docker");
    arrives(node, marker, 1, Duration::from_secs(60)).await;
    let after = format!("after-restart-{}", node.label);
    let _two = Container::run(
        &docker,
        &host,
        &format!("{prefix}-{}", node.label),
        &node.labels(),
        &format!("echo {after}; sleep 600"),
    )
    .await
    .expect("the second container starts");
    arrives(node, &after, 1, Duration::from_secs(60)).await;
    arrives(node, marker, 1, Duration::from_secs(1)).await;
}

async fn new_container_line_arrives(options: NodeOptions) {
    let tb = Testbed::locate().expect("test bench installed");
    let mut node = Node::start(&tb, STEWARD.as_ref(), options).await.expect("node starts");
    node.start_steward().expect("steward run starts");
    // The startup cycle rolls the source-less config out and verifies it.
    eventually("a first applied version", Duration::from_secs(60), || async {
        applied(&node).ok_or_else(|| "none yet".to_owned())
    })
    .await
    .expect("steward applies its first config");

    let (docker, host) = connect(&tb).await.expect("docker");
    let marker = format!("first-line-{}", node.label);
    let container = Container::run(
        &docker,
        &host,
        &format!("run-{}", node.label),
        &node.labels(),
        &format!("echo {marker}; sleep 600"),
    )
    .await
    .expect("the container starts");
    arrives(&node, &marker, 1, Duration::from_secs(60)).await;

    let records = node.logs.query(&format!("_msg:{marker:?}")).await.expect("query");
    assert_eq!(records[0]["container.name"], format!("run-{}", node.label), "{records:?}");
    assert_eq!(records[0]["_msg"], marker.as_str(), "no trailing newline");
    let versions = versions(&node);
    assert_eq!(versions.iter().filter(|v| v["status"] == "applied").count(), 1, "{versions:?}");
    if let Some(api) = &node.api {
        // The API works the same under either engine; its activities feed
        // the same metrics.
        let get = |path: &str| {
            steward_testbed::parts::http_client()
                .get(format!("{}{path}", api.url))
                .bearer_auth(&api.token)
                .send()
        };
        let overview: Value =
            get("/api/v1/overview").await.expect("overview").json().await.expect("JSON");
        assert_eq!(overview["engine"], node.options_engine(), "{overview}");
        assert_eq!(overview["sources"]["active"], 1, "{overview}");
        let metrics = get("/metrics").await.expect("metrics").text().await.expect("text");
        let pushes = metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix("steward_activity_duration_seconds_count{activity=\"push_config\"} ")
            })
            .and_then(|v| v.parse::<f64>().ok());
        assert!(pushes.is_some_and(|n| n >= 1.0), "{metrics}");
    }
    drop(container);
    node.steward.as_mut().expect("running").check_running().expect("steward ran throughout");

    // SIGTERM: Steward stops cleanly (exit 0); the collector is not its
    // child and keeps running.
    let steward = node.steward.as_mut().expect("running");
    steward.signal(libc::SIGTERM);
    let status = eventually("steward to exit after SIGTERM", Duration::from_secs(30), || {
        let status = steward.exit_status();
        async move { status.ok_or_else(|| "still running".to_owned()) }
    })
    .await
    .expect("steward stops");
    assert_eq!(status.code(), Some(0), "{}", steward.log_tail(2048));
    assert!(steward.log_tail(4096).contains("stopped"), "{}", steward.log_tail(2048));
    node.collector.check_running().expect("the collector keeps running");
    node.collector_health().await.expect("and answers");
}

/// The embedded engine: a new container's first line is queryable in
/// VictoriaLogs with no manual step; SIGTERM stops Steward with exit 0 and
/// leaves the collector running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_new_containers_first_line_arrives() {
    new_container_line_arrives(NodeOptions::default()).await;
}

/// The same under the Temporal engine, against a real Temporal dev server
/// (the worker shuts down on SIGTERM; the workflow stays on the server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_a_new_containers_first_line_arrives() {
    let tb = Testbed::locate().expect("test bench installed");
    let temporal = Temporal::start(&tb).await.expect("Temporal starts");
    new_container_line_arrives(NodeOptions {
        engine: "temporal".into(),
        temporal_address: Some(temporal.address()),
        api: true,
        ..NodeOptions::default()
    })
    .await;
}

/// `kill -9` of `steward run` while it verifies a rollout (after the push,
/// before the version is marked applied): the collector keeps running on a
/// config the real binary accepts; the restarted Steward resumes the same
/// cycle from its history without pushing again, so the version is recorded
/// once and applied once; and collection goes on, for the container of the
/// interrupted rollout and for a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_kill_9_mid_rollout_resumes_without_applying_twice() {
    let tb = Testbed::locate().expect("test bench installed");
    let options = NodeOptions { settle_ms: 3000, period_secs: 3600, ..NodeOptions::default() };
    let mut node = Node::start(&tb, STEWARD.as_ref(), options).await.expect("node starts");
    node.start_steward().expect("steward run starts");
    let first = eventually("a first applied version", Duration::from_secs(60), || async {
        applied(&node).ok_or_else(|| "none yet".to_owned())
    })
    .await
    .expect("steward applies its first config");

    let (docker, host) = connect(&tb).await.expect("docker");
    let marker = format!("before-kill-{}", node.label);
    let _one = Container::run(
        &docker,
        &host,
        &format!("kill-{}", node.label),
        &node.labels(),
        &format!("echo {marker}; sleep 600"),
    )
    .await
    .expect("the container starts");

    // The rollout is in verify_reload: pushed, not yet marked applied.
    let cycle = eventually("verify_reload in flight", Duration::from_secs(60), || async {
        cycles(&node)
            .into_iter()
            .find(|c| {
                c["status"] == "running"
                    && c["steps"].as_array().is_some_and(|steps| {
                        steps
                            .iter()
                            .any(|s| s["activity"] == "verify_reload" && s["status"] == "running")
                    })
            })
            .and_then(|c| c["id"].as_i64())
            .ok_or_else(|| "not yet".to_owned())
    })
    .await
    .expect("a rollout reaches verification");
    node.kill_steward();

    collector_kept_a_valid_config(&mut node).await;
    let pending = versions(&node);
    assert!(
        pending.iter().all(|v| v["hash"] == first.as_str() || v["status"] == "candidate"),
        "{pending:?}"
    );

    node.start_steward().expect("steward run starts again");
    let resumed = eventually("the interrupted cycle done", Duration::from_secs(60), || async {
        cycles(&node)
            .into_iter()
            .find(|c| c["id"].as_i64() == Some(cycle) && c["status"] == "done")
            .ok_or_else(|| "not yet".to_owned())
    })
    .await
    .expect("the cycle completes after the restart");
    let steps = resumed["steps"].as_array().expect("steps");
    let attempts = |activity: &str| steps.iter().filter(|s| s["activity"] == activity).count();
    assert_eq!(attempts("push_config"), 1, "pushed once, not again on resume: {steps:?}");
    assert_eq!(attempts("verify_reload"), 2, "the interrupted verification ran again: {steps:?}");
    assert!(resumed["outcome"].as_str().unwrap_or("").starts_with("applied"), "{resumed}");

    let versions = versions(&node);
    assert_eq!(versions.len(), 2, "the bootstrap and the new version, once each: {versions:?}");
    assert_eq!(versions.iter().filter(|v| v["status"] == "applied").count(), 1);
    let running = cycles(&node).into_iter().filter(|c| c["status"] == "running").count();
    assert_eq!(running, 0, "nothing left unfinished");

    collection_goes_on(&node, &tb, &marker, "again").await;
}

/// The Temporal engine's history, from the server: activity type names in
/// the order they were scheduled, for the node's workflow (all its runs).
async fn scheduled(temporal: &Temporal, workflow: &str) -> Vec<String> {
    let out = temporal
        .cli(&["workflow", "show", "--workflow-id", workflow, "--output", "json"])
        .await
        .expect("temporal workflow show");
    let history: Value = serde_json::from_str(&out).expect("history is JSON");
    history["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["activityTaskScheduledEventAttributes"]["activityType"]["name"].as_str())
        .map(str::to_owned)
        .collect()
}

/// The activities the server has handed out and not yet seen complete.
async fn pending(temporal: &Temporal, workflow: &str) -> Vec<String> {
    let out = temporal
        .cli(&["workflow", "describe", "--workflow-id", workflow, "--output", "json"])
        .await
        .expect("temporal workflow describe");
    let described: Value = serde_json::from_str(&out).expect("description is JSON");
    described["pendingActivities"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["state"] == "PENDING_ACTIVITY_STATE_STARTED")
        .filter_map(|a| a["activityType"]["name"].as_str())
        .map(str::to_owned)
        .collect()
}

/// Under Temporal, `kill -9` of `steward run` (the worker) while the
/// server has `verify_reload` out to it: the collector keeps a valid
/// config; after the restart the server hands the unfinished verification
/// to the new worker once its start-to-close timeout has passed, and the
/// rollout completes without a second push; collection goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_kill_9_mid_rollout_resumes_without_applying_twice() {
    let tb = Testbed::locate().expect("test bench installed");
    let temporal = Temporal::start(&tb).await.expect("Temporal starts");
    let options = NodeOptions {
        engine: "temporal".into(),
        temporal_address: Some(temporal.address()),
        settle_ms: 3000,
        // The verification's start-to-close timeout is 2 × this + 15 s:
        // how long the server waits before handing it to the next worker.
        verify_timeout_secs: 4,
        period_secs: 3600,
        ..NodeOptions::default()
    };
    let mut node = Node::start(&tb, STEWARD.as_ref(), options).await.expect("node starts");
    let workflow = format!("steward-reconcile-{}", node.label);
    node.start_steward().expect("steward run starts");
    eventually("a first applied version", Duration::from_secs(60), || async {
        applied(&node).ok_or_else(|| "none yet".to_owned())
    })
    .await
    .expect("steward applies its first config");
    assert_eq!(
        scheduled(&temporal, &workflow).await.iter().filter(|a| *a == "push_config").count(),
        1
    );

    let (docker, host) = connect(&tb).await.expect("docker");
    let marker = format!("before-kill-{}", node.label);
    let _one = Container::run(
        &docker,
        &host,
        &format!("tkill-{}", node.label),
        &node.labels(),
        &format!("echo {marker}; sleep 600"),
    )
    .await
    .expect("the container starts");
    eventually("verify_reload handed to the worker", Duration::from_secs(60), || async {
        let pending = pending(&temporal, &workflow).await;
        if pending.iter().any(|a| a == "verify_reload") {
            Ok(())
        } else {
            Err(format!("{pending:?}"))
        }
    })
    .await
    .expect("a rollout reaches verification");
    node.kill_steward();

    collector_kept_a_valid_config(&mut node).await;

    node.start_steward().expect("steward run starts again");
    eventually("the new version applied", Duration::from_secs(90), || async {
        let versions = versions(&node);
        let applied = versions.iter().filter(|v| v["status"] == "applied").count();
        if versions.len() == 2 && applied == 1 && versions[0]["status"] == "applied" {
            Ok(())
        } else {
            Err(format!("{versions:?}"))
        }
    })
    .await
    .expect("the rollout completes after the restart");
    let scheduled = scheduled(&temporal, &workflow).await;
    let count = |name: &str| scheduled.iter().filter(|a| *a == name).count();
    assert_eq!(
        count("push_config"),
        2,
        "bootstrap and the container, no push again: {scheduled:?}"
    );

    collection_goes_on(&node, &tb, &marker, "tagain").await;
}

/// An unreachable Temporal server: `steward run` says so, names the
/// address, and keeps retrying instead of stalling or exiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_unreachable_is_reported_and_retried() {
    let tb = Testbed::locate().expect("test bench installed");
    let closed = format!("127.0.0.1:{}", steward_testbed::free_port());
    let options = NodeOptions {
        engine: "temporal".into(),
        temporal_address: Some(closed.clone()),
        ..NodeOptions::default()
    };
    let mut node = Node::start(&tb, STEWARD.as_ref(), options).await.expect("node starts");
    node.start_steward().expect("steward run starts");
    let steward = node.steward.as_ref().expect("running");
    eventually("two logged connection failures", Duration::from_secs(30), || async {
        let log = std::fs::read_to_string(steward.log_path()).unwrap_or_default();
        let failures =
            log.lines().filter(|l| l.contains(&closed) && l.contains("cannot connect")).count();
        if failures >= 2 { Ok(()) } else { Err(format!("{failures} so far")) }
    })
    .await
    .expect("each failed attempt is logged with the address");
    node.steward.as_mut().expect("running").check_running().expect("still retrying, not exited");
}
