//! Docker discovery against the test bench's real Docker Engine (Debian's
//! dockerd), and against sockets that are absent or answer garbage.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, StopContainerOptions,
};
use steward_discovery::docker::{DockerDiscovery, DockerSettings};
use steward_discovery::{Collect, Discovery, Event, Origin, SourceId};
use steward_testbed::Testbed;
use steward_testbed::docker::{BUSYBOX_IMAGE, connect};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(20);

/// A running container, force-removed when dropped.
struct Running {
    docker: Docker,
    id: String,
}

impl Running {
    async fn start(docker: &Docker, name: &str, labels: &[(&str, &str)], driver: &str) -> Self {
        let body = ContainerCreateBody {
            image: Some(BUSYBOX_IMAGE.into()),
            cmd: Some(vec!["sleep".into(), "600".into()]),
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                log_config: Some(HostConfigLogConfig {
                    typ: Some(driver.into()),
                    config: Some(HashMap::new()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions { name: Some(name.into()), ..Default::default() };
        let id = docker.create_container(Some(options), body).await.expect("create").id;
        docker.start_container(&id, None).await.expect("start");
        Running { docker: docker.clone(), id }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let (docker, id) = (self.docker.clone(), self.id.clone());
        // Best effort from a sync context: the test's runtime is still alive.
        tokio::spawn(async move {
            let options = RemoveContainerOptions { force: true, ..Default::default() };
            let _ = docker.remove_container(&id, Some(options)).await;
        });
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), steward_testbed::free_port())
}

async fn engine() -> (Docker, DockerDiscovery) {
    let tb = Testbed::locate().expect("test bench installed");
    let (docker, host) = connect(&tb).await.expect("the shared engine answers");
    let discovery = DockerDiscovery::new(DockerSettings { host: Some(host), ..Default::default() });
    (docker, discovery)
}

/// A snapshot lists a running json-file container with its semantic-convention
/// labels, and lists a container whose log driver is `none` as not collectable,
/// with the reason.
#[tokio::test]
async fn snapshot_reports_running_containers_and_why_some_cannot_be_collected() {
    let (docker, discovery) = engine().await;
    let name = unique("disc-snap");
    let web =
        Running::start(&docker, &name, &[("com.docker.compose.service", "web")], "json-file").await;
    let silent = Running::start(&docker, &format!("{name}-none"), &[], "none").await;

    let sources = discovery.snapshot().await.expect("snapshot");
    let found = sources.iter().find(|s| s.id == SourceId::docker(&web.id)).expect("web is listed");
    assert_eq!(found.origin, Origin::Docker);
    assert_eq!(found.collect, Collect::Yes);
    assert!(found.path.ends_with(format!("{}-json.log", web.id)), "{:?}", found.path);
    assert!(found.path.exists(), "the log file exists: {:?}", found.path);
    assert_eq!(found.labels["container.name"], name);
    assert_eq!(found.labels["service.name"], "web");
    assert_eq!(found.labels["container.image.name"], "steward-test/busybox");

    let none = sources.iter().find(|s| s.id == SourceId::docker(&silent.id)).expect("listed too");
    assert!(
        matches!(&none.collect, Collect::No { reason } if reason.contains("`none`")),
        "{:?}",
        none.collect
    );
}

/// Watching sends a resync first, then an upsert when a container starts and
/// a remove when it stops, each within the deadline.
#[tokio::test]
async fn watch_reports_start_and_stop_as_they_happen() {
    let (docker, discovery) = engine().await;
    let (tx, mut rx) = mpsc::channel(256);
    let watcher = tokio::spawn(discovery.watch(tx));
    let first = tokio::time::timeout(DEADLINE, rx.recv()).await.expect("resync in time");
    assert!(matches!(first, Some(Event::Resync { origin: Origin::Docker, .. })), "{first:?}");

    let started = Running::start(&docker, &unique("disc-watch"), &[], "json-file").await;
    let id = SourceId::docker(&started.id);
    next_matching(&mut rx, &id, |e, id| matches!(e, Event::Upsert(o) if &o.id == id)).await;
    let options = StopContainerOptions { t: Some(0), signal: None };
    docker.stop_container(&started.id, Some(options)).await.expect("stop");
    next_matching(&mut rx, &id, |e, id| matches!(e, Event::Remove { id: gone } if gone == id))
        .await;

    drop(rx);
    tokio::time::timeout(DEADLINE, watcher)
        .await
        .expect("watch returns once nobody listens")
        .expect("no panic");
}

/// The next event that `want` accepts, within the deadline.
async fn next_matching(
    rx: &mut mpsc::Receiver<Event>,
    id: &SourceId,
    want: fn(&Event, &SourceId) -> bool,
) -> Event {
    tokio::time::timeout(DEADLINE, async {
        while let Some(event) = rx.recv().await {
            if want(&event, id) {
                return event;
            }
        }
        panic!("the watcher stopped");
    })
    .await
    .expect("the event arrives in time")
}

/// An absent socket is an error naming the host, not a panic or a hang; the
/// watcher keeps retrying while someone listens and returns when nobody does.
#[tokio::test]
async fn an_absent_socket_is_a_clear_error_and_the_watcher_keeps_trying() {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = format!("unix://{}", dir.path().join("absent.sock").display());
    let discovery =
        DockerDiscovery::new(DockerSettings { host: Some(host.clone()), ..Default::default() });
    let err = tokio::time::timeout(DEADLINE, discovery.snapshot())
        .await
        .expect("fails fast")
        .expect_err("no engine there");
    assert!(err.to_string().contains(&host), "{err}");

    let (tx, rx) = mpsc::channel(8);
    let mut watcher = tokio::spawn(discovery.watch(tx));
    // While the receiver lives the watcher must not give up: a bounded wait
    // for it to finish times out.
    let still_trying = tokio::time::timeout(Duration::from_millis(500), &mut watcher).await;
    assert!(still_trying.is_err(), "the watcher returned while someone listened");
    drop(rx);
    tokio::time::timeout(DEADLINE, watcher)
        .await
        .expect("returns once nobody listens")
        .expect("no panic");
}

/// A socket that answers garbage gives an error within the API timeout.
#[tokio::test]
async fn a_socket_that_answers_garbage_is_an_error_not_a_hang() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("garbage.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let _ = conn.write_all(b"\x00\xffthis is not HTTP\r\n\r\n").await;
            });
        }
    });
    let settings = DockerSettings {
        host: Some(format!("unix://{}", path.display())),
        api_timeout: Duration::from_secs(3),
        ..Default::default()
    };
    let result = tokio::time::timeout(DEADLINE, DockerDiscovery::new(settings).snapshot()).await;
    assert!(result.expect("does not hang").is_err(), "garbage must not parse as containers");
    server.abort();
}
