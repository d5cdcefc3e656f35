//! `LogSourceRegistry`: the planner's decisions, made durable.
//!
//! The registry keeps the current sources in memory (the planner's input) and
//! writes every change to the store before it updates memory, so what it
//! reports has always been persisted. One task owns it at a time: events are
//! applied one after the other, never concurrently.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use steward_discovery::{Event, SourceId};
use tokio::sync::{Mutex, broadcast, mpsc};

use crate::labels::{RelabelRule, RuleError, validate_rules};
use crate::model::{Change, LogSource, SourceState};
use crate::plan::{self, Sources};
use crate::store::{SourceStore, StoreError};

/// The registry's part of `steward.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// How long a stopped source's file must stay unchanged before the source
    /// leaves the registry, in seconds.
    pub drain_grace_secs: u64,
    /// How often draining sources' files are looked at, in milliseconds.
    pub drain_check_ms: u64,
    /// Relabel rules, Prometheus style, applied to every source.
    pub relabel: Vec<RelabelRule>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { drain_grace_secs: 30, drain_check_ms: 1_000, relabel: Vec::new() }
    }
}

impl Settings {
    pub fn drain_grace(&self) -> Duration {
        Duration::from_secs(self.drain_grace_secs)
    }

    pub fn validate(&self) -> Result<(), RuleError> {
        validate_rules(&self.relabel)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry store")]
    Store(#[from] StoreError),
    #[error("registry settings")]
    Settings(#[from] RuleError),
}

/// How many changes a slow subscriber may fall behind before it misses some.
const CHANGE_BUFFER: usize = 4096;

pub struct LogSourceRegistry<S> {
    store: S,
    settings: Settings,
    sources: Mutex<Sources>,
    changes: broadcast::Sender<Change>,
}

impl<S: SourceStore> LogSourceRegistry<S> {
    /// Loads what the store remembers. Sources of a previous run keep their
    /// state; the first resync of each discovery settles what changed meanwhile.
    pub async fn open(store: S, settings: Settings) -> Result<Self, RegistryError> {
        settings.validate()?;
        let sources = store.list().await?.into_iter().map(|s| (s.id.clone(), s)).collect();
        let (changes, _) = broadcast::channel(CHANGE_BUFFER);
        Ok(LogSourceRegistry { store, settings, sources: Mutex::new(sources), changes })
    }

    /// Applies one discovery event (seed: `register_log_target` for upserts,
    /// `update_source_labels` when an upsert brings new labels) and returns
    /// what changed.
    pub async fn apply(&self, event: &Event) -> Result<Vec<Change>, RegistryError> {
        let mut sources = self.sources.lock().await;
        let plan = plan::plan_event(&sources, event, &self.settings.relabel, now_ms());
        for (id, note) in &plan.notes {
            tracing::warn!(source = %id, "{note}");
        }
        self.commit(&mut sources, plan.changes).await
    }

    /// Looks at every draining source's file and retires those that are done.
    pub async fn drain_tick(&self) -> Result<Vec<Change>, RegistryError> {
        let mut sources = self.sources.lock().await;
        let sizes: BTreeMap<SourceId, Option<u64>> = sources
            .values()
            .filter(|s| s.state == SourceState::Draining)
            .map(|s| {
                let last = s.drain.and_then(|d| d.last_size);
                let size = drained_size(std::fs::metadata(&s.path).map(|m| m.len()), last);
                (s.id.clone(), size)
            })
            .collect();
        if sizes.is_empty() {
            return Ok(Vec::new());
        }
        let changes = plan::plan_drain(&sources, &sizes, now_ms(), self.settings.drain_grace());
        self.commit(&mut sources, changes).await
    }

    async fn commit(
        &self,
        sources: &mut Sources,
        changes: Vec<Change>,
    ) -> Result<Vec<Change>, RegistryError> {
        if !changes.is_empty() {
            self.store.apply(&changes).await?;
            plan::apply(sources, &changes);
            for change in &changes {
                match change {
                    Change::Put(s) => {
                        tracing::debug!(source = %s.id, state = s.state.as_str(), "registered")
                    }
                    Change::Delete(id) => tracing::info!(source = %id, "drained; removed"),
                }
                // Nobody listening is fine; a lagging listener learns it lagged.
                let _ = self.changes.send(change.clone());
            }
        }
        Ok(changes)
    }

    /// Every change the registry commits from now on, after it is durable: what
    /// the reconcile loop waits on to rebuild the collector config.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Every source, ordered by id (seed: `list_sources`).
    pub async fn list_sources(&self) -> Vec<LogSource> {
        self.sources.lock().await.values().cloned().collect()
    }

    /// How many sources are active and how many draining, without copying
    /// them (for metrics and overviews, which only count).
    pub async fn counts(&self) -> (usize, usize) {
        let sources = self.sources.lock().await;
        let draining = sources.values().filter(|s| s.state == SourceState::Draining).count();
        (sources.len() - draining, draining)
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Applies discovery events as they come and checks tombstones on a
    /// timer, until `events` closes. A store error is logged and the event
    /// retried on the next resync rather than stopping the registry.
    pub async fn run(&self, mut events: mpsc::Receiver<Event>) {
        let mut drain_check =
            tokio::time::interval(Duration::from_millis(self.settings.drain_check_ms.max(10)));
        drain_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => {
                        if let Err(err) = self.apply(&event).await {
                            tracing::error!(error = %err, cause = ?std::error::Error::source(&err), "could not apply a discovery event");
                        }
                    }
                    None => return,
                },
                _ = drain_check.tick() => {
                    if let Err(err) = self.drain_tick().await {
                        tracing::error!(error = %err, cause = ?std::error::Error::source(&err), "could not check draining sources");
                    }
                }
            }
        }
    }
}

/// The file's size, or `None` if it is gone. A glob (static source) has no
/// size: it counts as gone, so a removed static source leaves at once.
/// A draining file's size as the planner takes it: `None` only when the file
/// is gone. A file that cannot be looked at (permission denied, I/O error)
/// is not gone: it counts as unchanged since the last look, so it retires
/// after the grace period, not at once with lines still unread.
fn drained_size(looked: std::io::Result<u64>, last: Option<u64>) -> Option<u64> {
    match looked {
        Ok(size) => Some(size),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => {
            tracing::warn!(error = %err, "a draining file cannot be looked at; counted as unchanged");
            Some(last.unwrap_or(0))
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::io::{Error, ErrorKind};

    #[test]
    fn only_a_missing_file_counts_as_gone() {
        assert_eq!(super::drained_size(Ok(7), Some(3)), Some(7));
        assert_eq!(super::drained_size(Err(Error::from(ErrorKind::NotFound)), Some(3)), None);
        let denied = || Err(Error::from(ErrorKind::PermissionDenied));
        assert_eq!(super::drained_size(denied(), Some(3)), Some(3), "unchanged");
        assert_eq!(super::drained_size(denied(), None), Some(0));
    }
}
