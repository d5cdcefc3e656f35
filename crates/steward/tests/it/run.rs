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
    let out = node.steward_command(args).output().expect("run steward");
    assert!(out.status.success(), "steward {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON output")
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
    drop(container);
    node.steward.as_mut().expect("running").check_running().expect("steward ran throughout");
}

/// The embedded engine: a new container's first line is queryable in
/// VictoriaLogs with no manual step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_new_containers_first_line_arrives() {
    new_container_line_arrives(NodeOptions::default()).await;
}

/// The same under the Temporal engine, against a real Temporal dev server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_a_new_containers_first_line_arrives() {
    let tb = Testbed::locate().expect("test bench installed");
    let temporal = Temporal::start(&tb).await.expect("Temporal starts");
    new_container_line_arrives(NodeOptions {
        engine: "temporal".into(),
        temporal_address: Some(temporal.address()),
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

    // The collector was never without a valid config: it runs, answers once
    // its SIGHUP reload is through, and the file it has is accepted by the
    // real binary.
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

    arrives(&node, &marker, 1, Duration::from_secs(60)).await;
    let after = format!("after-restart-{}", node.label);
    let _two = Container::run(
        &docker,
        &host,
        &format!("again-{}", node.label),
        &node.labels(),
        &format!("echo {after}; sleep 600"),
    )
    .await
    .expect("the second container starts");
    arrives(&node, &after, 1, Duration::from_secs(60)).await;
    arrives(&node, &marker, 1, Duration::from_secs(1)).await;
}
