//! DiscoveryService: finds every log source on a node and reports changes.
//!
//! Three kinds of source, each behind the [`Discovery`] trait:
//! - [`docker::DockerDiscovery`] (seed: `watch_docker_events`): the Docker
//!   Engine's container list, then its event stream; a log file per container
//!   from `inspect` (`LogPath`, log driver);
//! - [`logdir::LogDirDiscovery`]: log directories watched with inotify, in the
//!   kubelet layouts (`/var/log/pods`, `/var/log/containers`) and podman/CRI-O
//!   `k8s-file` logs, with the metadata their paths carry;
//! - [`static_files::StaticDiscovery`]: path globs with labels from `steward.yaml`.
//!
//! Every source reports [`Event`]s: a full [`Event::Resync`] first and after
//! any interruption (a dropped stream, a restarted daemon), then
//! [`Event::Upsert`] and [`Event::Remove`] as things change. Discovery only
//! observes: it knows nothing of the registry, the store or the collector, and
//! it never gives up on a source because another one failed.
//!
//! Everything discovery reports comes from containers and users and is
//! untrusted; the registry sanitises it (`steward_registry::labels`).

pub mod docker;
pub mod logdir;
mod model;
pub mod static_files;

pub use model::{Collect, Event, Labels, Observed, Origin, SourceId};

use std::future::Future;
use std::path::PathBuf;

use tokio::sync::mpsc;

/// A source of log sources.
pub trait Discovery: Send + 'static {
    fn origin(&self) -> Origin;

    /// Everything this source sees right now (seed: `detect_container_log_paths`).
    fn snapshot(&self) -> impl Future<Output = Result<Vec<Observed>, Error>> + Send;

    /// Reports changes until `events` closes: a [`Event::Resync`] first, then
    /// upserts and removes, and a fresh resync after every interruption.
    /// Failures are logged and retried with bounded backoff; this never returns
    /// while `events` is open.
    fn watch(self, events: mpsc::Sender<Event>) -> impl Future<Output = ()> + Send;
}

/// Durations in `steward.yaml` are plain numbers of seconds (`api_timeout: 30`).
pub(crate) fn positive_secs<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::time::Duration, D::Error> {
    let secs = <f64 as serde::Deserialize>::deserialize(d)?;
    if secs.is_finite() && secs > 0.0 {
        std::time::Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    } else {
        Err(serde::de::Error::custom("must be a positive number of seconds"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Docker Engine at {host}")]
    Docker {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("watching {path}")]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("invalid static source glob {glob:?}: {reason}")]
    InvalidGlob { glob: String, reason: String },
}
