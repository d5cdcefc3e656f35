//! The API's JSON documents: what each route returns, described for the
//! OpenAPI document, and built from the domain types by plain functions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use steward_health::alerts::Notification;
use steward_health::checks::{CheckResult, Status};
use steward_registry::LogSource;
use steward_registry::store::{ConfigVersion, CycleRecord, StepRecord};
use utoipa::{IntoParams, ToSchema};

use crate::live::E2ePoint;

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, naming the field or the id at fault.
    pub error: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Healthz {
    /// Always `ok`: the process answers.
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readyz {
    pub ready: bool,
    /// Why not, when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceView {
    /// `docker:<container id>`, `file:<path>` or `static:<glob>`.
    pub id: String,
    /// `docker`, `log_dir` or `static`.
    pub origin: String,
    pub path: String,
    /// The labels its records carry (after relabelling); from containers, so
    /// untrusted text.
    pub labels: BTreeMap<String, String>,
    /// `active`, or `draining` (stopped; its file is read to the end).
    pub state: String,
    pub first_seen_ms: i64,
    pub updated_ms: i64,
    pub draining_since_ms: Option<i64>,
}

impl From<&LogSource> for SourceView {
    fn from(source: &LogSource) -> Self {
        SourceView {
            id: source.id.to_string(),
            origin: source.origin.as_str().to_owned(),
            path: source.path.display().to_string(),
            labels: source.labels.clone(),
            state: source.state.as_str().to_owned(),
            first_seen_ms: source.first_seen_ms,
            updated_ms: source.updated_ms,
            draining_since_ms: source.drain.map(|d| d.since_ms),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VersionSummary {
    /// `cfg-` and the first 12 hex digits of the hash.
    pub id: String,
    /// SHA-256 of the YAML.
    pub hash: String,
    pub generation: i64,
    /// `candidate`, `applied`, `failed` or `superseded`.
    pub status: String,
    pub reason: String,
    pub failure: Option<String>,
    pub created_ms: i64,
    pub applied_ms: Option<i64>,
    pub failed_ms: Option<i64>,
}

impl From<&ConfigVersion> for VersionSummary {
    fn from(v: &ConfigVersion) -> Self {
        VersionSummary {
            id: v.name(),
            hash: v.hash.clone(),
            generation: v.generation,
            status: v.status.as_str().to_owned(),
            reason: v.reason.clone(),
            failure: v.failure.clone(),
            created_ms: v.created_ms,
            applied_ms: v.applied_ms,
            failed_ms: v.failed_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionDetail {
    #[serde(flatten)]
    pub summary: VersionSummary,
    /// The collector config, exactly as pushed.
    pub yaml: String,
}

impl From<&ConfigVersion> for VersionDetail {
    fn from(v: &ConfigVersion) -> Self {
        VersionDetail { summary: v.into(), yaml: v.yaml.clone() }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiffRow {
    /// `same`, `changed`, `added` or `removed`.
    pub kind: String,
    /// The line of `from`.
    pub left: Option<String>,
    /// The line of `to`.
    pub right: Option<String>,
    pub left_no: Option<usize>,
    pub right_no: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Diff {
    pub from: VersionSummary,
    pub to: VersionSummary,
    /// A unified diff, three lines of context; empty when equal.
    pub unified: String,
    /// Every line of both, aligned for a side-by-side view.
    pub rows: Vec<DiffRow>,
}

impl Diff {
    pub fn between(from: &ConfigVersion, to: &ConfigVersion) -> Diff {
        use steward_config::diff::{RowKind, side_by_side, unified};
        let rows = side_by_side(&from.yaml, &to.yaml)
            .into_iter()
            .map(|row| DiffRow {
                kind: match row.kind {
                    RowKind::Same => "same",
                    RowKind::Changed => "changed",
                    RowKind::Added => "added",
                    RowKind::Removed => "removed",
                }
                .to_owned(),
                left: row.left,
                right: row.right,
                left_no: row.left_no,
                right_no: row.right_no,
            })
            .collect();
        Diff {
            from: from.into(),
            to: to.into(),
            unified: unified(&from.yaml, &to.yaml, &from.name(), &to.name()),
            rows,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    pub seq: i64,
    pub activity: String,
    pub attempt: i64,
    /// `running`, `completed` or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub started_ms: i64,
    pub duration_ms: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CycleView {
    pub id: i64,
    pub node: String,
    pub engine: String,
    /// `startup`, `event`, `period` or `resume`.
    pub trigger: String,
    /// `running`, `done` or `failed`.
    pub status: String,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub outcome: Option<String>,
    pub steps: Vec<StepView>,
}

impl CycleView {
    pub fn new(cycle: &CycleRecord, steps: &[StepRecord]) -> Self {
        CycleView {
            id: cycle.id,
            node: cycle.node.clone(),
            engine: cycle.engine.clone(),
            trigger: cycle.trigger.clone(),
            status: cycle.status.as_str().to_owned(),
            started_ms: cycle.started_ms,
            finished_ms: cycle.finished_ms,
            outcome: cycle.outcome.clone(),
            steps: steps
                .iter()
                .map(|s| StepView {
                    seq: s.seq,
                    activity: s.activity.clone(),
                    attempt: s.attempt,
                    status: s.status.as_str().to_owned(),
                    error: s.error.clone(),
                    started_ms: s.started_ms,
                    duration_ms: s.duration_ms,
                })
                .collect(),
        }
    }
}

pub fn status_name(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Warning => "warning",
        Status::Failed => "failed",
        Status::Unknown => "unknown",
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckBody {
    pub name: String,
    /// `ok`, `warning`, `failed` or `unknown` (could not look).
    pub status: String,
    pub evidence: String,
    /// The measured value, if the check has one (the e2e latency in ms…).
    pub value: Option<f64>,
    pub observed_ms: i64,
}

impl From<&CheckResult> for CheckBody {
    fn from(c: &CheckResult) -> Self {
        CheckBody {
            name: c.name.to_owned(),
            status: status_name(c.status).to_owned(),
            evidence: c.evidence.clone(),
            value: c.value,
            observed_ms: c.observed_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// When the last round ran; `null` before the first.
    pub observed_ms: Option<i64>,
    pub checks: Vec<CheckBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertView {
    /// The `alertname` label, e.g. `StewardConfigRollout`.
    pub name: String,
    pub check: String,
    pub node: String,
    pub severity: String,
    /// `firing` or `resolved`.
    pub state: String,
    pub summary: String,
    pub evidence: String,
    pub starts_ms: i64,
    /// When it resolved; `null` while firing.
    pub ends_ms: Option<i64>,
}

fn unix_ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl From<&Notification> for AlertView {
    fn from(note: &Notification) -> Self {
        let alert = note.alert();
        let label = |k: &str| alert.labels.get(k).cloned().unwrap_or_default();
        let annotation = |k: &str| alert.annotations.get(k).cloned().unwrap_or_default();
        AlertView {
            name: alert.name().to_owned(),
            check: label("check"),
            node: label("node"),
            severity: label("severity"),
            state: if note.is_resolved() { "resolved" } else { "firing" }.to_owned(),
            summary: annotation("summary"),
            evidence: annotation("evidence"),
            starts_ms: unix_ms(alert.starts_at),
            ends_ms: note.is_resolved().then(|| unix_ms(alert.ends_at)),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct E2eSeries {
    /// Oldest first.
    pub points: Vec<E2ePoint>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HoldView {
    pub version: String,
    pub reason: String,
    pub since_ms: i64,
}

impl From<steward_agent::Hold> for HoldView {
    fn from(h: steward_agent::Hold) -> Self {
        HoldView { version: h.version, reason: h.reason, since_ms: h.since_ms }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceCounts {
    pub active: usize,
    pub draining: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    pub node: String,
    /// `embedded` or `temporal` (whose history lives in Temporal).
    pub engine: String,
    /// `healthy`, `degraded`, `failing` or `unknown`, from the last checks.
    pub pipeline_state: String,
    pub applied: Option<VersionSummary>,
    /// Set while a version chosen by hand holds the loop.
    pub hold: Option<HoldView>,
    pub sources: SourceCounts,
    pub last_e2e_latency_ms: Option<f64>,
    pub last_e2e_at_ms: Option<i64>,
    pub alerts_firing: Vec<AlertView>,
    pub last_cycle: Option<CycleView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReconcileAccepted {
    pub accepted: bool,
    /// Whether a hold was standing and was released.
    pub released_hold: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// Why, for the version history; default: "applied via the API".
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version to go back to; default: the last good one before the
    /// applied one.
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RolloutResult {
    /// `applied`, `unchanged`, `refused`, `canary_failed` or `rolled_back`.
    pub outcome: String,
    pub version: String,
    /// Why it was refused or rolled back.
    pub reason: Option<String>,
    /// What a failed rollout was rolled back to.
    pub restored: Option<String>,
    /// The hold now standing, set when the version was applied.
    pub hold: Option<HoldView>,
}

impl RolloutResult {
    pub fn new(outcome: &steward_agent::Outcome) -> Self {
        use steward_agent::Outcome;
        let (kind, version, reason, restored) = match outcome {
            Outcome::Applied { version } => ("applied", version, None, None),
            Outcome::Unchanged { version } => ("unchanged", version, None, None),
            Outcome::Refused { version, reason } => ("refused", version, Some(reason), None),
            Outcome::CanaryFailed { version, reason } => {
                ("canary_failed", version, Some(reason), None)
            }
            Outcome::RolledBack { version, reason, restored } => {
                ("rolled_back", version, Some(reason), restored.as_ref())
            }
        };
        RolloutResult {
            outcome: kind.to_owned(),
            version: version.clone(),
            reason: reason.cloned(),
            restored: restored.cloned(),
            hold: None,
        }
    }

    pub fn succeeded(&self) -> bool {
        matches!(self.outcome.as_str(), "applied" | "unchanged")
    }
}

/// A 409's body: the result of a rollout that did not succeed, or, when
/// none could start (nothing to roll back to), an error.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ConflictBody {
    Rollout(RolloutResult),
    Error(ErrorBody),
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Limit {
    /// At most this many, newest first (1 to 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

impl Limit {
    pub const MAX: u32 = 1000;

    /// The limit asked for, or `default`; out of range is the caller's error.
    pub fn get(&self, default: usize) -> Result<usize, String> {
        match self.limit {
            None => Ok(default),
            Some(n) if (1..=Self::MAX).contains(&n) => Ok(n as usize),
            Some(n) => Err(format!("limit: {n} is out of range (1 to {})", Self::MAX)),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Against {
    /// The version to compare with; default: the previous generation.
    pub against: Option<String>,
}
