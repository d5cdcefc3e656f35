//! The PostgreSQL store, for several Steward replicas sharing one registry.
//!
//! Same table and encodings as SQLite, except that `labels` is JSONB (so
//! operators can query labels in SQL) and `id` sorts in byte order whatever
//! the database's locale (see the migration). Concurrent replicas are safe:
//! sqlx serialises migrations with an advisory lock, and each batch is one
//! transaction of upserts and deletes.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use steward_discovery::SourceId;

use super::any::{SourceRow, redact_url};
use super::repairs::{self, RepairRow};
use super::versions::{self, VersionRow};
use super::workflow::{self, CycleRow, StepRow};
use super::{
    ConfigVersion, CycleRecord, CycleStatus, NewRepair, NewStep, RepairLog, RepairRecord,
    SourceStore, StepEnd, StepRecord, StoreError, VersionStore, WorkflowHistory,
};
use crate::model::{Change, LogSource};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long getting a connection may take, connecting included, before the
/// call fails instead of hanging on an unreachable server.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

// Labels travel as JSON text in both directions, so both backends share one
// row type and one parser; PostgreSQL checks and converts the text at the cast.
const UPSERT: &str = "\
    INSERT INTO sources (id, origin, path, labels, state, first_seen_ms, updated_ms, \
                         drain_since_ms, drain_last_size, drain_last_growth_ms) \
    VALUES ($1, $2, $3, CAST($4 AS jsonb), $5, $6, $7, $8, $9, $10) \
    ON CONFLICT (id) DO UPDATE SET \
        origin = EXCLUDED.origin, path = EXCLUDED.path, labels = EXCLUDED.labels, \
        state = EXCLUDED.state, first_seen_ms = EXCLUDED.first_seen_ms, \
        updated_ms = EXCLUDED.updated_ms, drain_since_ms = EXCLUDED.drain_since_ms, \
        drain_last_size = EXCLUDED.drain_last_size, \
        drain_last_growth_ms = EXCLUDED.drain_last_growth_ms";

const DELETE: &str = "DELETE FROM sources WHERE id = $1";

const GET: &str = "\
    SELECT id, origin, path, labels::text AS labels, state, first_seen_ms, updated_ms, \
           drain_since_ms, drain_last_size, drain_last_growth_ms \
    FROM sources WHERE id = $1";

const LIST: &str = "\
    SELECT id, origin, path, labels::text AS labels, state, first_seen_ms, updated_ms, \
           drain_since_ms, drain_last_size, drain_last_growth_ms \
    FROM sources ORDER BY id";

/// Sources in a PostgreSQL database. Cheap to clone: clones share the pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to the database at `url` (a libpq URL) and brings its schema
    /// up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let what = || format!("connection to {}", redact_url(url));
        let pool = PgPoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(|source| StoreError::Database { what: what(), source })?;
        MIGRATOR.run(&pool).await.map_err(|err| StoreError::Database {
            what: format!("migration of {}", redact_url(url)),
            source: err.into(),
        })?;
        Ok(PgStore { pool })
    }

    /// Starts a transaction for `what` in which this store is the only
    /// writer of `config_versions`.
    ///
    /// `record` numbers a version MAX + 1 and `mark_applied` supersedes the
    /// applied version; under READ COMMITTED two replicas doing either at once
    /// would both see the same state (a duplicate generation, or two applied
    /// versions, which the unique indexes would then refuse with an error).
    /// EXCLUSIVE mode makes writers wait for each other and leaves plain reads
    /// alone; versions are written a few times per rollout, so the wait costs
    /// nothing. Each later statement sees what the previous writer committed.
    async fn begin_version_write(
        &self,
        what: impl Fn() -> String,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|source| StoreError::Database { what: what(), source })?;
        sqlx::query("LOCK TABLE config_versions IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(|source| StoreError::Database { what: what(), source })?;
        Ok(tx)
    }

    /// Waits for running operations, then closes every connection of this
    /// store and its clones; later calls fail. Dropping the store instead
    /// leaves idle connections open for a while, and the server's default
    /// (smart) shutdown waits for them.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl SourceStore for PgStore {
    async fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(|source| StoreError::Database {
            what: format!("begin of a batch of {}", changes.len()),
            source,
        })?;
        for change in changes {
            match change {
                Change::Put(source) => {
                    let row = SourceRow::from_source(source)?;
                    sqlx::query(UPSERT)
                        .bind(row.id)
                        .bind(row.origin)
                        .bind(row.path)
                        .bind(row.labels)
                        .bind(row.state)
                        .bind(row.first_seen_ms)
                        .bind(row.updated_ms)
                        .bind(row.drain_since_ms)
                        .bind(row.drain_last_size)
                        .bind(row.drain_last_growth_ms)
                        .execute(&mut *tx)
                        .await
                        .map_err(|err| StoreError::Database {
                            what: format!("upsert of source {}", source.id),
                            source: err,
                        })?;
                }
                Change::Delete(id) => {
                    sqlx::query(DELETE).bind(id.as_str()).execute(&mut *tx).await.map_err(
                        |source| StoreError::Database {
                            what: format!("delete of source {id}"),
                            source,
                        },
                    )?;
                }
            }
        }
        // Dropping `tx` on an early return above rolls the whole batch back.
        tx.commit().await.map_err(|source| StoreError::Database {
            what: format!("commit of a batch of {}", changes.len()),
            source,
        })
    }

    async fn get(&self, id: &SourceId) -> Result<Option<LogSource>, StoreError> {
        let row: Option<SourceRow> =
            sqlx::query_as(GET).bind(id.as_str()).fetch_optional(&self.pool).await.map_err(
                |source| StoreError::Database { what: format!("read of source {id}"), source },
            )?;
        row.map(SourceRow::into_source).transpose()
    }

    async fn list(&self) -> Result<Vec<LogSource>, StoreError> {
        let rows: Vec<SourceRow> = sqlx::query_as(LIST)
            .fetch_all(&self.pool)
            .await
            .map_err(|source| StoreError::Database { what: "list of sources".into(), source })?;
        rows.into_iter().map(SourceRow::into_source).collect()
    }
}

// The SQL is shared with SQLite (versions.rs); writers take turns through
// `begin_version_write`.
versions::impl_version_store!(PgStore, begin_version_write);

// The SQL is shared with SQLite (repairs.rs). A record is one INSERT,
// atomic by itself; concurrent replicas each get their own id from
// the sequence.
repairs::impl_repair_log!(PgStore);

// The SQL is shared with the other backend (workflow.rs); every write is one
// statement.
workflow::impl_workflow_history!(PgStore);
