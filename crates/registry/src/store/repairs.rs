//! The log of repairs (issue 6: "Every repair is recorded"), kept in the same
//! store as the sources and the config versions, so a restarted Steward (or
//! another replica, or an operator) can see what was repaired, when, on which
//! node, for which check, and whether it worked.
//!
//! The log is append-only. Each repair gets an `id` from the database that
//! only grows; "newest" always means the highest id, never `at_ms`, so clock
//! steps cannot reorder the log.
//!
//! The SQL and the row mapping live here because the two backends share
//! them (sqlx's SQLite driver takes `$N` placeholders too). A record is a
//! single INSERT, atomic on its own, so neither backend needs a transaction
//! or a lock for it.

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::StoreError;
use super::any::from_serde_name;

/// How a repair ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairOutcome {
    /// The repair ran to its end.
    Done,
    /// The repair did not work; the record's `error` says why.
    Failed,
}

impl RepairOutcome {
    /// The serde name, which is also what the `outcome` column holds.
    pub fn as_str(self) -> &'static str {
        match self {
            RepairOutcome::Done => "done",
            RepairOutcome::Failed => "failed",
        }
    }
}

/// A repair to record: what [`RepairLog::record`] takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRepair {
    /// When the repair was carried out, in Unix milliseconds.
    pub at_ms: i64,
    /// The node it was carried out on.
    pub node: String,
    /// What was done, e.g. `restart_failed_components`,
    /// `auto_apply_fallback_config` or `notify_on_persistent_failure`.
    pub kind: String,
    /// The health check whose failure asked for it.
    pub check: String,
    /// What exactly was done, for people (free text, any length).
    pub detail: String,
    pub outcome: RepairOutcome,
    /// Why it failed; meant to be present when `outcome` is `failed`. Stored
    /// as given, so a repair is recorded whatever the caller knows.
    pub error: Option<String>,
}

/// One recorded repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairRecord {
    /// Assigned by the store; a later record always has a higher id.
    pub id: i64,
    /// When the repair was carried out, in Unix milliseconds.
    pub at_ms: i64,
    pub node: String,
    pub kind: String,
    pub check: String,
    pub detail: String,
    pub outcome: RepairOutcome,
    pub error: Option<String>,
}

/// Durable, append-only log of repairs. Records from several processes (or
/// replicas, on PostgreSQL) at once each get their own id.
///
/// PostgreSQL text cannot hold NUL characters, so both backends store every
/// NUL in a string as U+FFFD (`�`) rather than lose the repair; the returned
/// record shows what was stored, and reads back the same from either backend.
pub trait RepairLog: Send + Sync + 'static {
    /// Appends `repair` to the log with the next id and returns it as stored.
    fn record(
        &self,
        repair: NewRepair,
    ) -> impl Future<Output = Result<RepairRecord, StoreError>> + Send;

    /// At most `limit` repairs, newest (highest id) first.
    fn recent(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RepairRecord>, StoreError>> + Send;
}

// ---------------------------------------------------------------------------
// What the backends share.

pub(super) const INSERT: &str = "INSERT INTO repairs \
     (at_ms, node, kind, check_name, detail, outcome, error) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";

pub(super) const RECENT: &str = "SELECT id, at_ms, node, kind, check_name, detail, outcome, error \
     FROM repairs ORDER BY id DESC LIMIT $1";

/// `repair` as it will be stored: every NUL character replaced (see
/// [`RepairLog`]).
pub(super) fn storable(repair: NewRepair) -> NewRepair {
    NewRepair {
        node: without_nul(repair.node),
        kind: without_nul(repair.kind),
        check: without_nul(repair.check),
        detail: without_nul(repair.detail),
        error: repair.error.map(without_nul),
        ..repair
    }
}

/// The record `record` inserted, built from what it wrote (a storable
/// `repair`) and the id the database gave it.
pub(super) fn recorded(id: i64, repair: NewRepair) -> RepairRecord {
    let NewRepair { at_ms, node, kind, check, detail, outcome, error } = repair;
    RepairRecord { id, at_ms, node, kind, check, detail, outcome, error }
}

fn without_nul(text: String) -> String {
    if text.contains('\0') { text.replace('\0', "\u{FFFD}") } else { text }
}

/// One row of `repairs`, as both backends read it.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct RepairRow {
    id: i64,
    at_ms: i64,
    node: String,
    kind: String,
    check_name: String,
    detail: String,
    outcome: String,
    error: Option<String>,
}

impl RepairRow {
    pub fn into_record(self) -> Result<RepairRecord, StoreError> {
        let outcome: RepairOutcome =
            from_serde_name(&self.outcome).map_err(|err| StoreError::CorruptRepair {
                id: self.id,
                reason: format!("outcome {:?}: {err}", self.outcome),
            })?;
        Ok(RepairRecord {
            id: self.id,
            at_ms: self.at_ms,
            node: self.node,
            kind: self.kind,
            check: self.check_name,
            detail: self.detail,
            outcome,
            error: self.error,
        })
    }
}

/// One body for both backends, as for the version history.
macro_rules! impl_repair_log {
    ($store:ty) => {
        impl RepairLog for $store {
            async fn record(&self, repair: NewRepair) -> Result<RepairRecord, StoreError> {
                let repair = repairs::storable(repair);
                let (id,): (i64,) = sqlx::query_as(repairs::INSERT)
                    .bind(repair.at_ms)
                    .bind(&repair.node)
                    .bind(&repair.kind)
                    .bind(&repair.check)
                    .bind(&repair.detail)
                    .bind(repair.outcome.as_str())
                    .bind(repair.error.as_deref())
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|source| StoreError::Database {
                        what: format!(
                            "record of repair {} on node {} for check {}",
                            repair.kind, repair.node, repair.check
                        ),
                        source,
                    })?;
                Ok(repairs::recorded(id, repair))
            }

            async fn recent(&self, limit: usize) -> Result<Vec<RepairRecord>, StoreError> {
                let rows: Vec<RepairRow> = sqlx::query_as(repairs::RECENT)
                    .bind(versions::sql_limit(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|source| StoreError::Database {
                        what: "read of the repair log".into(),
                        source,
                    })?;
                rows.into_iter().map(RepairRow::into_record).collect()
            }
        }
    };
}
pub(super) use impl_repair_log;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_column_is_the_serde_name() {
        for outcome in [RepairOutcome::Done, RepairOutcome::Failed] {
            let json = serde_json::to_string(&outcome).expect("serialise");
            assert_eq!(json, format!("\"{}\"", outcome.as_str()));
            assert_eq!(from_serde_name::<RepairOutcome>(outcome.as_str()).ok(), Some(outcome));
        }
    }

    #[test]
    fn nul_characters_are_replaced_everywhere() {
        let repair = NewRepair {
            at_ms: 1,
            node: "n\0".into(),
            kind: "k\0".into(),
            check: "c\0".into(),
            detail: "a\0b\0".into(),
            outcome: RepairOutcome::Failed,
            error: Some("\0".into()),
        };
        let stored = storable(repair);
        assert_eq!(
            recorded(7, stored),
            RepairRecord {
                id: 7,
                at_ms: 1,
                node: "n\u{FFFD}".into(),
                kind: "k\u{FFFD}".into(),
                check: "c\u{FFFD}".into(),
                detail: "a\u{FFFD}b\u{FFFD}".into(),
                outcome: RepairOutcome::Failed,
                error: Some("\u{FFFD}".into()),
            }
        );
    }
}
