//! Benchmark: Docker event → registry latency (issue 3: "p50 and p99 over at
//! least 200 events; the goal is p99 ≤ 100 ms").
//!
//! It wires the real parts the way the daemon will: a private `dockerd`, Docker
//! discovery feeding `LogSourceRegistry::run` through an mpsc channel, and a
//! SQLite store in a temp dir. One sample is the time from a container event as
//! the engine stamps it (`timeNano` of the event, read from a second event
//! stream of our own) to the moment the registry's broadcast hands this bench
//! the committed `Change::Put` for that container. Both ends read this
//! machine's realtime clock, so the difference needs no clock sync.
//!
//! Three phases, reported separately:
//! - start → active, sequential: N containers started one at a time, each
//!   registered before the next starts, so samples do not queue behind each
//!   other (this is the number the goal is about);
//! - start → active, burst: 50 containers started at once, where queueing in
//!   discovery and the registry shows;
//! - die → draining, sequential: the sequential containers stopped (t=0) one
//!   at a time.
//!
//! A measurement, not a test: it exits 0 whether or not the goal is met, and 1
//! only if setup fails or a sample does not arrive within its deadline.
//!
//! Run: `cargo bench -p steward-registry --bench docker_event_latency`.
//! `STEWARD_BENCH_CONTAINERS` (default 200) and `STEWARD_BENCH_WARMUP`
//! (default 10, not counted) size the sequential phases.

use std::collections::HashMap;
use std::fmt::Display;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, EventsOptions, RemoveContainerOptions, StopContainerOptions,
};
use futures_util::future::join_all;
use futures_util::{StreamExt, stream};
use steward_discovery::docker::{DockerDiscovery, DockerSettings};
use steward_discovery::{Discovery, SourceId};
use steward_registry::store::SqliteStore;
use steward_registry::{Change, LogSourceRegistry, Settings, SourceState};
use steward_testbed::Testbed;
use steward_testbed::docker::BUSYBOX_IMAGE;
use steward_testbed::parts::DockerEngine;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long one container's sample may take before the run is declared broken.
/// Generous on purpose: a healthy sample takes milliseconds, so hitting this
/// means something is stuck, not slow.
const PER_CONTAINER: Duration = Duration::from_secs(60);

/// Containers started together in the burst phase.
const BURST: usize = 50;

/// The latency goal of issue 3, for the sequential start phase.
const GOAL_P99_MS: f64 = 100.0;

/// The issue asks for at least this many samples before p99 means anything.
const MIN_SAMPLES_FOR_GOAL: usize = 200;

/// Timeout of one Docker API call, in seconds (bollard's unit).
const API_TIMEOUT_SECS: u64 = 30;

/// Discovery → registry channel capacity; the integration tests' wiring uses
/// the same, and a full channel would only add back-pressure, not loss.
const EVENT_BUFFER: usize = 4096;

/// Removals in flight at the end: enough to be quick, few enough not to swamp
/// a 2-core engine.
const REMOVE_CONCURRENCY: usize = 8;

#[tokio::main]
async fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --benches` (or
    // `--all-targets`) does not. A test run must not start hundreds of
    // containers, so without the flag this only says how to run it.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("docker_event_latency: skipped (run it with `cargo bench`)");
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("docker_event_latency: {err}");
            return ExitCode::from(2);
        }
    };
    match run(&config).await {
        Ok(report) => {
            report.print(&config);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("docker_event_latency: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The workload's size, from the environment.
struct Config {
    containers: usize,
    warmup: usize,
}

impl Config {
    fn from_env() -> Result<Self, String> {
        Ok(Config {
            containers: env_count("STEWARD_BENCH_CONTAINERS", 200, 1)?,
            warmup: env_count("STEWARD_BENCH_WARMUP", 10, 0)?,
        })
    }

    fn reproduce(&self) -> String {
        // The manifest dir is crates/registry; the command runs from the workspace root.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let root = root.canonicalize().unwrap_or(root);
        format!(
            "cd {} && STEWARD_BENCH_CONTAINERS={} STEWARD_BENCH_WARMUP={} \
             cargo bench -p steward-registry --bench docker_event_latency",
            root.display(),
            self.containers,
            self.warmup
        )
    }
}

fn env_count(name: &str, default: usize, min: usize) -> Result<usize, String> {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => Ok(default),
        Ok(value) if value.trim().is_empty() => Ok(default),
        Ok(value) => value
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= min)
            .ok_or_else(|| format!("{name}={value:?}: expected a whole number ≥ {min}")),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

async fn run(config: &Config) -> Result<Report, String> {
    let mut rig = Rig::setup().await.map_err(|err| format!("setup failed: {err}"))?;
    let measured = measure(&mut rig, config).await;
    // Clean up on failure too: a half-run leaves up to 260 containers behind.
    rig.finish().await;
    measured
}

async fn measure(rig: &mut Rig, config: &Config) -> Result<Report, String> {
    let engine_version = rig
        .docker
        .version()
        .await
        .map_err(because("reading the engine's version"))?
        .version
        .unwrap_or_else(|| "unknown".into());

    // Sequential starts. The warm-up absorbs one-off costs that are not the
    // steady state: discovery connecting and resyncing, SQLite's first pages,
    // the engine's first container.
    let mut sequential = Vec::with_capacity(config.warmup + config.containers);
    let mut started = Vec::with_capacity(config.containers);
    for i in 0..config.warmup + config.containers {
        let deadline = Instant::now() + PER_CONTAINER;
        let id = rig.create(&format!("bench-seq-{i:03}")).await?;
        rig.docker.start_container(&id, None).await.map_err(because(format!("starting {id}")))?;
        let latency = rig.timeline.latency_ns(&id, Moment::Started, deadline).await?;
        if i >= config.warmup {
            started.push(latency);
        }
        sequential.push(id);
    }

    // Burst: create first (not measured), then start all together, so the
    // engine emits its start events as close together as it can.
    let mut burst_ids = Vec::with_capacity(BURST);
    for i in 0..BURST {
        burst_ids.push(rig.create(&format!("bench-burst-{i:02}")).await?);
    }
    let starts = join_all(burst_ids.iter().map(|id| rig.docker.start_container(id, None))).await;
    for (id, result) in burst_ids.iter().zip(starts) {
        result.map_err(because(format!("starting {id} in the burst")))?;
    }
    let mut burst = Vec::with_capacity(BURST);
    for id in &burst_ids {
        let deadline = Instant::now() + PER_CONTAINER;
        burst.push(rig.timeline.latency_ns(id, Moment::Started, deadline).await?);
    }

    // Sequential stops of the sequential containers, warm-up ones first and
    // uncounted, as above. t=0: busybox `sleep` as PID 1 ignores SIGTERM, and
    // waiting out a grace period would measure nothing of ours.
    let stop = StopContainerOptions { t: Some(0), signal: None };
    let mut died = Vec::with_capacity(config.containers);
    for (i, id) in sequential.iter().enumerate() {
        let deadline = Instant::now() + PER_CONTAINER;
        rig.docker
            .stop_container(id, Some(stop.clone()))
            .await
            .map_err(because(format!("stopping {id}")))?;
        let latency = rig.timeline.latency_ns(id, Moment::Died, deadline).await?;
        if i >= config.warmup {
            died.push(latency);
        }
    }

    Ok(Report {
        engine_version,
        phases: vec![
            Phase::new("start → active, sequential", started),
            Phase::new(&format!("start → active, burst of {BURST}"), burst),
            Phase::new("die → draining, sequential", died),
        ],
    })
}

/// The parts under measurement, and the recorders watching them.
struct Rig {
    docker: Docker,
    timeline: Timeline,
    /// Every container this run created, for the clean-up.
    created: Vec<String>,
    /// Recorders, discovery and the registry loop; aborted when done.
    tasks: Vec<JoinHandle<()>>,
    /// Kept alive until the end: the registry's tasks hold the store.
    _registry: Arc<LogSourceRegistry<SqliteStore>>,
    _store_dir: tempfile::TempDir,
    /// Last, so its Drop (remove every container, stop dockerd) runs after
    /// everything that talks to it is gone.
    _engine: DockerEngine,
}

impl Rig {
    async fn setup() -> Result<Self, String> {
        let testbed = Testbed::locate().map_err(because("locating the test bench"))?;
        // A private engine: hundreds of containers on the shared one would
        // disturb every test running next to the bench.
        let engine =
            DockerEngine::start(&testbed).await.map_err(because("starting a private dockerd"))?;
        let host = engine.host();
        let docker =
            Docker::connect_with_unix(&host, API_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
                .map_err(because(format!("connecting to {host}")))?
                .negotiate_version()
                .await
                .map_err(because(format!("negotiating an API version with {host}")))?;

        let store_dir = tempfile::tempdir().map_err(because("creating a temp dir for SQLite"))?;
        let db = store_dir.path().join("steward.db");
        let store = SqliteStore::open(&db)
            .await
            .map_err(because(format!("opening SQLite store {}", db.display())))?;
        // The defaults, as a fresh install runs: 30 s drain grace, a drain
        // check every second (that check shares the registry's loop).
        let registry = Arc::new(
            LogSourceRegistry::open(store, Settings::default())
                .await
                .map_err(because("opening the registry"))?,
        );

        let (seen_tx, seen_rx) = mpsc::unbounded_channel();
        // Subscribe before the registry runs, so no change can be missed.
        let changes = registry.subscribe();
        // The engine replays events from `since`, so a container started
        // before our stream's request reaches dockerd is still seen.
        let since = unix_seconds(SystemTime::now());
        let mut tasks = vec![
            record_engine(docker.clone(), since, seen_tx.clone()),
            record_registry(changes, seen_tx),
        ];

        // The production wiring: discovery → mpsc → `registry.run`.
        let discovery =
            DockerDiscovery::new(DockerSettings { host: Some(host), ..Default::default() });
        let (events_tx, events_rx) = mpsc::channel(EVENT_BUFFER);
        tasks.push(tokio::spawn(discovery.watch(events_tx)));
        tasks.push(tokio::spawn({
            let registry = Arc::clone(&registry);
            async move { registry.run(events_rx).await }
        }));

        Ok(Rig {
            docker,
            timeline: Timeline::new(seen_rx),
            created: Vec::new(),
            tasks,
            _registry: registry,
            _store_dir: store_dir,
            _engine: engine,
        })
    }

    /// Creates (does not start) a long-lived container with no network and
    /// no restart policy, and remembers it for the clean-up.
    async fn create(&mut self, name: &str) -> Result<String, String> {
        let body = ContainerCreateBody {
            image: Some(BUSYBOX_IMAGE.into()),
            cmd: Some(vec!["sleep".into(), "3600".into()]),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions { name: Some(name.into()), ..Default::default() };
        let id = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(because(format!("creating container {name}")))?
            .id;
        self.created.push(id.clone());
        Ok(id)
    }

    /// Stops the watchers first, so the removals below are not discovery's
    /// and the registry's work, then removes every container this run made.
    async fn finish(self) {
        for task in &self.tasks {
            task.abort();
        }
        let docker = &self.docker;
        let remove = RemoveContainerOptions { force: true, ..Default::default() };
        let failures: Vec<String> = stream::iter(&self.created)
            .map(|id| {
                let remove = remove.clone();
                async move {
                    docker
                        .remove_container(id, Some(remove))
                        .await
                        .map_err(because(format!("removing {id}")))
                }
            })
            .buffer_unordered(REMOVE_CONCURRENCY)
            .filter_map(|result| async move { result.err() })
            .collect()
            .await;
        // Not fatal: the engine's Drop removes whatever is left.
        if let Some(first) = failures.first() {
            eprintln!(
                "docker_event_latency: {} of {} removals failed, first: {first}",
                failures.len(),
                self.created.len()
            );
        }
    }
}

/// Which pair of moments a sample spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Moment {
    /// Engine `start` event → `Put` with state `active`.
    Started,
    /// Engine `die` event → `Put` with state `draining`.
    Died,
}

impl Moment {
    fn engine_action(self) -> &'static str {
        match self {
            Moment::Started => "start",
            Moment::Died => "die",
        }
    }

    fn registry_state(self) -> &'static str {
        match self {
            Moment::Started => SourceState::Active.as_str(),
            Moment::Died => SourceState::Draining.as_str(),
        }
    }
}

/// What a recorder saw, stamped in Unix nanoseconds.
enum Seen {
    Engine {
        id: SourceId,
        moment: Moment,
        at_ns: i64,
    },
    Registry {
        id: SourceId,
        moment: Moment,
        at_ns: i64,
    },
    /// A recorder cannot go on; the run is invalid.
    Broken(String),
}

/// The first engine event and the first registry change of each kind, per
/// container. First wins: a later `Put` of the same state (the drain check
/// recording a file size, say) is not what the latency is about.
struct Timeline {
    seen: mpsc::UnboundedReceiver<Seen>,
    engine: HashMap<(SourceId, Moment), i64>,
    registry: HashMap<(SourceId, Moment), i64>,
}

impl Timeline {
    fn new(seen: mpsc::UnboundedReceiver<Seen>) -> Self {
        Timeline { seen, engine: HashMap::new(), registry: HashMap::new() }
    }

    /// Registry time minus engine time for one container, once both are in.
    async fn latency_ns(
        &mut self,
        container: &str,
        moment: Moment,
        deadline: Instant,
    ) -> Result<i64, String> {
        let key = (SourceId::docker(container), moment);
        loop {
            if let (Some(engine), Some(registry)) = (self.engine.get(&key), self.registry.get(&key))
            {
                return Ok(registry - engine);
            }
            match tokio::time::timeout_at(deadline, self.seen.recv()).await {
                Ok(Some(Seen::Engine { id, moment, at_ns })) => {
                    self.engine.entry((id, moment)).or_insert(at_ns);
                }
                Ok(Some(Seen::Registry { id, moment, at_ns })) => {
                    self.registry.entry((id, moment)).or_insert(at_ns);
                }
                Ok(Some(Seen::Broken(why))) => return Err(why),
                Ok(None) => return Err("both recorders stopped".into()),
                Err(_) => {
                    let has = |seen: bool| if seen { "seen" } else { "missing" };
                    return Err(format!(
                        "sample missing: container {container} after {PER_CONTAINER:?}: \
                         engine `{}` event {}, registry `{}` put {}",
                        moment.engine_action(),
                        has(self.engine.contains_key(&key)),
                        moment.registry_state(),
                        has(self.registry.contains_key(&key)),
                    ));
                }
            }
        }
    }
}

/// Our own view of the engine's events: the ground truth of when things
/// happened, independent of how discovery reads the same stream.
fn record_engine(
    docker: Docker,
    since: String,
    seen: mpsc::UnboundedSender<Seen>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("event".to_owned(), vec!["start".to_owned(), "die".to_owned()]),
        ]);
        let options = EventsOptions { since: Some(since), until: None, filters: Some(filters) };
        let mut events = docker.events(Some(options));
        while let Some(event) = events.next().await {
            let message = match event {
                Ok(message) => message,
                Err(err) => {
                    let _ = seen.send(Seen::Broken(because("the engine's event stream")(err)));
                    return;
                }
            };
            let moment = match message.action.as_deref() {
                Some("start") => Moment::Started,
                Some("die") => Moment::Died,
                _ => continue,
            };
            let Some(id) = message.actor.and_then(|actor| actor.id) else { continue };
            let report = match message.time_nano {
                Some(at_ns) => Seen::Engine { id: SourceId::docker(&id), moment, at_ns },
                None => Seen::Broken(format!("engine event {moment:?} of {id} has no timeNano")),
            };
            if seen.send(report).is_err() {
                return;
            }
        }
        let _ = seen.send(Seen::Broken("the engine's event stream ended".into()));
    })
}

/// Stamps each committed change the moment the broadcast delivers it: that
/// is when a subscriber (the reconcile loop, later) could act on it.
fn record_registry(
    mut changes: broadcast::Receiver<Change>,
    seen: mpsc::UnboundedSender<Seen>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let change = changes.recv().await;
            let at_ns = unix_nanos(SystemTime::now());
            let report = match change {
                Ok(Change::Put(source)) => {
                    let moment = match source.state {
                        SourceState::Active => Moment::Started,
                        SourceState::Draining => Moment::Died,
                    };
                    Seen::Registry { id: source.id, moment, at_ns }
                }
                Ok(Change::Delete(_)) => continue,
                // A lost change could be the one a sample waits for; say so
                // rather than time out without a reason.
                Err(RecvError::Lagged(missed)) => {
                    Seen::Broken(format!("the bench missed {missed} registry changes (lagged)"))
                }
                Err(RecvError::Closed) => Seen::Broken("the registry's broadcast closed".into()),
            };
            let stop = matches!(report, Seen::Broken(_));
            if seen.send(report).is_err() || stop {
                return;
            }
        }
    })
}

/// One phase's samples, in nanoseconds, sorted.
struct Phase {
    name: String,
    sorted_ns: Vec<i64>,
}

impl Phase {
    fn new(name: &str, mut samples_ns: Vec<i64>) -> Self {
        samples_ns.sort_unstable();
        Phase { name: name.to_owned(), sorted_ns: samples_ns }
    }

    /// Nearest-rank percentile: the smallest sample with at least `p`% of
    /// the samples at or below it. No interpolation, so every figure printed
    /// is a latency that was actually observed.
    fn percentile_ms(&self, p: usize) -> f64 {
        let n = self.sorted_ns.len();
        let rank = (p * n).div_ceil(100).clamp(1, n);
        ms(self.sorted_ns[rank - 1])
    }
}

struct Report {
    engine_version: String,
    phases: Vec<Phase>,
}

impl Report {
    fn print(&self, config: &Config) {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!("docker event → registry latency");
        println!(
            "clock:     engine event timeNano → SystemTime::now() when the registry's broadcast \
             delivers the Put; both are this machine's realtime clock"
        );
        println!(
            "machine:   {cores} cores; private dockerd {}; SQLite store in a temp dir; \
             registry Settings::default()",
            self.engine_version
        );
        println!(
            "workload:  {} warm-up + {} sequential starts (one at a time), {BURST} concurrent \
             starts, then the sequential ones stopped one at a time (t=0, warm-up uncounted)",
            config.warmup, config.containers
        );
        println!("stats:     milliseconds; percentiles by nearest rank");
        println!();
        println!(
            "{:<32} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "phase", "samples", "min", "p50", "p90", "p99", "max"
        );
        for phase in &self.phases {
            println!(
                "{:<32} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                phase.name,
                phase.sorted_ns.len(),
                phase.percentile_ms(0),
                phase.percentile_ms(50),
                phase.percentile_ms(90),
                phase.percentile_ms(99),
                phase.percentile_ms(100),
            );
        }
        println!();
        let goal = &self.phases[0];
        let p99 = goal.percentile_ms(99);
        let verdict = if goal.sorted_ns.len() < MIN_SAMPLES_FOR_GOAL {
            format!("not judged (fewer than {MIN_SAMPLES_FOR_GOAL} samples)")
        } else if p99 <= GOAL_P99_MS {
            "met".to_owned()
        } else {
            "not met".to_owned()
        };
        println!("goal p99 ≤ {GOAL_P99_MS:.0} ms ({}): {verdict} (p99 = {p99:.2} ms)", goal.name);
        println!("reproduce: {}", config.reproduce());
    }
}

fn ms(ns: i64) -> f64 {
    // Exact enough: latencies are far below 2^53 ns.
    ns as f64 / 1e6
}

fn unix_nanos(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// `1700000000.123456789`, the form the engine's `since` accepts.
fn unix_seconds(time: SystemTime) -> String {
    let d = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// `what: error: cause: …`, so a failure names the step and every cause.
fn because<E: std::error::Error>(what: impl Display) -> impl FnOnce(E) -> String {
    move |err| {
        let mut message = format!("{what}: {err}");
        let mut source = err.source();
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        message
    }
}
