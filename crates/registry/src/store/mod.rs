//! Where the registry keeps its sources: a trait with two implementations over
//! sqlx, SQLite (the embedded default, a file in the data dir) and PostgreSQL
//! (for several Steward replicas).
//!
//! [`AnyStore::open`] picks one from a URL (`sqlite://PATH`, `postgres://…`),
//! so callers need no generics. Both backends use the same table and the same
//! text encodings, so a source reads back identically from either.

mod any;
mod postgres;
mod sqlite;

use std::future::Future;
use std::path::PathBuf;

use steward_discovery::SourceId;

use crate::model::{Change, LogSource};

pub use any::AnyStore;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

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
    /// A source the schema cannot hold (a file size beyond `i64::MAX`, a
    /// path that is not UTF-8); nothing of its batch was written.
    #[error("source {id} cannot be stored: {reason}")]
    Unstorable { id: String, reason: String },
    /// The URL names no backend this build knows. Any password in it is masked.
    #[error("unsupported store URL {url}: expected sqlite://PATH or postgres://…")]
    UnsupportedUrl { url: String },
    #[error("I/O on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
