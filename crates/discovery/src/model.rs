//! What discovery reports: observed log sources and the events that change them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where a source was discovered. A resync replaces one origin's sources only,
/// so a Docker reconnect never touches what the log-directory watcher found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Docker,
    LogDir,
    Static,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Docker => "docker",
            Origin::LogDir => "log_dir",
            Origin::Static => "static",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A source's stable identity: the same container or file always gets the
/// same id, across restarts of Steward and of the engine.
/// Shape: `docker:<container id>`, `file:<path>`, `static:<glob>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceId(String);

impl SourceId {
    pub fn docker(container_id: &str) -> Self {
        SourceId(format!("docker:{container_id}"))
    }

    pub fn file(path: &std::path::Path) -> Self {
        SourceId(format!("file:{}", path.display()))
    }

    pub fn static_glob(glob: &str) -> Self {
        SourceId(format!("static:{glob}"))
    }

    /// An id read back from a store or a file; not checked.
    pub fn from_raw(raw: impl Into<String>) -> Self {
        SourceId(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Labels as discovery reports them, before any user rule runs.
///
/// Two kinds of key live here, following Prometheus service discovery:
/// OpenTelemetry resource attributes (`container.id`, `k8s.pod.name`, …),
/// which become the source's labels, and `__meta_*` keys, which only relabel
/// rules see and which are dropped afterwards.
pub type Labels = BTreeMap<String, String>;

/// Whether Steward can and should collect a source, and if not, why.
/// In JSON: `"collectable": true`, or `"collectable": false, "reason": "…"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "CollectWire", from = "CollectWire")]
pub enum Collect {
    Yes,
    No { reason: String },
}

#[derive(Serialize, Deserialize)]
struct CollectWire {
    collectable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl From<Collect> for CollectWire {
    fn from(collect: Collect) -> Self {
        match collect {
            Collect::Yes => CollectWire { collectable: true, reason: None },
            Collect::No { reason } => CollectWire { collectable: false, reason: Some(reason) },
        }
    }
}

impl From<CollectWire> for Collect {
    fn from(wire: CollectWire) -> Self {
        match wire {
            CollectWire { collectable: true, .. } => Collect::Yes,
            CollectWire { collectable: false, reason } => {
                Collect::No { reason: reason.unwrap_or_else(|| "no reason given".into()) }
            }
        }
    }
}

impl Collect {
    pub fn is_yes(&self) -> bool {
        matches!(self, Collect::Yes)
    }
}

/// What discovery observed about one log source at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub id: SourceId,
    pub origin: Origin,
    /// The log file, or for a static source the glob the user wrote.
    pub path: PathBuf,
    pub labels: Labels,
    #[serde(flatten)]
    pub collect: Collect,
}

/// A change that discovery reports. Events are idempotent: applying the same
/// event twice leaves the registry as applying it once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A source appeared or changed (labels, path, collectability).
    Upsert(Observed),
    /// A source stopped (its container died, its file went away).
    Remove { id: SourceId },
    /// Everything `origin` sees now; whatever of `origin` is not in `sources`
    /// has stopped. Sent first, and again after any interruption.
    Resync { origin: Origin, sources: Vec<Observed> },
}
