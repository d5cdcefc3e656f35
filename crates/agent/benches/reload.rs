//! Benchmark: what a reload of a node's collector costs (issue 5).
//!
//! Real parts throughout: `otelcol-steward` run by `Supervised` on configs
//! made by `generate_config`, reading a busybox container that writes about
//! 2,000 numbered lines a second for the whole run, exporting to
//! VictoriaLogs; an `AgentManager` with its history in SQLite.
//!
//! Four measurements, each reported separately:
//! - **health unavailable around a SIGHUP** (control plane): the health check
//!   is probed every 5 ms from just before the signal. A sample is the time
//!   from the first answer that is not a 200 (the `health_check` extension
//!   says "Server not available" from the start of the shutdown, or the port
//!   is closed) to the first 200 from the *new* generation, told apart from
//!   the old by the `upSince` the extension reports. Resolution: one probe
//!   interval plus a loopback request. A reload whose outage fell between two
//!   probes counts as 0.
//! - **SIGHUP → new generation healthy**: from sending the signal to that
//!   first 200 of the new generation.
//! - **SIGHUP → first line accepted again** (data plane): from the signal to
//!   the first scrape (every 5 ms) in which the new generation's
//!   `otelcol_receiver_accepted_log_records` for the container's receiver is
//!   above 0. The counter starts at 0 in every generation, and the scrape only
//!   begins once the new generation answers, so a value above 0 is the new
//!   generation's. It bounds the gap in ingestion a reload causes; the lines
//!   written meanwhile are not lost (offsets survive the reload; the test
//!   `reloads` counts them), only read later. With `poll_interval: 200ms`
//!   lines are read in 200 ms steps anyway.
//! - **`AgentManager::apply`, wall time**: a full rollout of the other of two
//!   configs (they differ only in `batch.timeout`), canary off (pre-flight,
//!   write, SIGHUP, verify, settle 150 ms) and canary on (plus a shadow
//!   collector that must get a marker into VictoriaLogs first).
//!
//! A measurement, not a test: it exits 0 whatever the numbers, and 1 only if
//! setup fails, a rollout is not applied, or a reload does not finish within
//! its deadline. Without `--bench` (as `cargo test --benches` runs it) it
//! only says it was skipped.
//!
//! Run: `cargo bench -p steward-agent --bench reload`.
//! `STEWARD_BENCH_RELOADS` (default 100) sizes the SIGHUP phase and the
//! canary-off apply phase; `STEWARD_BENCH_CANARY_APPLIES` (default 20) the
//! canary-on phase, whose shadow collector costs about a second each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use steward_agent::runner::{CollectorRunner, SuperviseSettings, Supervised};
use steward_agent::telemetry::{scrape, sum_metric};
use steward_agent::{AgentError, AgentManager, AgentSettings, Outcome};
use steward_config::builder::receiver_id;
use steward_config::settings::{Batch, LogsExporter, LogsSettings, OtlpHttp, PipelineSettings};
use steward_config::{Source, generate_config};
use steward_registry::store::SqliteStore;
use steward_testbed::docker::{self, Container};
use steward_testbed::parts::VictoriaLogs;
use steward_testbed::{Testbed, eventually, free_port};
use tokio::time::Instant;

/// How often the health check and the telemetry are probed around a SIGHUP.
const PROBE_EVERY: Duration = Duration::from_millis(5);

/// How long one reload may take before the run is declared broken. A healthy
/// reload takes well under a second.
const RELOAD_DEADLINE: Duration = Duration::from_secs(30);

/// The verification's settle time in the apply phases.
const SETTLE: Duration = Duration::from_millis(150);

/// The writer: 200 lines, then 100 ms of sleep, forever (about 2,000 lines a
/// second); the container is removed at the end of the run.
const WRITER: &str = "awk 'BEGIN { for (i = 1; ; i++) { print \"steward-bench-reload line \" i; \
                      if (i % 200 == 0) { fflush(); system(\"usleep 100000\") } } }'";

const ACCEPTED: &str = "otelcol_receiver_accepted_log_records";

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and a
    // test run should not spend minutes reloading a collector.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("reload: skipped (run it with `cargo bench -p steward-agent --bench reload`)");
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("reload: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime builds");
    match runtime.block_on(run(&config)) {
        Ok(report) => {
            report.print(&config);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("reload: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The workload's size, from the environment.
struct Config {
    reloads: usize,
    canary_applies: usize,
}

impl Config {
    fn from_env() -> Result<Self, String> {
        Ok(Config {
            reloads: env_count("STEWARD_BENCH_RELOADS", 100)?,
            canary_applies: env_count("STEWARD_BENCH_CANARY_APPLIES", 20)?,
        })
    }

    fn reproduce(&self) -> String {
        // The manifest dir is crates/agent; the command runs from the workspace root.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let root = root.canonicalize().unwrap_or(root);
        format!(
            "cd {} && STEWARD_BENCH_RELOADS={} STEWARD_BENCH_CANARY_APPLIES={} \
             cargo bench -p steward-agent --bench reload",
            root.display(),
            self.reloads,
            self.canary_applies
        )
    }
}

fn env_count(name: &str, default: usize) -> Result<usize, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!("{name}={text:?}: expected a whole number ≥ 1")),
        },
    }
}

/// The collector, shared by the two managers (canary off and on) of the run.
#[derive(Clone)]
struct SharedRunner(Arc<Supervised>);

impl CollectorRunner for SharedRunner {
    async fn reload(&self) -> Result<(), AgentError> {
        self.0.reload().await
    }

    async fn restart(&self) -> Result<(), AgentError> {
        self.0.restart().await
    }

    fn pid(&self) -> Option<u32> {
        self.0.pid()
    }
}

/// Everything the run drives. Dropping it stops the collector, removes the
/// container and stops VictoriaLogs.
struct Rig {
    without_canary: AgentManager<SharedRunner, SqliteStore>,
    with_canary: AgentManager<SharedRunner, SqliteStore>,
    runner: SharedRunner,
    /// The two alternating configs (`batch.timeout` 200 ms and 250 ms).
    configs: [String; 2],
    /// Rollouts so far, to alternate between the configs.
    rollouts: usize,
    health_url: String,
    metrics_url: String,
    /// The container's receiver, as the telemetry labels it.
    receiver: String,
    http: reqwest::Client,
    _container: Container,
    _store: VictoriaLogs,
    _dir: tempfile::TempDir,
}

/// What a health probe saw.
#[derive(Debug, PartialEq)]
enum Health {
    /// A 200, from the generation that has been up since this instant.
    Up { since: String },
    /// Anything else: refused, not a 200, no answer in time.
    Down,
}

impl Rig {
    async fn start() -> Result<Self, String> {
        let tb = Testbed::locate().map_err(|e| e.to_string())?;
        let binary = tb.bin("otelcol-steward").map_err(|e| e.to_string())?;
        let (engine, host) = docker::connect(&tb).await.map_err(|e| e.to_string())?;
        let store = VictoriaLogs::start(&tb).await.map_err(|e| e.to_string())?;
        let dir = tempfile::Builder::new()
            .prefix("steward-bench-reload-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let name = format!("steward-bench-reload-{}-{}", std::process::id(), free_port());
        let container =
            Container::run(&engine, &host, &name, &[("steward.test", "bench-reload")], WRITER)
                .await
                .map_err(|e| e.to_string())?;
        let source = Source {
            id: format!("docker:{}", container.id()),
            path: container.log_path().display().to_string(),
            labels: BTreeMap::from([
                ("container.id".to_owned(), container.id().to_owned()),
                ("service.name".to_owned(), "steward-bench-reload".to_owned()),
            ]),
            state: Some("active".into()),
        };
        let (health, telemetry) = (free_port(), free_port());
        let config = |batch_timeout: &str| -> Result<String, String> {
            let settings = PipelineSettings {
                binary: binary.display().to_string(),
                storage_dir: dir.path().join("storage").display().to_string(),
                fsync: false,
                canary_path: dir.path().join("canary").join("canary.log").display().to_string(),
                health_check: format!("127.0.0.1:{health}"),
                telemetry: format!("127.0.0.1:{telemetry}"),
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
            };
            generate_config(std::slice::from_ref(&source), &settings)
                .map(|rendered| rendered.yaml)
                .map_err(|e| e.to_string())
        };
        let configs = [config("200ms")?, config("250ms")?];

        let config_path: PathBuf = dir.path().join("collector.yaml");
        std::fs::write(&config_path, &configs[0])
            .map_err(|e| format!("{}: {e}", config_path.display()))?;
        let runner = SharedRunner(Arc::new(Supervised::start(SuperviseSettings {
            args: vec!["--set=service::telemetry::logs::level=warn".into()],
            ..SuperviseSettings::new(binary.clone(), config_path.clone())
        })));
        let versions = SqliteStore::open(dir.path().join("steward.db"))
            .await
            .map_err(|e| format!("version store: {e}"))?;
        let manager = |canary: bool| {
            AgentManager::new(
                runner.clone(),
                versions.clone(),
                AgentSettings {
                    canary,
                    settle: SETTLE,
                    ..AgentSettings::new(config_path.clone(), binary.clone())
                },
            )
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| e.to_string())?;
        let rig = Rig {
            without_canary: manager(false),
            with_canary: manager(true),
            runner: runner.clone(),
            configs,
            rollouts: 0,
            health_url: format!("http://127.0.0.1:{health}/"),
            metrics_url: format!("http://127.0.0.1:{telemetry}/metrics"),
            receiver: receiver_id(&source.id).to_string(),
            http,
            _container: container,
            _store: store,
            _dir: dir,
        };
        eventually("the collector to accept the container's lines", RELOAD_DEADLINE, || async {
            match rig.accepted().await {
                Some(n) if n > 0.0 => Ok(()),
                other => Err(format!("accepted: {other:?}")),
            }
        })
        .await
        .map_err(|e| e.to_string())?;
        Ok(rig)
    }

    async fn health(&self) -> Health {
        let Ok(response) = self.http.get(&self.health_url).send().await else {
            return Health::Down;
        };
        if !response.status().is_success() {
            return Health::Down;
        }
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        match body.get("upSince").and_then(serde_json::Value::as_str) {
            Some(since) => Health::Up { since: since.to_owned() },
            None => Health::Down,
        }
    }

    /// The container receiver's accepted records in the running generation.
    async fn accepted(&self) -> Option<f64> {
        let text = scrape(&self.http, &self.metrics_url).await.ok()?;
        sum_metric(&text, ACCEPTED, &[("receiver", &self.receiver)]).ok()
    }

    /// One SIGHUP, probed every [`PROBE_EVERY`] until the new generation is
    /// healthy and has accepted a line of the container.
    async fn sighup(&self) -> Result<SighupSample, String> {
        let Health::Up { since: old } = self.health().await else {
            return Err("the collector is not healthy before the reload".into());
        };
        let signalled = Instant::now();
        self.runner.reload().await.map_err(|e| format!("SIGHUP: {e}"))?;
        let deadline = signalled + RELOAD_DEADLINE;
        let mut first_down = None;
        let mut old_answers = 0;
        let healthy = loop {
            let probed = Instant::now();
            match self.health().await {
                Health::Up { since } if since != old => break Instant::now(),
                Health::Up { .. } => old_answers += 1,
                Health::Down => {
                    first_down.get_or_insert_with(Instant::now);
                }
            }
            if probed >= deadline {
                return Err(format!("no new generation within {RELOAD_DEADLINE:?}"));
            }
            tokio::time::sleep_until(probed + PROBE_EVERY).await;
        };
        let accepting = loop {
            let probed = Instant::now();
            if self.accepted().await.is_some_and(|n| n > 0.0) {
                break Instant::now();
            }
            if probed >= deadline {
                return Err(format!("no line accepted within {RELOAD_DEADLINE:?}"));
            }
            tokio::time::sleep_until(probed + PROBE_EVERY).await;
        };
        Ok(SighupSample {
            unavailable: first_down.map_or(Duration::ZERO, |down| healthy - down),
            outage_seen: first_down.is_some(),
            to_healthy: healthy - signalled,
            to_accepting: accepting - signalled,
            old_answers,
        })
    }

    /// One `apply` of the other config; its wall time.
    async fn apply(&mut self, canary: bool) -> Result<Duration, String> {
        self.rollouts += 1;
        let yaml = &self.configs[self.rollouts % 2];
        let manager = if canary { &self.with_canary } else { &self.without_canary };
        let started = Instant::now();
        let outcome = manager
            .apply(yaml, &format!("bench rollout {}", self.rollouts))
            .await
            .map_err(|e| format!("apply: {e}"))?;
        let took = started.elapsed();
        match outcome {
            Outcome::Applied { .. } => Ok(took),
            other => Err(format!("rollout {} was not applied: {other:?}", self.rollouts)),
        }
    }
}

struct SighupSample {
    unavailable: Duration,
    /// Whether any probe saw the health check down.
    outage_seen: bool,
    to_healthy: Duration,
    to_accepting: Duration,
    /// 200s from the old generation after the signal was sent.
    old_answers: usize,
}

async fn run(config: &Config) -> Result<Report, String> {
    let mut rig = Rig::start().await?;
    // A first rollout (uncounted) puts a version in the history.
    rig.apply(false).await?;

    let mut sighups = Vec::with_capacity(config.reloads);
    for _ in 0..config.reloads {
        sighups.push(rig.sighup().await?);
    }
    let mut without_canary = Vec::with_capacity(config.reloads);
    for _ in 0..config.reloads {
        without_canary.push(rig.apply(false).await?);
    }
    let mut with_canary = Vec::with_capacity(config.canary_applies);
    for _ in 0..config.canary_applies {
        with_canary.push(rig.apply(true).await?);
    }

    let stat = |name: &str, pick: fn(&SighupSample) -> Duration| {
        Stat::new(name, sighups.iter().map(pick).collect())
    };
    Ok(Report {
        stats: vec![
            stat("SIGHUP: health unavailable", |s| s.unavailable),
            stat("SIGHUP → new generation healthy", |s| s.to_healthy),
            stat("SIGHUP → first line accepted again", |s| s.to_accepting),
            Stat::new("apply(), canary off", without_canary),
            Stat::new("apply(), canary on", with_canary),
        ],
        outages_unseen: sighups.iter().filter(|s| !s.outage_seen).count(),
        old_answered: sighups.iter().filter(|s| s.old_answers > 0).count(),
        max_old_answers: sighups.iter().map(|s| s.old_answers).max().unwrap_or(0),
        reloads: sighups.len(),
    })
}

/// One measurement's samples, sorted.
struct Stat {
    name: String,
    sorted: Vec<Duration>,
}

impl Stat {
    fn new(name: &str, mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Stat { name: name.to_owned(), sorted: samples }
    }

    /// Nearest rank: the smallest sample with at least `p`% at or below it,
    /// so every figure is a time that was observed.
    fn percentile_ms(&self, p: usize) -> f64 {
        let n = self.sorted.len();
        let rank = (p * n).div_ceil(100).clamp(1, n);
        self.sorted[rank - 1].as_secs_f64() * 1e3
    }
}

struct Report {
    stats: Vec<Stat>,
    reloads: usize,
    outages_unseen: usize,
    old_answered: usize,
    max_old_answers: usize,
}

impl Report {
    fn print(&self, config: &Config) {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!("collector reload cost (otelcol-steward, Supervised, generated config)");
        println!(
            "machine:   {cores} cores; load: a busybox container writing ~2,000 lines/s to \
             its json-file log, exported to VictoriaLogs (batch, persistent queue)"
        );
        println!(
            "workload:  {} SIGHUPs of the running config, probed every {} ms; {} apply() with \
             canary off, then {} with canary on, alternating two configs; settle {} ms",
            config.reloads,
            PROBE_EVERY.as_millis(),
            config.reloads,
            config.canary_applies,
            SETTLE.as_millis()
        );
        println!("stats:     milliseconds; percentiles by nearest rank");
        println!();
        println!(
            "{:<36} {:>7} {:>9} {:>9} {:>9} {:>9}",
            "measurement", "samples", "p50", "p90", "p99", "max"
        );
        for stat in &self.stats {
            println!(
                "{:<36} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                stat.name,
                stat.sorted.len(),
                stat.percentile_ms(50),
                stat.percentile_ms(90),
                stat.percentile_ms(99),
                stat.percentile_ms(100),
            );
        }
        println!();
        println!(
            "health never seen down (outage shorter than a probe): {} of {} reloads",
            self.outages_unseen, self.reloads
        );
        println!(
            "old generation still answered 200 after the SIGHUP: {} of {} reloads (at most {} \
             probes)",
            self.old_answered, self.reloads, self.max_old_answers
        );
        if self.reloads < 50 {
            println!("note: fewer than 50 reloads; p99 is the maximum in all but name");
        }
        println!("reproduce: {}", config.reproduce());
    }
}
