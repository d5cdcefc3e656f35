//! The SQLite store: the embedded default, one file in Steward's data dir.
//!
//! The file is in WAL mode so readers (the API, a `steward sources list` run
//! next to the daemon) never block the writer, and a second process on the
//! same file waits up to the busy timeout for the lock instead of failing.
//! `synchronous=NORMAL` keeps every commit across an application crash; only
//! a power loss can drop the last commits, and discovery's next resync
//! restores them, so the fsync per commit of `FULL` would buy nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use steward_discovery::SourceId;

use super::any::SourceRow;
use super::repairs::{self, RepairRow};
use super::versions::{self, VersionRow};
use super::workflow::{self, CycleRow, StepRow};
use super::{
    ConfigVersion, CycleRecord, CycleStatus, NewRepair, NewStep, RepairLog, RepairRecord,
    SourceStore, StepEnd, StepRecord, StoreError, VersionStore, WorkflowHistory,
};
use crate::model::{Change, LogSource};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for another connection's (or process's) lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const UPSERT: &str = "\
    INSERT INTO sources (id, origin, path, labels, state, first_seen_ms, updated_ms, \
                         drain_since_ms, drain_last_size, drain_last_growth_ms) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
    ON CONFLICT (id) DO UPDATE SET \
        origin = excluded.origin, path = excluded.path, labels = excluded.labels, \
        state = excluded.state, first_seen_ms = excluded.first_seen_ms, \
        updated_ms = excluded.updated_ms, drain_since_ms = excluded.drain_since_ms, \
        drain_last_size = excluded.drain_last_size, \
        drain_last_growth_ms = excluded.drain_last_growth_ms";

const DELETE: &str = "DELETE FROM sources WHERE id = ?1";

const GET: &str = "\
    SELECT id, origin, path, labels, state, first_seen_ms, updated_ms, \
           drain_since_ms, drain_last_size, drain_last_growth_ms \
    FROM sources WHERE id = ?1";

const LIST: &str = "\
    SELECT id, origin, path, labels, state, first_seen_ms, updated_ms, \
           drain_since_ms, drain_last_size, drain_last_growth_ms \
    FROM sources ORDER BY id";

/// Sources in one SQLite file. Cheap to clone: clones share the pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if missing, with its parent directory) the database
    /// file at `path` and brings its schema up to date.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|source| StoreError::Io { path: parent.to_owned(), source })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = connect(options).await.map_err(|source| StoreError::Database {
            what: format!("open of SQLite file {}", path.display()),
            source,
        })?;
        let store = SqliteStore { pool, path: path.to_owned() };
        store.migrate().await?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for running operations, then closes every connection of this
    /// store and its clones; later calls fail. Closing the file's last
    /// connection folds the WAL back into it, so a clean shutdown leaves one
    /// self-contained file.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a transaction that holds the write lock from its first
    /// statement (see `apply` for why), for `what`.
    async fn begin_write(
        &self,
        what: impl FnOnce() -> String,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|source| StoreError::Database { what: what(), source })
    }

    /// Runs the migrations under the database's write lock. sqlx's migration
    /// lock is a no-op on SQLite, so two processes opening a fresh file would
    /// both apply the first migration and one would fail; `BEGIN IMMEDIATE`
    /// makes the second wait, and then it finds the migration applied.
    async fn migrate(&self) -> Result<(), StoreError> {
        let what = || format!("migration of SQLite file {}", self.path.display());
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|source| StoreError::Database { what: what(), source })?;
        MIGRATOR
            .run(&mut *tx)
            .await
            .map_err(|err| StoreError::Database { what: what(), source: err.into() })?;
        tx.commit().await.map_err(|source| StoreError::Database { what: what(), source })
    }
}

/// Opens the pool, retrying while SQLite answers SQLITE_BUSY, for at most
/// the busy timeout. Switching a new file to WAL needs an exclusive lock, and
/// that pragma fails at once instead of waiting for the busy timeout when
/// another connection opens the file at the same moment (seen when two stores
/// open a fresh file together). Once the file is in WAL mode the switch is a
/// no-op; in the probes only the first open of a fresh file ever hit this.
async fn connect(options: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(5);
    loop {
        match SqlitePoolOptions::new().connect_with(options.clone()).await {
            Err(err) if is_busy(&err) && Instant::now() + pause < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            result => return result,
        }
    }
}

/// Whether SQLite refused for a lock: SQLITE_BUSY or one of its extended codes.
fn is_busy(err: &sqlx::Error) -> bool {
    const SQLITE_BUSY: i32 = 5;
    err.as_database_error()
        .and_then(|err| err.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == SQLITE_BUSY)
}

impl SourceStore for SqliteStore {
    async fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        // IMMEDIATE takes the write lock up front: a deferred transaction that
        // has to upgrade while another process writes fails at once with
        // SQLITE_BUSY instead of waiting out the busy timeout.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(|source| {
            StoreError::Database { what: format!("begin of a batch of {}", changes.len()), source }
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

// The SQL is shared with PostgreSQL (versions.rs). Writers run in `BEGIN
// IMMEDIATE` transactions: besides avoiding the failed lock upgrade `apply`
// describes, holding the write lock from the start is what makes `record`'s
// MAX + 1 and `mark_applied`'s two updates safe against other processes.
versions::impl_version_store!(SqliteStore, begin_write);

// The SQL is shared with PostgreSQL (repairs.rs). A record is one INSERT,
// atomic by itself; it takes the write lock at once, waiting up to the busy
// timeout for another process's.
repairs::impl_repair_log!(SqliteStore);

// The SQL is shared with the other backend (workflow.rs); every write is one
// statement.
workflow::impl_workflow_history!(SqliteStore);
