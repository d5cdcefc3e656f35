//! The store suite: one set of checks, generic over [`SourceStore`], run
//! against SQLite (files in a temp dir) and against a real PostgreSQL from the
//! test bench, each both directly and through [`AnyStore::open`].
//!
//! A [`Bench`] hands every check a database of its own, so the checks share no
//! rows and need no cleanup; on PostgreSQL that is one database per check in
//! one server, because starting a server is the slow part.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::bench::{Bench, Engine, PgBench, SqliteBench, ViaAny};
use steward_discovery::{Labels, Origin, SourceId};
use steward_registry::store::{AnyStore, SourceStore, StoreError};
use steward_registry::{Change, Drain, LogSource, SourceState};

const CORRUPT_ROW: &str = "INSERT INTO sources (id, origin, path, labels, state, first_seen_ms, \
                           updated_ms) VALUES ($1, 'docker', '/x.log', '{}', 'zombie', 1, 2)";

// ---------------------------------------------------------------------------
// The suite.

async fn check_all<B: Bench<Store: SourceStore>>(bench: &B) {
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
    apply_is_atomic(&store, poison(bench, &name("atomic")).await).await;
    bench.close(store).await;

    let store = fresh(bench, "unstorable").await;
    unstorable_source_writes_nothing(&store).await;
    bench.close(store).await;

    corrupt_row_is_an_error(bench).await;
    persists_across_reopen(bench).await;
    concurrent_stores_share_one_database(bench).await;
}

/// A change that database `name` refuses, so that `apply` fails midway.
/// PostgreSQL refuses a NUL byte in text: a real failure, nothing planted.
/// SQLite stores anything a `LogSource` can hold, so there the refusal is
/// planted: a trigger that aborts the insert of one id.
async fn poison<B: Bench>(bench: &B, name: &str) -> Change {
    let mut poison = source("static:poison", SourceState::Active);
    match bench.engine() {
        Engine::Postgres => poison.path = PathBuf::from("/var/log/nul\0byte.log"),
        Engine::Sqlite => {
            let trigger = "CREATE TRIGGER poison BEFORE INSERT ON sources \
                           WHEN NEW.id = 'static:poison' \
                           BEGIN SELECT RAISE(ABORT, 'poisoned by the test'); END";
            bench.raw_sql(name, trigger, None).await;
        }
    }
    Change::Put(poison)
}

/// The database of one check: a valid SQL identifier and directory name alike.
fn name(check: &str) -> String {
    format!("check_{check}")
}

async fn fresh<B: Bench<Store: SourceStore>>(bench: &B, check: &str) -> B::Store {
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
async fn corrupt_row_is_an_error<B: Bench<Store: SourceStore>>(bench: &B) {
    let store = fresh(bench, "corrupt").await;
    bench.raw_sql(&name("corrupt"), CORRUPT_ROW, Some("docker:zombie")).await;

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
async fn persists_across_reopen<B: Bench<Store: SourceStore>>(bench: &B) {
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
async fn concurrent_stores_share_one_database<B: Bench<Store: SourceStore>>(bench: &B) {
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
