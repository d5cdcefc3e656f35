//! Where the store suites get their stores: SQLite files in a temp dir, one
//! real PostgreSQL from the test bench, and either of them opened through
//! [`AnyStore::open`]. Each suite (sources, versions, repairs) runs the same
//! checks on all of them.
//!
//! A [`Bench`] hands every check a database of its own, named by the check,
//! so the checks share no rows and need no cleanup; on PostgreSQL that is one
//! database per check in one server, because starting a server is the slow
//! part.

use std::path::PathBuf;

use sqlx::{ConnectOptions, Connection};
use steward_registry::store::{AnyStore, PgStore, SqliteStore};
use steward_testbed::Testbed;
use steward_testbed::parts::Postgres;
use tempfile::TempDir;

/// Which database engine is underneath, for checks that must provoke a
/// failure in an engine-specific way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A backend under test. `name` selects a database, so a check can open the
/// same one twice (reopen, concurrent handles) or fresh ones.
pub trait Bench {
    type Store;

    fn engine(&self) -> Engine;

    /// Makes the (empty) database `name` exist, for backends that need it.
    async fn create(&self, name: &str);

    /// Opens the store on database `name`, migrating it on first use.
    async fn open(&self, name: &str) -> Self::Store;

    /// Closes `store`'s connections. Every check closes what it opens: an open
    /// connection would hold up PostgreSQL's shutdown when the bench drops.
    async fn close(&self, store: Self::Store);

    /// The store's URL for [`AnyStore::open`].
    fn url(&self, name: &str) -> String;

    /// Runs `sql` on database `name` behind the store's back, with `bind` as
    /// `$1` if given: how checks plant triggers and corrupt rows.
    async fn raw_sql(&self, name: &str, sql: &'static str, bind: Option<&str>);
}

pub struct SqliteBench {
    dir: TempDir,
}

impl SqliteBench {
    pub fn new() -> Self {
        SqliteBench { dir: tempfile::tempdir().expect("temp dir") }
    }

    /// In a directory of its own that does not exist yet, so every open also
    /// checks that the parent directory is created.
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name).join("registry.db")
    }
}

impl Bench for SqliteBench {
    type Store = SqliteStore;

    fn engine(&self) -> Engine {
        Engine::Sqlite
    }

    async fn create(&self, _name: &str) {
        // The store creates the file: that is what the checks should exercise.
    }

    async fn open(&self, name: &str) -> SqliteStore {
        SqliteStore::open(self.path(name)).await.expect("open SQLite store")
    }

    async fn close(&self, store: SqliteStore) {
        store.close().await;
    }

    fn url(&self, name: &str) -> String {
        format!("sqlite://{}", self.path(name).display())
    }

    async fn raw_sql(&self, name: &str, sql: &'static str, bind: Option<&str>) {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.path(name))
            .connect()
            .await
            .expect("raw SQLite connection");
        let query = match bind {
            Some(value) => sqlx::query(sql).bind(value),
            None => sqlx::query(sql),
        };
        query.execute(&mut conn).await.expect("raw SQL runs");
        conn.close().await.expect("close raw connection");
    }
}

pub struct PgBench {
    pg: Postgres,
}

impl PgBench {
    pub async fn start() -> Self {
        let tb = Testbed::locate().expect("test bench");
        PgBench { pg: Postgres::start(&tb).await.expect("start PostgreSQL") }
    }
}

impl Bench for PgBench {
    type Store = PgStore;

    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    async fn create(&self, name: &str) {
        // A natural-language collation, unlike the cluster's C locale, so the
        // ordering and prefix checks prove the store works in byte order
        // regardless of the database's locale.
        self.pg
            .psql(&format!(
                "CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
            ))
            .expect("create database");
    }

    async fn open(&self, name: &str) -> PgStore {
        PgStore::connect(&self.url(name)).await.expect("connect PostgreSQL store")
    }

    async fn close(&self, store: PgStore) {
        store.close().await;
    }

    fn url(&self, name: &str) -> String {
        let server = self.pg.url();
        let (server, _db) = server.rsplit_once('/').expect("a database in the URL");
        format!("{server}/{name}")
    }

    async fn raw_sql(&self, name: &str, sql: &'static str, bind: Option<&str>) {
        let mut conn = sqlx::PgConnection::connect(&self.url(name)).await.expect("raw connection");
        let query = match bind {
            Some(value) => sqlx::query(sql).bind(value),
            None => sqlx::query(sql),
        };
        query.execute(&mut conn).await.expect("raw SQL runs");
        conn.close().await.expect("close raw connection");
    }
}

/// Another bench's databases, opened through [`AnyStore::open`] and its URL.
/// Names get a prefix so both can share one PostgreSQL server.
pub struct ViaAny<'a, B>(pub &'a B);

impl<B: Bench> ViaAny<'_, B> {
    fn name(name: &str) -> String {
        format!("any_{name}")
    }
}

impl<B: Bench> Bench for ViaAny<'_, B> {
    type Store = AnyStore;

    fn engine(&self) -> Engine {
        self.0.engine()
    }

    async fn create(&self, name: &str) {
        self.0.create(&Self::name(name)).await;
    }

    async fn open(&self, name: &str) -> AnyStore {
        AnyStore::open(&self.url(name)).await.expect("open through AnyStore")
    }

    async fn close(&self, store: AnyStore) {
        store.close().await;
    }

    fn url(&self, name: &str) -> String {
        self.0.url(&Self::name(name))
    }

    async fn raw_sql(&self, name: &str, sql: &'static str, bind: Option<&str>) {
        self.0.raw_sql(&Self::name(name), sql, bind).await;
    }
}
