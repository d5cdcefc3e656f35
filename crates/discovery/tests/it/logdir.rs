//! Log-directory discovery against real files and real inotify in temp dirs.
//!
//! Tests run as root, where `chmod 000` does not stop a read; unreadable
//! directories are therefore stood in for by paths that cannot be listed for
//! other reasons (a regular file where a directory belongs, a dangling or
//! looping symlink). The periodic resync is set to an hour, so no test passes
//! because of it: every change must arrive through inotify.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use steward_discovery::logdir::{Layout, LogDirDiscovery, LogDirSettings, META_LAYOUT, META_PATH};
use steward_discovery::{Collect, Discovery, Event, Labels, Observed, Origin, SourceId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Deadline for anything the code under test must do; generous, since a
/// loaded 2-core machine can be slow, and a pass never waits for it.
const DEADLINE: Duration = Duration::from_secs(10);

const ID_A: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const ID_B: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A temp dir (by its realpath, so expected ids match) with the three
/// layout directories configured under it.
struct Tree {
    _dir: tempfile::TempDir,
    base: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = fs::canonicalize(dir.path()).expect("realpath of temp dir");
        for sub in ["pods", "containers", "podman"] {
            fs::create_dir(base.join(sub)).expect("layout dir");
        }
        Tree { _dir: dir, base }
    }

    fn settings(&self) -> LogDirSettings {
        LogDirSettings {
            enabled: true,
            pods_dirs: vec![self.base.join("pods")],
            containers_dirs: vec![self.base.join("containers")],
            podman_dirs: vec![self.base.join("podman")],
            resync_interval: Duration::from_secs(3600),
        }
    }

    /// Writes `relative` (creating its directories) and returns its path.
    fn file(&self, relative: &str) -> PathBuf {
        let path = self.base.join(relative);
        fs::create_dir_all(path.parent().expect("parent")).expect("parent dirs");
        fs::write(&path, "2024-01-01T00:00:00Z stdout F hello\n").expect("write log file");
        path
    }

    fn link(&self, relative: &str, target: &Path) -> PathBuf {
        let path = self.base.join(relative);
        symlink(target, &path).expect("symlink");
        path
    }
}

async fn snapshot(settings: LogDirSettings) -> Vec<Observed> {
    timeout(DEADLINE, LogDirDiscovery::new(settings).snapshot())
        .await
        .expect("snapshot finished before the deadline")
        .expect("snapshot")
}

fn find<'a>(sources: &'a [Observed], path: &Path) -> &'a Observed {
    sources
        .iter()
        .find(|o| o.id == SourceId::file(path))
        .unwrap_or_else(|| panic!("no source for {}; got {sources:#?}", path.display()))
}

/// Starts `watch` and returns its receiver and task.
fn start_watch(settings: LogDirSettings) -> (mpsc::Receiver<Event>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(64);
    let task = tokio::spawn(LogDirDiscovery::new(settings).watch(tx));
    (rx, task)
}

/// Receives events until one satisfies `want`, failing at the deadline with
/// the last events received.
async fn wait_for(
    rx: &mut mpsc::Receiver<Event>,
    what: &str,
    want: impl Fn(&Event) -> bool,
) -> Event {
    const KEEP: usize = 10;
    let mut last = std::collections::VecDeque::new();
    let mut others = 0;
    let found = timeout(DEADLINE, async {
        while let Some(event) = rx.recv().await {
            if want(&event) {
                return Some(event);
            }
            others += 1;
            if last.len() == KEEP {
                last.pop_front();
            }
            last.push_back(event);
        }
        None
    })
    .await;
    let seen = format!("{others} other events, the last {}: {last:#?}", last.len());
    match found {
        Ok(Some(event)) => event,
        Ok(None) => panic!("watch ended before {what}; {seen}"),
        Err(_) => panic!("no {what} within {DEADLINE:?}; {seen}"),
    }
}

async fn initial_resync(rx: &mut mpsc::Receiver<Event>) -> Vec<Observed> {
    match wait_for(rx, "initial resync", |_| true).await {
        Event::Resync { origin: Origin::LogDir, sources } => sources,
        other => panic!("first event is not a log_dir resync: {other:?}"),
    }
}

fn is_upsert_of(path: &Path) -> impl Fn(&Event) -> bool {
    let id = SourceId::file(path);
    move |e| matches!(e, Event::Upsert(o) if o.id == id)
}

fn upserted(event: Event) -> Observed {
    match event {
        Event::Upsert(observed) => observed,
        other => panic!("expected an upsert, got {other:?}"),
    }
}

/// Pods layout: namespace, pod, uid, container and restart count come from
/// the path, and pod and container names with dashes stay whole.
#[test]
fn pods_layout_yields_k8s_labels() {
    let parsed = Layout::Pods.parse(Path::new(
        "kube-system_coredns-7db6d8ff4d-x2x9k_5f0e8a8c-1111-2222-3333-444455556666/core-dns-sidecar/12.log",
    ));
    assert_eq!(
        parsed,
        Some(labels(&[
            ("k8s.namespace.name", "kube-system"),
            ("k8s.pod.name", "coredns-7db6d8ff4d-x2x9k"),
            ("k8s.pod.uid", "5f0e8a8c-1111-2222-3333-444455556666"),
            ("k8s.container.name", "core-dns-sidecar"),
            ("k8s.container.restart_count", "12"),
        ]))
    );
}

/// Pods layout: rotated and compressed files, non-numeric names, malformed
/// pod directories and wrong depths are not log files.
#[test]
fn pods_layout_rejects_rotated_and_malformed_paths() {
    for path in [
        "ns_pod_uid/c/0.log.20240101-120000",
        "ns_pod_uid/c/0.log.20240101-120000.gz",
        "ns_pod_uid/c/0.log.gz",
        "ns_pod_uid/c/x.log",
        "ns_pod_uid/c/.log",
        "ns_pod_uid/c/-1.log",
        "ns_pod_uid/c/0.txt",
        "ns_pod/c/0.log",
        "ns_pod_uid_extra/c/0.log",
        "ns__uid/c/0.log",
        "ns_pod_uid/0.log",
        "ns_pod_uid/c/d/0.log",
        "/abs_pod_uid/c/0.log",
        "ns_pod_uid/../0.log",
    ] {
        assert_eq!(Layout::Pods.parse(Path::new(path)), None, "{path}");
    }
}

/// Containers layout: the id is the last 64 hex characters; pod and
/// container names may contain dashes (and the container name may look like
/// it ends in an id fragment).
#[test]
fn containers_layout_takes_the_id_from_the_end() {
    let name = format!("web-7f9c-abcde_shop-prod_nginx-proxy-beef-{ID_A}.log");
    assert_eq!(
        Layout::Containers.parse(Path::new(&name)),
        Some(labels(&[
            ("k8s.pod.name", "web-7f9c-abcde"),
            ("k8s.namespace.name", "shop-prod"),
            ("k8s.container.name", "nginx-proxy-beef"),
            ("container.id", ID_A),
        ]))
    );
}

/// Containers layout: an id of 63 or 65 hex characters, uppercase or
/// non-hex ids, a missing dash or name part, rotated files and non-ASCII
/// names around the split point are rejected (and nothing panics).
#[test]
fn containers_layout_rejects_wrong_ids_and_names() {
    let id63 = &ID_A[..63];
    let bad = [
        format!("pod_ns_c-{id63}.log"),
        format!("pod_ns_c-{ID_A}0.log"),
        format!("pod_ns_c-{}.log", ID_A.to_uppercase()),
        format!("pod_ns_c-{}g.log", &ID_A[..63]),
        format!("pod_ns_c{ID_A}.log"),
        format!("pod_ns-{ID_A}.log"),
        format!("pod__c-{ID_A}.log"),
        format!("pod_ns_c_d-{ID_A}.log"),
        format!("pod_ns_c-{ID_A}.log.1"),
        format!("pod_ns_c-{ID_A}"),
        format!("pod_ns_c-é{}.log", &ID_A[..63]),
        format!("{}é.log", "a".repeat(63)),
        "é".repeat(40) + ".log",
        ".log".to_string(),
    ];
    for name in bad {
        assert_eq!(Layout::Containers.parse(Path::new(&name)), None, "{name}");
    }
}

/// Podman layout: `<id>/userdata/ctr.log` yields the id and the runtime;
/// other files in `userdata` and short ids do not count.
#[test]
fn podman_layout_yields_container_id() {
    assert_eq!(
        Layout::Podman.parse(Path::new(&format!("{ID_B}/userdata/ctr.log"))),
        Some(labels(&[("container.id", ID_B), ("container.runtime", "podman")]))
    );
    for path in [
        format!("{ID_B}/userdata/config.json"),
        format!("{ID_B}/userdata/ctr.log.1"),
        format!("{ID_B}/ctr.log"),
        format!("{}/userdata/ctr.log", &ID_B[..12]),
        format!("{ID_B}/other/ctr.log"),
    ] {
        assert_eq!(Layout::Podman.parse(Path::new(&path)), None, "{path}");
    }
}

/// Settings: `{}` gives the kubelet and podman defaults and a 60 s resync;
/// every field can be set; unknown fields and non-positive intervals fail.
#[test]
fn settings_have_defaults_and_reject_unknown_fields() {
    let defaults: LogDirSettings = serde_json::from_str("{}").expect("empty settings");
    assert_eq!(defaults, LogDirSettings::default());
    assert_eq!(defaults.pods_dirs, [PathBuf::from("/var/log/pods")]);
    assert_eq!(defaults.containers_dirs, [PathBuf::from("/var/log/containers")]);
    assert_eq!(
        defaults.podman_dirs,
        [PathBuf::from("/var/lib/containers/storage/overlay-containers")]
    );
    assert_eq!(defaults.resync_interval, Duration::from_secs(60));

    let set: LogDirSettings =
        serde_json::from_str(r#"{"pods_dirs": ["/p"], "podman_dirs": [], "resync_interval": 2.5}"#)
            .expect("settings");
    assert_eq!(set.pods_dirs, [PathBuf::from("/p")]);
    assert!(set.podman_dirs.is_empty());
    assert_eq!(set.containers_dirs, LogDirSettings::default().containers_dirs);
    assert_eq!(set.resync_interval, Duration::from_millis(2500));

    assert!(serde_json::from_str::<LogDirSettings>(r#"{"pod_dirs": ["/p"]}"#).is_err());
    assert!(serde_json::from_str::<LogDirSettings>(r#"{"resync_interval": 0}"#).is_err());
}

/// Snapshot of a tree with every layout plus noise (rotated files, stray
/// files, malformed names): exactly the live log files, each with its layout
/// labels, meta labels, its realpath as path, and `Collect::Yes`.
#[tokio::test]
async fn snapshot_finds_every_layout_and_skips_noise() {
    let tree = Tree::new();
    let pod0 = tree.file("pods/default_web-1_uid-1/app/0.log");
    let pod1 = tree.file("pods/default_web-1_uid-1/app/1.log");
    tree.file("pods/default_web-1_uid-1/app/0.log.20240101-120000");
    tree.file("pods/default_web-1_uid-1/app/0.log.20240101-120000.gz");
    tree.file("pods/not-a-pod-dir/app/0.log");
    tree.file("pods/stray.log");
    let plain = tree.file(&format!("containers/api-0_prod_server-{ID_A}.log"));
    tree.file(&format!("containers/api-0_prod_server-{}.log", &ID_A[..63]));
    tree.file("containers/README");
    let podman = tree.file(&format!("podman/{ID_B}/userdata/ctr.log"));
    tree.file(&format!("podman/{ID_B}/userdata/config.json"));
    tree.file(&format!("podman/{}/userdata/ctr.log", &ID_B[..12]));

    let sources = snapshot(tree.settings()).await;
    let mut ids: Vec<&SourceId> = sources.iter().map(|o| &o.id).collect();
    ids.sort();
    let mut want = [
        SourceId::file(&pod0),
        SourceId::file(&pod1),
        SourceId::file(&plain),
        SourceId::file(&podman),
    ];
    want.sort();
    assert_eq!(ids, want.iter().collect::<Vec<_>>());

    let o = find(&sources, &pod1);
    assert_eq!(o.origin, Origin::LogDir);
    assert_eq!(o.collect, Collect::Yes);
    assert_eq!(o.path, pod1);
    assert_eq!(o.labels["k8s.pod.name"], "web-1");
    assert_eq!(o.labels["k8s.pod.uid"], "uid-1");
    assert_eq!(o.labels["k8s.container.restart_count"], "1");
    assert_eq!(o.labels[META_LAYOUT], "pods");
    assert_eq!(o.labels[META_PATH], pod1.to_str().unwrap());

    let o = find(&sources, &plain);
    assert_eq!(o.labels["container.id"], ID_A);
    assert_eq!(o.labels["k8s.container.name"], "server");
    assert_eq!(o.labels[META_LAYOUT], "containers");

    let o = find(&sources, &podman);
    assert_eq!(
        o.labels,
        labels(&[
            ("container.id", ID_B),
            ("container.runtime", "podman"),
            (META_LAYOUT, "podman"),
            (META_PATH, podman.to_str().unwrap()),
        ])
    );
}

/// A `/var/log/containers` symlink to a `/var/log/pods` file is one source:
/// the pods file's id and path, the pods layout's labels and meta labels,
/// plus the container id that only the symlink's name carries.
#[tokio::test]
async fn containers_symlink_and_its_pods_file_are_one_source() {
    let tree = Tree::new();
    let target = tree.file("pods/prod_api-0_uid-9/server/0.log");
    tree.link(&format!("containers/api-0_prod_server-{ID_A}.log"), &target);

    let sources = snapshot(tree.settings()).await;
    assert_eq!(sources.len(), 1, "{sources:#?}");
    let o = &sources[0];
    assert_eq!(o.id, SourceId::file(&target));
    assert_eq!(o.path, target);
    assert_eq!(
        o.labels,
        labels(&[
            ("container.id", ID_A),
            ("k8s.container.name", "server"),
            ("k8s.container.restart_count", "0"),
            ("k8s.namespace.name", "prod"),
            ("k8s.pod.name", "api-0"),
            ("k8s.pod.uid", "uid-9"),
            (META_LAYOUT, "pods"),
            (META_PATH, target.to_str().unwrap()),
        ])
    );
}

/// Symlink loops (two file links pointing at each other, a directory link
/// back up the pods tree, a configured directory that links to itself) end
/// neither snapshot nor watch's first resync in a hang or a crash, and the
/// real files beside them are still reported.
#[tokio::test]
async fn symlink_loops_are_skipped() {
    let tree = Tree::new();
    let good = tree.file("pods/ns_pod_uid/c/0.log");
    let a = tree.base.join(format!("containers/a_ns_c-{ID_A}.log"));
    let b = tree.base.join(format!("containers/b_ns_c-{ID_A}.log"));
    symlink(&b, &a).unwrap();
    symlink(&a, &b).unwrap();
    tree.link("pods/ns_pod_uid/loop", &tree.base.join("pods"));
    tree.link("pods/ns_loop_uid", Path::new("."));
    let self_loop = tree.link("selfloop", &tree.base.join("selfloop"));

    let mut settings = tree.settings();
    settings.pods_dirs.push(self_loop);
    let sources = snapshot(settings.clone()).await;
    assert_eq!(sources.iter().map(|o| &o.id).collect::<Vec<_>>(), [&SourceId::file(&good)]);

    let (mut rx, task) = start_watch(settings);
    let initial = initial_resync(&mut rx).await;
    assert_eq!(initial.iter().map(|o| &o.id).collect::<Vec<_>>(), [&SourceId::file(&good)]);
    task.abort();
}

/// A configured directory that cannot be listed (here a regular file, a
/// dangling symlink, a path that does not exist; see the module comment for
/// why not chmod 000), or an unlistable pod directory, does not stop the
/// other directories from being reported.
#[tokio::test]
async fn unreadable_and_missing_dirs_do_not_stop_the_others() {
    let tree = Tree::new();
    let good = tree.file("pods/ns_pod_uid/c/0.log");
    let podman = tree.file(&format!("podman/{ID_B}/userdata/ctr.log"));
    let not_a_dir = tree.file("not-a-dir");
    // A pod directory that is a regular file: listing it fails.
    tree.file("pods/ns_file_uid");
    let dangling = tree.link("dangling", &tree.base.join("nowhere"));

    let mut settings = tree.settings();
    settings.pods_dirs =
        vec![not_a_dir, dangling.clone(), tree.base.join("missing/pods"), tree.base.join("pods")];
    settings.containers_dirs = vec![dangling];
    let sources = snapshot(settings).await;
    let mut ids: Vec<&SourceId> = sources.iter().map(|o| &o.id).collect();
    ids.sort();
    let mut want = [SourceId::file(&good), SourceId::file(&podman)];
    want.sort();
    assert_eq!(ids, want.iter().collect::<Vec<_>>());
}

/// A file name that is not UTF-8 is skipped (not converted lossily), and
/// files beside it are still reported.
#[tokio::test]
async fn non_utf8_names_are_skipped() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let tree = Tree::new();
    let good = tree.file("pods/ns_pod_uid/c/0.log");
    let bad_dir = tree.base.join("pods").join(OsStr::from_bytes(b"ns_p\xffd_uid"));
    fs::create_dir_all(bad_dir.join("c")).unwrap();
    fs::write(bad_dir.join("c/0.log"), "x").unwrap();
    let mut name = b"p_ns_c\xff-".to_vec();
    name.extend_from_slice(format!("{ID_A}.log").as_bytes());
    fs::write(tree.base.join("containers").join(OsStr::from_bytes(&name)), "x").unwrap();

    let sources = snapshot(tree.settings()).await;
    let ids: Vec<&SourceId> = sources.iter().map(|o| &o.id).collect();
    assert_eq!(ids, [&SourceId::file(&good)]);
}

/// Watch: the first event is a resync listing the files already there.
#[tokio::test]
async fn watch_starts_with_a_resync_of_existing_files() {
    let tree = Tree::new();
    let pod = tree.file("pods/ns_pod_uid/c/0.log");
    let podman = tree.file(&format!("podman/{ID_B}/userdata/ctr.log"));

    let (mut rx, task) = start_watch(tree.settings());
    let mut ids: Vec<SourceId> = initial_resync(&mut rx).await.into_iter().map(|o| o.id).collect();
    ids.sort();
    let mut want = vec![SourceId::file(&pod), SourceId::file(&podman)];
    want.sort();
    assert_eq!(ids, want);
    task.abort();
}

/// Watch: creating a pods log file yields an upsert with its labels, and
/// deleting it yields a remove, both through inotify.
#[tokio::test]
async fn watch_reports_a_created_then_deleted_file() {
    let tree = Tree::new();
    fs::create_dir_all(tree.base.join("pods/ns_pod_uid/c")).unwrap();
    let (mut rx, task) = start_watch(tree.settings());
    assert!(initial_resync(&mut rx).await.is_empty());

    let path = tree.file("pods/ns_pod_uid/c/0.log");
    let o = upserted(wait_for(&mut rx, "upsert of 0.log", is_upsert_of(&path)).await);
    assert_eq!(o.labels["k8s.container.name"], "c");
    assert_eq!(o.labels["k8s.container.restart_count"], "0");

    fs::remove_file(&path).unwrap();
    let id = SourceId::file(&path);
    wait_for(&mut rx, "remove of 0.log", |e| matches!(e, Event::Remove { id: i } if *i == id))
        .await;
    task.abort();
}

/// Watch: a whole pod directory tree created after the watch started is
/// found (files written before inotify watched the new directories too), and
/// a containers symlink added next to it merges its container id into the
/// same source. A rotated file written first produces no event of its own.
#[tokio::test]
async fn watch_picks_up_new_trees_and_symlinks() {
    let tree = Tree::new();
    let (mut rx, task) = start_watch(tree.settings());
    assert!(initial_resync(&mut rx).await.is_empty());

    tree.file("pods/web_api-7d-x_uid-3/side-car/0.log.20240101-120000");
    let path = tree.file("pods/web_api-7d-x_uid-3/side-car/0.log");
    let first = wait_for(&mut rx, "first upsert", |e| matches!(e, Event::Upsert(_))).await;
    let first = upserted(first);
    assert_eq!(first.id, SourceId::file(&path), "the rotated file must not be a source");
    assert_eq!(first.labels["k8s.pod.name"], "api-7d-x");

    tree.link(&format!("containers/api-7d-x_web_side-car-{ID_A}.log"), &path);
    let id = SourceId::file(&path);
    let merged = wait_for(
        &mut rx,
        "upsert with container.id",
        |e| matches!(e, Event::Upsert(o) if o.id == id && o.labels.contains_key("container.id")),
    )
    .await;
    let merged = upserted(merged);
    assert_eq!(merged.labels["container.id"], ID_A);
    assert_eq!(merged.labels[META_LAYOUT], "pods");
    task.abort();
}

/// Watch: a configured directory that does not exist at start is watched
/// for, and files in it are reported once it is created (with `mkdir -p`).
#[tokio::test]
async fn watch_picks_up_a_configured_dir_created_later() {
    let tree = Tree::new();
    let mut settings = tree.settings();
    settings.podman_dirs = vec![tree.base.join("later/storage/overlay-containers")];
    let (mut rx, task) = start_watch(settings);
    assert!(initial_resync(&mut rx).await.is_empty());

    let path = tree.file(&format!("later/storage/overlay-containers/{ID_B}/userdata/ctr.log"));
    let o = upserted(wait_for(&mut rx, "upsert of ctr.log", is_upsert_of(&path)).await);
    assert_eq!(o.labels["container.id"], ID_B);
    task.abort();
}

/// Watch: renaming a log file out of its layout position (as rotation does)
/// removes it, and renaming one in adds it.
#[tokio::test]
async fn watch_follows_renames() {
    let tree = Tree::new();
    let live = tree.file("pods/ns_pod_uid/c/0.log");
    let staged = tree.file("pods/ns_pod_uid/c/staging");
    let (mut rx, task) = start_watch(tree.settings());
    assert_eq!(initial_resync(&mut rx).await.len(), 1);

    fs::rename(&live, tree.base.join("pods/ns_pod_uid/c/0.log.20240101-120000")).unwrap();
    let id = SourceId::file(&live);
    wait_for(
        &mut rx,
        "remove after rename out",
        |e| matches!(e, Event::Remove { id: i } if *i == id),
    )
    .await;

    let next = tree.base.join("pods/ns_pod_uid/c/1.log");
    fs::rename(&staged, &next).unwrap();
    wait_for(&mut rx, "upsert after rename in", is_upsert_of(&next)).await;
    task.abort();
}

/// Watch returns soon after its receiver is dropped, even with no
/// filesystem activity.
#[tokio::test]
async fn watch_returns_when_the_receiver_closes() {
    let tree = Tree::new();
    let (mut rx, task) = start_watch(tree.settings());
    initial_resync(&mut rx).await;
    drop(rx);
    timeout(DEADLINE, task).await.expect("watch returned").expect("watch did not panic");
}

/// Whether some inotify instance of this process watches `dir`'s inode:
/// `/proc/self/fdinfo` lists each inotify watch as `inotify wd:… ino:<hex> …`.
fn inotify_watches(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let ino = format!("ino:{:x} ", fs::metadata(dir).map_err(|e| e.to_string())?.ino());
    let fds = fs::read_dir("/proc/self/fd").map_err(|e| e.to_string())?;
    for fd in fds.flatten() {
        let is_inotify =
            fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == "anon_inode:inotify");
        let info = Path::new("/proc/self/fdinfo").join(fd.file_name());
        if is_inotify && fs::read_to_string(info).is_ok_and(|info| info.contains(&ino)) {
            return Ok(());
        }
    }
    Err(format!("no inotify watch on {}", dir.display()))
}

/// Watch: when filesystem events arrive faster than they can be handled
/// (here: the consumer reads nothing while 5,000 files appear, more than the
/// 4,096 events queued from inotify), events are dropped and a fresh resync
/// reports the complete state; nothing is lost.
#[tokio::test]
async fn watch_resyncs_after_an_event_overflow() {
    let tree = Tree::new();
    let dir = tree.base.join("pods/ns_pod_uid/c");
    fs::create_dir_all(&dir).unwrap();
    // A full channel blocks watch at its first send, after its watches are
    // set up: from then on it reads no inotify event until the test reads.
    let (tx, mut rx) = mpsc::channel(1);
    tx.send(Event::Remove { id: SourceId::from_raw("plug") }).await.unwrap();
    let task = tokio::spawn(LogDirDiscovery::new(tree.settings()).watch(tx));
    steward_testbed::eventually("inotify watch on the container dir", DEADLINE, || async {
        inotify_watches(&dir)
    })
    .await
    .expect("watch set up");

    const FILES: usize = 5000;
    for n in 0..FILES {
        fs::write(dir.join(format!("{n}.log")), "").unwrap();
    }
    assert!(matches!(rx.recv().await, Some(Event::Remove { .. })), "the plug comes first");
    // The initial resync may have seen some files; the second one, forced by
    // the overflow, must see them all.
    initial_resync(&mut rx).await;
    wait_for(&mut rx, "a second resync with every file", |e| {
        matches!(e, Event::Resync { origin: Origin::LogDir, sources } if sources.len() == FILES)
    })
    .await;
    task.abort();
}
