//! The reconcile loop's durable history (issue 7): every cycle the workflow
//! engine runs, and every attempt of every activity in it, with its input
//! hash, its result or error, and how long it took.
//!
//! The embedded engine writes a step's row as `running` before the activity
//! starts and finishes it afterwards, so a crash leaves evidence of what was
//! in flight. After a restart the engine finds the node's unfinished cycle
//! ([`WorkflowHistory::unfinished`]) and replays it: an activity whose
//! completed row has the same name and input hash is not run again, its
//! recorded result is used instead. That is what keeps a restarted Steward
//! from applying a config twice.
//!
//! Rows are small and one cycle has at most a few dozen; nothing here needs a
//! transaction beyond the single statement.

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::StoreError;
use super::any::from_serde_name;

/// Where a cycle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CycleStatus {
    /// Started and not finished: after a crash, the one to resume.
    Running,
    Done,
    Failed,
}

impl CycleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CycleStatus::Running => "running",
            CycleStatus::Done => "done",
            CycleStatus::Failed => "failed",
        }
    }
}

/// Where one attempt of an activity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Started; still so after a crash means it was in flight.
    Running,
    Completed,
    Failed,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Completed => "completed",
            StepStatus::Failed => "failed",
        }
    }
}

/// One cycle of the reconcile loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleRecord {
    pub id: i64,
    pub node: String,
    /// `embedded` (Temporal keeps its own history).
    pub engine: String,
    /// What started it: `startup`, `event`, `period`, `resume`.
    pub trigger: String,
    pub status: CycleStatus,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    /// A one-line summary, e.g. `applied cfg-…` or `unchanged`.
    pub outcome: Option<String>,
}

/// One attempt of one activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub id: i64,
    pub cycle_id: i64,
    /// The activity's position in its cycle, from 0.
    pub seq: i64,
    pub activity: String,
    /// From 1.
    pub attempt: i64,
    /// SHA-256 (hex) of the input's JSON.
    pub input_hash: String,
    pub status: StepStatus,
    /// The output as JSON, for a completed step.
    pub result: Option<String>,
    pub error: Option<String>,
    pub started_ms: i64,
    pub duration_ms: Option<i64>,
}

/// An attempt about to start: what [`WorkflowHistory::step_started`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStep<'a> {
    pub cycle_id: i64,
    pub seq: i64,
    pub activity: &'a str,
    pub attempt: i64,
    pub input_hash: &'a str,
    pub started_ms: i64,
}

/// How an attempt ended: what [`WorkflowHistory::step_finished`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepEnd<'a> {
    Completed { result: &'a str },
    Failed { error: &'a str },
}

/// Durable history of the reconcile loop. Several nodes may share one
/// PostgreSQL store: each reads and resumes only its own cycles.
pub trait WorkflowHistory: Send + Sync + 'static {
    /// Opens a cycle as `running` and returns its id.
    fn begin_cycle(
        &self,
        node: &str,
        engine: &str,
        trigger: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Closes a cycle as done or failed with a one-line outcome.
    fn finish_cycle(
        &self,
        cycle_id: i64,
        status: CycleStatus,
        outcome: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// This node's newest cycle still `running` for `engine`, if any.
    fn unfinished(
        &self,
        node: &str,
        engine: &str,
    ) -> impl Future<Output = Result<Option<CycleRecord>, StoreError>> + Send;

    /// Records an attempt as `running`; returns the step's id.
    fn step_started(
        &self,
        step: NewStep<'_>,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    fn step_finished(
        &self,
        step_id: i64,
        end: StepEnd<'_>,
        duration_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every attempt of a cycle, by position then attempt.
    fn steps(
        &self,
        cycle_id: i64,
    ) -> impl Future<Output = Result<Vec<StepRecord>, StoreError>> + Send;

    /// Deletes a finished cycle and its steps: a cycle that changed nothing
    /// is not worth a row every period.
    fn forget_cycle(&self, cycle_id: i64) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// At most `limit` cycles, newest first.
    fn recent_cycles(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<CycleRecord>, StoreError>> + Send;
}

// ---------------------------------------------------------------------------
// What the backends share (sqlx's SQLite driver takes `$N` placeholders too).

pub(super) const BEGIN_CYCLE: &str = "INSERT INTO workflow_cycles \
     (node, engine, trigger, status, started_ms) VALUES ($1, $2, $3, 'running', $4) RETURNING id";

pub(super) const FINISH_CYCLE: &str =
    "UPDATE workflow_cycles SET status = $2, outcome = $3, finished_ms = $4 WHERE id = $1";

pub(super) const UNFINISHED: &str = "SELECT id, node, engine, trigger, status, started_ms, \
     finished_ms, outcome FROM workflow_cycles \
     WHERE node = $1 AND engine = $2 AND status = 'running' ORDER BY id DESC LIMIT 1";

pub(super) const RECENT_CYCLES: &str = "SELECT id, node, engine, trigger, status, started_ms, \
     finished_ms, outcome FROM workflow_cycles ORDER BY id DESC LIMIT $1";

pub(super) const STEP_STARTED: &str = "INSERT INTO workflow_steps \
     (cycle_id, seq, activity, attempt, input_hash, status, started_ms) \
     VALUES ($1, $2, $3, $4, $5, 'running', $6) RETURNING id";

pub(super) const STEP_FINISHED: &str = "UPDATE workflow_steps \
     SET status = $2, result = $3, error = $4, duration_ms = $5 WHERE id = $1";

pub(super) const FORGET_STEPS: &str = "DELETE FROM workflow_steps WHERE cycle_id = $1";

pub(super) const FORGET_CYCLE: &str = "DELETE FROM workflow_cycles WHERE id = $1";

pub(super) const STEPS: &str = "SELECT id, cycle_id, seq, activity, attempt, input_hash, status, \
     result, error, started_ms, duration_ms FROM workflow_steps \
     WHERE cycle_id = $1 ORDER BY seq, attempt, id";

/// `(status, result, error)` columns for an end.
pub(super) fn end_columns(end: StepEnd<'_>) -> (&'static str, Option<String>, Option<String>) {
    match end {
        StepEnd::Completed { result } => {
            (StepStatus::Completed.as_str(), Some(without_nul(result)), None)
        }
        StepEnd::Failed { error } => (StepStatus::Failed.as_str(), None, Some(without_nul(error))),
    }
}

/// PostgreSQL text cannot hold NUL; an error message quoting a container's
/// name might.
pub(super) fn without_nul(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct CycleRow {
    id: i64,
    node: String,
    engine: String,
    trigger: String,
    status: String,
    started_ms: i64,
    finished_ms: Option<i64>,
    outcome: Option<String>,
}

impl CycleRow {
    pub fn into_record(self) -> Result<CycleRecord, StoreError> {
        let status = from_serde_name(&self.status).map_err(|err| StoreError::CorruptWorkflow {
            what: format!("cycle {}", self.id),
            reason: format!("status {:?}: {err}", self.status),
        })?;
        Ok(CycleRecord {
            id: self.id,
            node: self.node,
            engine: self.engine,
            trigger: self.trigger,
            status,
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
            outcome: self.outcome,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct StepRow {
    id: i64,
    cycle_id: i64,
    seq: i64,
    activity: String,
    attempt: i64,
    input_hash: String,
    status: String,
    result: Option<String>,
    error: Option<String>,
    started_ms: i64,
    duration_ms: Option<i64>,
}

impl StepRow {
    pub fn into_record(self) -> Result<StepRecord, StoreError> {
        let status = from_serde_name(&self.status).map_err(|err| StoreError::CorruptWorkflow {
            what: format!("step {} of cycle {}", self.id, self.cycle_id),
            reason: format!("status {:?}: {err}", self.status),
        })?;
        Ok(StepRecord {
            id: self.id,
            cycle_id: self.cycle_id,
            seq: self.seq,
            activity: self.activity,
            attempt: self.attempt,
            input_hash: self.input_hash,
            status,
            result: self.result,
            error: self.error,
            started_ms: self.started_ms,
            duration_ms: self.duration_ms,
        })
    }
}

/// One body for both backends, as for the version history.
macro_rules! impl_workflow_history {
    ($store:ty) => {
        impl WorkflowHistory for $store {
            async fn begin_cycle(
                &self,
                node: &str,
                engine: &str,
                trigger: &str,
                now_ms: i64,
            ) -> Result<i64, StoreError> {
                let (id,): (i64,) = sqlx::query_as(workflow::BEGIN_CYCLE)
                    .bind(workflow::without_nul(node))
                    .bind(engine)
                    .bind(trigger)
                    .bind(now_ms)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|source| StoreError::Database {
                        what: format!("start of a {engine} cycle on node {node}"),
                        source,
                    })?;
                Ok(id)
            }

            async fn finish_cycle(
                &self,
                cycle_id: i64,
                status: CycleStatus,
                outcome: &str,
                now_ms: i64,
            ) -> Result<(), StoreError> {
                sqlx::query(workflow::FINISH_CYCLE)
                    .bind(cycle_id)
                    .bind(status.as_str())
                    .bind(workflow::without_nul(outcome))
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await
                    .map_err(|source| StoreError::Database {
                        what: format!("end of cycle {cycle_id}"),
                        source,
                    })?;
                Ok(())
            }

            async fn unfinished(
                &self,
                node: &str,
                engine: &str,
            ) -> Result<Option<CycleRecord>, StoreError> {
                let row: Option<CycleRow> = sqlx::query_as(workflow::UNFINISHED)
                    .bind(workflow::without_nul(node))
                    .bind(engine)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|source| StoreError::Database {
                        what: format!("read of node {node}'s unfinished cycle"),
                        source,
                    })?;
                row.map(CycleRow::into_record).transpose()
            }

            async fn step_started(&self, step: NewStep<'_>) -> Result<i64, StoreError> {
                let (id,): (i64,) = sqlx::query_as(workflow::STEP_STARTED)
                    .bind(step.cycle_id)
                    .bind(step.seq)
                    .bind(step.activity)
                    .bind(step.attempt)
                    .bind(step.input_hash)
                    .bind(step.started_ms)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|source| StoreError::Database {
                        what: format!(
                            "start of {} (attempt {}) in cycle {}",
                            step.activity, step.attempt, step.cycle_id
                        ),
                        source,
                    })?;
                Ok(id)
            }

            async fn step_finished(
                &self,
                step_id: i64,
                end: StepEnd<'_>,
                duration_ms: i64,
            ) -> Result<(), StoreError> {
                let (status, result, error) = workflow::end_columns(end);
                sqlx::query(workflow::STEP_FINISHED)
                    .bind(step_id)
                    .bind(status)
                    .bind(result)
                    .bind(error)
                    .bind(duration_ms)
                    .execute(&self.pool)
                    .await
                    .map_err(|source| StoreError::Database {
                        what: format!("end of step {step_id}"),
                        source,
                    })?;
                Ok(())
            }

            async fn steps(&self, cycle_id: i64) -> Result<Vec<StepRecord>, StoreError> {
                let rows: Vec<StepRow> = sqlx::query_as(workflow::STEPS)
                    .bind(cycle_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|source| StoreError::Database {
                        what: format!("read of cycle {cycle_id}'s steps"),
                        source,
                    })?;
                rows.into_iter().map(StepRow::into_record).collect()
            }

            async fn forget_cycle(&self, cycle_id: i64) -> Result<(), StoreError> {
                // Steps first: a crash in between leaves a finished cycle
                // without steps, which nothing reads as unfinished.
                for sql in [workflow::FORGET_STEPS, workflow::FORGET_CYCLE] {
                    sqlx::query(sql).bind(cycle_id).execute(&self.pool).await.map_err(
                        |source| StoreError::Database {
                            what: format!("removal of cycle {cycle_id}"),
                            source,
                        },
                    )?;
                }
                Ok(())
            }

            async fn recent_cycles(&self, limit: usize) -> Result<Vec<CycleRecord>, StoreError> {
                let rows: Vec<CycleRow> = sqlx::query_as(workflow::RECENT_CYCLES)
                    .bind(versions::sql_limit(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|source| StoreError::Database {
                        what: "read of the workflow history".into(),
                        source,
                    })?;
                rows.into_iter().map(CycleRow::into_record).collect()
            }
        }
    };
}
pub(super) use impl_workflow_history;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_columns_are_the_serde_names() {
        for status in [CycleStatus::Running, CycleStatus::Done, CycleStatus::Failed] {
            assert_eq!(from_serde_name::<CycleStatus>(status.as_str()).ok(), Some(status));
        }
        for status in [StepStatus::Running, StepStatus::Completed, StepStatus::Failed] {
            assert_eq!(from_serde_name::<StepStatus>(status.as_str()).ok(), Some(status));
        }
    }
}
