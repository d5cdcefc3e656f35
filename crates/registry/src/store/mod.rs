//! Where the registry keeps its sources: a trait with two implementations over
//! sqlx, SQLite (the embedded default, a file in the data dir) and PostgreSQL
//! (for several Steward replicas).

use std::future::Future;

use steward_discovery::SourceId;

use crate::model::{Change, LogSource};

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
}
