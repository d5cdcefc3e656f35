//! One store type for whichever backend a URL names, and the row format the
//! two backends share.
//!
//! [`AnyStore`] lets the binary choose SQLite or PostgreSQL from configuration
//! without carrying a type parameter everywhere. [`SourceRow`] lives here, next
//! to the dispatch, because it is what the backends have in common: the same
//! columns with the same encodings (`origin` and `state` as their serde names,
//! `labels` as JSON text), so the mapping to and from [`LogSource`], and its
//! checks, exist once.

use std::path::{Path, PathBuf};

use serde::de::{DeserializeOwned, IntoDeserializer, value};
use steward_discovery::{Labels, Origin, SourceId};

use super::{
    ConfigVersion, CycleRecord, CycleStatus, NewRepair, NewStep, PgStore, RepairLog, RepairRecord,
    SourceStore, SqliteStore, StepEnd, StepRecord, StoreError, VersionStore, WorkflowHistory,
};
use crate::model::{Change, Drain, LogSource, SourceState};

/// A [`SourceStore`], [`VersionStore`], [`RepairLog`] and [`WorkflowHistory`] over SQLite or
/// PostgreSQL, chosen at run time.
#[derive(Debug, Clone)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl AnyStore {
    /// Opens the store at `url`: `sqlite://PATH` (a relative or absolute file
    /// path, created with its parent directory if missing) or
    /// `postgres://…` / `postgresql://…` (a libpq URL). Migrates the schema.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StoreError::UnsupportedUrl { url: url.to_owned() });
            }
            return Ok(AnyStore::Sqlite(SqliteStore::open(Path::new(path)).await?));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(AnyStore::Postgres(PgStore::connect(url).await?));
        }
        Err(StoreError::UnsupportedUrl { url: redact_url(url) })
    }

    /// Closes every connection; see [`SqliteStore::close`], [`PgStore::close`].
    pub async fn close(&self) {
        match self {
            AnyStore::Sqlite(store) => store.close().await,
            AnyStore::Postgres(store) => store.close().await,
        }
    }
}

impl SourceStore for AnyStore {
    async fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(store) => store.apply(changes).await,
            AnyStore::Postgres(store) => store.apply(changes).await,
        }
    }

    async fn get(&self, id: &SourceId) -> Result<Option<LogSource>, StoreError> {
        match self {
            // Qualified: the backends' `VersionStore::get` is in scope too.
            AnyStore::Sqlite(store) => SourceStore::get(store, id).await,
            AnyStore::Postgres(store) => SourceStore::get(store, id).await,
        }
    }

    async fn list(&self) -> Result<Vec<LogSource>, StoreError> {
        match self {
            AnyStore::Sqlite(store) => store.list().await,
            AnyStore::Postgres(store) => store.list().await,
        }
    }
}

impl VersionStore for AnyStore {
    async fn record(
        &self,
        hash: &str,
        yaml: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<ConfigVersion, StoreError> {
        match self {
            // Qualified: the backends' `RepairLog::record` is in scope too.
            AnyStore::Sqlite(store) => {
                VersionStore::record(store, hash, yaml, reason, now_ms).await
            }
            AnyStore::Postgres(store) => {
                VersionStore::record(store, hash, yaml, reason, now_ms).await
            }
        }
    }

    async fn mark_applied(&self, hash: &str, now_ms: i64) -> Result<ConfigVersion, StoreError> {
        match self {
            AnyStore::Sqlite(store) => store.mark_applied(hash, now_ms).await,
            AnyStore::Postgres(store) => store.mark_applied(hash, now_ms).await,
        }
    }

    async fn mark_failed(
        &self,
        hash: &str,
        failure: &str,
        now_ms: i64,
    ) -> Result<ConfigVersion, StoreError> {
        match self {
            AnyStore::Sqlite(store) => store.mark_failed(hash, failure, now_ms).await,
            AnyStore::Postgres(store) => store.mark_failed(hash, failure, now_ms).await,
        }
    }

    async fn applied(&self) -> Result<Option<ConfigVersion>, StoreError> {
        match self {
            AnyStore::Sqlite(store) => store.applied().await,
            AnyStore::Postgres(store) => store.applied().await,
        }
    }

    async fn get(&self, name: &str) -> Result<Option<ConfigVersion>, StoreError> {
        match self {
            AnyStore::Sqlite(store) => VersionStore::get(store, name).await,
            AnyStore::Postgres(store) => VersionStore::get(store, name).await,
        }
    }

    async fn history(&self, limit: usize) -> Result<Vec<ConfigVersion>, StoreError> {
        match self {
            AnyStore::Sqlite(store) => store.history(limit).await,
            AnyStore::Postgres(store) => store.history(limit).await,
        }
    }

    async fn last_good(&self, except: Option<&str>) -> Result<Option<ConfigVersion>, StoreError> {
        match self {
            AnyStore::Sqlite(store) => store.last_good(except).await,
            AnyStore::Postgres(store) => store.last_good(except).await,
        }
    }
}

impl RepairLog for AnyStore {
    async fn record(&self, repair: NewRepair) -> Result<RepairRecord, StoreError> {
        match self {
            // Qualified: the backends' `VersionStore::record` is in scope too.
            AnyStore::Sqlite(store) => RepairLog::record(store, repair).await,
            AnyStore::Postgres(store) => RepairLog::record(store, repair).await,
        }
    }

    async fn recent(&self, limit: usize) -> Result<Vec<RepairRecord>, StoreError> {
        match self {
            AnyStore::Sqlite(store) => store.recent(limit).await,
            AnyStore::Postgres(store) => store.recent(limit).await,
        }
    }
}

impl WorkflowHistory for AnyStore {
    async fn begin_cycle(
        &self,
        node: &str,
        engine: &str,
        trigger: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        match self {
            AnyStore::Sqlite(store) => store.begin_cycle(node, engine, trigger, now_ms).await,
            AnyStore::Postgres(store) => store.begin_cycle(node, engine, trigger, now_ms).await,
        }
    }

    async fn finish_cycle(
        &self,
        cycle_id: i64,
        status: CycleStatus,
        outcome: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(store) => store.finish_cycle(cycle_id, status, outcome, now_ms).await,
            AnyStore::Postgres(store) => {
                store.finish_cycle(cycle_id, status, outcome, now_ms).await
            }
        }
    }

    async fn unfinished(
        &self,
        node: &str,
        engine: &str,
    ) -> Result<Option<CycleRecord>, StoreError> {
        match self {
            AnyStore::Sqlite(store) => store.unfinished(node, engine).await,
            AnyStore::Postgres(store) => store.unfinished(node, engine).await,
        }
    }

    async fn step_started(&self, step: NewStep<'_>) -> Result<i64, StoreError> {
        match self {
            AnyStore::Sqlite(store) => store.step_started(step).await,
            AnyStore::Postgres(store) => store.step_started(step).await,
        }
    }

    async fn step_finished(
        &self,
        step_id: i64,
        end: StepEnd<'_>,
        duration_ms: i64,
    ) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(store) => store.step_finished(step_id, end, duration_ms).await,
            AnyStore::Postgres(store) => store.step_finished(step_id, end, duration_ms).await,
        }
    }

    async fn steps(&self, cycle_id: i64) -> Result<Vec<StepRecord>, StoreError> {
        match self {
            AnyStore::Sqlite(store) => store.steps(cycle_id).await,
            AnyStore::Postgres(store) => store.steps(cycle_id).await,
        }
    }

    async fn forget_cycle(&self, cycle_id: i64) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(store) => store.forget_cycle(cycle_id).await,
            AnyStore::Postgres(store) => store.forget_cycle(cycle_id).await,
        }
    }

    async fn recent_cycles(&self, limit: usize) -> Result<Vec<CycleRecord>, StoreError> {
        match self {
            AnyStore::Sqlite(store) => store.recent_cycles(limit).await,
            AnyStore::Postgres(store) => store.recent_cycles(limit).await,
        }
    }
}

/// One row of the `sources` table, as both backends read and write it.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct SourceRow {
    pub id: String,
    pub origin: String,
    pub path: String,
    /// A JSON object of string to string.
    pub labels: String,
    pub state: String,
    pub first_seen_ms: i64,
    pub updated_ms: i64,
    pub drain_since_ms: Option<i64>,
    pub drain_last_size: Option<i64>,
    pub drain_last_growth_ms: Option<i64>,
}

impl SourceRow {
    pub fn from_source(source: &LogSource) -> Result<Self, StoreError> {
        let unstorable =
            |reason: String| StoreError::Unstorable { id: source.id.to_string(), reason };
        // Upstream paths come from `to_string_lossy`, so this only refuses a
        // path built some other way; storing it lossily would change the source.
        let path = source
            .path
            .to_str()
            .ok_or_else(|| unstorable(format!("path {:?} is not UTF-8", source.path)))?;
        let labels = serde_json::to_string(&source.labels)
            .map_err(|err| unstorable(format!("labels do not serialise to JSON: {err}")))?;
        let drain_last_size = match source.drain.and_then(|drain| drain.last_size) {
            None => None,
            Some(size) => Some(i64::try_from(size).map_err(|_| {
                unstorable(format!("drain file size {size} exceeds the column's i64 range"))
            })?),
        };
        Ok(SourceRow {
            id: source.id.as_str().to_owned(),
            origin: source.origin.as_str().to_owned(),
            path: path.to_owned(),
            labels,
            state: source.state.as_str().to_owned(),
            first_seen_ms: source.first_seen_ms,
            updated_ms: source.updated_ms,
            drain_since_ms: source.drain.map(|drain| drain.since_ms),
            drain_last_size,
            drain_last_growth_ms: source.drain.map(|drain| drain.last_growth_ms),
        })
    }

    pub fn into_source(self) -> Result<LogSource, StoreError> {
        let SourceRow {
            id,
            origin,
            path,
            labels,
            state,
            first_seen_ms,
            updated_ms,
            drain_since_ms,
            drain_last_size,
            drain_last_growth_ms,
        } = self;
        let corrupt = |reason: String| StoreError::Corrupt { id: id.clone(), reason };

        let origin: Origin =
            from_serde_name(&origin).map_err(|err| corrupt(format!("origin {origin:?}: {err}")))?;
        let state: SourceState =
            from_serde_name(&state).map_err(|err| corrupt(format!("state {state:?}: {err}")))?;
        let labels: Labels = serde_json::from_str(&labels)
            .map_err(|err| corrupt(format!("labels are not a JSON object of strings: {err}")))?;
        let drain = match (drain_since_ms, drain_last_size, drain_last_growth_ms) {
            (None, None, None) => None,
            (Some(since_ms), last_size, Some(last_growth_ms)) => {
                let last_size = match last_size {
                    None => None,
                    Some(size) => Some(
                        u64::try_from(size)
                            .map_err(|_| corrupt(format!("drain_last_size {size} is negative")))?,
                    ),
                };
                Some(Drain { since_ms, last_size, last_growth_ms })
            }
            (since, size, growth) => {
                return Err(corrupt(format!(
                    "drain columns are partly NULL (since {since:?}, last size {size:?}, \
                     last growth {growth:?})"
                )));
            }
        };

        Ok(LogSource {
            id: SourceId::from_raw(id),
            path: PathBuf::from(path),
            labels,
            state,
            origin,
            first_seen_ms,
            updated_ms,
            drain,
        })
    }
}

/// Parses an enum from its serde name (`log_dir`, `draining`), the form the
/// JSON output uses too, so the two can never disagree.
pub(super) fn from_serde_name<T: DeserializeOwned>(name: &str) -> Result<T, value::Error> {
    T::deserialize(IntoDeserializer::<value::Error>::into_deserializer(name))
}

/// `url` with the password masked, in the userinfo (`user:***@host`) and in a
/// `password=` query parameter, so the URL can go into errors and logs.
pub(super) fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _password)) => format!("{user}:***@{host}"),
                    None => authority.to_owned(),
                },
                None => authority.to_owned(),
            };
            format!("{scheme}://{authority}{tail}")
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => param.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redact_url_masks_passwords_only() {
        assert_eq!(redact_url("postgres://u:hunter2@db:5432/x"), "postgres://u:***@db:5432/x");
        assert_eq!(redact_url("postgres://u@db/x"), "postgres://u@db/x");
        assert_eq!(
            redact_url("pg://db/x?user=u&password=hunter2"),
            "pg://db/x?user=u&password=***"
        );
        assert_eq!(redact_url("mysql://u:p:q@h"), "mysql://u:***@h");
        assert_eq!(redact_url("no scheme at all"), "no scheme at all");
    }
}
