//! The subcommands: each builds what it needs from the settings, runs, and
//! prints to stdout (tables for people, JSON for programs).

use anyhow::Context as _;
use comfy_table::{ContentArrangement, Table, presets::UTF8_BORDERS_ONLY};
use steward_discovery::docker::DockerDiscovery;
use steward_discovery::logdir::LogDirDiscovery;
use steward_discovery::static_files::StaticDiscovery;
use steward_discovery::{Collect, Discovery, Event, Labels, Observed, Origin};
use steward_registry::store::{AnyStore, StoreError};
use steward_registry::{LogSource, LogSourceRegistry, SourceState};
use steward_workflow::retry::error_chain as chain;
use tokio::sync::mpsc;

use crate::settings::Settings;
use crate::{Failure, Output};

/// One snapshot per enabled discovery, taken concurrently so a slow or dead
/// engine delays nothing else. Failures are returned beside the results.
async fn snapshots(settings: &Settings) -> Result<Vec<Snapshot>, Failure> {
    let d = &settings.discovery;
    let statics = StaticDiscovery::new(d.static_sources.clone())
        .map_err(|err| Failure::Usage(err.to_string()))?;
    let docker = async {
        if d.docker.enabled {
            Some(DockerDiscovery::new(d.docker.clone()).snapshot().await)
        } else {
            None
        }
    };
    let log_dirs = async {
        if d.log_dirs.enabled {
            Some(LogDirDiscovery::new(d.log_dirs.clone()).snapshot().await)
        } else {
            None
        }
    };
    let (docker, log_dirs, statics) = tokio::join!(docker, log_dirs, statics.snapshot());
    Ok([(Origin::Docker, docker), (Origin::LogDir, log_dirs), (Origin::Static, Some(statics))]
        .into_iter()
        .filter_map(|(origin, result)| result.map(|result| Snapshot { origin, result }))
        .collect())
}

struct Snapshot {
    origin: Origin,
    result: Result<Vec<Observed>, steward_discovery::Error>,
}

/// One error naming every discovery that failed, each with its cause chain.
fn report_failures(snapshots: &[Snapshot]) -> Option<anyhow::Error> {
    let failed: Vec<String> = snapshots
        .iter()
        .filter_map(|s| {
            s.result.as_ref().err().map(|err| format!("{} discovery: {}", s.origin, chain(err)))
        })
        .collect();
    (!failed.is_empty()).then(|| anyhow::anyhow!("{}", failed.join("; ")))
}

pub async fn discover_once(settings: &Settings, output: Output) -> Result<(), Failure> {
    let snapshots = snapshots(settings).await?;
    let mut observed: Vec<&Observed> =
        snapshots.iter().filter_map(|s| s.result.as_ref().ok()).flatten().collect();
    observed.sort_by(|a, b| a.id.cmp(&b.id));
    match output {
        Output::Json => print_json(&observed)?,
        Output::Table => {
            let mut table = table(&["ID", "ORIGIN", "COLLECT", "PATH", "LABELS"]);
            for o in &observed {
                let collect = match &o.collect {
                    Collect::Yes => "yes".to_owned(),
                    Collect::No { reason } => format!("no: {reason}"),
                };
                table.add_row(vec![
                    o.id.to_string(),
                    o.origin.to_string(),
                    collect,
                    o.path.display().to_string(),
                    labels_cell(&o.labels),
                ]);
            }
            println!("{table}");
        }
    }
    match report_failures(&snapshots) {
        Some(err) => Err(Failure::Runtime(err)),
        None => Ok(()),
    }
}

/// Streams every discovery event as a JSON line until Ctrl-C.
pub async fn discover_watch(settings: &Settings) -> Result<(), Failure> {
    let d = &settings.discovery;
    let statics = StaticDiscovery::new(d.static_sources.clone())
        .map_err(|err| Failure::Usage(err.to_string()))?;
    let (tx, mut rx) = mpsc::channel(1024);
    let mut tasks = vec![tokio::spawn(statics.watch(tx.clone()))];
    if d.docker.enabled {
        tasks.push(tokio::spawn(DockerDiscovery::new(d.docker.clone()).watch(tx.clone())));
    }
    if d.log_dirs.enabled {
        tasks.push(tokio::spawn(LogDirDiscovery::new(d.log_dirs.clone()).watch(tx.clone())));
    }
    drop(tx);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = rx.recv() => match event {
                Some(event) => println!("{}", event_json(&event)),
                None => break,
            },
        }
    }
    drop(rx);
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

fn event_json(event: &Event) -> serde_json::Value {
    match event {
        Event::Upsert(source) => serde_json::json!({ "event": "upsert", "source": source }),
        Event::Remove { id } => serde_json::json!({ "event": "remove", "id": id }),
        Event::Resync { origin, sources } => {
            serde_json::json!({ "event": "resync", "origin": origin, "sources": sources })
        }
    }
}

pub(crate) async fn open_store(settings: &Settings) -> Result<AnyStore, Failure> {
    let url = settings.store_url();
    AnyStore::open(&url).await.map_err(|err| match err {
        StoreError::UnsupportedUrl { .. } => Failure::Usage(err.to_string()),
        err => Failure::Runtime(anyhow::Error::new(err).context("opening the registry store")),
    })
}

pub async fn sources_list(settings: &Settings, output: Output) -> Result<(), Failure> {
    let store = open_store(settings).await?;
    let registry = LogSourceRegistry::open(store, settings.registry.clone())
        .await
        .context("reading the registry")?;
    let sources = registry.list_sources().await;
    match output {
        Output::Json => print_json(&sources)?,
        Output::Table => {
            let mut table = table(&["ID", "STATE", "ORIGIN", "PATH", "LABELS"]);
            for s in &sources {
                table.add_row(vec![
                    s.id.to_string(),
                    s.state.as_str().to_owned(),
                    s.origin.to_string(),
                    s.path.display().to_string(),
                    labels_cell(&s.labels),
                ]);
            }
            println!("{table}");
        }
    }
    Ok(())
}

pub async fn sources_sync(settings: &Settings) -> Result<(), Failure> {
    let store = open_store(settings).await?;
    let registry = LogSourceRegistry::open(store, settings.registry.clone())
        .await
        .context("reading the registry")?;
    let snapshots = snapshots(settings).await?;
    let mut changed = 0;
    for snapshot in &snapshots {
        // A discovery that failed says nothing about its sources: resyncing
        // it with an empty list would drain everything it found before.
        if let Ok(sources) = &snapshot.result {
            let event = Event::Resync { origin: snapshot.origin, sources: sources.clone() };
            changed += registry.apply(&event).await.context("updating the registry")?.len();
        }
    }
    changed += registry.drain_tick().await.context("checking draining sources")?.len();
    let sources: Vec<LogSource> = registry.list_sources().await;
    let draining = sources.iter().filter(|s| s.state == SourceState::Draining).count();
    println!(
        "{changed} changes; {} sources ({} active, {draining} draining)",
        sources.len(),
        sources.len() - draining
    );
    match report_failures(&snapshots) {
        Some(err) => Err(Failure::Runtime(err)),
        None => Ok(()),
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).context("encoding JSON")?;
    println!("{text}");
    Ok(())
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(UTF8_BORDERS_ONLY).set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(header.to_vec());
    table
}

/// Labels for a table cell: the final ones, not discovery's `__meta` keys.
fn labels_cell(labels: &Labels) -> String {
    labels
        .iter()
        .filter(|(k, _)| !k.starts_with("__"))
        .map(|(k, v)| format!("{k}={}", v.escape_debug()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads a sources file; a malformed one names the first bad field.
fn read_sources(path: &std::path::Path) -> Result<Vec<steward_config::Source>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| Failure::Usage(format!("cannot read {}: {err}", path.display())))?;
    let mut de = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let field = err.path().to_string();
        Failure::Usage(format!("{}: at `{field}`: {}", path.display(), err.inner()))
    })
}

pub fn config_build(settings: &Settings, sources: Option<&std::path::Path>) -> Result<(), Failure> {
    let sources = match sources {
        Some(path) => read_sources(path)?,
        None => Vec::new(),
    };
    let rendered = steward_config::generate_config(&sources, &settings.collector)
        .map_err(|err| Failure::Usage(err.to_string()))?;
    print!("{}", rendered.yaml);
    tracing::debug!(version = %rendered.version(), sources = sources.len(), "built");
    Ok(())
}

pub fn config_validate(
    settings: &Settings,
    file: &std::path::Path,
    otelcol: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let yaml = std::fs::read_to_string(file)
        .map_err(|err| Failure::Usage(format!("cannot read {}: {err}", file.display())))?;
    let problems = steward_config::validate::static_check(&yaml);
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("{}: {problem}", file.display());
        }
        return Err(Failure::Negative);
    }
    let binary = otelcol
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| settings.collector.binary.clone().into());
    match steward_config::validate::otelcol_validate(&binary, file, &Default::default()) {
        Ok(()) => {
            println!("{}: valid ({})", file.display(), binary.display());
            Ok(())
        }
        Err(steward_config::validate::ValidateError::Refused(refusal)) => {
            eprintln!("{}: {}", file.display(), refusal.message);
            Err(Failure::Negative)
        }
        Err(err) => Err(Failure::Runtime(anyhow::Error::new(err))),
    }
}

pub fn config_diff(a: &std::path::Path, b: &std::path::Path) -> Result<(), Failure> {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map_err(|err| Failure::Usage(format!("cannot read {}: {err}", path.display())))
    };
    let diff = steward_config::diff::unified(
        &read(a)?,
        &read(b)?,
        &a.display().to_string(),
        &b.display().to_string(),
    );
    if diff.is_empty() {
        Ok(())
    } else {
        print!("{diff}");
        Err(Failure::Negative)
    }
}

fn signal_manager(
    settings: &Settings,
    store: AnyStore,
) -> Result<steward_agent::AgentManager<steward_agent::runner::Signalled, AnyStore>, Failure> {
    if settings.agent.mode != crate::settings::AgentMode::Signal {
        return Err(Failure::Usage(
            "agent.mode is `supervise`: the collector belongs to `steward run`; \
             `config apply` and `config rollback` need agent.mode: signal"
                .into(),
        ));
    }
    let runner = steward_agent::runner::Signalled { pid_file: settings.agent.pid_file.clone() };
    let agent = settings.agent.manager_settings(&settings.collector.binary);
    Ok(steward_agent::AgentManager::new(runner, store, agent))
}

fn report(outcome: &steward_agent::Outcome) -> Result<(), Failure> {
    use steward_agent::Outcome;
    match outcome {
        Outcome::Applied { version } => println!("applied {version}"),
        Outcome::Unchanged { version } => println!("unchanged: {version} already runs"),
        Outcome::Refused { version, reason } => {
            eprintln!("refused {version}: {reason}");
            return Err(Failure::Negative);
        }
        Outcome::CanaryFailed { version, reason } => {
            eprintln!("canary failed for {version}; not applied: {reason}");
            return Err(Failure::Negative);
        }
        Outcome::RolledBack { version, reason, restored } => {
            eprintln!(
                "{version} failed verification ({reason}); rolled back to {}",
                restored.as_deref().unwrap_or("nothing")
            );
            return Err(Failure::Negative);
        }
    }
    Ok(())
}

/// A spinner on stderr while a rollout runs: shown on a terminal only, and
/// never under CI (`CI` set), where it would only add noise to logs.
fn rollout_progress(what: String) -> indicatif::ProgressBar {
    use std::io::IsTerminal as _;
    let quiet = std::env::var_os("CI").is_some() || !std::io::stderr().is_terminal();
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new_spinner()
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {msg} ({elapsed}): validate, canary, reload, verify",
    ) {
        bar.set_style(style);
    }
    bar.set_message(what);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// A version chosen by hand holds `steward run`'s loop, which would
/// otherwise roll its own candidate back out at its next cycle.
fn hold_after(
    manager: &steward_agent::AgentManager<steward_agent::runner::Signalled, AnyStore>,
    outcome: &steward_agent::Outcome,
    reason: &str,
) -> Result<(), Failure> {
    use steward_agent::Outcome;
    if let Outcome::Applied { version } | Outcome::Unchanged { version } = outcome {
        manager.set_hold(version, reason).context("writing the hold")?;
        eprintln!(
            "steward run's loop is held at {version}; `steward config release` \
             (or POST /api/v1/reconcile) lets it reconcile again"
        );
    }
    Ok(())
}

pub async fn config_apply(
    settings: &Settings,
    file: &std::path::Path,
    reason: &str,
) -> Result<(), Failure> {
    let yaml = std::fs::read_to_string(file)
        .map_err(|err| Failure::Usage(format!("cannot read {}: {err}", file.display())))?;
    let manager = signal_manager(settings, open_store(settings).await?)?;
    let progress = rollout_progress(format!("applying {}", file.display()));
    let outcome = manager.apply(&yaml, reason).await;
    progress.finish_and_clear();
    let outcome = outcome.context("applying the config")?;
    hold_after(&manager, &outcome, reason)?;
    report(&outcome)
}

pub async fn config_rollback(settings: &Settings, version: Option<&str>) -> Result<(), Failure> {
    let manager = signal_manager(settings, open_store(settings).await?)?;
    let progress =
        rollout_progress(format!("rolling back to {}", version.unwrap_or("the last good version")));
    let outcome = manager.rollback(version).await;
    progress.finish_and_clear();
    let outcome = outcome.map_err(|err| match err {
        steward_agent::AgentError::UnknownVersion(v) => {
            Failure::Usage(format!("unknown version {v}"))
        }
        steward_agent::AgentError::NoRollbackTarget => Failure::Usage(err.to_string()),
        err => Failure::Runtime(anyhow::Error::new(err)),
    })?;
    hold_after(&manager, &outcome, "rolled back by hand")?;
    report(&outcome)
}

pub fn config_release(settings: &Settings) -> Result<(), Failure> {
    let released = steward_agent::hold::release_hold(&settings.agent.config_path)
        .context("releasing the hold")?;
    println!("{}", if released { "released" } else { "no hold stands" });
    Ok(())
}

pub async fn config_history(
    settings: &Settings,
    limit: usize,
    output: Output,
) -> Result<(), Failure> {
    use steward_registry::store::VersionStore as _;
    let store = open_store(settings).await?;
    let versions = store.history(limit).await.context("reading the version history")?;
    match output {
        Output::Json => {
            let brief: Vec<serde_json::Value> = versions
                .iter()
                .map(|v| {
                    serde_json::json!({
                        "version": steward_agent::manager::short(&v.hash), "hash": v.hash,
                        "generation": v.generation, "status": v.status, "reason": v.reason,
                        "failure": v.failure, "created_ms": v.created_ms, "applied_ms": v.applied_ms,
                    })
                })
                .collect();
            print_json(&brief)?;
        }
        Output::Table => {
            let mut table = table(&["VERSION", "GEN", "STATUS", "CREATED", "REASON"]);
            for v in &versions {
                let status = match &v.failure {
                    Some(failure) => {
                        format!("{:?}: {}", v.status, failure.chars().take(80).collect::<String>())
                    }
                    None => format!("{:?}", v.status),
                };
                table.add_row(vec![
                    steward_agent::manager::short(&v.hash),
                    v.generation.to_string(),
                    status.to_lowercase(),
                    v.created_ms.to_string(),
                    v.reason.clone(),
                ]);
            }
            println!("{table}");
        }
    }
    Ok(())
}

pub async fn workflow_history(
    settings: &Settings,
    limit: usize,
    output: Output,
) -> Result<(), Failure> {
    use steward_registry::store::WorkflowHistory as _;
    let store = open_store(settings).await?;
    let cycles = store.recent_cycles(limit).await.context("reading the workflow history")?;
    let mut rows = Vec::new();
    for cycle in cycles {
        let steps = store.steps(cycle.id).await.context("reading the workflow history")?;
        rows.push((cycle, steps));
    }
    match output {
        Output::Json => {
            let json: Vec<serde_json::Value> = rows
                .iter()
                .map(|(cycle, steps)| {
                    let steps: Vec<serde_json::Value> = steps
                        .iter()
                        .map(|s| {
                            serde_json::json!({
                                "seq": s.seq, "activity": s.activity, "attempt": s.attempt,
                                "status": s.status, "input_hash": s.input_hash,
                                "error": s.error, "started_ms": s.started_ms,
                                "duration_ms": s.duration_ms,
                            })
                        })
                        .collect();
                    serde_json::json!({
                        "id": cycle.id, "node": cycle.node, "engine": cycle.engine,
                        "trigger": cycle.trigger, "status": cycle.status,
                        "started_ms": cycle.started_ms, "finished_ms": cycle.finished_ms,
                        "outcome": cycle.outcome, "steps": steps,
                    })
                })
                .collect();
            print_json(&json)?;
        }
        Output::Table => {
            let mut table = table(&["CYCLE", "TRIGGER", "STATUS", "ACTIVITIES", "OUTCOME"]);
            for (cycle, steps) in &rows {
                let activities: Vec<String> = steps
                    .iter()
                    .map(|s| {
                        let took = s.duration_ms.map(|ms| format!(" {ms}ms")).unwrap_or_default();
                        let status = format!("{:?}", s.status).to_lowercase();
                        format!("{} #{} {status}{took}", s.activity, s.attempt)
                    })
                    .collect();
                table.add_row(vec![
                    cycle.id.to_string(),
                    cycle.trigger.clone(),
                    format!("{:?}", cycle.status).to_lowercase(),
                    activities.join("\n"),
                    cycle.outcome.clone().unwrap_or_default(),
                ]);
            }
            println!("{table}");
        }
    }
    Ok(())
}

/// Runs every check once, without sending alerts, and prints the verdicts.
pub async fn status(settings: &Settings, output: Output) -> Result<(), Failure> {
    use steward_health::backend::VictoriaLogs;
    use steward_health::checks::{self, Status};

    let path = &settings.agent.config_path;
    let yaml = std::fs::read_to_string(path).map_err(|err| {
        Failure::Usage(format!("cannot read the collector config {}: {err}", path.display()))
    })?;
    let endpoints = steward_agent::verify::Endpoints::from_yaml(&yaml)
        .map_err(|err| Failure::Usage(err.to_string()))?;
    let pid_alive = std::fs::read_to_string(&settings.agent.pid_file)
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(steward_agent::runner::alive)
        || settings.agent.mode == crate::settings::AgentMode::Supervise;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .context("building an HTTP client")?;
    let timeout = std::time::Duration::from_secs(settings.health.e2e_timeout_secs);
    let mut results = vec![
        checks::collector_health(&http, &endpoints, pid_alive).await,
        checks::check_collector_queue_backpressure(
            &http,
            &endpoints.metrics,
            checks::QUEUE_THRESHOLD,
        )
        .await,
    ];
    match &settings.health.backend {
        Some(crate::settings::BackendSection::VictoriaLogs(url)) => {
            let backend = VictoriaLogs::new(url.clone());
            results.push(
                checks::check_loki_push_errors(&http, &endpoints.metrics, &backend, None).await.0,
            );
            if let Some(canary) = &endpoints.canary {
                results.push(checks::check_end_to_end_sample_log(&backend, canary, timeout).await);
            }
        }
        Some(crate::settings::BackendSection::Loki { url, tenant, bearer_env }) => {
            let backend = crate::settings::BackendSection::loki(
                url,
                tenant.as_deref(),
                bearer_env.as_deref(),
            );
            results.push(
                checks::check_loki_push_errors(&http, &endpoints.metrics, &backend, None).await.0,
            );
            if let Some(canary) = &endpoints.canary {
                results.push(checks::check_end_to_end_sample_log(&backend, canary, timeout).await);
            }
        }
        None => tracing::info!("no health.backend in steward.yaml: no end-to-end probe"),
    }
    let failed = results.iter().any(|r| r.status == Status::Failed);
    match output {
        Output::Json => {
            let json: Vec<serde_json::Value> = results
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "check": r.name, "status": format!("{:?}", r.status).to_lowercase(),
                        "evidence": r.evidence, "value": r.value, "observed_ms": r.observed_ms,
                    })
                })
                .collect();
            print_json(&json)?;
        }
        Output::Table => {
            let hash = steward_agent::manager::content_hash(&yaml);
            let mut node = table(&["COLLECTOR CONFIG", "HOLD"]);
            node.add_row(vec![
                format!("{} ({})", steward_agent::manager::short(&hash), path.display()),
                match steward_agent::hold::read_hold(path) {
                    Some(hold) => format!("held at {}: {}", hold.version, hold.reason),
                    None => "none: the loop reconciles".into(),
                },
            ]);
            println!("{node}");
            let mut table = table(&["CHECK", "STATUS", "VALUE", "EVIDENCE"]);
            for r in &results {
                table.add_row(vec![
                    r.name.to_owned(),
                    format!("{:?}", r.status).to_lowercase(),
                    r.value.map(|v| format!("{v:.2}")).unwrap_or_default(),
                    r.evidence.clone(),
                ]);
            }
            println!("{table}");
        }
    }
    if failed { Err(Failure::Negative) } else { Ok(()) }
}
