//! `steward discover` and `steward sources` against the test bench's Docker
//! Engine, a real log directory and a SQLite registry in a temp dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use steward_testbed::Testbed;
use steward_testbed::docker::{Container, connect};

struct Node {
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// A `steward.yaml` for this test: the given Docker host, a pods directory
/// holding one container log, a static glob, and a data dir, all in a temp dir.
fn node(docker_host: &str) -> Node {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path();
    let log = base.join("pods/shop_cart-7d9_0c1a/cart/0.log");
    std::fs::create_dir_all(log.parent().expect("parent")).expect("pods dir");
    std::fs::write(&log, "{\"log\":\"hi\\n\"}\n").expect("log file");
    let config = base.join("steward.yaml");
    let yaml = format!(
        "data_dir: {data}\n\
         discovery:\n\
         \x20 docker:\n    host: {docker_host}\n    api_timeout: 5\n\
         \x20 log_dirs:\n    pods_dirs: [{pods}]\n    containers_dirs: [{none}]\n    podman_dirs: [{none}]\n\
         \x20 static_sources:\n    - path: {glob}\n      labels: {{service.name: legacy-app}}\n\
         registry:\n  drain_grace_secs: 3600\n",
        data = base.join("data").display(),
        pods = base.join("pods").display(),
        none = base.join("none").display(),
        glob = base.join("legacy/*.log").display(),
    );
    std::fs::write(&config, yaml).expect("steward.yaml");
    Node { dir, config }
}

fn steward(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steward"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run steward")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
        panic!(
            "stdout is not JSON ({err}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn find<'a>(items: &'a Value, id: &str) -> &'a Value {
    items
        .as_array()
        .expect("a JSON array")
        .iter()
        .find(|item| item["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {items:#}"))
}

async fn running_container(tb: &Testbed, name: &str) -> Container {
    let (docker, host) = connect(tb).await.expect("the shared engine answers");
    let name = format!("{name}-{}-{}", std::process::id(), steward_testbed::free_port());
    Container::run(&docker, &host, &name, &[], "sleep 600").await.expect("container runs")
}

/// `discover --once --output json` lists a running container, a kubelet log
/// file with the metadata its path carries, and a static glob with its labels.
#[tokio::test]
async fn discover_once_lists_every_kind_of_source_as_json() {
    let tb = Testbed::locate().expect("test bench installed");
    let container = running_container(&tb, "cli-discover").await;
    let node = node(&tb.docker_host().expect("docker host"));

    let out = steward(&node.config, &["discover", "--once", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let items = json(&out);
    let docker = find(&items, &format!("docker:{}", container.id()));
    assert_eq!(docker["collectable"], true);
    assert_eq!(docker["origin"], "docker");
    assert_eq!(docker["labels"]["container.name"], container.name());

    let log = std::fs::canonicalize(node.dir.path().join("pods/shop_cart-7d9_0c1a/cart/0.log"))
        .expect("log");
    let file = find(&items, &format!("file:{}", log.display()));
    assert_eq!(file["labels"]["k8s.namespace.name"], "shop");
    assert_eq!(file["labels"]["k8s.pod.name"], "cart-7d9");
    assert_eq!(file["labels"]["k8s.container.name"], "cart");

    let glob = node.dir.path().join("legacy/*.log");
    let statics = find(&items, &format!("static:{}", glob.display()));
    assert_eq!(statics["labels"]["service.name"], "legacy-app");
}

/// `sources sync` fills the registry; `sources list --output json` shows each
/// source as documented (`id`, `path`, `labels` of strings, `state`); a
/// container that stopped is `draining` after the next sync, and one that was
/// removed (its file with it) leaves.
#[tokio::test]
async fn sources_sync_and_list_follow_a_container_from_active_to_draining() {
    let tb = Testbed::locate().expect("test bench installed");
    let container = running_container(&tb, "cli-sources").await;
    let node = node(&tb.docker_host().expect("docker host"));
    let id = format!("docker:{}", container.id());

    let sync = steward(&node.config, &["sources", "sync"]);
    assert_eq!(sync.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&sync.stderr));
    assert!(String::from_utf8_lossy(&sync.stdout).contains("changes;"));
    let list = steward(&node.config, &["sources", "list", "--output", "json"]);
    assert_eq!(list.status.code(), Some(0));
    let items = json(&list);
    let source = find(&items, &id);
    assert_eq!(source["state"], "active");
    assert_eq!(source["path"], container.log_path().display().to_string());
    assert!(source["labels"].as_object().expect("labels object").values().all(Value::is_string));
    assert!(source["labels"].as_object().unwrap().keys().all(|k| !k.starts_with("__")));

    // Stopped, its file still there: it drains, it is not forgotten.
    let (docker, _) = connect(&tb).await.expect("engine");
    let stop = bollard::query_parameters::StopContainerOptions { t: Some(0), signal: None };
    docker.stop_container(container.id(), Some(stop)).await.expect("stop");
    assert_eq!(steward(&node.config, &["sources", "sync"]).status.code(), Some(0));
    let items = json(&steward(&node.config, &["sources", "list", "--output", "json"]));
    assert_eq!(find(&items, &id)["state"], "draining");

    // Removed, its file gone with it: nothing is left to drain.
    drop(container);
    assert_eq!(steward(&node.config, &["sources", "sync"]).status.code(), Some(0));
    let items = json(&steward(&node.config, &["sources", "list", "--output", "json"]));
    assert!(items.as_array().expect("array").iter().all(|item| item["id"] != id.as_str()));

    let table = steward(&node.config, &["sources", "list"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("STATE") && text.contains("legacy-app"), "{text}");
}

/// With no Docker Engine at the configured socket, discovery still reports
/// the other sources, names the failure, and exits 1.
#[tokio::test]
async fn an_absent_docker_engine_fails_only_its_own_discovery() {
    let node = node("unix:///nonexistent/docker.sock");
    let out = steward(&node.config, &["discover", "--once", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("docker discovery") && stderr.contains("/nonexistent/docker.sock"),
        "{stderr}"
    );
    let items = json(&out);
    assert!(items.as_array().expect("array").iter().any(|i| i["origin"] == "log_dir"));
}

/// A broken `steward.yaml` is a usage error: exit 2, naming the line and field.
#[test]
fn a_broken_config_exits_two_naming_line_and_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("steward.yaml");
    std::fs::write(&config, "registry:\n  relabel:\n    - action: keep\n      regex: '(' \n")
        .expect("write");
    let out = steward(&config, &["sources", "list"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 4") && stderr.contains("invalid regex"), "{stderr}");
}
