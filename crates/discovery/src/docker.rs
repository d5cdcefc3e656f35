//! Docker discovery (seed: `DiscoveryService.watch_docker_events`).
//!
//! The fast path is the engine's event stream: a container's `start` is
//! reported within milliseconds, so even a container that lives 200 ms is seen
//! (peers that poll every minute miss it). The list of running containers is
//! read first and after every interruption (a dropped stream, a restarted
//! daemon) as a [`Event::Resync`], and the stream is opened `since` just before
//! that list was read, so nothing that happens in between is missed.
//!
//! Reporting is level-triggered: whatever the event (`start`, `die`, `rename`,
//! `update`, `destroy`), the container is inspected and reported as it is now:
//! running → [`Event::Upsert`], stopped or gone → [`Event::Remove`]. Replayed
//! or reordered events therefore cannot resurrect a dead container.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{EventsOptions, InspectContainerOptions, ListContainersOptions};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::{Collect, Discovery, Error, Event, Labels, Observed, Origin, SourceId};

/// The container label that opts a container out of collection.
pub const COLLECT_LABEL: &str = "steward.collect";

/// Where Docker discovery looks and how it names services.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DockerSettings {
    /// Whether to discover Docker containers at all.
    pub enabled: bool,
    /// The engine's address: `unix:///path/docker.sock` or `tcp://host:port`.
    /// Unset: `$DOCKER_HOST`, else `unix:///var/run/docker.sock`.
    pub host: Option<String>,
    /// Container labels that name the service, first present wins; without
    /// any, `service.name` is the image's name.
    pub service_name_labels: Vec<String>,
    /// Timeout of one Docker API call.
    #[serde(deserialize_with = "crate::positive_secs")]
    pub api_timeout: Duration,
}

impl Default for DockerSettings {
    fn default() -> Self {
        DockerSettings {
            enabled: true,
            host: None,
            service_name_labels: vec![
                "steward.service".into(),
                "com.docker.compose.service".into(),
            ],
            api_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DockerDiscovery {
    settings: DockerSettings,
    host: String,
}

/// Bounds of the reconnect backoff: fast enough to catch a restarted daemon
/// quickly, slow enough not to spin on one that is gone.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl DockerDiscovery {
    /// Does not talk to the engine: it may not be up yet, and `watch` keeps
    /// trying until it is.
    pub fn new(settings: DockerSettings) -> Self {
        let host = settings
            .host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        DockerDiscovery { settings, host }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    fn docker_err(&self) -> impl Fn(bollard::errors::Error) -> Error + '_ {
        |source| Error::Docker { host: self.host.clone(), source }
    }

    /// A client at an API version the engine speaks (Debian's dockerd 20.10
    /// stops at 1.41, older than bollard's default).
    async fn client(&self) -> Result<Docker, Error> {
        let timeout = self.settings.api_timeout.as_secs().max(1);
        let docker = if self.host.starts_with("unix://") || self.host.starts_with('/') {
            Docker::connect_with_unix(&self.host, timeout, bollard::API_DEFAULT_VERSION)
        } else {
            Docker::connect_with_http(&self.host, timeout, bollard::API_DEFAULT_VERSION)
        }
        .map_err(self.docker_err())?;
        tokio::time::timeout(self.settings.api_timeout, docker.negotiate_version())
            .await
            .map_err(|_| Error::Docker {
                host: self.host.clone(),
                source: bollard::errors::Error::RequestTimeoutError,
            })?
            .map_err(self.docker_err())
    }

    async fn snapshot_with(&self, docker: &Docker) -> Result<Vec<Observed>, Error> {
        let options = ListContainersOptions { all: false, ..Default::default() };
        let containers = docker.list_containers(Some(options)).await.map_err(self.docker_err())?;
        let mut sources = Vec::with_capacity(containers.len());
        for summary in containers {
            let Some(id) = summary.id else { continue };
            // A container can vanish between the list and its inspect; that is
            // not an error, it is simply not running any more.
            if let Some(Current::Running(observed)) = self.current(docker, &id).await? {
                sources.push(observed);
            }
        }
        sources.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(sources)
    }

    /// The container as it is now, or `None` if the engine no longer knows it.
    async fn current(&self, docker: &Docker, id: &str) -> Result<Option<Current>, Error> {
        match docker.inspect_container(id, None::<InspectContainerOptions>).await {
            Ok(inspect) => {
                let running = inspect.state.as_ref().and_then(|s| s.running).unwrap_or(false);
                Ok(match observe_container(&inspect, &self.settings) {
                    Some(observed) if running => Some(Current::Running(observed)),
                    observed => Some(Current::Stopped(observed)),
                })
            }
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                Ok(None)
            }
            Err(source) => Err(Error::Docker { host: self.host.clone(), source }),
        }
    }

    /// One connection's worth of watching: resync, then follow the stream.
    /// `Ok` means the receiver went away; `Err` means reconnect.
    async fn watch_once(
        &self,
        events: &mpsc::Sender<Event>,
        backoff: &mut Duration,
    ) -> Result<(), Error> {
        let docker = self.client().await?;
        // The stream replays from just before the list was read; the overlap
        // is harmless because reporting is idempotent.
        let since = unix_seconds(SystemTime::now() - Duration::from_secs(1));
        let sources = self.snapshot_with(&docker).await?;
        tracing::info!(host = %self.host, containers = sources.len(), "docker discovery resync");
        if events.send(Event::Resync { origin: Origin::Docker, sources }).await.is_err() {
            return Ok(());
        }
        *backoff = BACKOFF_MIN;

        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            (
                "event".to_owned(),
                ["start", "die", "destroy", "rename", "update"].map(String::from).to_vec(),
            ),
        ]);
        let options = EventsOptions { since: Some(since), until: None, filters: Some(filters) };
        let mut stream = docker.events(Some(options));
        loop {
            let message = tokio::select! {
                () = events.closed() => return Ok(()),
                message = stream.next() => message,
            };
            let message = match message {
                Some(Ok(message)) => message,
                Some(Err(source)) => return Err(Error::Docker { host: self.host.clone(), source }),
                None => {
                    return Err(Error::Docker {
                        host: self.host.clone(),
                        source: bollard::errors::Error::IOError {
                            err: std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "the event stream ended",
                            ),
                        },
                    });
                }
            };
            let Some(id) = message.actor.and_then(|actor| actor.id) else { continue };
            let action = message.action.unwrap_or_default();
            for event in self.events_for(&docker, &id, &action).await? {
                if events.send(event).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

enum Current {
    Running(Observed),
    /// Known to the engine but not running; `None` if it has no usable id.
    Stopped(Option<Observed>),
}

impl DockerDiscovery {
    /// What one engine event means for the registry, judged by the
    /// container's state now. A `start` whose container has already exited
    /// (it lived a few milliseconds, or the event is replayed after a
    /// reconnect) is still reported, then removed at once: it wrote a log
    /// that must be drained.
    async fn events_for(
        &self,
        docker: &Docker,
        id: &str,
        action: &str,
    ) -> Result<Vec<Event>, Error> {
        let remove = || Event::Remove { id: SourceId::docker(id) };
        Ok(match (action, self.current(docker, id).await?) {
            (_, Some(Current::Running(observed))) => vec![Event::Upsert(observed)],
            ("start", Some(Current::Stopped(Some(observed)))) if observed.collect.is_yes() => {
                vec![Event::Upsert(observed), remove()]
            }
            _ => vec![remove()],
        })
    }
}

impl Discovery for DockerDiscovery {
    fn origin(&self) -> Origin {
        Origin::Docker
    }

    async fn snapshot(&self) -> Result<Vec<Observed>, Error> {
        let docker = self.client().await?;
        self.snapshot_with(&docker).await
    }

    async fn watch(self, events: mpsc::Sender<Event>) {
        let mut backoff = BACKOFF_MIN;
        loop {
            match self.watch_once(&events, &mut backoff).await {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(
                        error = %err, cause = ?std::error::Error::source(&err),
                        retry_in = ?backoff, "docker discovery interrupted; will resync"
                    );
                    tokio::select! {
                        () = events.closed() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// `1700000000.123456789`, the form the engine's `since` accepts.
fn unix_seconds(time: SystemTime) -> String {
    let d = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// What a container looks like as a log source, from its `inspect`. Pure.
///
/// `None` only for a response without an id. A container whose log driver
/// writes no file Steward can read, or that opted out, is reported with
/// [`Collect::No`] and the reason.
pub fn observe_container(
    inspect: &ContainerInspectResponse,
    settings: &DockerSettings,
) -> Option<Observed> {
    let id = inspect.id.as_deref().filter(|id| !id.is_empty())?;
    let name = inspect.name.as_deref().unwrap_or_default().trim_start_matches('/');
    let config = inspect.config.as_ref();
    let image = config.and_then(|c| c.image.as_deref()).unwrap_or_default();
    let container_labels = config.and_then(|c| c.labels.as_ref());
    let (image_name, image_tag) = split_image(image);

    let mut labels = Labels::new();
    labels.insert("container.id".into(), id.into());
    labels.insert("container.name".into(), name.into());
    labels.insert("container.runtime".into(), "docker".into());
    if !image_name.is_empty() {
        labels.insert("container.image.name".into(), image_name.into());
    }
    if let Some(tag) = image_tag {
        labels.insert("container.image.tags".into(), tag.into());
    }
    let service = settings
        .service_name_labels
        .iter()
        .find_map(|key| container_labels.and_then(|l| l.get(key)).filter(|v| !v.is_empty()))
        .map(String::as_str)
        .or_else(|| image_name.rsplit('/').next().filter(|s| !s.is_empty()))
        .unwrap_or(name);
    labels.insert("service.name".into(), service.into());

    // Meta labels, for relabel rules only (Prometheus' docker_sd naming).
    labels.insert("__meta_docker_container_id".into(), id.into());
    labels.insert("__meta_docker_container_name".into(), name.into());
    labels.insert("__meta_docker_container_image".into(), image.into());
    for (key, value) in container_labels.into_iter().flatten() {
        labels
            .insert(format!("__meta_docker_container_label_{}", sanitize_name(key)), value.clone());
    }

    let driver = inspect
        .host_config
        .as_ref()
        .and_then(|h| h.log_config.as_ref())
        .and_then(|l| l.typ.as_deref())
        .unwrap_or("json-file");
    let log_path = inspect.log_path.as_deref().unwrap_or_default();
    let opted_out = container_labels
        .and_then(|l| l.get(COLLECT_LABEL))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
    let collect = if opted_out {
        Collect::No { reason: format!("container label {COLLECT_LABEL}=false") }
    } else if driver != "json-file" {
        Collect::No {
            reason: format!(
                "log driver `{driver}` writes no file Steward can read (use json-file)"
            ),
        }
    } else if log_path.is_empty() {
        Collect::No { reason: "the engine reports no LogPath".into() }
    } else {
        Collect::Yes
    };

    Some(Observed {
        id: SourceId::docker(id),
        origin: Origin::Docker,
        path: PathBuf::from(log_path),
        labels,
        collect,
    })
}

/// `registry:5000/team/app:1.2@sha256:…` → (`registry:5000/team/app`, `Some("1.2")`).
fn split_image(image: &str) -> (&str, Option<&str>) {
    let without_digest = image.split('@').next().unwrap_or(image);
    match without_digest.rsplit_once(':') {
        // A colon after the last slash is a tag; before it, a registry port.
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (without_digest, None),
    }
}

/// Prometheus label-name rules: anything but `[a-zA-Z0-9_]` becomes `_`.
fn sanitize_name(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use bollard::models::{ContainerConfig, ContainerState, HostConfig, HostConfigLogConfig};

    use super::*;

    fn inspect(labels: &[(&str, &str)], driver: &str, image: &str) -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some("abc123".into()),
            name: Some("/web-1".into()),
            log_path: Some("/var/lib/docker/containers/abc123/abc123-json.log".into()),
            config: Some(ContainerConfig {
                image: Some(image.into()),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                log_config: Some(HostConfigLogConfig { typ: Some(driver.into()), config: None }),
                ..Default::default()
            }),
            state: Some(ContainerState { running: Some(true), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn a_json_file_container_yields_semconv_and_meta_labels() {
        let observed = observe_container(
            &inspect(&[("app.tier", "front")], "json-file", "registry:5000/team/web:1.2"),
            &DockerSettings::default(),
        )
        .expect("an id");
        assert_eq!(observed.id.as_str(), "docker:abc123");
        assert_eq!(observed.collect, Collect::Yes);
        assert_eq!(
            observed.path,
            PathBuf::from("/var/lib/docker/containers/abc123/abc123-json.log")
        );
        let l = &observed.labels;
        assert_eq!(l["container.id"], "abc123");
        assert_eq!(l["container.name"], "web-1");
        assert_eq!(l["container.image.name"], "registry:5000/team/web");
        assert_eq!(l["container.image.tags"], "1.2");
        assert_eq!(l["service.name"], "web", "image name's last segment without a label");
        assert_eq!(l["__meta_docker_container_label_app_tier"], "front");
    }

    #[test]
    fn the_service_label_wins_over_the_image_name() {
        let observed = observe_container(
            &inspect(&[("com.docker.compose.service", "checkout")], "json-file", "shop"),
            &DockerSettings::default(),
        )
        .expect("an id");
        assert_eq!(observed.labels["service.name"], "checkout");
        assert!(!observed.labels.contains_key("container.image.tags"));
    }

    #[test]
    fn opt_out_and_fileless_drivers_are_not_collectable_with_a_reason() {
        let settings = DockerSettings::default();
        let opted_out = observe_container(
            &inspect(&[("steward.collect", "False")], "json-file", "x"),
            &settings,
        )
        .expect("an id");
        assert_eq!(
            opted_out.collect,
            Collect::No { reason: "container label steward.collect=false".into() }
        );
        let journald = observe_container(&inspect(&[], "journald", "x"), &settings).expect("an id");
        assert!(
            matches!(&journald.collect, Collect::No { reason } if reason.contains("journald")),
            "{:?}",
            journald.collect
        );
    }

    #[test]
    fn image_references_split_into_name_and_tag() {
        assert_eq!(split_image("busybox"), ("busybox", None));
        assert_eq!(split_image("busybox:1.36"), ("busybox", Some("1.36")));
        assert_eq!(split_image("localhost:5000/app"), ("localhost:5000/app", None));
        assert_eq!(split_image("a/b:c@sha256:00"), ("a/b", Some("c")));
    }
}
