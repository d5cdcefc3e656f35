//! Static sources: globs from `steward.yaml`, validated and reported as written.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use steward_discovery::static_files::{StaticDiscovery, StaticSource};
use steward_discovery::{Collect, Discovery, Error, Event, Observed, Origin, SourceId};
use tokio::sync::mpsc;
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(10);

fn source(path: &str, labels: &[(&str, &str)]) -> StaticSource {
    StaticSource {
        path: path.into(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

fn rejected(path: &str) -> (String, String) {
    match StaticDiscovery::new(vec![source("/var/log/ok.log", &[]), source(path, &[])]) {
        Err(Error::InvalidGlob { glob, reason }) => (glob, reason),
        Err(other) => panic!("{path:?}: expected InvalidGlob, got {other:?}"),
        Ok(_) => panic!("{path:?} was accepted"),
    }
}

/// Valid globs (`*`, `**`, `?`, classes, alternatives) each become one
/// source: id `static:<glob>`, the glob as path, the user's labels, collected.
#[tokio::test]
async fn valid_globs_become_one_source_each() {
    let globs = [
        "/var/log/app/*.log",
        "/srv/**/logs/*.log",
        "/var/log/a?c/[0-9].log",
        "/opt/{x,y}/out.txt",
    ];
    let discovery = StaticDiscovery::new(
        globs.iter().map(|g| source(g, &[("service.name", "app"), ("team", "core")])).collect(),
    )
    .expect("valid globs");
    assert_eq!(discovery.origin(), Origin::Static);
    let sources = discovery.snapshot().await.expect("snapshot");
    let labels: BTreeMap<String, String> =
        [("service.name", "app"), ("team", "core")].map(|(k, v)| (k.into(), v.into())).into();
    let want: Vec<Observed> = globs
        .iter()
        .map(|g| Observed {
            id: SourceId::static_glob(g),
            origin: Origin::Static,
            path: PathBuf::from(g),
            labels: labels.clone(),
            collect: Collect::Yes,
        })
        .collect();
    assert_eq!(sources, want);
    assert_eq!(sources[0].id.as_str(), "static:/var/log/app/*.log");
}

/// Relative, empty, malformed (unclosed class or alternative) and duplicate
/// globs are rejected with an `InvalidGlob` that names the glob.
#[test]
fn bad_globs_are_rejected_naming_the_glob() {
    for (glob, reason_has) in [
        ("var/log/*.log", "absolute"),
        ("./app.log", "absolute"),
        ("*.log", "absolute"),
        ("", "empty"),
        ("/var/log/[abc.log", "unclosed"),
        ("/var/log/{a,b.log", "unclosed"),
        ("/var/log/ok.log", "more than once"),
    ] {
        let (named, reason) = rejected(glob);
        assert_eq!(named, glob);
        assert!(reason.contains(reason_has), "{glob:?}: reason {reason:?}");
        let message = Error::InvalidGlob { glob: named, reason }.to_string();
        assert!(message.contains(&format!("{glob:?}")), "{message}");
    }
}

/// `steward.yaml` entries: labels are optional, unknown fields are refused.
#[test]
fn entries_deserialize_strictly() {
    let entry: StaticSource = serde_json::from_str(r#"{"path": "/a/*.log"}"#).expect("entry");
    assert_eq!(entry, source("/a/*.log", &[]));
    let entry: StaticSource =
        serde_json::from_str(r#"{"path": "/a/*.log", "labels": {"k": "v"}}"#).expect("entry");
    assert_eq!(entry, source("/a/*.log", &[("k", "v")]));
    assert!(serde_json::from_str::<StaticSource>(r#"{"path": "/a", "label": {}}"#).is_err());
    assert!(serde_json::from_str::<StaticSource>(r#"{"labels": {}}"#).is_err());
}

/// Watch sends exactly one resync with every source, then stays until its
/// receiver closes, and returns then.
#[tokio::test]
async fn watch_sends_one_resync_and_returns_when_closed() {
    let discovery = StaticDiscovery::new(vec![source("/var/log/app/*.log", &[("k", "v")])])
        .expect("valid glob");
    let want = discovery.snapshot().await.expect("snapshot");
    let (tx, mut rx) = mpsc::channel(4);
    let task = tokio::spawn(discovery.watch(tx));

    let first = timeout(DEADLINE, rx.recv()).await.expect("resync before the deadline");
    assert_eq!(first, Some(Event::Resync { origin: Origin::Static, sources: want }));
    assert!(rx.try_recv().is_err(), "nothing after the resync");
    assert!(!task.is_finished(), "watch must not return while the receiver is open");

    drop(rx);
    timeout(DEADLINE, task).await.expect("watch returned").expect("watch did not panic");
}
