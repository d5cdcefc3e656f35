//! Discovery → registry with the real Docker Engine: after every step the
//! registry's active sources equal what the engine reports as running.
//!
//! Each test runs its own dockerd (`DockerEngine`), so restarting it disturbs
//! no other test, and a real SQLite store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, RenameContainerOptions, StopContainerOptions,
};
use futures_util::future::join_all;
use steward_discovery::docker::{DockerDiscovery, DockerSettings};
use steward_discovery::{Discovery, Origin, SourceId};
use steward_registry::store::SqliteStore;
use steward_registry::{Change, LogSourceRegistry, Settings, SourceState};
use steward_testbed::docker::BUSYBOX_IMAGE;
use steward_testbed::parts::DockerEngine;
use steward_testbed::{Testbed, eventually};
use tokio::sync::mpsc;

const CONVERGE: Duration = Duration::from_secs(60);

struct Rig {
    engine: DockerEngine,
    docker: Docker,
    registry: Arc<LogSourceRegistry<SqliteStore>>,
    _dir: tempfile::TempDir,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn client(host: &str) -> Docker {
    Docker::connect_with_unix(host, 30, bollard::API_DEFAULT_VERSION)
        .expect("client")
        .negotiate_version()
        .await
        .expect("the private engine answers")
}

/// A private engine, a SQLite registry, and discovery feeding it.
async fn rig(settings: Settings) -> Rig {
    let tb = Testbed::locate().expect("test bench installed");
    let engine = DockerEngine::start(&tb).await.expect("private dockerd starts");
    let docker = client(&engine.host()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("steward.db")).await.expect("sqlite store");
    let registry = Arc::new(LogSourceRegistry::open(store, settings).await.expect("registry"));
    let discovery =
        DockerDiscovery::new(DockerSettings { host: Some(engine.host()), ..Default::default() });
    let (tx, rx) = mpsc::channel(4096);
    let watch = tokio::spawn(discovery.watch(tx));
    let run = tokio::spawn({
        let registry = Arc::clone(&registry);
        async move { registry.run(rx).await }
    });
    Rig { engine, docker, registry, _dir: dir, tasks: vec![watch, run] }
}

/// Starts a container; `service` ones restart with the daemon unless stopped.
async fn start_with(
    docker: &Docker,
    name: &str,
    script: &str,
    labels: &[(&str, &str)],
    service: bool,
) -> String {
    let body = ContainerCreateBody {
        image: Some(BUSYBOX_IMAGE.into()),
        cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
        labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            // Like a service on a host: back after a daemon restart, unless
            // someone stopped it on purpose.
            restart_policy: service.then_some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptions { name: Some(name.into()), ..Default::default() };
    let id = docker.create_container(Some(options), body).await.expect("create").id;
    docker.start_container(&id, None).await.expect("start");
    id
}

async fn start(docker: &Docker, name: &str, script: &str, labels: &[(&str, &str)]) -> String {
    start_with(docker, name, script, labels, true).await
}

/// Running containers as the engine reports them: id → name.
async fn engine_view(docker: &Docker) -> BTreeMap<String, String> {
    let options = ListContainersOptions { all: false, ..Default::default() };
    docker
        .list_containers(Some(options))
        .await
        .expect("list")
        .into_iter()
        .filter_map(|c| {
            let name = c.names?.first()?.trim_start_matches('/').to_owned();
            Some((c.id?, name))
        })
        .collect()
}

/// Active Docker sources as the registry holds them: id → name.
async fn registry_view(registry: &LogSourceRegistry<SqliteStore>) -> BTreeMap<String, String> {
    registry
        .list_sources()
        .await
        .into_iter()
        .filter(|s| s.origin == Origin::Docker && s.state == SourceState::Active)
        .map(|s| (s.labels["container.id"].clone(), s.labels["container.name"].clone()))
        .collect()
}

/// Waits until the registry equals the engine and returns how many run.
async fn converge(rig: &Rig, step: &str) -> usize {
    eventually(&format!("registry == engine after {step}"), CONVERGE, || async {
        let (engine, registry) =
            (engine_view(&rig.docker).await, registry_view(&rig.registry).await);
        if engine == registry {
            Ok(engine.len())
        } else {
            let missing: Vec<_> =
                engine.iter().filter(|(k, v)| registry.get(*k) != Some(*v)).collect();
            let extra: Vec<_> =
                registry.iter().filter(|(k, v)| engine.get(*k) != Some(*v)).collect();
            Err(format!(
                "registry lacks {} {missing:.80?}; has {} extra {extra:.80?}",
                missing.len(),
                extra.len()
            ))
        }
    })
    .await
    .expect("registry converges")
}

/// 50 containers start, 25 stop, 5 are renamed, the daemon restarts: after
/// each step the registry's active sources are exactly the running containers,
/// with their current names; the stopped ones are draining, not forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_follows_the_engine_through_starts_stops_renames_and_a_daemon_restart() {
    let mut rig = rig(Settings { drain_grace_secs: 3600, ..Settings::default() }).await;
    let names: Vec<String> = (0..50).map(|i| format!("svc-{i:02}")).collect();
    let ids: Vec<String> =
        join_all(names.iter().map(|name| start(&rig.docker, name, "sleep 3600", &[]))).await;
    assert_eq!(converge(&rig, "50 starts").await, 50);

    let stop = StopContainerOptions { t: Some(0), signal: None };
    join_all(ids[..25].iter().map(|id| rig.docker.stop_container(id, Some(stop.clone()))))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("stops");
    assert_eq!(converge(&rig, "25 stops").await, 25);
    let sources = rig.registry.list_sources().await;
    let draining = sources.iter().filter(|s| s.state == SourceState::Draining).count();
    assert_eq!(draining, 25, "stopped containers drain; their files still exist");

    for (n, id) in ids[25..30].iter().enumerate() {
        let options = RenameContainerOptions { name: format!("renamed-{n}") };
        rig.docker.rename_container(id, options).await.expect("rename");
    }
    assert_eq!(converge(&rig, "5 renames").await, 25);
    let renamed = registry_view(&rig.registry).await;
    assert_eq!(renamed.values().filter(|name| name.starts_with("renamed-")).count(), 5);

    rig.engine.restart().await.expect("dockerd restarts");
    assert_eq!(converge(&rig, "a daemon restart").await, 25, "unless-stopped ones come back");
}

/// A container that lives 200 ms is registered, drains once it exits, and
/// leaves the registry when its file has been quiet for the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_lives_200_ms_is_registered_drained_and_removed() {
    let rig =
        rig(Settings { drain_grace_secs: 1, drain_check_ms: 100, ..Settings::default() }).await;
    let mut changes = rig.registry.subscribe();
    // A long-lived container first: once it is registered, discovery is
    // following the event stream, so what follows is seen live.
    let sentinel = SourceId::docker(&start(&rig.docker, "sentinel", "sleep 3600", &[]).await);
    tokio::time::timeout(CONVERGE, async {
        while !matches!(changes.recv().await, Ok(Change::Put(s)) if s.id == sentinel) {}
    })
    .await
    .expect("the sentinel is registered");

    let id = start_with(&rig.docker, "blink", "echo hello; sleep 0.2", &[], false).await;
    let id = SourceId::docker(&id);
    let mut seen = Vec::new();
    tokio::time::timeout(CONVERGE, async {
        loop {
            let change = changes.recv().await.expect("the registry keeps publishing");
            match &change {
                Change::Put(s) if s.id == id => seen.push(s.state.as_str()),
                Change::Delete(gone) if *gone == id => {
                    seen.push("removed");
                    return;
                }
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no removal in time; saw {seen:?}"));
    seen.dedup();
    assert_eq!(seen, ["active", "draining", "removed"]);
    assert!(rig.registry.list_sources().await.iter().all(|s| s.id != id));
}

/// Hostile labels (YAML metacharacters, newlines, `${env:…}`, a 1 MB value)
/// neither crash nor block discovery: the source is registered, the values
/// are kept verbatim up to the length limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_container_labels_are_sanitised_not_fatal() {
    let rig = rig(Settings::default()).await;
    let huge = "x".repeat(1 << 20);
    let hostile = "${env:AWS_SECRET_ACCESS_KEY}\n- evil: [yes, on]\n'\"#&*!|>%@`";
    let id = start(
        &rig.docker,
        "hostile",
        "sleep 3600",
        &[("steward.service", hostile), ("huge", &huge), ("key with spaces: {}", "v")],
    )
    .await;
    let plain = start(&rig.docker, "plain", "sleep 3600", &[]).await;
    assert_eq!(converge(&rig, "hostile labels").await, 2);
    let sources = rig.registry.list_sources().await;
    let source = sources.iter().find(|s| s.id == SourceId::docker(&id)).expect("registered");
    assert_eq!(source.labels["service.name"], hostile);
    assert!(sources.iter().any(|s| s.id == SourceId::docker(&plain)));
    // Meta labels (where the huge value went) never reach the final set.
    assert!(source.labels.keys().all(|k| !k.starts_with("__")));
    assert!(source.labels.values().all(|v| v.len() <= steward_registry::labels::MAX_VALUE_BYTES));
}
