//! Log-directory discovery: log files found by where they sit on disk.
//!
//! Kubernetes and podman write container logs into directory layouts whose
//! paths carry the metadata the log lines lack (namespace, pod, container,
//! restart count, container id). This module recognises three of them:
//!
//! | layout | path | labels |
//! | --- | --- | --- |
//! | [`Layout::Pods`] | `<pods_dir>/<namespace>_<pod>_<uid>/<container>/<n>.log` | `k8s.namespace.name`, `k8s.pod.name`, `k8s.pod.uid`, `k8s.container.name`, `k8s.container.restart_count` |
//! | [`Layout::Containers`] | `<containers_dir>/<pod>_<namespace>_<container>-<64 hex id>.log` | `k8s.pod.name`, `k8s.namespace.name`, `k8s.container.name`, `container.id` |
//! | [`Layout::Podman`] | `<podman_dir>/<64 hex id>/userdata/ctr.log` | `container.id`, `container.runtime` |
//!
//! plus `__meta_logdir_layout` and `__meta_logdir_path` for relabel rules.
//!
//! A source is a file, identified by its realpath: the kubelet's
//! `/var/log/containers` entries are symlinks into `/var/log/pods`, and a
//! symlink and its target are one source whose labels are merged (the pods
//! layout's win; the container id only the containers name carries is added).
//!
//! Walks are bounded by each layout's depth and never follow a symlink to a
//! directory below a configured directory, so a symlink loop cannot make them
//! run forever; a looping or dangling file symlink is skipped with a logged
//! reason. File names that are not UTF-8 are skipped with a logged reason
//! rather than converted lossily: a lossy name would yield labels that match
//! nothing the collector derives from the real path, and no kubelet or podman
//! writes such names. Missing or unreadable directories are logged once and
//! never stop the other directories from being reported.
//!
//! [`LogDirDiscovery::watch`] uses inotify (through `notify`) recursively over
//! each configured directory, and for a directory that does not exist yet, a
//! non-recursive watch on its nearest existing ancestor, so it is picked up
//! when it appears. An inotify event only says *where* to look: the affected
//! subtree is walked again and the result diffed against what was reported,
//! which keeps reporting level-triggered (a burst of create, rename and delete
//! ends in the state on disk, not in a replay of the burst).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use notify::event::ModifyKind;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::{Collect, Discovery, Error, Event, Labels, Observed, Origin, SourceId};

/// Meta label: which layout the path matched (`pods`, `containers`, `podman`).
pub const META_LAYOUT: &str = "__meta_logdir_layout";
/// Meta label: the path as found in its layout (for a kubelet symlink and its
/// target, the pods-layout path).
pub const META_PATH: &str = "__meta_logdir_path";

/// A burst of filesystem events (a pod starting several containers, a
/// rotation's rename + create) is gathered for this long after its last event
/// before the affected subtrees are walked…
const DEBOUNCE_QUIET: Duration = Duration::from_millis(50);
/// …but never for longer than this after its first event, so a steady stream
/// of events cannot postpone reporting (the target is < 300 ms end to end).
const DEBOUNCE_MAX: Duration = Duration::from_millis(150);
/// Capacity of the channel from the inotify thread. When it is full, events
/// are dropped and a full resync follows, exactly as for a kernel queue
/// overflow: memory stays bounded whatever the churn.
const RAW_CAPACITY: usize = 4096;
/// Forced resyncs (watcher errors, overflows) are at least this far apart,
/// so a watcher that keeps failing cannot turn into back-to-back full walks.
const FORCED_RESYNC_GAP: Duration = Duration::from_secs(1);
/// Bounds of the periodic resync: a zero period would spin (and panics in
/// tokio), an enormous one would overflow the clock.
const RESYNC_MIN: Duration = Duration::from_secs(1);
const RESYNC_MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where log-directory discovery looks. Every directory is optional: one that
/// does not exist is reported once and picked up when it appears.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogDirSettings {
    /// Whether to watch log directories at all.
    pub enabled: bool,
    /// Kubelet's per-pod log directories.
    pub pods_dirs: Vec<PathBuf>,
    /// Kubelet's flat directory of symlinks into the pods directories.
    pub containers_dirs: Vec<PathBuf>,
    /// Podman's (and CRI-O's) per-container directories with `k8s-file` logs.
    pub podman_dirs: Vec<PathBuf>,
    /// How often `watch` walks everything again as a safety net against
    /// missed inotify events, in seconds (held between 1 s and a week).
    #[serde(deserialize_with = "crate::positive_secs")]
    pub resync_interval: Duration,
}

impl Default for LogDirSettings {
    fn default() -> Self {
        LogDirSettings {
            enabled: true,
            pods_dirs: vec!["/var/log/pods".into()],
            containers_dirs: vec!["/var/log/containers".into()],
            podman_dirs: vec!["/var/lib/containers/storage/overlay-containers".into()],
            resync_interval: Duration::from_secs(60),
        }
    }
}

/// A directory layout whose paths carry metadata. The declaration order is
/// the preference when a file is reachable through several layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layout {
    Pods,
    Containers,
    Podman,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Pods => "pods",
            Layout::Containers => "containers",
            Layout::Podman => "podman",
        }
    }

    /// How many path components below the configured directory a log file
    /// sits; walks never go deeper.
    fn depth(self) -> usize {
        match self {
            Layout::Pods | Layout::Podman => 3,
            Layout::Containers => 1,
        }
    }

    /// Whether `name` can be the `depth`-th component (1-based) of a log
    /// file's path in this layout.
    fn accepts(self, depth: usize, name: &str) -> bool {
        match (self, depth) {
            (Layout::Pods, 1) => split_pod_dir(name).is_some(),
            (Layout::Pods, 2) => !name.is_empty(),
            (Layout::Pods, 3) => restart_count(name).is_some(),
            (Layout::Containers, 1) => split_containers_name(name).is_some(),
            (Layout::Podman, 1) => is_container_id(name),
            (Layout::Podman, 2) => name == "userdata",
            (Layout::Podman, 3) => name == "ctr.log",
            _ => false,
        }
    }

    /// The labels a log file's path carries, from its path relative to the
    /// configured directory; `None` if it is not a log file of this layout
    /// (wrong depth, a rotated file, a malformed name, a non-UTF-8 name).
    /// Meta labels are not included: they depend on where the file was found.
    pub fn parse(self, relative: &Path) -> Option<Labels> {
        let names = relative
            .components()
            .map(|c| match c {
                Component::Normal(name) => name.to_str(),
                _ => None,
            })
            .collect::<Option<Vec<&str>>>()?;
        if names.len() != self.depth()
            || !names.iter().enumerate().all(|(i, name)| self.accepts(i + 1, name))
        {
            return None;
        }
        let labels: Vec<(&str, &str)> = match (self, names.as_slice()) {
            (Layout::Pods, [pod_dir, container, file]) => {
                let (namespace, pod, uid) = split_pod_dir(pod_dir)?;
                vec![
                    ("k8s.namespace.name", namespace),
                    ("k8s.pod.name", pod),
                    ("k8s.pod.uid", uid),
                    ("k8s.container.name", container),
                    ("k8s.container.restart_count", restart_count(file)?),
                ]
            }
            (Layout::Containers, [file]) => {
                let (pod, namespace, container, id) = split_containers_name(file)?;
                vec![
                    ("k8s.pod.name", pod),
                    ("k8s.namespace.name", namespace),
                    ("k8s.container.name", container),
                    ("container.id", id),
                ]
            }
            (Layout::Podman, [id, _, _]) => {
                vec![("container.id", id), ("container.runtime", "podman")]
            }
            _ => return None,
        };
        Some(labels.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
    }
}

/// `<namespace>_<pod>_<uid>`: none of the three can contain `_` (namespaces
/// and pod names are DNS names, uids are UUIDs or hashes).
fn split_pod_dir(name: &str) -> Option<(&str, &str, &str)> {
    let mut parts = name.split('_');
    let parts = (parts.next()?, parts.next()?, parts.next()?, parts.next());
    match parts {
        (namespace, pod, uid, None)
            if !namespace.is_empty() && !pod.is_empty() && !uid.is_empty() =>
        {
            Some((namespace, pod, uid))
        }
        _ => None,
    }
}

/// `<n>.log` → `n`. Rotated files (`0.log.20240101-120000`, `.gz`) do not
/// match: the collector reads the live file, and a rotated one is a copy.
fn restart_count(file: &str) -> Option<&str> {
    let n = file.strip_suffix(".log")?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(n)
}

/// `<pod>_<namespace>_<container>-<id>.log` → its four parts. Pod and
/// container names may contain `-`, so the id is found from the end: the last
/// 64 characters before `.log`, which must be lowercase hex and follow a `-`.
fn split_containers_name(file: &str) -> Option<(&str, &str, &str, &str)> {
    let stem = file.strip_suffix(".log")?;
    let split = stem.len().checked_sub(64)?;
    // `get` rather than slicing: a multi-byte character across the split
    // point means "not this layout", not a panic.
    let (head, id) = (stem.get(..split)?, stem.get(split..)?);
    if !is_container_id(id) {
        return None;
    }
    let (pod, namespace, container) = split_pod_dir(head.strip_suffix('-')?)?;
    Some((pod, namespace, container, id))
}

/// Docker, containerd, CRI-O and podman ids: 64 lowercase hex characters.
fn is_container_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// One configured directory and the layout its contents follow.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Root {
    layout: Layout,
    path: PathBuf,
}

/// Finds log files in the kubelet and podman directory layouts.
#[derive(Debug, Clone)]
pub struct LogDirDiscovery {
    roots: Vec<Root>,
    resync_interval: Duration,
}

impl LogDirDiscovery {
    /// Does not touch the filesystem: the directories may appear later.
    pub fn new(settings: LogDirSettings) -> Self {
        let configured = [
            (Layout::Pods, settings.pods_dirs),
            (Layout::Containers, settings.containers_dirs),
            (Layout::Podman, settings.podman_dirs),
        ];
        let mut roots: Vec<Root> = Vec::new();
        for (layout, dirs) in configured {
            for dir in dirs {
                // inotify reports absolute paths; roots must compare with them.
                let path = std::path::absolute(&dir).unwrap_or(dir);
                let root = Root { layout, path };
                if !roots.contains(&root) {
                    roots.push(root);
                }
            }
        }
        LogDirDiscovery { roots, resync_interval: settings.resync_interval }
    }
}

impl Discovery for LogDirDiscovery {
    fn origin(&self) -> Origin {
        Origin::LogDir
    }

    async fn snapshot(&self) -> Result<Vec<Observed>, Error> {
        let roots = self.roots.clone();
        let scan = blocking(move || scan_roots(&roots)).await.ok_or_else(|| Error::Io {
            path: self.roots.first().map(|r| r.path.clone()).unwrap_or_default(),
            source: io::Error::other("the runtime shut down during the walk"),
        })?;
        for report in &scan.problems {
            report.log();
        }
        Ok(merge(scan.found.iter()).into_values().collect())
    }

    async fn watch(self, events: mpsc::Sender<Event>) {
        let (raw_tx, mut raw_rx) = mpsc::channel(RAW_CAPACITY);
        let overflowed = Arc::new(AtomicBool::new(false));
        let mut state = Watching::new(self.roots, raw_tx, overflowed.clone());

        let Some((next, sources)) = blocking(move || {
            let sources = state.resync();
            (state, sources)
        })
        .await
        else {
            return;
        };
        state = next;
        tracing::info!(sources = sources.len(), "log directory discovery resync");
        if events.send(Event::Resync { origin: Origin::LogDir, sources }).await.is_err() {
            return;
        }

        let period = self.resync_interval.clamp(RESYNC_MIN, RESYNC_MAX);
        let mut periodic = tokio::time::interval_at(Instant::now() + period, period);
        periodic.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A forced resync waiting for `forced_allowed`, and why.
        let mut forced: Option<String> = None;
        let mut forced_allowed = Instant::now();

        loop {
            let work = tokio::select! {
                _ = events.closed() => return,
                Some(first) = raw_rx.recv() => {
                    let mut batch = gather(first, &mut raw_rx).await;
                    if overflowed.swap(false, Ordering::Relaxed) {
                        batch.rescan.get_or_insert_with(|| {
                            "more filesystem events than Steward could queue".into()
                        });
                    }
                    match batch.rescan {
                        Some(reason) if Instant::now() >= forced_allowed => Work::Forced(reason),
                        // Too soon after the last one: handle what is known
                        // now, resync once the gap has passed.
                        Some(reason) => {
                            forced.get_or_insert(reason);
                            Work::Batch(batch.paths)
                        }
                        None => Work::Batch(batch.paths),
                    }
                }
                _ = tokio::time::sleep_until(forced_allowed), if forced.is_some() => {
                    Work::Forced(forced.take().unwrap_or_default())
                }
                _ = periodic.tick() => Work::Periodic,
            };
            if matches!(work, Work::Forced(_)) {
                forced = None;
                forced_allowed = Instant::now() + FORCED_RESYNC_GAP;
            }
            let Some((next, out)) = blocking(move || {
                let out = state.handle(work);
                (state, out)
            })
            .await
            else {
                return;
            };
            state = next;
            for event in out {
                if events.send(event).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// One turn of the watch loop.
enum Work {
    /// Paths that inotify reported changed.
    Batch(BTreeSet<PathBuf>),
    /// Events were lost: walk everything, report a resync. The reason is logged.
    Forced(String),
    /// The safety net: walk everything, report a resync only if something
    /// changed that inotify did not report.
    Periodic,
}

/// Runs filesystem work off the async threads. `None` when the runtime is
/// shutting down; a panic in `f` is a bug and is propagated as one.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => Some(value),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => None,
    }
}

/// A log file found in one layout.
#[derive(Debug, Clone)]
struct Found {
    layout: Layout,
    /// Index of its root in the configured roots.
    root: usize,
    /// The path as found in the layout.
    seen: PathBuf,
    /// Its realpath: the source's identity and what the collector reads.
    canonical: PathBuf,
    labels: Labels,
}

/// Why a path was skipped. Every kind is logged, at a level that says how
/// much an operator should care.
#[derive(Debug)]
enum Problem {
    /// A configured directory does not exist (yet).
    Missing,
    /// A configured directory is something else, e.g. a regular file.
    NotADirectory,
    Unreadable(io::Error),
    /// A symlink loop: the path resolves to itself.
    Loop,
    /// A file symlink whose target does not exist (yet, or any more).
    Dangling,
    /// A symlink where the layout has a directory; not followed.
    DirSymlink,
    /// A name in the layout's shape that is not a regular file.
    NotAFile,
    NonUtf8,
    /// inotify could not watch a configured directory.
    Watch(notify::Error),
}

#[derive(Debug)]
struct Report {
    path: PathBuf,
    problem: Problem,
}

impl Report {
    /// Identifies a report across walks, so watching logs each problem once.
    fn key(&self) -> (PathBuf, &'static str) {
        let kind = match self.problem {
            Problem::Missing => "missing",
            Problem::NotADirectory => "not a directory",
            Problem::Unreadable(_) => "unreadable",
            Problem::Loop => "loop",
            Problem::Dangling => "dangling",
            Problem::DirSymlink => "dir symlink",
            Problem::NotAFile => "not a file",
            Problem::NonUtf8 => "non-utf8",
            Problem::Watch(_) => "watch",
        };
        (self.path.clone(), kind)
    }

    fn log(&self) {
        let path = self.path.display();
        match &self.problem {
            Problem::Missing => {
                tracing::info!(%path, "log directory does not exist (yet)")
            }
            Problem::NotADirectory => {
                tracing::warn!(%path, "configured log directory is not a directory; skipped")
            }
            Problem::Unreadable(error) => {
                tracing::warn!(%path, %error, "cannot read; skipped, other paths still reported")
            }
            Problem::Loop => tracing::warn!(%path, "symlink loop; skipped"),
            Problem::Dangling => {
                tracing::debug!(%path, "symlink to a missing file; skipped until it resolves")
            }
            Problem::DirSymlink => {
                tracing::debug!(%path, "symlink where the layout has a directory; not followed")
            }
            Problem::NotAFile => tracing::debug!(%path, "not a regular file; skipped"),
            Problem::NonUtf8 => {
                tracing::info!(path = %self.path.to_string_lossy(), "file name is not UTF-8; skipped")
            }
            Problem::Watch(error) => tracing::warn!(
                %path,
                %error,
                "cannot watch; changes there are seen only by the periodic resync"
            ),
        }
    }
}

/// What one walk found, including the symlinks that did not resolve (so an
/// incremental update can retry them) and what it skipped.
#[derive(Debug, Default)]
struct Scan {
    found: Vec<Found>,
    dangling: Vec<(usize, PathBuf)>,
    problems: Vec<Report>,
}

impl Scan {
    fn problem(&mut self, path: &Path, problem: Problem) {
        self.problems.push(Report { path: path.to_path_buf(), problem });
    }
}

fn scan_roots(roots: &[Root]) -> Scan {
    let mut scan = Scan::default();
    for (i, root) in roots.iter().enumerate() {
        walk(i, root, &root.path, 0, &mut scan);
    }
    scan
}

/// Walks `path`, `depth` components below `root` (whose names the caller has
/// checked against the layout), down to the layout's depth.
fn walk(root_index: usize, root: &Root, path: &Path, depth: usize, scan: &mut Scan) {
    if depth == root.layout.depth() {
        return leaf(root_index, root, path, scan);
    }
    // The configured directory itself may be a symlink (a log disk mounted
    // elsewhere); below it, directory symlinks are never followed: no layout
    // uses them, and one pointing upwards would be a loop.
    if depth > 0 {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return scan.problem(path, Problem::DirSymlink);
            }
            Ok(meta) if !meta.is_dir() => return,
            Ok(_) => {}
            // Removed while we walked: nothing to report there.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => return scan.problem(path, Problem::Unreadable(e)),
        }
    }
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if depth == 0 => {
            let problem = match e.kind() {
                io::ErrorKind::NotFound => Problem::Missing,
                io::ErrorKind::NotADirectory => Problem::NotADirectory,
                _ if is_loop(&e) => Problem::Loop,
                _ => Problem::Unreadable(e),
            };
            return scan.problem(path, problem);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => return scan.problem(path, Problem::Unreadable(e)),
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                scan.problem(path, Problem::Unreadable(e));
                continue;
            }
        };
        let child = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            scan.problem(&child, Problem::NonUtf8);
            continue;
        };
        if root.layout.accepts(depth + 1, name) {
            walk(root_index, root, &child, depth + 1, scan);
        }
    }
}

/// A path in a log file's position: a regular file, or a symlink that
/// resolves to one.
fn leaf(root_index: usize, root: &Root, path: &Path, scan: &mut Scan) {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => return scan.problem(path, Problem::Unreadable(e)),
    };
    let canonical = match fs::canonicalize(path) {
        Ok(canonical) => canonical,
        Err(e) if is_loop(&e) => return scan.problem(path, Problem::Loop),
        Err(e) if e.kind() == io::ErrorKind::NotFound && meta.file_type().is_symlink() => {
            scan.dangling.push((root_index, path.to_path_buf()));
            return scan.problem(path, Problem::Dangling);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => return scan.problem(path, Problem::Unreadable(e)),
    };
    match fs::metadata(&canonical) {
        Ok(target) if target.is_file() => {}
        Ok(_) => return scan.problem(path, Problem::NotAFile),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => return scan.problem(path, Problem::Unreadable(e)),
    }
    let Some(labels) = path.strip_prefix(&root.path).ok().and_then(|rel| root.layout.parse(rel))
    else {
        return;
    };
    scan.found.push(Found {
        layout: root.layout,
        root: root_index,
        seen: path.to_path_buf(),
        canonical,
        labels,
    });
}

fn is_loop(error: &io::Error) -> bool {
    error.raw_os_error() == Some(libc::ELOOP)
}

/// Sources from found files: one per realpath, labels merged in layout
/// preference order (the first layout's value wins a conflict).
fn merge<'a>(found: impl Iterator<Item = &'a Found>) -> BTreeMap<SourceId, Observed> {
    let mut groups: BTreeMap<&Path, Vec<&Found>> = BTreeMap::new();
    for f in found {
        groups.entry(&f.canonical).or_default().push(f);
    }
    let mut sources = BTreeMap::new();
    for (canonical, mut members) in groups {
        members.sort_by(|a, b| (a.layout, &a.seen).cmp(&(b.layout, &b.seen)));
        let Some((primary, others)) = members.split_first() else { continue };
        let mut labels = primary.labels.clone();
        for other in others {
            for (key, value) in &other.labels {
                labels.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        labels.insert(META_LAYOUT.into(), primary.layout.as_str().into());
        labels.insert(META_PATH.into(), primary.seen.to_string_lossy().into_owned());
        let id = SourceId::file(canonical);
        sources.insert(
            id.clone(),
            Observed {
                id,
                origin: Origin::LogDir,
                path: canonical.to_path_buf(),
                labels,
                collect: Collect::Yes,
            },
        );
    }
    sources
}

/// What the inotify thread hands to the async loop.
#[derive(Debug)]
enum Raw {
    Paths(Vec<PathBuf>),
    /// Events were lost (kernel queue overflow) or the watcher failed.
    Rescan(String),
}

/// Events gathered over one debounce window.
#[derive(Debug, Default)]
struct Batch {
    paths: BTreeSet<PathBuf>,
    rescan: Option<String>,
}

impl Batch {
    fn add(&mut self, raw: Raw) {
        match raw {
            Raw::Paths(paths) => self.paths.extend(paths),
            Raw::Rescan(reason) => {
                self.rescan.get_or_insert(reason);
            }
        }
    }
}

async fn gather(first: Raw, rx: &mut mpsc::Receiver<Raw>) -> Batch {
    let mut batch = Batch::default();
    batch.add(first);
    let hard = Instant::now() + DEBOUNCE_MAX;
    while let Ok(Some(raw)) =
        tokio::time::timeout_at((Instant::now() + DEBOUNCE_QUIET).min(hard), rx.recv()).await
    {
        batch.add(raw);
    }
    batch
}

/// Whether an event can change which log files exist. Opens, reads, writes
/// and attribute changes cannot, and they are most of the traffic: every log
/// line written is a modify event, and Steward's own walks are open events.
fn changes_names(kind: &EventKind) -> bool {
    !matches!(
        kind,
        EventKind::Access(_)
            | EventKind::Modify(ModifyKind::Data(_))
            | EventKind::Modify(ModifyKind::Metadata(_))
    )
}

/// An inotify watcher that forwards only events at or above a root (a root
/// appearing) or below one, without blocking the inotify thread.
fn new_watcher(
    roots: &[Root],
    tx: mpsc::Sender<Raw>,
    overflowed: Arc<AtomicBool>,
) -> notify::Result<RecommendedWatcher> {
    let roots: Vec<PathBuf> = roots.iter().map(|r| r.path.clone()).collect();
    let handler = move |result: notify::Result<notify::Event>| {
        let raw = match result {
            Ok(event) if event.need_rescan() => {
                Raw::Rescan("the kernel's inotify queue overflowed".into())
            }
            Ok(event) if !changes_names(&event.kind) => return,
            Ok(event) => {
                let paths: Vec<PathBuf> = event
                    .paths
                    .into_iter()
                    .filter(|p| roots.iter().any(|r| p.starts_with(r) || r.starts_with(p)))
                    .collect();
                if paths.is_empty() {
                    return;
                }
                Raw::Paths(paths)
            }
            Err(error) => Raw::Rescan(format!("inotify watcher: {error}")),
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(raw) {
            overflowed.store(true, Ordering::Relaxed);
        }
    };
    // The layouts never need a directory symlink followed, and following one
    // would add watches outside the configured directories.
    RecommendedWatcher::new(handler, notify::Config::default().with_follow_symlinks(false))
}

#[derive(Debug, Default, Clone, Copy)]
struct RootState {
    exists: bool,
    watched: bool,
    /// The last attempt to watch it failed; retried on resync only, so a
    /// persistent failure (inotify limits) is not retried on every event.
    watch_failed: bool,
}

/// Everything `watch` keeps between batches. Its methods do filesystem work
/// and run on the blocking pool.
struct Watching {
    roots: Vec<Root>,
    states: Vec<RootState>,
    /// Non-recursive watches on the nearest existing ancestors of missing
    /// roots, to see them appear.
    ancestors: BTreeSet<PathBuf>,
    watcher: Option<RecommendedWatcher>,
    tx: mpsc::Sender<Raw>,
    overflowed: Arc<AtomicBool>,
    found: BTreeMap<(usize, PathBuf), Found>,
    dangling: BTreeSet<(usize, PathBuf)>,
    /// What was last reported.
    current: BTreeMap<SourceId, Observed>,
    /// Problems already logged, so each is logged once while it lasts.
    reported: HashSet<(PathBuf, &'static str)>,
}

impl Watching {
    fn new(roots: Vec<Root>, tx: mpsc::Sender<Raw>, overflowed: Arc<AtomicBool>) -> Self {
        Watching {
            states: vec![RootState::default(); roots.len()],
            roots,
            ancestors: BTreeSet::new(),
            watcher: None,
            tx,
            overflowed,
            found: BTreeMap::new(),
            dangling: BTreeSet::new(),
            current: BTreeMap::new(),
            reported: HashSet::new(),
        }
    }

    /// (Re)establishes the watches, retrying failed ones, then walks every
    /// root and returns all sources. Watches come first so that nothing
    /// created during the walk is missed.
    fn resync(&mut self) -> Vec<Observed> {
        let mut problems = Vec::new();
        self.ensure_watches(true, &mut problems);
        let scan = scan_roots(&self.roots);
        self.found = scan.found.into_iter().map(|f| ((f.root, f.seen.clone()), f)).collect();
        self.dangling = scan.dangling.into_iter().collect();
        self.current = merge(self.found.values());
        problems.extend(scan.problems);
        // A fresh set: a problem that went away and came back is logged again.
        let previous = std::mem::take(&mut self.reported);
        for report in problems {
            let key = report.key();
            if !previous.contains(&key) {
                report.log();
            }
            self.reported.insert(key);
        }
        self.current.values().cloned().collect()
    }

    fn handle(&mut self, work: Work) -> Vec<Event> {
        match work {
            Work::Batch(paths) => self.apply(paths),
            Work::Forced(reason) => {
                tracing::warn!(%reason, "log directory discovery: full resync");
                vec![Event::Resync { origin: Origin::LogDir, sources: self.resync() }]
            }
            Work::Periodic => {
                let before = std::mem::take(&mut self.current);
                let sources = self.resync();
                if self.current == before {
                    return Vec::new();
                }
                tracing::info!(
                    sources = sources.len(),
                    "log directory discovery: the periodic resync found changes inotify missed"
                );
                vec![Event::Resync { origin: Origin::LogDir, sources }]
            }
        }
    }

    /// Walks again what the events touched and returns the changes.
    fn apply(&mut self, paths: BTreeSet<PathBuf>) -> Vec<Event> {
        let mut problems = Vec::new();
        let mut refresh: BTreeSet<PathBuf> = BTreeSet::new();
        for path in paths {
            for (root, state) in self.roots.iter().zip(self.states.iter_mut()) {
                // The root itself (or a directory above it) was created,
                // removed or renamed: its watch, if any, is stale.
                if root.path.starts_with(&path) {
                    if state.watched {
                        if let Some(watcher) = &mut self.watcher {
                            let _ = watcher.unwatch(&root.path);
                        }
                        state.watched = false;
                    }
                    refresh.insert(root.path.clone());
                }
            }
            refresh.insert(path);
        }
        for i in self.ensure_watches(false, &mut problems) {
            refresh.insert(self.roots[i].path.clone());
        }

        // Walk each touched subtree once: in sorted order a path's
        // descendants follow it, so one covered by the last walk is skipped.
        let mut removed_targets: BTreeSet<PathBuf> = BTreeSet::new();
        let mut scan = Scan::default();
        for (i, root) in self.roots.iter().enumerate() {
            let mut last: Option<&Path> = None;
            for path in &refresh {
                let Some(depth) = layout_depth_of(root, path) else { continue };
                if last.is_some_and(|walked| path.starts_with(walked)) {
                    continue;
                }
                last = Some(path);
                removed_targets.extend(remove_under(&mut self.found, i, path));
                self.dangling.retain(|(r, p)| !(*r == i && p.starts_with(path)));
                walk(i, root, path, depth, &mut scan);
            }
        }

        // Symlinks whose target changed: retry those that did not resolve,
        // and re-resolve those that pointed to a file just removed.
        let stale: Vec<(usize, PathBuf)> = self
            .found
            .iter()
            .filter(|(_, f)| removed_targets.contains(&f.canonical))
            .map(|(key, _)| key.clone())
            .chain(std::mem::take(&mut self.dangling))
            .collect();
        for (i, path) in stale {
            self.found.remove(&(i, path.clone()));
            leaf(i, &self.roots[i], &path, &mut scan);
        }

        self.found.extend(scan.found.into_iter().map(|f| ((f.root, f.seen.clone()), f)));
        self.dangling.extend(scan.dangling);
        problems.extend(scan.problems);
        for report in problems {
            if self.reported.insert(report.key()) {
                report.log();
            }
        }

        let next = merge(self.found.values());
        let mut events = Vec::new();
        for id in self.current.keys() {
            if !next.contains_key(id) {
                events.push(Event::Remove { id: id.clone() });
            }
        }
        for (id, observed) in &next {
            if self.current.get(id) != Some(observed) {
                events.push(Event::Upsert(observed.clone()));
            }
        }
        self.current = next;
        events
    }

    /// Watches every existing root recursively and, for each missing one,
    /// its nearest existing ancestor. Returns the roots that appeared or
    /// disappeared since the last call. `retry` retries failed watches.
    fn ensure_watches(&mut self, retry: bool, problems: &mut Vec<Report>) -> Vec<usize> {
        if self.watcher.is_none() && retry {
            match new_watcher(&self.roots, self.tx.clone(), self.overflowed.clone()) {
                Ok(watcher) => self.watcher = Some(watcher),
                Err(error) => {
                    let path = self.roots.first().map(|r| r.path.clone()).unwrap_or_default();
                    problems.push(Report { path, problem: Problem::Watch(error) });
                }
            }
        }

        let mut changed = Vec::new();
        for (i, root) in self.roots.iter().enumerate() {
            let state = &mut self.states[i];
            let exists = fs::metadata(&root.path).is_ok_and(|m| m.is_dir());
            if exists != state.exists {
                state.exists = exists;
                changed.push(i);
            }
            let Some(watcher) = &mut self.watcher else { continue };
            if exists && !state.watched && (retry || !state.watch_failed) {
                match watcher.watch(&root.path, RecursiveMode::Recursive) {
                    Ok(()) => *state = RootState { exists, watched: true, watch_failed: false },
                    Err(error) => {
                        state.watch_failed = true;
                        problems.push(Report {
                            path: root.path.clone(),
                            problem: Problem::Watch(error),
                        });
                    }
                }
            } else if !exists && state.watched {
                let _ = watcher.unwatch(&root.path);
                state.watched = false;
            }
        }

        let Some(watcher) = &mut self.watcher else { return changed };
        let watched_roots: Vec<&Path> = self
            .roots
            .iter()
            .zip(&self.states)
            .filter(|(_, s)| s.watched)
            .map(|(r, _)| r.path.as_path())
            .collect();
        let wanted: BTreeSet<PathBuf> = self
            .roots
            .iter()
            .zip(&self.states)
            .filter(|(_, s)| !s.exists)
            .filter_map(|(r, _)| nearest_existing_ancestor(&r.path))
            // Inside a watched root the recursive watch already sees it, and a
            // second, non-recursive watch on the same path would replace it.
            .filter(|a| !watched_roots.iter().any(|r| a.starts_with(r)))
            .collect();
        for gone in self.ancestors.difference(&wanted) {
            let _ = watcher.unwatch(gone);
        }
        let mut held = BTreeSet::new();
        for ancestor in wanted {
            if self.ancestors.contains(&ancestor)
                || watcher.watch(&ancestor, RecursiveMode::NonRecursive).is_ok()
            {
                held.insert(ancestor);
            }
            // A failed ancestor watch only delays noticing the root until the
            // next event or resync; the missing root is already reported.
        }
        self.ancestors = held;
        changed
    }
}

/// How many components `path` is below `root`, if it is inside it, no deeper
/// than the layout's files, and every component fits the layout (elsewhere
/// there is nothing to find).
fn layout_depth_of(root: &Root, path: &Path) -> Option<usize> {
    let relative = path.strip_prefix(&root.path).ok()?;
    let mut depth = 0;
    for component in relative.components() {
        let Component::Normal(name) = component else { return None };
        depth += 1;
        if !root.layout.accepts(depth, name.to_str()?) {
            return None;
        }
    }
    Some(depth)
}

/// Forgets what was found at or below `prefix` in root `root`; returns the
/// realpaths of the forgotten files.
fn remove_under(
    found: &mut BTreeMap<(usize, PathBuf), Found>,
    root: usize,
    prefix: &Path,
) -> Vec<PathBuf> {
    // Paths order component-wise, so everything below `prefix` sorts right
    // after it, before its next sibling.
    let keys: Vec<(usize, PathBuf)> = found
        .range((root, prefix.to_path_buf())..)
        .take_while(|((r, p), _)| *r == root && p.starts_with(prefix))
        .map(|(key, _)| key.clone())
        .collect();
    keys.into_iter().filter_map(|key| found.remove(&key)).map(|f| f.canonical).collect()
}

fn nearest_existing_ancestor(path: &Path) -> Option<PathBuf> {
    path.ancestors().skip(1).find(|a| fs::metadata(a).is_ok_and(|m| m.is_dir())).map(Into::into)
}
