//! The config version history suite: one set of checks, generic over
//! [`VersionStore`], run against SQLite (files in a temp dir) and against a
//! real PostgreSQL from the test bench, each both directly and through
//! [`AnyStore::open`].
//!
//! Like the source store suite, every check gets a database of its own (on
//! PostgreSQL, one database per check in one server), so checks share no rows.
//! The hashes are made-up hex strings: the store takes the caller's SHA-256
//! and does not recompute it.

use std::collections::BTreeSet;

use crate::bench::{Bench, PgBench, SqliteBench, ViaAny};
use futures_util::future::join_all;
use steward_registry::store::{ConfigVersion, StoreError, VersionStatus, VersionStore};

const CORRUPT_ROW: &str = "INSERT INTO config_versions \
                           (hash, yaml, created_ms, reason, status, generation) \
                           VALUES ($1, 'x: 1', 1, 'planted', 'zombie', 1)";

// ---------------------------------------------------------------------------
// The suite.

async fn check_all<B: Bench<Store: VersionStore>>(bench: &B) {
    let store = fresh(bench, "record").await;
    record_is_content_addressed(&store).await;
    bench.close(store).await;

    let store = fresh(bench, "refuse").await;
    record_refuses_bad_hashes_and_other_yaml(&store).await;
    bench.close(store).await;

    let store = fresh(bench, "applied").await;
    mark_applied_supersedes_the_previous(&store).await;
    bench.close(store).await;

    let store = fresh(bench, "failed").await;
    mark_failed_keeps_the_reason(&store).await;
    bench.close(store).await;

    let store = fresh(bench, "get").await;
    get_by_hash_prefix_or_short_name(&store).await;
    bench.close(store).await;

    let store = fresh(bench, "history").await;
    history_is_newest_first_and_limited(&store).await;
    bench.close(store).await;

    let store = fresh(bench, "last_good").await;
    last_good_is_the_newest_applied_that_did_not_fail(&store).await;
    bench.close(store).await;

    corrupt_status_is_an_error(bench).await;
    persists_across_reopen(bench).await;
    concurrent_records_get_distinct_generations(bench).await;
    concurrent_applies_leave_one_applied(bench).await;
}

/// The database of one check: a valid SQL identifier and directory name alike.
fn name(check: &str) -> String {
    format!("versions_{check}")
}

async fn fresh<B: Bench<Store: VersionStore>>(bench: &B, check: &str) -> B::Store {
    let name = name(check);
    bench.create(&name).await;
    let store = bench.open(&name).await;
    assert_eq!(store.history(usize::MAX).await.expect("history"), vec![], "{check}: empty");
    assert_eq!(store.applied().await.expect("applied"), None, "{check}: nothing applied");
    assert_eq!(store.last_good(None).await.expect("last good"), None, "{check}: none good");
    store
}

/// Recording the same hash again returns the first version untouched (its
/// reason, time and generation), whatever the second call says; a new hash
/// gets the next generation. Every field reads back as written, including
/// YAML and reasons nobody should have to escape.
async fn record_is_content_addressed<S: VersionStore>(store: &S) {
    let yaml = hostile_yaml();
    let first = store.record(&hash(1), &yaml, "3 sources changed", 1_000).await.expect("record");
    assert_eq!(
        first,
        ConfigVersion {
            hash: hash(1),
            yaml: yaml.clone(),
            created_ms: 1_000,
            reason: "3 sources changed".to_owned(),
            status: VersionStatus::Candidate,
            failure: None,
            failed_ms: None,
            applied_ms: None,
            generation: 1,
        }
    );
    assert_eq!(lookup(store, &hash(1)).await, first, "what record returns is what is stored");

    let again = store.record(&hash(1), &yaml, "startup", 2_000).await.expect("record again");
    assert_eq!(again, first, "same bytes, same version");

    let reason = "rollback to cfg-0123456789ab: 'quoted' \"twice\" ; DROP TABLE x; --\nü🚀";
    let second = store.record(&hash(2), "receivers: {}\n", reason, 3_000).await.expect("record");
    assert_eq!((second.generation, second.reason.as_str()), (2, reason));
    assert_eq!(lookup(store, &hash(2)).await, second);

    // Re-recording an applied version does not make it a candidate again.
    store.mark_applied(&hash(1), 4_000).await.expect("apply");
    let applied = store.record(&hash(1), &yaml, "regenerated", 5_000).await.expect("record");
    assert_eq!((applied.status, applied.generation), (VersionStatus::Applied, 1));

    let third = store.record(&hash(3), "", "empty", 6_000).await.expect("record empty YAML");
    assert_eq!(third.generation, 3);
    assert_eq!(store.history(usize::MAX).await.expect("history").len(), 3);
}

/// A hash that is not 64 lowercase hex digits is refused, and so is a known
/// hash with other YAML; neither writes anything.
async fn record_refuses_bad_hashes_and_other_yaml<S: VersionStore>(store: &S) {
    for bad in
        [String::new(), "cfg-0123456789ab".into(), hash(1).to_uppercase(), hash(1)[1..].into()]
    {
        let err = store.record(&bad, "a: 1\n", "bad", 1).await.expect_err(&bad);
        assert!(
            matches!(&err, StoreError::BadVersionName { name, .. } if *name == bad),
            "{bad:?}: unexpected error: {err:?}"
        );
    }
    assert_eq!(store.history(10).await.expect("history"), vec![], "nothing recorded");

    let kept = store.record(&hash(1), "a: 1\n", "first", 1).await.expect("record");
    let err = store.record(&hash(1), "a: 2\n", "other bytes", 2).await.expect_err("other YAML");
    assert!(
        matches!(&err, StoreError::VersionMismatch { hash: h } if *h == hash(1)),
        "unexpected error: {err:?}"
    );
    assert_eq!(store.history(10).await.expect("history"), vec![kept]);
}

/// Applying makes the previous applied version superseded (keeping when it
/// was applied) in the same step; applying the applied version again changes
/// nothing; a rollback re-applies a superseded one; an unknown hash is an
/// error that changes nothing.
async fn mark_applied_supersedes_the_previous<S: VersionStore>(store: &S) {
    let a = store.record(&hash(1), "a: 1\n", "first", 100).await.expect("record a");
    let b = store.record(&hash(2), "b: 1\n", "second", 200).await.expect("record b");

    let a_applied = store.mark_applied(&a.hash, 1_000).await.expect("apply a");
    assert_eq!(
        a_applied,
        ConfigVersion { status: VersionStatus::Applied, applied_ms: Some(1_000), ..a.clone() }
    );
    assert_eq!(store.applied().await.expect("applied"), Some(a_applied.clone()));

    let b_applied = store.mark_applied(&b.hash, 2_000).await.expect("apply b");
    assert_eq!((b_applied.status, b_applied.applied_ms), (VersionStatus::Applied, Some(2_000)));
    assert_eq!(
        lookup(store, &a.hash).await,
        ConfigVersion { status: VersionStatus::Superseded, ..a_applied.clone() },
        "a steps down and keeps when it was applied"
    );
    assert_eq!(store.applied().await.expect("applied"), Some(b_applied.clone()));

    let repeated = store.mark_applied(&b.hash, 3_000).await.expect("apply b again");
    assert_eq!(repeated, b_applied, "a repeated apply keeps the first time");

    let rollback = store.mark_applied(&a.hash, 4_000).await.expect("roll back to a");
    assert_eq!((rollback.status, rollback.applied_ms), (VersionStatus::Applied, Some(4_000)));
    assert_eq!(lookup(store, &b.hash).await.status, VersionStatus::Superseded);

    let err = store.mark_applied(&hash(99), 5_000).await.expect_err("unknown hash");
    assert!(
        matches!(&err, StoreError::UnknownVersion { hash: h } if *h == hash(99)),
        "unexpected error: {err:?}"
    );
    assert_eq!(
        store.applied().await.expect("applied"),
        Some(rollback),
        "a failed apply does not supersede the applied version"
    );
    let statuses: Vec<VersionStatus> =
        store.history(10).await.expect("history").iter().map(|v| v.status).collect();
    assert_eq!(statuses, [VersionStatus::Superseded, VersionStatus::Applied]);
}

/// A failed version keeps its reason and time; failing the applied version
/// leaves none applied but keeps when it ran; applying a failed version
/// (an operator's override) clears the failure.
async fn mark_failed_keeps_the_reason<S: VersionStore>(store: &S) {
    let a = store.record(&hash(1), "a: 1\n", "first", 100).await.expect("record a");
    let b = store.record(&hash(2), "b: 1\n", "second", 200).await.expect("record b");

    let why = "otelcol validate: 'exporters::otlp_http': missing endpoint\nline 2";
    let b_failed = store.mark_failed(&b.hash, why, 300).await.expect("fail candidate b");
    assert_eq!(
        b_failed,
        ConfigVersion {
            status: VersionStatus::Failed,
            failure: Some(why.to_owned()),
            failed_ms: Some(300),
            ..b.clone()
        }
    );
    assert_eq!(lookup(store, &b.hash).await, b_failed);

    store.mark_applied(&a.hash, 400).await.expect("apply a");
    let a_failed = store.mark_failed(&a.hash, "crashed after rollout", 500).await.expect("fail a");
    assert_eq!(
        (a_failed.status, a_failed.applied_ms, a_failed.failure.as_deref()),
        (VersionStatus::Failed, Some(400), Some("crashed after rollout"))
    );
    assert_eq!(store.applied().await.expect("applied"), None, "nothing is applied now");

    let err = store.mark_failed(&hash(99), "no such", 600).await.expect_err("unknown hash");
    assert!(
        matches!(&err, StoreError::UnknownVersion { hash: h } if *h == hash(99)),
        "unexpected error: {err:?}"
    );

    let forced = store.mark_applied(&b.hash, 700).await.expect("apply failed b");
    assert_eq!(
        forced,
        ConfigVersion { status: VersionStatus::Applied, applied_ms: Some(700), ..b },
        "applying clears the failure"
    );
}

/// `get` takes a full hash, a prefix of 6 or more hex digits (in either
/// case), or the `cfg-` short name; several matches are an error naming what
/// was asked, no match is `None`, and malformed names are refused.
async fn get_by_hash_prefix_or_short_name<S: VersionStore>(store: &S) {
    // Two hashes sharing their first 8 digits, and one that does not.
    let twin_a = format!("abcdef01{}", &hash(1)[8..]);
    let twin_b = format!("abcdef01{}", &hash(2)[8..]);
    let lone = format!("0fedcb98{}", &hash(3)[8..]);
    let a = store.record(&twin_a, "a: 1\n", "a", 1).await.expect("record a");
    let b = store.record(&twin_b, "b: 1\n", "b", 2).await.expect("record b");
    let c = store.record(&lone, "c: 1\n", "c", 3).await.expect("record c");

    assert_eq!(store.get(&twin_a).await.expect("full hash"), Some(a.clone()));
    assert_eq!(store.get(&twin_b).await.expect("full hash"), Some(b.clone()));
    assert_eq!(store.get(&twin_a[..12]).await.expect("12-digit prefix"), Some(a.clone()));
    assert_eq!(store.get("0fedcb").await.expect("6-digit prefix"), Some(c.clone()));
    assert_eq!(store.get("0FEDCB98").await.expect("upper case"), Some(c.clone()));
    assert_eq!(store.get(&c.name()).await.expect("short name"), Some(c.clone()));
    assert_eq!(c.name(), format!("cfg-{}", &lone[..12]));
    assert_eq!(store.get(&a.name()).await.expect("short name of a twin"), Some(a.clone()));

    for ambiguous in ["abcdef", "abcdef01", "cfg-abcdef0"] {
        let err = store.get(ambiguous).await.expect_err(ambiguous);
        assert!(
            matches!(&err, StoreError::AmbiguousVersion { prefix } if prefix == ambiguous),
            "{ambiguous}: unexpected error: {err:?}"
        );
    }

    for unknown in ["123456", "cfg-ffffffffffff", hash(9).as_str()] {
        assert_eq!(store.get(unknown).await.expect(unknown), None, "{unknown} matches nothing");
    }

    for malformed in ["abcde", "cfg-abc", "", "abcdeg", "abc%", "______", "cfg_abcdef01"] {
        let err = store.get(malformed).await.expect_err(malformed);
        assert!(
            matches!(&err, StoreError::BadVersionName { name, .. } if name == malformed),
            "{malformed:?}: unexpected error: {err:?}"
        );
    }
}

/// `history` is newest generation first, whatever the timestamps say, and
/// stops at `limit`.
async fn history_is_newest_first_and_limited<S: VersionStore>(store: &S) {
    // Timestamps run backwards (a clock stepped back), generations do not.
    for n in 1..=5 {
        store.record(&hash(n), &format!("n: {n}\n"), "step", 10_000 - n as i64).await.expect("rec");
    }
    let all = store.history(100).await.expect("history");
    let generations: Vec<i64> = all.iter().map(|v| v.generation).collect();
    assert_eq!(generations, [5, 4, 3, 2, 1]);
    let hashes: Vec<String> = all.iter().map(|v| v.hash.clone()).collect();
    assert_eq!(hashes, (1..=5).rev().map(hash).collect::<Vec<_>>());

    assert_eq!(store.history(2).await.expect("history"), all[..2].to_vec());
    assert_eq!(store.history(0).await.expect("history"), vec![]);
    assert_eq!(store.history(usize::MAX).await.expect("history"), all);
}

/// `last_good` is the newest applied or superseded version: failed ones and
/// never-applied candidates are skipped, and so is `except`.
async fn last_good_is_the_newest_applied_that_did_not_fail<S: VersionStore>(store: &S) {
    for n in 1..=5 {
        store.record(&hash(n), &format!("n: {n}\n"), "step", n as i64).await.expect("record");
    }
    let [a, b, c, d, _e] = [1, 2, 3, 4, 5].map(hash);
    store.mark_applied(&a, 10).await.expect("apply a");
    store.mark_applied(&b, 20).await.expect("apply b");
    store.mark_applied(&c, 30).await.expect("apply c");
    store.mark_failed(&c, "health check failed", 40).await.expect("fail c");
    store.mark_failed(&d, "validation failed", 50).await.expect("fail candidate d");
    // Now: a superseded, b superseded, c failed (was applied), d failed, e candidate.

    assert_eq!(good(store, None).await, Some(b.clone()), "newest superseded, not failed c");
    assert_eq!(good(store, Some(b.as_str())).await, Some(a.clone()));
    assert_eq!(good(store, Some(a.as_str())).await, Some(b.clone()));
    assert_eq!(
        good(store, Some(c.as_str())).await,
        Some(b.clone()),
        "excepting a failed one: no change"
    );

    store.mark_applied(&a, 60).await.expect("roll back to a");
    assert_eq!(good(store, None).await, Some(b.clone()), "by generation, not by applied time");
    assert_eq!(good(store, Some(b.as_str())).await, Some(a.clone()), "the applied one counts");

    store.mark_failed(&a, "crashed", 70).await.expect("fail a");
    store.mark_failed(&b, "found broken", 80).await.expect("fail b");
    assert_eq!(good(store, None).await, None, "every applied version failed");
}

/// A row whose status no [`VersionStatus`] has is an error naming it.
async fn corrupt_status_is_an_error<B: Bench<Store: VersionStore>>(bench: &B) {
    let store = fresh(bench, "corrupt").await;
    let zombie = hash(7);
    bench.raw_sql(&name("corrupt"), CORRUPT_ROW, Some(&zombie)).await;

    for err in [
        store.get(&zombie).await.expect_err("get"),
        store.history(10).await.expect_err("history"),
        store.record(&zombie, "x: 1", "again", 2).await.expect_err("record"),
    ] {
        assert!(
            matches!(&err, StoreError::CorruptVersion { hash, reason }
                if *hash == zombie && reason.contains("zombie")),
            "unexpected error: {err:?}"
        );
    }
    bench.close(store).await;
}

/// What one store committed, a store opened later on the same database reads,
/// and it goes on numbering where the first left off.
async fn persists_across_reopen<B: Bench<Store: VersionStore>>(bench: &B) {
    let name = name("reopen");
    bench.create(&name).await;
    let store = bench.open(&name).await;
    store.record(&hash(1), "a: 1\n", "first", 1).await.expect("record a");
    store.record(&hash(2), "b: 1\n", "second", 2).await.expect("record b");
    store.mark_applied(&hash(1), 3).await.expect("apply a");
    store.mark_applied(&hash(2), 4).await.expect("apply b");
    store.mark_failed(&hash(2), "crashed", 5).await.expect("fail b");
    let before = store.history(10).await.expect("history");
    bench.close(store).await;

    let store = bench.open(&name).await;
    assert_eq!(store.history(10).await.expect("history after reopen"), before);
    assert_eq!(good(&store, None).await, Some(hash(1)));
    let third = store.record(&hash(3), "c: 1\n", "third", 6).await.expect("record c");
    assert_eq!(third.generation, 3);
    bench.close(store).await;
}

/// Two stores (two processes, or two replicas) recording different hashes at
/// the same time, several each, give every version its own generation, with
/// no gaps.
async fn concurrent_records_get_distinct_generations<B: Bench<Store: VersionStore>>(bench: &B) {
    const EACH: u64 = 8;
    let name = name("concurrent_record");
    bench.create(&name).await;
    let (one, two) = tokio::join!(bench.open(&name), bench.open(&name));

    let yamls: Vec<(String, String)> =
        (1..=2 * EACH).map(|n| (hash(n), format!("n: {n}\n"))).collect();
    let (by_one, by_two) = yamls.split_at(EACH as usize);
    let recorded = join_all(
        by_one
            .iter()
            .map(|(h, yaml)| one.record(h, yaml, "one", 1))
            .chain(by_two.iter().map(|(h, yaml)| two.record(h, yaml, "two", 2))),
    )
    .await;

    let generations: BTreeSet<i64> =
        recorded.into_iter().map(|v| v.expect("concurrent record").generation).collect();
    assert_eq!(generations, (1..=2 * EACH as i64).collect(), "distinct and gapless");
    let stored: BTreeSet<i64> =
        two.history(100).await.expect("history").iter().map(|v| v.generation).collect();
    assert_eq!(stored, generations);
    tokio::join!(bench.close(one), bench.close(two));
}

/// Two stores applying different versions at the same time end with exactly
/// one applied version, the other superseded.
async fn concurrent_applies_leave_one_applied<B: Bench<Store: VersionStore>>(bench: &B) {
    let name = name("concurrent_apply");
    bench.create(&name).await;
    let (one, two) = tokio::join!(bench.open(&name), bench.open(&name));
    for n in 1..=3 {
        one.record(&hash(n), &format!("n: {n}\n"), "step", n as i64).await.expect("record");
    }
    one.mark_applied(&hash(1), 10).await.expect("apply the first");

    let (second, third) = (hash(2), hash(3));
    let (by_one, by_two) =
        tokio::join!(one.mark_applied(&second, 20), two.mark_applied(&third, 30));
    by_one.expect("concurrent apply through one");
    by_two.expect("concurrent apply through two");

    let history = one.history(10).await.expect("history");
    let applied: Vec<&ConfigVersion> =
        history.iter().filter(|v| v.status == VersionStatus::Applied).collect();
    assert_eq!(applied.len(), 1, "exactly one applied: {history:#?}");
    let superseded = history.iter().filter(|v| v.status == VersionStatus::Superseded).count();
    assert_eq!(superseded, 2, "the others superseded: {history:#?}");
    assert_eq!(two.applied().await.expect("applied").as_ref(), Some(applied[0]));
    tokio::join!(bench.close(one), bench.close(two));
}

// ---------------------------------------------------------------------------
// Fixtures.

/// A made-up SHA-256 hex digest, distinct for each `seed`, with no shared
/// leading digits between small seeds (splitmix64, four rounds).
fn hash(seed: u64) -> String {
    let mut state = seed;
    (0..4)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            format!("{:016x}", z ^ (z >> 31))
        })
        .collect()
}

/// The version with full hash `hash`, which must exist.
async fn lookup<S: VersionStore>(store: &S, hash: &str) -> ConfigVersion {
    store.get(hash).await.expect("get").unwrap_or_else(|| panic!("version {hash} is recorded"))
}

/// The hash of `last_good(except)`.
async fn good<S: VersionStore>(store: &S, except: Option<&str>) -> Option<String> {
    store.last_good(except).await.expect("last good").map(|v| v.hash)
}

/// A collector config with what breaks naive quoting in SQL or YAML, plus a
/// 200 KB body (a config of many sources is large).
fn hostile_yaml() -> String {
    let mut yaml = String::from(
        "receivers:\n  file_log/src_0123:\n    include: ['/var/log/it''s here/*.log']\n    \
         resource:\n      k: \"${env:HOME} $$X '); DROP TABLE config_versions; --\"\n      \
         u: \"Grüße, 東京, 🚀\\t\\u0000\"\n",
    );
    while yaml.len() < 200 * 1024 {
        yaml.push_str("# padding line of a long generated config\n");
    }
    yaml
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
