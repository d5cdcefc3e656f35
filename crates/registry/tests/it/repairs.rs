//! The repair log suite: one set of checks, generic over [`RepairLog`], run
//! against SQLite (files in a temp dir) and against a real PostgreSQL from
//! the test bench, each both directly and through [`AnyStore::open`].
//!
//! Like the other store suites, every check gets a database of its own (on
//! PostgreSQL, one database per check in one server), so checks share no rows.

use std::collections::BTreeSet;

use crate::bench::{Bench, PgBench, SqliteBench, ViaAny};
use futures_util::future::join_all;
use steward_registry::store::{NewRepair, RepairLog, RepairOutcome, RepairRecord, StoreError};

const CORRUPT_ROW: &str = "INSERT INTO repairs \
                           (at_ms, node, kind, check_name, detail, outcome) \
                           VALUES (1, 'node-a', 'restart_failed_components', 'collector_up', \
                                   'planted', 'zombie')";

// ---------------------------------------------------------------------------
// The suite.

async fn check_all<B: Bench<Store: RepairLog>>(bench: &B) {
    let store = fresh(bench, "ids").await;
    record_returns_increasing_ids(&store).await;
    bench.close(store).await;

    let store = fresh(bench, "recent").await;
    recent_is_newest_first_and_limited(&store).await;
    bench.close(store).await;

    let store = fresh(bench, "failed").await;
    a_failed_repair_keeps_its_error(&store).await;
    bench.close(store).await;

    let store = fresh(bench, "hostile").await;
    hostile_strings_roundtrip(&store).await;
    bench.close(store).await;

    corrupt_outcome_is_an_error(bench).await;
    persists_across_reopen(bench).await;
    concurrent_records_get_distinct_ids(bench).await;
}

/// The database of one check: a valid SQL identifier and directory name alike.
fn name(check: &str) -> String {
    format!("repairs_{check}")
}

async fn fresh<B: Bench<Store: RepairLog>>(bench: &B, check: &str) -> B::Store {
    let name = name(check);
    bench.create(&name).await;
    let store = bench.open(&name).await;
    assert_eq!(store.recent(usize::MAX).await.expect("recent"), vec![], "{check}: empty");
    store
}

/// Each record gets a higher id than the one before, and what `record`
/// returns is the repair as given, with its id, and as `recent` reads it.
async fn record_returns_increasing_ids<S: RepairLog>(store: &S) {
    let first = store.record(repair(1)).await.expect("record");
    assert_eq!(first, with_id(first.id, repair(1)));
    let mut last = first.id;
    for n in 2..=5 {
        let record = store.record(repair(n)).await.expect("record");
        assert!(record.id > last, "id {} after {last}", record.id);
        assert_eq!(record, with_id(record.id, repair(n)));
        last = record.id;
    }
    let newest = store.recent(1).await.expect("recent");
    assert_eq!(newest, vec![with_id(last, repair(5))]);
}

/// `recent` is newest (highest id) first, whatever the timestamps say, and
/// stops at `limit`.
async fn recent_is_newest_first_and_limited<S: RepairLog>(store: &S) {
    let mut recorded = Vec::new();
    for n in 1..=5 {
        // Timestamps run backwards (a clock stepped back); ids do not.
        let new = NewRepair { at_ms: 10_000 - n as i64, ..repair(n) };
        recorded.push(store.record(new).await.expect("record"));
    }
    recorded.reverse();

    let all = store.recent(100).await.expect("recent");
    assert_eq!(all, recorded, "newest first");
    assert_eq!(store.recent(2).await.expect("recent"), all[..2].to_vec());
    assert_eq!(store.recent(0).await.expect("recent"), vec![]);
    assert_eq!(store.recent(usize::MAX).await.expect("recent"), all);
}

/// A failed repair reads back failed, with its error; a done one with none.
async fn a_failed_repair_keeps_its_error<S: RepairLog>(store: &S) {
    let error = "docker restart otelcol: 'No such container: otelcol'\n(exit status 1)";
    let failed = NewRepair {
        kind: "auto_apply_fallback_config".into(),
        outcome: RepairOutcome::Failed,
        error: Some(error.to_owned()),
        ..repair(1)
    };
    let failed = store.record(failed).await.expect("record failed");
    assert_eq!((failed.outcome, failed.error.as_deref()), (RepairOutcome::Failed, Some(error)));
    let done = store.record(repair(2)).await.expect("record done");
    assert_eq!((done.outcome, done.error.as_deref()), (RepairOutcome::Done, None));

    assert_eq!(store.recent(10).await.expect("recent"), vec![done, failed]);
}

/// Strings nobody should have to escape read back byte for byte: newlines,
/// quotes, SQL, unicode and a 100 KB detail. NUL, which PostgreSQL text
/// cannot hold, is stored as U+FFFD on every backend.
async fn hostile_strings_roundtrip<S: RepairLog>(store: &S) {
    let mut detail = String::from(
        "restarted 'otelcol' \"twice\"\r\n\t'); DROP TABLE repairs; --\nGrüße, 東京, 🚀 \\0 %_\n",
    );
    while detail.len() < 100 * 1024 {
        detail.push_str("line of a long evidence dump from the health check\n");
    }
    let hostile = NewRepair {
        at_ms: i64::MAX,
        node: "node-ü'\"\n🚀".into(),
        kind: "restart_failed_components; --".into(),
        check: "exporter_queue 'backpressure'\n".into(),
        detail: detail.clone(),
        outcome: RepairOutcome::Failed,
        error: Some("error: \"quoted\"\nsecond line 東京".into()),
    };
    let record = store.record(hostile.clone()).await.expect("record hostile");
    assert_eq!(record, with_id(record.id, hostile.clone()));
    assert_eq!(store.recent(1).await.expect("recent"), vec![record]);

    let empty = NewRepair {
        at_ms: i64::MIN,
        node: String::new(),
        kind: String::new(),
        check: String::new(),
        detail: String::new(),
        outcome: RepairOutcome::Done,
        error: Some(String::new()),
    };
    let record = store.record(empty.clone()).await.expect("record empty strings");
    assert_eq!(store.recent(1).await.expect("recent"), vec![with_id(record.id, empty)]);

    let nul = NewRepair {
        node: "a\0b".into(),
        detail: "\0detail\0".into(),
        error: Some("err\0".into()),
        ..repair(3)
    };
    let record = store.record(nul).await.expect("record with NUL");
    let expected = NewRepair {
        node: "a\u{FFFD}b".into(),
        detail: "\u{FFFD}detail\u{FFFD}".into(),
        error: Some("err\u{FFFD}".into()),
        ..repair(3)
    };
    assert_eq!(record, with_id(record.id, expected));
    assert_eq!(store.recent(1).await.expect("recent"), vec![record]);
}

/// A row whose outcome no [`RepairOutcome`] has is an error naming it.
async fn corrupt_outcome_is_an_error<B: Bench<Store: RepairLog>>(bench: &B) {
    let store = fresh(bench, "corrupt").await;
    bench.raw_sql(&name("corrupt"), CORRUPT_ROW, None).await;
    let err = store.recent(10).await.expect_err("recent");
    assert!(
        matches!(&err, StoreError::CorruptRepair { reason, .. } if reason.contains("zombie")),
        "unexpected error: {err:?}"
    );
    bench.close(store).await;
}

/// What one store committed, a store opened later on the same database
/// reads, and its ids go on growing from there.
async fn persists_across_reopen<B: Bench<Store: RepairLog>>(bench: &B) {
    let name = name("reopen");
    bench.create(&name).await;
    let store = bench.open(&name).await;
    store.record(repair(1)).await.expect("record");
    let failed = NewRepair {
        outcome: RepairOutcome::Failed,
        error: Some("restart timed out".into()),
        ..repair(2)
    };
    store.record(failed).await.expect("record");
    let before = store.recent(10).await.expect("recent");
    bench.close(store).await;

    let store = bench.open(&name).await;
    assert_eq!(store.recent(10).await.expect("recent after reopen"), before);
    let third = store.record(repair(3)).await.expect("record after reopen");
    assert!(third.id > before[0].id, "id {} after {}", third.id, before[0].id);
    bench.close(store).await;
}

/// Two stores (two processes, or two replicas) recording at the same time,
/// several each, give every repair its own id, and all are kept.
async fn concurrent_records_get_distinct_ids<B: Bench<Store: RepairLog>>(bench: &B) {
    const EACH: u64 = 8;
    let name = name("concurrent");
    bench.create(&name).await;
    let (one, two) = tokio::join!(bench.open(&name), bench.open(&name));

    let recorded = join_all(
        (1..=EACH)
            .map(|n| one.record(repair(n)))
            .chain((EACH + 1..=2 * EACH).map(|n| two.record(repair(n)))),
    )
    .await;
    let ids: BTreeSet<i64> =
        recorded.into_iter().map(|record| record.expect("concurrent record").id).collect();
    assert_eq!(ids.len(), 2 * EACH as usize, "distinct ids");

    let stored = one.recent(100).await.expect("recent");
    let stored_ids: Vec<i64> = stored.iter().map(|record| record.id).collect();
    assert_eq!(stored_ids, ids.iter().rev().copied().collect::<Vec<_>>(), "all, newest first");
    let details: BTreeSet<String> = stored.into_iter().map(|record| record.detail).collect();
    assert_eq!(details, (1..=2 * EACH).map(|n| repair(n).detail).collect());
    tokio::join!(bench.close(one), bench.close(two));
}

// ---------------------------------------------------------------------------
// Fixtures.

/// A plain, successful repair, distinct for each `n`.
fn repair(n: u64) -> NewRepair {
    NewRepair {
        at_ms: 1_700_000_000_000 + n as i64,
        node: format!("node-{}", n % 3),
        kind: "restart_failed_components".into(),
        check: "collector_up".into(),
        detail: format!("restarted otelcol (repair {n})"),
        outcome: RepairOutcome::Done,
        error: None,
    }
}

/// `repair` as recorded under `id`.
fn with_id(id: i64, repair: NewRepair) -> RepairRecord {
    let NewRepair { at_ms, node, kind, check, detail, outcome, error } = repair;
    RepairRecord { id, at_ms, node, kind, check, detail, outcome, error }
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
