//! `steward run`: one process that wires discovery → registry → workflow →
//! agent → health and keeps them running until SIGTERM or Ctrl-C.
//!
//! ```text
//! Docker / log dirs / static ──events──▶ LogSourceRegistry ──changes──▶ Nudge
//!                                                                         │ debounced, + period
//!                                               engine (embedded | Temporal) ─▶ activities ─▶ AgentManager ─▶ collector
//! HealthMonitor (every health.interval_secs) ─▶ alerts, repairs (logged in the store)
//! ```
//!
//! On SIGTERM the engine finishes the activity in flight and parks the
//! cycle (it resumes at the next start); discovery and health stop. In
//! `signal` mode the collector is not Steward's child and keeps running; in
//! `supervise` mode it is, and stops with Steward.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use steward_agent::AgentManager;
use steward_agent::runner::{AnyRunner, Signalled, SuperviseSettings, Supervised};
use steward_discovery::Discovery as _;
use steward_discovery::docker::DockerDiscovery;
use steward_discovery::logdir::LogDirDiscovery;
use steward_discovery::static_files::StaticDiscovery;
use steward_health::alerts::{Alertmanager, Sinks, Webhook};
use steward_health::backend::{LogBackend, VictoriaLogs};
use steward_health::monitor::{HealthMonitor, MonitorSettings};
use steward_registry::LogSourceRegistry;
use steward_registry::store::AnyStore;
use steward_workflow::{
    Activities, ActivityPolicies, ActivitySettings, CycleSettings, EmbeddedEngine, Shutdown,
    TriggerSettings,
};
use tokio::sync::mpsc;

use crate::Failure;
use crate::settings::{AgentMode, BackendSection, EngineKind, Settings};

type Agent = AgentManager<AnyRunner, AnyStore>;

pub async fn run(settings: &Settings) -> Result<(), Failure> {
    let node = settings.node();
    let store = crate::commands::open_store(settings).await?;
    let registry = Arc::new(
        LogSourceRegistry::open(store.clone(), settings.registry.clone())
            .await
            .context("reading the registry")?,
    );
    let statics = StaticDiscovery::new(settings.discovery.static_sources.clone())
        .map_err(|err| Failure::Usage(err.to_string()))?;
    let sinks = sinks(settings)?;
    let metrics = Arc::new(steward_api::Metrics::new());
    let live = steward_api::Live::default();
    // Checked before anything starts: a missing token is a usage error.
    let api_token = match &settings.api.listen {
        Some(_) => Some(
            steward_api::ApiToken::load(
                &settings.api.token_env,
                settings.api.token_file.as_deref(),
            )
            .map_err(|err| Failure::Usage(err.to_string()))?,
        ),
        None => None,
    };

    // The collector must always have a valid file to load: without one, the
    // first is the canary-only config, which also serves as the fallback.
    let bootstrap = steward_config::generate_config(&[], &settings.collector)
        .map_err(|err| Failure::Usage(format!("collector: {err}")))?
        .yaml;
    let config_path = &settings.agent.config_path;
    if !config_path.exists() {
        steward_agent::atomic::write_atomic(config_path, bootstrap.as_bytes())
            .with_context(|| format!("writing the first config to {}", config_path.display()))?;
        tracing::info!(path = %config_path.display(), "wrote the bootstrap collector config");
    }
    let (runner, runner_events) = match settings.agent.mode {
        AgentMode::Signal => {
            (AnyRunner::Signalled(Signalled { pid_file: settings.agent.pid_file.clone() }), None)
        }
        AgentMode::Supervise => {
            let supervised = Supervised::start(SuperviseSettings::new(
                PathBuf::from(&settings.collector.binary),
                config_path.clone(),
            ));
            let events = supervised.subscribe();
            (AnyRunner::Supervised(supervised), Some(events))
        }
    };
    let mut agent_settings = settings.agent.manager_settings(&settings.collector.binary);
    agent_settings.fallback = Some(bootstrap);
    let agent: Arc<Agent> = Arc::new(AgentManager::new(runner, store.clone(), agent_settings));

    let mut tasks = tokio::task::JoinSet::new();
    if let Some(events) = runner_events {
        let agent = Arc::clone(&agent);
        tasks.spawn(async move { agent.guard_crash_loops(events).await });
    }

    // Discovery → registry; registry changes → nudges.
    let (trigger_settings, policies) = (
        TriggerSettings {
            debounce: Duration::from_millis(settings.workflow.debounce_ms),
            max_delay: Duration::from_millis(settings.workflow.max_delay_ms),
            period: Duration::from_secs(settings.workflow.period_secs),
        },
        ActivityPolicies {
            canary_timeout: Duration::from_secs(settings.agent.canary_timeout_secs),
            verify_timeout: Duration::from_secs(settings.agent.verify_timeout_secs),
        },
    );
    let (nudge, triggers) = steward_workflow::triggers(trigger_settings);
    let (events_tx, events_rx) = mpsc::channel(1024);
    let d = &settings.discovery;
    tasks.spawn(statics.watch(events_tx.clone()));
    if d.docker.enabled {
        tasks.spawn(DockerDiscovery::new(d.docker.clone()).watch(events_tx.clone()));
    }
    if d.log_dirs.enabled {
        tasks.spawn(LogDirDiscovery::new(d.log_dirs.clone()).watch(events_tx.clone()));
    }
    drop(events_tx);
    {
        let registry = Arc::clone(&registry);
        tasks.spawn(async move { registry.run(events_rx).await });
    }
    let api_nudge = nudge.clone();
    {
        let mut changes = registry.subscribe();
        tasks.spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match changes.recv().await {
                    Ok(_) | Err(RecvError::Lagged(_)) => nudge.nudge(),
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    let activities = Arc::new(
        Activities::new(
            ActivitySettings {
                node: node.clone(),
                docker: d.docker.clone(),
                log_dirs: d.log_dirs.clone(),
                static_sources: d.static_sources.clone(),
                pipeline: settings.collector.clone(),
                retry_failed_after: Duration::from_secs(settings.workflow.retry_failed_after_secs),
            },
            Arc::clone(&registry),
            Arc::clone(&agent),
            sinks.clone(),
            Default::default(),
        )
        .with_observer(Arc::new(steward_api::Telemetry {
            metrics: Arc::clone(&metrics),
            live: live.clone(),
        })),
    );
    let cycle = CycleSettings { canary: settings.agent.canary };

    if let Some(backend) = &settings.health.backend {
        let context = HealthContext {
            health: settings.health.clone(),
            agent: Arc::clone(&agent),
            store: store.clone(),
            sinks: sinks.clone(),
            node: node.clone(),
            live: live.clone(),
            metrics: Arc::clone(&metrics),
        };
        match backend.clone() {
            BackendSection::VictoriaLogs(url) => {
                tasks.spawn(health_loop(VictoriaLogs::new(url), context));
            }
            BackendSection::Loki { url, tenant, bearer_env } => {
                let backend = BackendSection::loki(&url, tenant.as_deref(), bearer_env.as_deref());
                tasks.spawn(health_loop(backend, context));
            }
        }
    } else {
        tracing::info!("no health.backend in steward.yaml: no health checks");
    }

    let shutdown = Shutdown::default();
    let signals = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: finishing the activity in flight");
            shutdown.trigger();
        })
    };
    let engine_name = match settings.workflow.engine {
        EngineKind::Embedded => "embedded",
        EngineKind::Temporal => "temporal",
    };
    if let (Some(listen), Some(token)) = (&settings.api.listen, api_token) {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("api.listen: cannot listen on {listen}"))?;
        let address = listener.local_addr().context("api.listen: the bound address")?;
        let state = Arc::new(steward_api::ApiState {
            node: node.clone(),
            engine: engine_name.into(),
            registry: Arc::clone(&registry),
            store: store.clone(),
            agent: Arc::clone(&agent),
            nudge: api_nudge,
            live: live.clone(),
            metrics: Arc::clone(&metrics),
            alerts: sinks.log.clone(),
        });
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let stopped = async move { stop.wait().await };
            if let Err(err) = steward_api::serve(listener, state, token, stopped).await {
                tracing::error!(error = %err, "api: the server stopped");
            }
        });
        // The UI's address, for people and for tests that asked for port 0.
        tracing::info!(url = %format!("http://{address}/"), "api listening");
    }

    tracing::info!(%node, engine = engine_name, "steward running");
    let result = match settings.workflow.engine {
        EngineKind::Embedded => {
            let engine = EmbeddedEngine::new(activities, store.clone(), node, policies, cycle)
                .with_shutdown(shutdown.clone());
            let mut reports = engine.subscribe();
            let metrics = Arc::clone(&metrics);
            tasks.spawn(async move {
                use tokio::sync::broadcast::error::RecvError;
                loop {
                    match reports.recv().await {
                        Ok(report) => metrics.observe_cycle(&report),
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    }
                }
            });
            engine.run(triggers).await.context("the reconcile loop's history")
        }
        EngineKind::Temporal => {
            crate::temporal::run(settings, activities, triggers, policies, cycle, shutdown.clone())
                .await
        }
    };
    signals.abort();
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    store.close().await;
    tracing::info!("stopped");
    result.map_err(Failure::Runtime)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "no SIGTERM handler; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn sinks(settings: &Settings) -> Result<Sinks, Failure> {
    let mut sinks = Sinks::default();
    for url in &settings.alerts.alertmanagers {
        sinks.alertmanagers.push(
            Alertmanager::new(url.clone())
                .map_err(|err| Failure::Usage(format!("alerts: {err}")))?,
        );
    }
    for hook in &settings.alerts.webhooks {
        sinks.webhooks.push(
            Webhook::new(hook.url.clone(), hook.bearer_env.clone())
                .map_err(|err| Failure::Usage(format!("alerts: {err}")))?,
        );
    }
    Ok(sinks)
}

/// What the health loop drives and where it reports.
struct HealthContext {
    health: crate::settings::HealthSection,
    agent: Arc<Agent>,
    store: AnyStore,
    sinks: Sinks,
    node: String,
    live: steward_api::Live,
    metrics: Arc<steward_api::Metrics>,
}

/// Every `interval`: all checks on the config the collector has now, alerts
/// for what fails, and the repairs the planner decides, each recorded.
async fn health_loop<B: LogBackend + 'static>(backend: B, context: HealthContext) {
    use steward_agent::runner::CollectorRunner as _;
    let HealthContext { health, agent, store, sinks, node, live, metrics } = context;
    let mut settings = MonitorSettings::new(node.clone());
    settings.e2e_timeout = Duration::from_secs(health.e2e_timeout_secs);
    let mut monitor: Option<HealthMonitor<B, Sinks>> = None;
    let mut backend = Some(backend);
    let mut tick = tokio::time::interval(Duration::from_secs(health.interval_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if agent.reloading() {
            // The rollout's own verification judges this reload; a check
            // now would see the health endpoint down for a moment and
            // order a restart.
            tracing::debug!("health: a rollout is verifying; this round is skipped");
            continue;
        }
        let endpoints = std::fs::read_to_string(&agent.settings().config_path)
            .map_err(|err| err.to_string())
            .and_then(|yaml| {
                steward_agent::verify::Endpoints::from_yaml(&yaml).map_err(|err| err.to_string())
            });
        let endpoints = match endpoints {
            Ok(endpoints) => endpoints,
            Err(err) => {
                tracing::warn!(error = %err, "health: cannot read the collector config");
                continue;
            }
        };
        let monitor = match (&mut monitor, backend.take()) {
            (Some(monitor), _) => {
                monitor.set_endpoints(endpoints);
                monitor
            }
            (None, Some(backend)) => monitor.insert(HealthMonitor::new(
                endpoints,
                backend,
                sinks.clone(),
                settings.clone(),
            )),
            (None, None) => unreachable!("the backend is taken only to build the monitor"),
        };
        let pid_alive = agent.runner().pid().is_some();
        let before = monitor.counters().cloned();
        let epoch = agent.reload_epoch();
        let round = monitor
            .run_round(pid_alive, || agent.reloading() || agent.reload_epoch() != epoch)
            .await;
        if matches!(round, Ok(None)) {
            // A rollout reloaded the collector while the checks looked; its
            // own verification judges that reload.
            tracing::debug!("health: a reload overlapped this round; discarded");
            continue;
        }
        let accepted = monitor
            .counters()
            .map(|now| steward_health::checks::accepted_since(before.as_ref(), now));
        live.record_round(monitor.last(), accepted);
        metrics.observe_health(monitor.last());
        match round {
            Ok(None) => {}
            Ok(Some(round)) => {
                for result in &round.results {
                    tracing::debug!(check = result.name, status = ?result.status, evidence = %result.evidence, "health");
                }
                for repair in &round.repairs {
                    match steward_health::repair::carry_out_and_record(
                        repair, &agent, &sinks, &node, &store,
                    )
                    .await
                    {
                        Ok(record) => {
                            tracing::warn!(kind = %record.kind, outcome = ?record.outcome, "repair")
                        }
                        Err(err) => tracing::error!(error = %err, "repair not recorded"),
                    }
                }
            }
            Err(err) => tracing::error!(error = %err, "health: alerts not delivered"),
        }
    }
}
