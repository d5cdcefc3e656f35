//! `AgentManager` rollouts against real parts: the real `otelcol-steward`,
//! run and restarted by [`Supervised`], its own `validate` for pre-flight and
//! as the shadow collector of the canary; VictoriaLogs (standing in for Loki)
//! as the log store every config exports to; SQLite for the version history.
//! Every collector config is made by `generate_config`, except the variants
//! that are broken on purpose.

use std::ffi::CString;
use std::net::TcpListener;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use steward_agent::atomic::write_atomic;
use steward_agent::canary::{CanaryVerdict, canary_reload};
use steward_agent::manager::{content_hash, short};
use steward_agent::runner::{CollectorRunner as _, RunnerEvent, SuperviseSettings, Supervised};
use steward_agent::verify::{EXITED, write_marker};
use steward_agent::{AgentEvent, AgentManager, AgentSettings, Outcome};
use steward_config::settings::{LogsExporter, LogsSettings, OtlpHttp, PipelineSettings};
use steward_config::{Rendered, Source, generate_config};
use steward_registry::store::{ConfigVersion, SqliteStore, VersionStatus, VersionStore as _};
use steward_testbed::parts::{VictoriaLogs, http_client};
use steward_testbed::{Testbed, eventually, free_port};

/// How long a line may take to show up in VictoriaLogs.
const ARRIVAL: Duration = Duration::from_secs(60);

type Manager = AgentManager<Supervised, SqliteStore>;

/// Collector settings with every port free, storage and canary inside `dir`,
/// and logs exported to `logs_endpoint`.
fn pipeline_settings(dir: &Path, logs_endpoint: String) -> PipelineSettings {
    PipelineSettings {
        storage_dir: dir.join("storage").display().to_string(),
        fsync: false,
        canary_path: dir.join("canary").join("canary.log").display().to_string(),
        health_check: format!("127.0.0.1:{}", free_port()),
        telemetry: format!("127.0.0.1:{}", free_port()),
        otlp_grpc: format!("127.0.0.1:{}", free_port()),
        otlp_http: format!("127.0.0.1:{}", free_port()),
        logs: LogsSettings { exporter: otlp_http(logs_endpoint) },
        ..PipelineSettings::default()
    }
}

fn otlp_http(logs_endpoint: String) -> LogsExporter {
    LogsExporter::OtlpHttp(OtlpHttp { logs_endpoint: Some(logs_endpoint), ..OtlpHttp::default() })
}

/// One node: a supervised collector on a first config that `apply` rolled
/// out, its version history, and the store its logs go to.
struct Node {
    // Fields drop in order: the collector stops before its store and dir go.
    manager: Arc<Manager>,
    store: SqliteStore,
    settings: PipelineSettings,
    config_path: PathBuf,
    binary: PathBuf,
    /// The first config: canary-only, also the manager's fallback.
    first: Rendered,
    logs: VictoriaLogs,
    dir: tempfile::TempDir,
}

impl Node {
    /// Starts VictoriaLogs and a supervised collector (with `supervise`
    /// adjusting the supervisor's settings), then applies the first config
    /// through the manager.
    async fn start(supervise: impl FnOnce(&mut SuperviseSettings)) -> Node {
        log_to_test_output();
        let tb = Testbed::locate().expect("test bench installed");
        let binary = tb.bin("otelcol-steward").expect("otelcol-steward installed");
        let logs = VictoriaLogs::start(&tb).await.expect("VictoriaLogs starts");
        let dir = tempfile::Builder::new().prefix("steward-agent-it-").tempdir().expect("temp dir");
        let store = SqliteStore::open(dir.path().join("steward.db")).await.expect("SQLite opens");
        let settings = pipeline_settings(dir.path(), logs.otlp_logs_endpoint());
        let first = generate_config(&[], &settings).expect("the canary-only config builds");
        let config_path = dir.path().join("collector.yaml");
        std::fs::write(&config_path, &first.yaml).expect("write the first config");

        let mut supervise_settings = SuperviseSettings::new(binary.clone(), config_path.clone());
        supervise(&mut supervise_settings);
        let runner = Supervised::start(supervise_settings);
        runner.running(Duration::from_secs(10)).await.expect("the collector starts");
        let agent = AgentSettings {
            canary: true,
            canary_timeout: Duration::from_secs(15),
            verify_timeout: Duration::from_secs(20),
            settle: Duration::from_millis(500),
            fallback: Some(first.yaml.clone()),
            ..AgentSettings::new(config_path.clone(), binary.clone())
        };
        let manager = Arc::new(AgentManager::new(runner, store.clone(), agent));
        let node = Node { manager, store, settings, config_path, binary, first, logs, dir };
        let outcome = node.apply(&node.first.yaml).await;
        assert_eq!(outcome, Outcome::Applied { version: node.first.version() });
        node
    }

    async fn apply(&self, yaml: &str) -> Outcome {
        self.manager.apply(yaml, "integration test").await.expect("apply runs to an outcome")
    }

    /// The config `generate_config` makes of no sources and the node's
    /// settings as `change` leaves them.
    fn variant(&self, change: impl FnOnce(&mut PipelineSettings)) -> Rendered {
        let mut settings = self.settings.clone();
        change(&mut settings);
        generate_config(&[], &settings).expect("the variant builds")
    }

    fn pid(&self) -> u32 {
        self.manager.runner().pid().expect("the collector runs")
    }

    fn config_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.config_path).expect("read the collector's config file")
    }

    async fn version(&self, rendered: &Rendered) -> ConfigVersion {
        self.store
            .get(&rendered.hash)
            .await
            .expect("read the history")
            .unwrap_or_else(|| panic!("{} is in the history", rendered.version()))
    }

    /// Appends a marker to the canary file the first config collects and
    /// waits until VictoriaLogs holds it: the node is collecting.
    async fn canary_arrives(&self, what: &str) -> Map<String, Value> {
        let marker = format!("steward-agent-it {what} {}", unix_nanos());
        write_marker(Path::new(&self.settings.canary_path), &marker).expect("append the marker");
        let record = eventually(&format!("the marker {marker:?} in VictoriaLogs"), ARRIVAL, || {
            let query = exactly("_msg", &marker);
            async move {
                let records = self.logs.query(&query).await.map_err(|e| e.to_string())?;
                records.into_iter().next().ok_or_else(|| "not yet".to_owned())
            }
        })
        .await
        .expect("the canary marker arrives");
        assert_eq!(field(&record, "service.name"), Some("steward-canary"), "{record:?}");
        assert_eq!(field(&record, "steward.canary"), Some("true"), "{record:?}");
        record
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "steward-agent it: kept {} (config, storage, canary)",
                self.dir.path().display()
            );
        }
    }
}

/// The manager's and runner's own log, in the test's output (`RUST_LOG`
/// overrides the default, `steward_agent=info`).
fn log_to_test_output() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("steward_agent=info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// GET the `health_check` extension at `endpoint` (`host:port`).
async fn health(endpoint: &str) -> Result<(), String> {
    let url = format!("http://{endpoint}/");
    match http_client().get(&url).timeout(Duration::from_secs(2)).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("{url}: HTTP {}", r.status())),
        Err(e) => Err(format!("{url}: {e}")),
    }
}

/// Whether a process with `pid` exists.
fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

fn kill_9(pid: u32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill -9 {pid}: {}", std::io::Error::last_os_error());
}

fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos()
}

/// A LogsQL filter for records whose `field` is exactly `value`.
fn exactly(field: &str, value: &str) -> String {
    let quote = |s: &str| serde_json::to_string(s).expect("a string serialises");
    format!("{}:={}", quote(field), quote(value))
}

fn field<'a>(record: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    record.get(name).and_then(Value::as_str)
}

/// A listener the test holds, so a collector cannot bind its port.
fn taken_port() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("its address").port();
    (listener, port)
}

/// Pre-flight, with the real `otelcol-steward` (supervised), its `validate`
/// command and SQLite: a config the collector refuses (`start_at: sideways`;
/// an unknown key in a receiver) is `Refused` in the collector's own words,
/// and the running collector is untouched: same PID, the same bytes in its
/// config file, its health endpoint still 200. The history has the version
/// `Failed` with that reason, and the first version still applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_is_refused_and_the_running_collector_is_untouched() {
    let node = Node::start(|_| {}).await;
    let pid = node.pid();
    let bytes = node.config_bytes();
    let sideways = node.first.yaml.replace("start_at: beginning", "start_at: sideways");
    let unknown = node
        .first
        .yaml
        .replace("start_at: beginning", "start_at: beginning\n    steward_bogus_key: 1");
    for (yaml, needle) in [(sideways, "sideways"), (unknown, "steward_bogus_key")] {
        assert_ne!(yaml, node.first.yaml, "the variant differs");
        let hash = content_hash(&yaml);
        let Outcome::Refused { version, reason } = node.apply(&yaml).await else {
            panic!("a config with {needle} must be refused");
        };
        assert_eq!(version, short(&hash));
        assert!(reason.contains(needle), "the collector's message names {needle}: {reason}");
        assert_eq!(node.pid(), pid, "the collector was not restarted");
        assert_eq!(node.config_bytes(), bytes, "the config file was not touched");
        health(&node.settings.health_check).await.expect("the collector still answers");
        let recorded = node.store.get(&hash).await.expect("history").expect("recorded");
        assert_eq!(recorded.status, VersionStatus::Failed, "{recorded:?}");
        assert_eq!(recorded.failure.as_deref(), Some(reason.as_str()), "{recorded:?}");
    }
    let applied = node.store.applied().await.expect("history").expect("a version is applied");
    assert_eq!(applied.hash, node.first.hash, "the first version is still the applied one");
}

/// Canary, with the real `otelcol-steward` as the node's collector and as
/// the shadow, and VictoriaLogs: a config whose exporter points at a closed
/// port is `CanaryFailed` (the shadow could not deliver), and the collector
/// keeps its PID and file. A config pointing at the real VictoriaLogs passes
/// the canary and is applied by a SIGHUP reload (same PID). Each shadow that
/// passed left its marker in VictoriaLogs with `steward.shadow` = `true`;
/// the one that failed left none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_stops_an_unreachable_backend_and_passes_a_reachable_one() {
    let node = Node::start(|_| {}).await;
    let pid = node.pid();
    let bytes = node.config_bytes();

    let closed = free_port();
    let unreachable = node.variant(|s| {
        s.logs.exporter =
            otlp_http(format!("http://127.0.0.1:{closed}/insert/opentelemetry/v1/logs"));
    });
    let started = Instant::now();
    let outcome = node.apply(&unreachable.yaml).await;
    let failed_after = started.elapsed();
    let Outcome::CanaryFailed { version, reason } = outcome else {
        panic!("an unreachable backend must fail the canary: {outcome:?}");
    };
    assert_eq!(version, unreachable.version());
    assert!(
        reason.contains(&format!("127.0.0.1:{closed}")),
        "the reason names the endpoint: {reason}"
    );
    assert_eq!(node.pid(), pid, "the collector was not restarted");
    assert_eq!(node.config_bytes(), bytes, "the config file was not touched");
    let recorded = node.version(&unreachable).await;
    assert_eq!(recorded.status, VersionStatus::Failed, "{recorded:?}");
    assert!(recorded.failure.as_deref().is_some_and(|f| f.starts_with("canary: ")), "{recorded:?}");

    let reachable = node.variant(|s| s.batch.timeout = "100ms".into());
    let verdict = canary_reload(&node.binary, &reachable.yaml, Duration::from_secs(15)).await;
    let CanaryVerdict::Passed { took } = verdict else {
        panic!("the canary of a reachable backend passes: {verdict:?}");
    };
    let started = Instant::now();
    let outcome = node.apply(&reachable.yaml).await;
    let applied_after = started.elapsed();
    assert_eq!(outcome, Outcome::Applied { version: reachable.version() });
    assert_eq!(node.pid(), pid, "a SIGHUP reload keeps the process");
    assert_eq!(node.config_bytes(), reachable.yaml.as_bytes(), "the new config is in place");
    assert_eq!(node.version(&reachable).await.status, VersionStatus::Applied);
    assert_eq!(node.version(&node.first).await.status, VersionStatus::Superseded);
    eprintln!(
        "canary: failed after {failed_after:?} (whole apply); passed in {took:?} (shadow alone); \
         apply with canary, reload and verify: {applied_after:?}"
    );

    // Three shadows delivered: the first config's, the direct run's and the
    // reachable config's; the unreachable one's marker went nowhere.
    let shadow = exactly("steward.shadow", "true");
    let records = eventually("3 shadow markers in VictoriaLogs", ARRIVAL, || async {
        let records = node.logs.query(&shadow).await.map_err(|e| e.to_string())?;
        if records.len() >= 3 { Ok(records) } else { Err(format!("{} so far", records.len())) }
    })
    .await
    .expect("the shadows' markers arrive");
    assert_eq!(records.len(), 3, "{records:?}");
    for record in &records {
        assert_eq!(field(record, "service.name"), Some("steward-canary"), "{record:?}");
        let body = field(record, "_msg").unwrap_or_default();
        assert!(body.starts_with("steward-verify canary "), "{record:?}");
    }
    node.canary_arrives("after the canary").await;
}

/// Verification and rollback, with the real `otelcol-steward` (supervised),
/// VictoriaLogs and SQLite: a config that validates and passes the canary
/// (whose shadow listens on ports of its own) but names a `health_check`
/// port the test holds makes the collector exit on the SIGHUP reload. That
/// exit fails verification at once, and the manager restores the previous
/// version:
/// `RolledBack { restored: Some(previous) }`, the old file back, a collector
/// (a new process) answering on the old health port and delivering a fresh
/// canary line to VictoriaLogs; the history has the bad version `Failed`
/// and the previous one `Applied`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_that_fails_at_run_time_is_rolled_back() {
    let node = Node::start(|_| {}).await;
    let pid = node.pid();
    let (_held, port) = taken_port();
    let clash = node.variant(|s| s.health_check = format!("127.0.0.1:{port}"));

    let started = Instant::now();
    let outcome = node.apply(&clash.yaml).await;
    let took = started.elapsed();
    let Outcome::RolledBack { version, reason, restored } = outcome else {
        panic!("a collector that cannot start its health check must be rolled back: {outcome:?}");
    };
    eprintln!("rolled back after {took:?}: {reason}");
    assert_eq!(version, clash.version());
    assert_eq!(reason, EXITED, "the exit on the reload is what failed verification");
    assert_eq!(restored, Some(node.first.version()), "the previous version is back");
    assert_eq!(node.config_bytes(), node.first.yaml.as_bytes(), "the previous file is back");
    health(&node.settings.health_check).await.expect("the restored collector answers");
    let now = node.pid();
    assert_ne!(now, pid, "the collector that exited on the reload was replaced");
    assert!(!alive(pid), "the old process is gone");
    node.canary_arrives("after the rollback").await;

    let failed = node.version(&clash).await;
    assert_eq!(failed.status, VersionStatus::Failed, "{failed:?}");
    assert_eq!(failed.failure.as_deref(), Some(reason.as_str()), "{failed:?}");
    assert_eq!(node.version(&node.first).await.status, VersionStatus::Applied);
}

/// Supervision, with the real `otelcol-steward`: after `kill -9` of the
/// collector, the supervisor has a new process running in under 2 s, and
/// that process answers its health check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_collector_is_restarted_within_two_seconds() {
    let node = Node::start(|_| {}).await;
    let old = node.pid();
    let mut events = node.manager.runner().subscribe();
    let killed = Instant::now();
    kill_9(old);
    let new = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(RunnerEvent::Started { pid }) if pid != old => return pid,
                Ok(_) => {}
                Err(err) => panic!("the runner's events: {err}"),
            }
        }
    })
    .await
    .expect("a new collector starts");
    let restarted = killed.elapsed();
    assert!(alive(new), "the new collector {new} runs");
    assert!(!alive(old), "the killed collector {old} is gone");
    assert_eq!(node.manager.runner().pid(), Some(new));
    eventually("the restarted collector's health check", Duration::from_secs(30), || {
        health(&node.settings.health_check)
    })
    .await
    .expect("the restarted collector answers");
    let healthy = killed.elapsed();
    eprintln!("kill -9: new process after {restarted:?}, healthy after {healthy:?}");
    assert!(restarted < Duration::from_secs(2), "restarted after {restarted:?}");
    node.canary_arrives("after kill -9").await;
}

/// Supervision settings that call three exits in a minute a crash loop.
fn crash_loop_settings(s: &mut SuperviseSettings) {
    s.crash_limit = 3;
    s.crash_window = Duration::from_secs(60);
    s.backoff_min = Duration::from_millis(100);
    s.backoff_max = Duration::from_millis(400);
}

/// Runs `guard_crash_loops` for `node` until the returned task is aborted.
fn guard(node: &Node) -> tokio::task::JoinHandle<()> {
    let manager = Arc::clone(&node.manager);
    let runner_events = manager.runner().subscribe();
    tokio::spawn(async move { manager.guard_crash_loops(runner_events).await })
}

async fn crash_loop_event(
    events: &mut tokio::sync::broadcast::Receiver<AgentEvent>,
    within: Duration,
) -> AgentEvent {
    tokio::time::timeout(within, events.recv())
        .await
        .unwrap_or_else(|_| panic!("no crash-loop event within {within:?}"))
        .expect("the manager's events")
}

/// Crash-loop repair, with the real `otelcol-steward` (supervised, 3 exits
/// in 60 s = a crash loop), VictoriaLogs and SQLite: a version that was
/// applied and ran well breaks later (its storage directory becomes a file,
/// so the collector cannot start on it again) and its collector is killed.
/// The supervisor's restarts fail until it reports a crash loop; the guard
/// marks the version `Failed`, restores the last good one (the first) and
/// says so: `CrashLoop { failed: Some(bad), restored: Some(first) }`. Then a
/// collector runs the first config's bytes, answers on its health port and
/// delivers a canary line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_breaks_after_it_was_applied_is_replaced_by_the_last_good_one() {
    let node = Node::start(crash_loop_settings).await;
    let guard = guard(&node);
    let mut events = node.manager.subscribe();
    let storage = node.dir.path().join("storage-b");
    let second = node.variant(|s| s.storage_dir = storage.display().to_string());
    assert_eq!(node.apply(&second.yaml).await, Outcome::Applied { version: second.version() });

    // Under the running collector, its storage directory becomes a file.
    std::fs::rename(&storage, node.dir.path().join("storage-b.moved")).expect("move the storage");
    std::fs::write(&storage, "not a directory").expect("a file where the storage was");
    let broke = Instant::now();
    kill_9(node.pid());
    let event = crash_loop_event(&mut events, Duration::from_secs(60)).await;
    eprintln!("crash loop repaired {:?} after the kill: {event:?}", broke.elapsed());
    let AgentEvent::CrashLoop { crashes, failed, restored } = event;
    assert!(crashes >= 3, "{crashes} crashes");
    assert_eq!(failed, Some(second.version()));
    assert_eq!(restored, Some(node.first.version()));

    assert_eq!(node.config_bytes(), node.first.yaml.as_bytes(), "the last good file is back");
    health(&node.settings.health_check).await.expect("the restored collector answers");
    node.canary_arrives("after the crash loop").await;
    let failed = node.version(&second).await;
    assert_eq!(failed.status, VersionStatus::Failed, "{failed:?}");
    assert!(failed.failure.as_deref().is_some_and(|f| f.starts_with("crash loop")), "{failed:?}");
    assert_eq!(node.version(&node.first).await.status, VersionStatus::Applied);
    guard.abort();
}

/// Crash-loop repair, with the real `otelcol-steward` (supervised, 3 exits
/// in 60 s = a crash loop), VictoriaLogs and SQLite: a config written to the
/// collector's file behind the manager's back, whose health port the test
/// holds, and a `kill -9`, leave the supervisor restarting a collector that
/// exits at once. The guard answers the crash loop with the last good
/// version: `CrashLoop { restored: Some(first) }`, the first config's bytes
/// in the file, a collector answering on its health port and delivering a
/// canary line. The stray config never becomes part of the history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_written_behind_the_managers_back_that_crash_loops_is_replaced() {
    let node = Node::start(crash_loop_settings).await;
    let guard = guard(&node);
    let mut events = node.manager.subscribe();
    let (_held, port) = taken_port();
    let stray = node.variant(|s| s.health_check = format!("127.0.0.1:{port}"));
    write_atomic(&node.config_path, stray.yaml.as_bytes()).expect("write the stray config");
    let broke = Instant::now();
    kill_9(node.pid());
    let event = crash_loop_event(&mut events, Duration::from_secs(60)).await;
    eprintln!("crash loop repaired {:?} after the kill: {event:?}", broke.elapsed());
    let AgentEvent::CrashLoop { crashes, failed, restored } = event;
    assert!(crashes >= 3, "{crashes} crashes");
    assert_eq!(failed, Some(stray.version()));
    assert_eq!(restored, Some(node.first.version()));

    assert_eq!(node.config_bytes(), node.first.yaml.as_bytes(), "the last good file is back");
    health(&node.settings.health_check).await.expect("the restored collector answers");
    node.canary_arrives("after the crash loop").await;
    assert_eq!(node.store.get(&stray.hash).await.expect("history"), None, "never recorded");
    assert_eq!(node.version(&node.first).await.status, VersionStatus::Applied);
    guard.abort();
}

/// A tmpfs mounted for the test, unmounted on drop (also when the test
/// panics).
struct Tmpfs {
    target: CString,
}

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> std::io::Result<Tmpfs> {
        let target = CString::new(at.as_os_str().as_bytes()).expect("no NUL in a temp path");
        let fstype = CString::new("tmpfs").expect("no NUL");
        let options = CString::new(format!("size={size}")).expect("no NUL");
        // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
        let rc = unsafe {
            libc::mount(
                fstype.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        if rc == 0 { Ok(Tmpfs { target }) } else { Err(std::io::Error::last_os_error()) }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // SAFETY: `target` is a valid NUL-terminated path.
        if unsafe { libc::umount2(self.target.as_ptr(), libc::MNT_DETACH) } != 0 {
            eprintln!("umount {:?}: {}", self.target, std::io::Error::last_os_error());
        }
    }
}

/// A full disk, with a real 64 KiB tmpfs (needs root or CAP_SYS_ADMIN): a
/// small generated config is written with `write_atomic`; a generated config
/// larger than the free space fails with "no space left", and leaves the
/// small config's bytes intact and no temp file behind (the space is free
/// again: the small config can be written once more).
#[test]
fn a_full_disk_leaves_the_old_config_intact_and_no_temp_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let small_fs = dir.path().join("small");
    std::fs::create_dir(&small_fs).expect("mount point");
    let _tmpfs = Tmpfs::mount(&small_fs, "64k").unwrap_or_else(|err| {
        panic!(
            "this test needs a 64 KiB tmpfs at {} (root or CAP_SYS_ADMIN): mount failed: {err}",
            small_fs.display()
        )
    });
    let settings = pipeline_settings(dir.path(), "http://127.0.0.1:9428/v1/logs".into());
    let small = generate_config(&[], &settings).expect("a small config builds").yaml;
    let sources: Vec<Source> = (0..1000)
        .map(|i| Source {
            id: format!("static:/var/log/app-{i}/*.log"),
            path: format!("/var/log/app-{i}/*.log"),
            labels: [("service.name".to_owned(), format!("app-{i}"))].into(),
            state: None,
        })
        .collect();
    let large = generate_config(&sources, &settings).expect("a large config builds").yaml;
    assert!(large.len() > 64 * 1024, "larger than the whole file system: {}", large.len());

    let path = small_fs.join("collector.yaml");
    write_atomic(&path, small.as_bytes()).expect("a small config fits");
    let err = write_atomic(&path, large.as_bytes()).expect_err("a config larger than the disk");
    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{err}");
    assert_eq!(std::fs::read(&path).expect("read"), small.as_bytes(), "the old bytes are intact");
    let names: Vec<String> = std::fs::read_dir(&small_fs)
        .expect("list the tmpfs")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["collector.yaml"], "no temp file is left");
    let again = small.replace("200ms", "300ms");
    write_atomic(&path, again.as_bytes()).expect("the space the temp file took is free again");
    assert_eq!(std::fs::read(&path).expect("read"), again.as_bytes());
}
