//! The store suite: one set of checks, generic over [`SourceStore`], run
//! against SQLite (files in a temp dir) and against a real PostgreSQL from the
//! test bench, each both directly and through [`AnyStore::open`].
//!
//! A [`Bench`] hands every check a database of its own, so the checks share no
//! rows and need no cleanup; on PostgreSQL that is one database per check in
//! one server, because starting a server is the slow part.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sqlx::{ConnectOptions, Connection};
use steward_discovery::{Labels, Origin, SourceId};
use steward_registry::store::{AnyStore, PgStore, SourceStore, SqliteStore, StoreError};
use steward_registry::{Change, Drain, LogSource, SourceState};
use steward_testbed::Testbed;
use steward_testbed::parts::Postgres;
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Benches: where the checks get their stores.

/// A backend under test. `name` selects a database, so the checks can open
/// the same one twice (reopen, concurrent open) or fresh ones.
trait Bench {
    type Store: SourceStore;

    /// Makes the (empty) database `name` exist, for backends that need it.
    async fn create(&self, name: &str);

    /// Opens the store on database `name`, migrating it on first use.
    async fn open(&self, name: &str) -> Self::Store;

    /// Closes `store`'s connections. Every check closes what it opens: an open
    /// connection would hold up PostgreSQL's shutdown when the bench drops.
    async fn close(&self, store: Self::Store);

    /// The store's URL for [`AnyStore::open`].
    fn url(&self, name: &str) -> String;

    /// A change that database `name` refuses, so that `apply` fails midway.
    async fn poison(&self, name: &str) -> Change;

    /// Writes, behind the store's back, a row with `id` whose `state` no
    /// [`SourceState`] has.
    async fn plant_corrupt_row(&self, name: &str, id: &str);
}

const CORRUPT_ROW: &str = "INSERT INTO sources (id, origin, path, labels, state, first_seen_ms, \
                           updated_ms) VALUES ($1, 'docker', '/x.log', '{}', 'zombie', 1, 2)";

struct SqliteBench {
    dir: TempDir,
}

impl SqliteBench {
    fn new() -> Self {
        SqliteBench { dir: tempfile::tempdir().expect("temp dir") }
    }

    /// In a directory of its own that does not exist yet, so every open also
    /// checks that the parent directory is created.
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name).join("registry.db")
    }

    async fn raw(&self, name: &str) -> sqlx::SqliteConnection {
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.path(name))
            .connect()
            .await
            .expect("raw SQLite connection")
    }
}

impl Bench for SqliteBench {
    type Store = SqliteStore;

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

    /// SQLite stores NUL bytes and anything else a `LogSource` can hold, so
    /// the refusal is planted: a trigger that aborts the insert of one id.
    async fn poison(&self, name: &str) -> Change {
        let mut conn = self.raw(name).await;
        sqlx::query(
            "CREATE TRIGGER poison BEFORE INSERT ON sources WHEN NEW.id = 'static:poison' \
             BEGIN SELECT RAISE(ABORT, 'poisoned by the test'); END",
        )
        .execute(&mut conn)
        .await
        .expect("create trigger");
        conn.close().await.expect("close raw connection");
        Change::Put(source("static:poison", SourceState::Active))
    }

    async fn plant_corrupt_row(&self, name: &str, id: &str) {
        let mut conn = self.raw(name).await;
        sqlx::query(CORRUPT_ROW).bind(id).execute(&mut conn).await.expect("plant row");
        conn.close().await.expect("close raw connection");
    }
}

struct PgBench {
    pg: Postgres,
}

impl PgBench {
    async fn start() -> Self {
        let tb = Testbed::locate().expect("test bench");
        PgBench { pg: Postgres::start(&tb).await.expect("start PostgreSQL") }
    }
}

impl Bench for PgBench {
    type Store = PgStore;

    async fn create(&self, name: &str) {
        // A natural-language collation, unlike the cluster's C locale, so the
        // ordering check proves the store sorts in byte order regardless.
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

    /// PostgreSQL refuses a NUL byte in text: a real failure, nothing planted.
    async fn poison(&self, _name: &str) -> Change {
        let mut poison = source("static:poison", SourceState::Active);
        poison.path = PathBuf::from("/var/log/nul\0byte.log");
        Change::Put(poison)
    }

    async fn plant_corrupt_row(&self, name: &str, id: &str) {
        let mut conn = sqlx::PgConnection::connect(&self.url(name)).await.expect("raw connection");
        sqlx::query(CORRUPT_ROW).bind(id).execute(&mut conn).await.expect("plant row");
        conn.close().await.expect("close raw connection");
    }
}

/// Another bench's databases, opened through [`AnyStore::open`] and its URL.
/// Names get a prefix so both can share one PostgreSQL server.
struct ViaAny<'a, B>(&'a B);

impl<B: Bench> ViaAny<'_, B> {
    fn name(name: &str) -> String {
        format!("any_{name}")
    }
}

impl<B: Bench> Bench for ViaAny<'_, B> {
    type Store = AnyStore;

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

    async fn poison(&self, name: &str) -> Change {
        self.0.poison(&Self::name(name)).await
    }

    async fn plant_corrupt_row(&self, name: &str, id: &str) {
        self.0.plant_corrupt_row(&Self::name(name), id).await;
    }
}

// ---------------------------------------------------------------------------
// The suite.

async fn check_all<B: Bench>(bench: &B) {
    let store = fresh(bench, "roundtrip").await;
    put_get_list_roundtrip(&store).await;
    bench.close(store).await;

    let store = fresh(bench, "upsert").await;
    upsert_replaces(&store).await;
    bench.close(store).await;

    let store = fresh(bench, "remove").await;
    delete_removes(&store).await;
    bench.close(store).await;

    let store = fresh(bench, "ordered").await;
    list_is_ordered_by_id(&store).await;
    bench.close(store).await;

    let store = fresh(bench, "atomic").await;
    apply_is_atomic(&store, bench.poison(&name("atomic")).await).await;
    bench.close(store).await;

    let store = fresh(bench, "unstorable").await;
    unstorable_source_writes_nothing(&store).await;
    bench.close(store).await;

    corrupt_row_is_an_error(bench).await;
    persists_across_reopen(bench).await;
    concurrent_stores_share_one_database(bench).await;
}

/// The database of one check: a valid SQL identifier and directory name alike.
fn name(check: &str) -> String {
    format!("check_{check}")
}

async fn fresh<B: Bench>(bench: &B, check: &str) -> B::Store {
    let name = name(check);
    bench.create(&name).await;
    let store = bench.open(&name).await;
    assert_eq!(store.list().await.expect("list"), vec![], "{check}: a fresh store is empty");
    store
}

/// Every field survives the trip, including all origins and states, drain
/// absent and present (with and without a size), extreme numbers, and labels
/// nobody should have to escape by hand.
async fn put_get_list_roundtrip<S: SourceStore>(store: &S) {
    let mut hostile = source("docker:hostile", SourceState::Active);
    hostile.path = PathBuf::from("/var/lib/docker/containers/a b/\"quoted\" 'single' ü.log");
    hostile.labels = hostile_labels();

    let mut draining = source("file:/var/log/app.log", SourceState::Draining);
    draining.origin = Origin::LogDir;
    draining.drain = Some(Drain { since_ms: 1_000, last_size: None, last_growth_ms: 1_000 });

    let mut extreme = source("static:/srv/*/logs/*.log", SourceState::Draining);
    extreme.origin = Origin::Static;
    extreme.first_seen_ms = i64::MIN;
    extreme.updated_ms = i64::MAX;
    extreme.drain = Some(Drain {
        since_ms: i64::MIN,
        last_size: Some(i64::MAX as u64),
        last_growth_ms: i64::MAX,
    });

    let mut empty = source("docker:empty", SourceState::Active);
    empty.labels = Labels::new();
    empty.drain = Some(Drain { since_ms: 0, last_size: Some(0), last_growth_ms: 0 });

    let all = vec![hostile, draining, extreme, empty];
    store.apply(&all.iter().cloned().map(Change::Put).collect::<Vec<_>>()).await.expect("apply");

    for expected in &all {
        let got = store.get(&expected.id).await.expect("get");
        assert_eq!(got.as_ref(), Some(expected), "get {}", expected.id);
    }
    assert_eq!(store.get(&SourceId::docker("absent")).await.expect("get absent"), None);
    assert_eq!(store.list().await.expect("list"), sorted(all));
}

/// A second `Put` of an id replaces every column, including clearing drain.
async fn upsert_replaces<S: SourceStore>(store: &S) {
    let first = source("docker:a", SourceState::Active);
    store.apply(&[Change::Put(first.clone())]).await.expect("first put");

    let second = LogSource {
        id: first.id.clone(),
        path: PathBuf::from("/elsewhere.log"),
        labels: BTreeMap::from([("only".to_owned(), "this".to_owned())]),
        state: SourceState::Draining,
        origin: Origin::LogDir,
        first_seen_ms: 7,
        updated_ms: 8,
        drain: Some(Drain { since_ms: 9, last_size: Some(10), last_growth_ms: 11 }),
    };
    store.apply(&[Change::Put(second.clone())]).await.expect("second put");
    assert_eq!(store.list().await.expect("list"), vec![second.clone()]);

    let third = LogSource { state: SourceState::Active, drain: None, ..second };
    store.apply(&[Change::Put(third.clone())]).await.expect("third put");
    assert_eq!(store.get(&first.id).await.expect("get"), Some(third));
}

/// Deleting removes the row; deleting what is not there is not an error;
/// changes in one batch apply in order.
async fn delete_removes<S: SourceStore>(store: &S) {
    let a = source("docker:a", SourceState::Active);
    let b = source("docker:b", SourceState::Active);
    store.apply(&[Change::Put(a.clone()), Change::Put(b.clone())]).await.expect("put");

    store.apply(&[Change::Delete(a.id.clone())]).await.expect("delete");
    assert_eq!(store.get(&a.id).await.expect("get"), None);
    assert_eq!(store.list().await.expect("list"), vec![b.clone()]);

    store
        .apply(&[Change::Delete(a.id.clone()), Change::Delete(SourceId::docker("never"))])
        .await
        .expect("deleting missing ids is fine");
    assert_eq!(store.list().await.expect("list"), vec![b.clone()]);

    store.apply(&[Change::Put(a.clone()), Change::Delete(a.id.clone())]).await.expect("put+delete");
    assert_eq!(store.get(&a.id).await.expect("get"), None, "put then delete leaves nothing");
    store.apply(&[Change::Delete(b.id.clone()), Change::Put(b.clone())]).await.expect("delete+put");
    assert_eq!(store.get(&b.id).await.expect("get"), Some(b), "delete then put leaves the put");
}

/// `list` follows `SourceId`'s order (byte order), whatever order the rows
/// were written in and whatever the database's collation would say.
async fn list_is_ordered_by_id<S: SourceStore>(store: &S) {
    let ids = [
        "static:/b",
        "docker:z",
        "file:/var/log/ä.log",
        "docker:a",
        "file:/var/log/Z.log",
        "docker:A",
        "docker:a-b",
        "docker:a0",
        "docker:_",
        "file:/var/log/z.log",
    ];
    let changes: Vec<Change> =
        ids.iter().map(|id| Change::Put(source(id, SourceState::Active))).collect();
    store.apply(&changes).await.expect("apply");

    let listed: Vec<SourceId> =
        store.list().await.expect("list").into_iter().map(|source| source.id).collect();
    let mut expected: Vec<SourceId> = ids.iter().map(|id| SourceId::from_raw(*id)).collect();
    expected.sort();
    assert_eq!(listed, expected);
}

/// A batch whose last change the database refuses leaves nothing of the batch
/// behind (no new row, no update, no delete), and the store still works.
async fn apply_is_atomic<S: SourceStore>(store: &S, poison: Change) {
    let kept = source("docker:kept", SourceState::Active);
    let doomed = source("docker:doomed", SourceState::Active);
    store.apply(&[Change::Put(kept.clone()), Change::Put(doomed.clone())]).await.expect("setup");

    let fresh = source("docker:fresh", SourceState::Active);
    let kept_changed = LogSource { updated_ms: 999, ..kept.clone() };
    let batch = [
        Change::Put(fresh.clone()),
        Change::Put(kept_changed.clone()),
        Change::Delete(doomed.id.clone()),
        poison,
    ];
    let err = store.apply(&batch).await.expect_err("the poisoned batch fails");
    assert!(matches!(err, StoreError::Database { .. }), "unexpected error: {err:?}");

    assert_eq!(store.list().await.expect("list"), vec![doomed.clone(), kept.clone()]);

    // The failed transaction must not linger on a pooled connection.
    store.apply(&batch[..3]).await.expect("the batch without its poison");
    assert_eq!(store.list().await.expect("list"), vec![fresh, kept_changed]);
}

/// A file size beyond the column's range is refused before anything is
/// written, and so is the rest of its batch.
async fn unstorable_source_writes_nothing<S: SourceStore>(store: &S) {
    let fine = source("docker:fine", SourceState::Active);
    let mut huge = source("docker:huge", SourceState::Draining);
    huge.drain = Some(Drain { since_ms: 1, last_size: Some(u64::MAX), last_growth_ms: 1 });

    let err = store
        .apply(&[Change::Put(fine), Change::Put(huge)])
        .await
        .expect_err("u64::MAX does not fit");
    assert!(
        matches!(&err, StoreError::Unstorable { id, .. } if id == "docker:huge"),
        "unexpected error: {err:?}"
    );
    assert_eq!(store.list().await.expect("list"), vec![]);
}

/// A row no `LogSource` matches is an error naming it, from `get` and `list`.
async fn corrupt_row_is_an_error<B: Bench>(bench: &B) {
    let store = fresh(bench, "corrupt").await;
    bench.plant_corrupt_row(&name("corrupt"), "docker:zombie").await;

    for err in [
        store.get(&SourceId::docker("zombie")).await.expect_err("get"),
        store.list().await.expect_err("list"),
    ] {
        assert!(
            matches!(&err, StoreError::Corrupt { id, reason }
                if id == "docker:zombie" && reason.contains("zombie")),
            "unexpected error: {err:?}"
        );
    }
    bench.close(store).await;
}

/// What one store committed, a store opened later on the same database reads.
async fn persists_across_reopen<B: Bench>(bench: &B) {
    let name = name("reopen");
    bench.create(&name).await;
    let saved = source("docker:saved", SourceState::Active);
    let store = bench.open(&name).await;
    store.apply(&[Change::Put(saved.clone())]).await.expect("put");
    bench.close(store).await;

    let store = bench.open(&name).await;
    assert_eq!(store.list().await.expect("list after reopen"), vec![saved]);
    bench.close(store).await;
}

/// Two stores opened at once on a database that does not exist yet both
/// migrate it without tripping over each other, then see each other's writes,
/// also when they write at the same time.
async fn concurrent_stores_share_one_database<B: Bench>(bench: &B) {
    let name = name("concurrent");
    bench.create(&name).await;
    let (one, two) = tokio::join!(bench.open(&name), bench.open(&name));

    let a = source("docker:a", SourceState::Active);
    one.apply(&[Change::Put(a.clone())]).await.expect("put through one");
    assert_eq!(two.get(&a.id).await.expect("get through two"), Some(a.clone()));

    let b = source("docker:b", SourceState::Active);
    let c = source("docker:c", SourceState::Draining);
    let (put_b, put_c) = ([Change::Put(b.clone())], [Change::Put(c.clone())]);
    let (by_one, by_two) = tokio::join!(one.apply(&put_b), two.apply(&put_c));
    by_one.expect("concurrent put through one");
    by_two.expect("concurrent put through two");
    assert_eq!(one.list().await.expect("list"), vec![a, b, c]);
    tokio::join!(bench.close(one), bench.close(two));
}

// ---------------------------------------------------------------------------
// Fixtures.

fn source(id: &str, state: SourceState) -> LogSource {
    LogSource {
        id: SourceId::from_raw(id),
        path: PathBuf::from(format!("/var/log/{}.log", id.replace([':', '/', '*'], "_"))),
        labels: BTreeMap::from([
            ("service.name".to_owned(), "web".to_owned()),
            ("container.id".to_owned(), id.to_owned()),
        ]),
        state,
        origin: Origin::Docker,
        first_seen_ms: 1_700_000_000_000,
        updated_ms: 1_700_000_000_500,
        drain: match state {
            SourceState::Active => None,
            SourceState::Draining => {
                Some(Drain { since_ms: 1, last_size: Some(2), last_growth_ms: 3 })
            }
        },
    }
}

/// Values that break naive quoting in SQL, JSON, YAML or the collector's
/// `${env:…}` expansion, plus a 100 KB value.
fn hostile_labels() -> Labels {
    [
        ("newline", "line one\nline two\r\n"),
        ("quotes", r#"she said "hi" and 'bye' \ \\ \" "#),
        ("env", "${env:HOME} ${X} $${Y}"),
        ("sql", "'); DROP TABLE sources; --"),
        ("json", r#"{"a": [1, 2], "b": null}"#),
        ("unicode", "Grüße, 東京, עברית, 🚀, \u{200B}zero-width"),
        ("empty", ""),
        ("", "an empty key"),
        ("tab\tkey", "\t"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .chain([("big".to_owned(), "x".repeat(100 * 1024))])
    .collect()
}

fn sorted(mut sources: Vec<LogSource>) -> Vec<LogSource> {
    sources.sort_by(|a, b| a.id.cmp(&b.id));
    sources
}

// ---------------------------------------------------------------------------
// The runs.

#[tokio::test]
async fn sqlite() {
    check_all(&SqliteBench::new()).await;
}

#[tokio::test]
async fn sqlite_through_any_store() {
    check_all(&ViaAny(&SqliteBench::new())).await;
}

#[tokio::test]
async fn postgres() {
    let bench = PgBench::start().await;
    check_all(&bench).await;
    check_all(&ViaAny(&bench)).await;
}

#[tokio::test]
async fn any_store_refuses_other_urls_without_leaking_passwords() {
    for url in [
        "mysql://root:hunter2@127.0.0.1/steward",
        "sqlite:relative.db",
        "sqlite://",
        "/var/lib/steward/registry.db",
        "",
        "postgre://steward:hunter2@db/steward?password=hunter2",
    ] {
        let err = AnyStore::open(url).await.expect_err(url);
        assert!(matches!(err, StoreError::UnsupportedUrl { .. }), "{url}: {err:?}");
        let message = err.to_string();
        assert!(!message.contains("hunter2"), "{url}: the password leaked: {message}");
    }
}
