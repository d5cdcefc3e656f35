//! The registry's view of a log source: what the config generator reads.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use steward_discovery::{Labels, Origin, SourceId};

/// Whether a source is live or on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Discovery sees it: collect it.
    Active,
    /// It stopped (a container died, a file vanished from discovery). Keep
    /// collecting until its file has had no new bytes for the grace period,
    /// so its last lines are not lost; then it leaves the registry.
    Draining,
}

impl SourceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Active => "active",
            SourceState::Draining => "draining",
        }
    }
}

/// Bookkeeping of a draining source (a tombstone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drain {
    /// When the source stopped, in Unix milliseconds.
    pub since_ms: i64,
    /// The file's size when last looked at; `None` before the first look.
    pub last_size: Option<u64>,
    /// When the file last grew (or when draining began), in Unix milliseconds.
    pub last_growth_ms: i64,
}

/// A log source in the registry. Its JSON form is the documented interface of
/// `steward sources list --output json` and `steward config build --sources`:
/// at least `id`, `path`, `labels` (string → string) and `state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSource {
    pub id: SourceId,
    /// The log file to collect (for static sources, a glob).
    pub path: PathBuf,
    /// The final label set: sanitised, after the user's relabel rules, with no
    /// `__` keys. Each label becomes a resource attribute on the source's records.
    pub labels: Labels,
    pub state: SourceState,
    pub origin: Origin,
    /// When discovery first reported the source, in Unix milliseconds.
    pub first_seen_ms: i64,
    /// When the registry last changed the source, in Unix milliseconds.
    pub updated_ms: i64,
    /// Present exactly when `state` is `draining`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<Drain>,
}

/// One change to the registry, as planned by [`crate::plan`] and applied by a
/// [`crate::store::SourceStore`] in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Insert the source, or replace the one with the same id.
    Put(LogSource),
    /// Remove the source with this id, if present.
    Delete(SourceId),
}
