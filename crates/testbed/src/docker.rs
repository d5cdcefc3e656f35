//! Throwaway containers on the test bench's Docker Engine.
//!
//! The engine is shared (started once by `scripts/testbed.sh`); each test runs
//! its own containers from the imported `steward-test/busybox` image, with no
//! network (dockerd runs with `--bridge=none`), and removes them when done.

use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;

use crate::{Error, Result, Testbed};

/// The image `scripts/testbed.sh` imports from a busybox-static rootfs.
pub const BUSYBOX_IMAGE: &str = "steward-test/busybox:latest";

/// Timeout of one Docker API call, in seconds (bollard's unit).
const API_TIMEOUT_SECS: u64 = 30;

/// A connection to the test bench's engine, at an API version both ends speak
/// (Debian's dockerd 20.10 stops at API 1.41, older than bollard's default).
pub async fn connect(tb: &Testbed) -> Result<(Docker, String)> {
    let host = tb.docker_host()?;
    let docker_err = |source| Error::Docker { host: host.clone(), source };
    let docker = Docker::connect_with_unix(&host, API_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        .map_err(docker_err)?
        .negotiate_version()
        .await
        .map_err(docker_err)?;
    Ok((docker, host))
}

/// A container that is removed (with its log file) when the handle drops.
#[derive(Debug)]
pub struct Container {
    host: String,
    id: String,
    name: String,
    log_path: PathBuf,
}

impl Container {
    /// Runs `script` under busybox `sh -c` in a new container with `labels`,
    /// and returns once the container has started (its log file then exists).
    pub async fn run(
        docker: &Docker,
        host: &str,
        name: &str,
        labels: &[(&str, &str)],
        script: &str,
    ) -> Result<Self> {
        let docker_err = |source| Error::Docker { host: host.to_owned(), source };
        let body = ContainerCreateBody {
            image: Some(BUSYBOX_IMAGE.to_owned()),
            cmd: Some(vec!["sh".into(), "-c".into(), script.to_owned()]),
            labels: Some(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions { name: Some(name.to_owned()), ..Default::default() };
        let created = docker.create_container(Some(options), body).await.map_err(docker_err)?;
        // From here on the handle exists, so a failure below still removes the container.
        let mut container = Container {
            host: host.to_owned(),
            id: created.id,
            name: name.to_owned(),
            log_path: PathBuf::new(),
        };
        docker.start_container(&container.id, None).await.map_err(docker_err)?;
        let inspected = docker
            .inspect_container(&container.id, None::<InspectContainerOptions>)
            .await
            .map_err(docker_err)?;
        container.log_path =
            inspected.log_path.filter(|path| !path.is_empty()).map(PathBuf::from).ok_or_else(
                || Error::Unexpected {
                    what: format!("container {name}"),
                    detail: "inspect returned no LogPath: is the log driver json-file?".into(),
                },
            )?;
        Ok(container)
    }

    /// Waits for the container to exit and returns its exit code.
    pub async fn wait(&self, docker: &Docker, timeout: Duration) -> Result<i64> {
        let wait = async {
            let mut stream = docker.wait_container(&self.id, None::<WaitContainerOptions>);
            match stream.next().await {
                Some(Ok(response)) => Ok(response.status_code),
                // bollard reports a non-zero exit as an error carrying the code.
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                    Ok(code)
                }
                Some(Err(source)) => Err(Error::Docker { host: self.host.clone(), source }),
                None => Err(Error::Unexpected {
                    what: format!("waiting for container {}", self.name),
                    detail: "the engine closed the wait stream without a status".into(),
                }),
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| Error::Timeout {
            what: format!("container {} to exit", self.name),
            waited: timeout,
            last: "still running".into(),
        })?
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The json-file log that the engine writes the container's stdout to.
    pub fn log_path(&self) -> &std::path::Path {
        &self.log_path
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // Drop cannot await, and may run outside a runtime: the engine's CLI does it.
        let _ = std::process::Command::new("docker")
            .args(["rm", "--force", &self.id])
            .env("DOCKER_HOST", &self.host)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
