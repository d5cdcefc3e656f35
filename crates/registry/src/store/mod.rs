//! Where the registry keeps its sources, the history of collector config
//! versions ([`VersionStore`], see `versions.rs`) and the log of repairs
//! ([`RepairLog`], see `repairs.rs`) and the reconcile loop's history
//! ([`WorkflowHistory`], see `workflow.rs`): traits with two
//! implementations over sqlx, SQLite (the embedded default, a file in the data
//! dir) and PostgreSQL (for several Steward replicas).
//!
//! [`AnyStore::open`] picks one from a URL (`sqlite://PATH`, `postgres://…`),
//! so callers need no generics. Both backends use the same table and the same
//! text encodings, so a source reads back identically from either.

mod any;
mod postgres;
mod repairs;
mod sqlite;
mod versions;
mod workflow;

use std::future::Future;
use std::path::PathBuf;

use steward_discovery::SourceId;

use crate::model::{Change, LogSource};

pub use any::AnyStore;
pub use postgres::PgStore;
pub use repairs::{NewRepair, RepairLog, RepairOutcome, RepairRecord};
pub use sqlite::SqliteStore;
pub use versions::{ConfigVersion, VersionStatus, VersionStore};
pub use workflow::{
    CycleRecord, CycleStatus, NewStep, StepEnd, StepRecord, StepStatus, WorkflowHistory,
};

/// Durable storage of log sources. Implementations must make [`SourceStore::apply`]
/// atomic: a crash leaves either every change of a call or none.
pub trait SourceStore: Send + Sync + 'static {
    /// Applies `changes` in order, in one transaction.
    fn apply(&self, changes: &[Change]) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get(
        &self,
        id: &SourceId,
    ) -> impl Future<Output = Result<Option<LogSource>, StoreError>> + Send;

    /// Every source, ordered by id.
    fn list(&self) -> impl Future<Output = Result<Vec<LogSource>, StoreError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {what}")]
    Database {
        what: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("stored source {id} is unreadable: {reason}")]
    Corrupt { id: String, reason: String },
    /// A workflow history row the code cannot read (`what` names it).
    #[error("stored workflow {what} is unreadable: {reason}")]
    CorruptWorkflow { what: String, reason: String },
    /// A source the schema cannot hold (a file size beyond `i64::MAX`, a
    /// path that is not UTF-8); nothing of its batch was written.
    #[error("source {id} cannot be stored: {reason}")]
    Unstorable { id: String, reason: String },
    /// The URL names no backend this build knows. Any password in it is masked.
    #[error("unsupported store URL {url}: expected sqlite://PATH or postgres://…")]
    UnsupportedUrl { url: String },
    /// No recorded config version has this (full) hash.
    #[error("no config version {hash} is recorded")]
    UnknownVersion { hash: String },
    /// A version prefix or short name matches more than one recorded version.
    #[error("config version {prefix} is ambiguous: several versions start so; give more digits")]
    AmbiguousVersion { prefix: String },
    /// Not a config version's hash or name; nothing was read or written.
    #[error("{name:?} is not a config version name: {reason}")]
    BadVersionName { name: String, reason: String },
    /// `record` was given a hash already recorded with other YAML: the hash
    /// is not of this YAML, and the recorded version was left as it was.
    #[error("config version {hash} is already recorded with different YAML")]
    VersionMismatch { hash: String },
    #[error("stored config version {hash} is unreadable: {reason}")]
    CorruptVersion { hash: String, reason: String },
    #[error("stored repair {id} is unreadable: {reason}")]
    CorruptRepair { id: i64, reason: String },
    #[error("I/O on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
