//! Issue 5's key test: 100 consecutive reloads while a container writes about
//! 2,000 numbered lines a second, and every line arrives exactly once.
//!
//! Everything is real: a busybox container on the test bench's Docker Engine,
//! `otelcol-steward` run by [`Supervised`] on configs made only by
//! `generate_config`, an [`AgentManager`] with its version history in SQLite,
//! and VictoriaLogs as the log store. What makes a reload lose or repeat
//! nothing is that the per-source receiver keeps its id across generations, so
//! its offsets in `file_storage` survive the SIGHUP (and the exporter's queue is
//! persistent); this test is the proof that it holds under load, 100 times in a
//! row.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use steward_agent::runner::{SuperviseSettings, Supervised};
use steward_agent::{AgentManager, AgentSettings, Outcome};
use steward_config::settings::{Batch, LogsExporter, LogsSettings, OtlpHttp, PipelineSettings};
use steward_config::{Source, generate_config};
use steward_registry::store::{SqliteStore, VersionStore};
use steward_testbed::docker::{self, Container};
use steward_testbed::parts::{VictoriaLogs, http_client, probe_http_ok, telemetry_sum};
use steward_testbed::{Testbed, eventually, free_port};

/// Lines the container writes: 200 every ~100 ms, so about 1,950 a second
/// (the `usleep` fork adds a little to each pause) for about 72 s. The 100
/// rollouts took 49–55 s here (p50 0.50–0.54 s each), so at least 90 of them
/// fall within the writing unless rollouts run some 40 % slower.
const LINES: u64 = 140_000;
/// Lines written at once, then a pause of [`PAUSE_US`].
const BATCH: u64 = 200;
const PAUSE_US: u64 = 100_000;

/// Consecutive reloads, each a full rollout: `AgentManager::apply` of the
/// other of two configs (pre-flight with the real binary, atomic write,
/// SIGHUP, verification by health check and a canary line, settle). A full
/// rollout takes about half a second here, so all 100 are full ones rather
/// than bare SIGHUPs with a rollout every tenth: the test then also proves
/// that verification holds up 100 times in a row under load.
const RELOADS: usize = 100;
/// Reloads that must happen while the container still writes.
const RELOADS_WHILE_WRITING: usize = 90;

/// How long the container may take to write everything.
const WRITE_TIMEOUT: Duration = Duration::from_secs(150);
/// How long the last lines may take to reach the store once written.
const ARRIVAL: Duration = Duration::from_secs(120);

/// Collector settings: storage, canary and ports inside the test's own dir,
/// logs to `store`, `batch.timeout` as given (the one setting the two
/// alternating configs differ in).
fn settings(
    dir: &Path,
    binary: &Path,
    store: &VictoriaLogs,
    ports: (u16, u16),
    batch_timeout: &str,
) -> PipelineSettings {
    PipelineSettings {
        binary: binary.display().to_string(),
        storage_dir: dir.join("storage").display().to_string(),
        // A reload is an orderly shutdown, which fsync does not change; off,
        // it spares the shared machine's disk.
        fsync: false,
        canary_path: dir.join("canary").join("canary.log").display().to_string(),
        health_check: format!("127.0.0.1:{}", ports.0),
        telemetry: format!("127.0.0.1:{}", ports.1),
        otlp_grpc: format!("127.0.0.1:{}", free_port()),
        otlp_http: format!("127.0.0.1:{}", free_port()),
        batch: Batch { timeout: batch_timeout.into(), ..Batch::default() },
        logs: LogsSettings {
            exporter: LogsExporter::OtlpHttp(OtlpHttp {
                logs_endpoint: Some(store.otlp_logs_endpoint()),
                ..OtlpHttp::default()
            }),
        },
        ..PipelineSettings::default()
    }
}

/// The busybox script: `lines` lines `<prefix><n>`, n = 1..=lines, flushed in
/// batches of [`BATCH`] with a pause of [`PAUSE_US`] after each.
fn writer_script(prefix: &str, lines: u64) -> String {
    format!(
        "awk 'BEGIN {{ for (i = 1; i <= {lines}; i++) {{ print \"{prefix}\" i; \
         if (i % {BATCH} == 0) {{ fflush(); system(\"usleep {PAUSE_US}\") }} }} }}'"
    )
}

/// The source the registry would describe `container` as.
fn source_of(container: &Container) -> Source {
    Source {
        id: format!("docker:{}", container.id()),
        path: container.log_path().display().to_string(),
        labels: BTreeMap::from([
            ("container.id".to_owned(), container.id().to_owned()),
            ("container.name".to_owned(), container.name().to_owned()),
            ("service.name".to_owned(), "steward-reloads".to_owned()),
        ]),
        state: Some("active".into()),
    }
}

/// A LogsQL filter for the records of `container`.
fn records_of(container: &Container) -> String {
    let quoted = serde_json::to_string(container.id()).expect("a string serialises");
    format!("\"container.id\":={quoted}")
}

/// How many records of `container` the store holds.
async fn count(store: &VictoriaLogs, container: &Container) -> Result<u64, String> {
    let rows = store
        .query(&format!("{} | stats count() rows", records_of(container)))
        .await
        .map_err(|e| e.to_string())?;
    let row = rows.first().ok_or("no stats row")?;
    match row.get("rows") {
        Some(Value::String(n)) => n.parse().map_err(|e| format!("rows {n:?}: {e}")),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| format!("rows {n}")),
        other => Err(format!("no rows in {row:?} ({other:?})")),
    }
}

/// What the store holds for the container, by line number.
#[derive(Debug, Default)]
struct Tally {
    copies: BTreeMap<u64, usize>,
    unexpected: Vec<String>,
}

impl Tally {
    async fn of(store: &VictoriaLogs, container: &Container, prefix: &str) -> Tally {
        let records = store
            .query(&format!("{} | fields _msg", records_of(container)))
            .await
            .expect("VictoriaLogs answers the query");
        let mut tally = Tally::default();
        for record in records {
            let body = record.get("_msg").and_then(Value::as_str).unwrap_or_default();
            match body.strip_prefix(prefix).and_then(|n| n.parse::<u64>().ok()) {
                Some(n) => *tally.copies.entry(n).or_default() += 1,
                None => tally.unexpected.push(body.to_owned()),
            }
        }
        tally
    }

    fn records(&self) -> usize {
        self.copies.values().sum::<usize>() + self.unexpected.len()
    }

    fn missing(&self, lines: u64) -> Vec<u64> {
        (1..=lines).filter(|n| !self.copies.contains_key(n)).collect()
    }

    fn duplicated(&self) -> Vec<(u64, usize)> {
        self.copies.iter().filter(|(_, c)| **c > 1).map(|(n, c)| (*n, *c)).collect()
    }
}

/// The first few of `items`, for an assertion message that stays readable.
fn head<T: std::fmt::Debug>(items: &[T]) -> String {
    format!("{:?}{}", &items[..items.len().min(20)], if items.len() > 20 { " …" } else { "" })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Issue 5: 100 consecutive verified rollouts (`AgentManager::apply`, canary
/// off, so each is pre-flight → write → SIGHUP → health + canary line →
/// settle) alternate between two generated configs that differ only in
/// `batch.timeout`, while a container writes 140,000 numbered lines at about
/// 2,000 a second. Proves: every rollout is `Applied` (and the history says
/// the last one is what runs); at least 90 of them complete while the
/// container is still writing; and afterwards VictoriaLogs holds every line
/// 1..=140,000 exactly once: none missing, none duplicated,
/// nothing else, with the exporter's queue empty (so no late copy is on its
/// way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_reloads_under_load_lose_and_repeat_no_line() {
    let started = Instant::now();
    let tb = Testbed::locate().expect("test bench installed");
    let binary = tb.bin("otelcol-steward").expect("otelcol-steward installed");
    let (engine, host) = docker::connect(&tb).await.expect("the test bench's Docker Engine");
    let store = VictoriaLogs::start(&tb).await.expect("VictoriaLogs starts");
    let dir = tempfile::Builder::new().prefix("steward-reloads-").tempdir().expect("a temp dir");

    let tag = format!("{}-{}", std::process::id(), free_port());
    let prefix = format!("steward-reloads {tag} line ");
    let name = format!("steward-agent-reloads-{tag}");
    let container = Container::run(
        &engine,
        &host,
        &name,
        &[("steward.test", "agent-reloads")],
        &writer_script(&prefix, LINES),
    )
    .await
    .expect("the writer container runs");
    let writer_started = started.elapsed();
    let source = source_of(&container);

    let ports = (free_port(), free_port());
    let config = |batch_timeout: &str| {
        let settings = settings(dir.path(), &binary, &store, ports, batch_timeout);
        generate_config(std::slice::from_ref(&source), &settings).expect("the config builds").yaml
    };
    let configs = [config("200ms"), config("250ms")];
    assert_ne!(configs[0], configs[1]);

    // The collector starts on the first config; the rollouts then alternate.
    let config_path: PathBuf = dir.path().join("collector.yaml");
    std::fs::write(&config_path, &configs[0]).expect("the first config is written");
    let runner = Supervised::start(SuperviseSettings {
        // One warning per reload ("Config updated, restart service") instead
        // of a page of info lines each.
        args: vec!["--set=service::telemetry::logs::level=warn".into()],
        ..SuperviseSettings::new(binary.clone(), config_path.clone())
    });
    let health = format!("http://127.0.0.1:{}/", ports.0);
    let http = http_client();
    eventually("the collector's health check", Duration::from_secs(60), || {
        probe_http_ok(&http, &health)
    })
    .await
    .expect("the collector starts");
    let versions =
        SqliteStore::open(dir.path().join("steward.db")).await.expect("the version store opens");
    let manager = AgentManager::new(
        runner,
        versions,
        AgentSettings {
            canary: false,
            settle: Duration::from_millis(150),
            ..AgentSettings::new(config_path, binary.clone())
        },
    );

    // The reloads and the wait for the writer's exit run side by side; each
    // reload notes whether the writer was still running when it completed.
    let writing = AtomicBool::new(true);
    let writer_done = async {
        let status = container.wait(&engine, WRITE_TIMEOUT).await;
        writing.store(false, Ordering::SeqCst);
        (status, started.elapsed())
    };
    let reloads = async {
        let mut took = Vec::with_capacity(RELOADS);
        let mut while_writing = 0;
        for n in 1..=RELOADS {
            let yaml = &configs[n % 2];
            let begun = Instant::now();
            let outcome =
                manager.apply(yaml, &format!("reload {n}")).await.expect("the rollout runs");
            took.push(begun.elapsed());
            assert!(matches!(outcome, Outcome::Applied { .. }), "reload {n}: {outcome:?}");
            if writing.load(Ordering::SeqCst) {
                while_writing += 1;
            }
        }
        (took, while_writing, started.elapsed())
    };
    let ((status, written_at), (mut took, while_writing, reloads_done_at)) =
        tokio::join!(writer_done, reloads);
    let last = &configs[RELOADS % 2];
    let applied = manager.versions().applied().await.expect("the history answers");
    assert_eq!(
        applied.map(|v| v.hash),
        Some(steward_agent::manager::content_hash(last)),
        "the history's applied version is the last one rolled out"
    );
    let status = status.expect("the writer exits");
    assert_eq!(status, 0, "the writer's exit status");

    took.sort_unstable();
    println!(
        "{RELOADS} rollouts: p50 {:?}, p90 {:?}, max {:?}; {while_writing} completed while the \
         container wrote; writer ran {writer_started:?} → {written_at:?} (~{:.0} lines/s), \
         reloads done at {reloads_done_at:?}",
        percentile(&took, 50.0),
        percentile(&took, 90.0),
        took.last().expect("reloads ran"),
        LINES as f64 / (written_at - writer_started).as_secs_f64(),
    );
    assert!(
        while_writing >= RELOADS_WHILE_WRITING,
        "only {while_writing} of {RELOADS} reloads completed while the container wrote"
    );

    let stored = eventually("every line in VictoriaLogs", ARRIVAL, || async {
        match count(&store, &container).await? {
            n if n >= LINES => Ok(n),
            n => Err(format!("{n} of {LINES} records")),
        }
    })
    .await
    .expect("the lines arrive");
    // Nothing is left to send, so no late copy can change the tally below.
    let metrics = format!("http://127.0.0.1:{}/metrics", ports.1);
    eventually("the exporter's queue to be empty", ARRIVAL, || async {
        match telemetry_sum(&http, &metrics, "otelcol_exporter_queue_size").await {
            Ok(0.0) => Ok(()),
            Ok(size) => Err(format!("{size} batches queued")),
            Err(err) => Err(err.to_string()),
        }
    })
    .await
    .expect("the queue drains");

    let tally = Tally::of(&store, &container, &prefix).await;
    let (missing, duplicated) = (tally.missing(LINES), tally.duplicated());
    println!(
        "{LINES} lines written; {} records stored ({stored} when first complete); {} missing, \
         {} duplicated, {} unexpected; {while_writing} of {RELOADS} reloads while writing; \
         wall time {:?}",
        tally.records(),
        missing.len(),
        duplicated.len(),
        tally.unexpected.len(),
        started.elapsed(),
    );
    assert!(missing.is_empty(), "{} lines missing: {}", missing.len(), head(&missing));
    assert!(
        duplicated.is_empty(),
        "{} lines stored more than once (line, copies): {}",
        duplicated.len(),
        head(&duplicated)
    );
    assert!(tally.unexpected.is_empty(), "unexpected records: {}", head(&tally.unexpected));
    assert_eq!(tally.records() as u64, LINES, "records stored for the container");
}
