//! RepairController with real parts: a hung collector (SIGSTOP) under
//! Steward's supervision, VictoriaLogs (for Loki) and Debian's Alertmanager.

use std::time::{Duration, Instant};

use steward_agent::runner::{CollectorRunner, SuperviseSettings, Supervised};
use steward_agent::verify::Endpoints;
use steward_agent::{AgentManager, AgentSettings, Outcome};
use steward_config::settings::{LogsExporter, LogsSettings, OtlpHttp, PipelineSettings};
use steward_health::alerts::Alertmanager;
use steward_health::backend::VictoriaLogs as VictoriaLogsBackend;
use steward_health::monitor::{HealthMonitor, MonitorSettings};
use steward_health::repair::{Repair, RepairSettings, carry_out_and_record};
use steward_registry::store::SqliteStore;
use steward_registry::store::{RepairLog, RepairOutcome};
use steward_testbed::parts::{Alertmanager as AlertmanagerPart, VictoriaLogs};
use steward_testbed::{Testbed, free_port};

/// A collector that hangs (SIGSTOP: it runs but answers nothing) fails its
/// health check; the planner decides `restart_failed_components`, carrying
/// it out replaces the hung process (SIGTERM is ignored, so it is killed),
/// and the next round finds the collector healthy. The repair is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_collector_is_restarted_by_the_repair_controller() {
    let tb = Testbed::locate().expect("test bench installed");
    let store = VictoriaLogs::start(&tb).await.expect("VictoriaLogs starts");
    let alertmanager = AlertmanagerPart::start(&tb).await.expect("Alertmanager starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = PipelineSettings {
        storage_dir: dir.path().join("storage").display().to_string(),
        canary_path: dir.path().join("canary/canary.log").display().to_string(),
        health_check: format!("127.0.0.1:{}", free_port()),
        telemetry: format!("127.0.0.1:{}", free_port()),
        fsync: false,
        logs: LogsSettings {
            exporter: LogsExporter::OtlpHttp(OtlpHttp {
                logs_endpoint: Some(store.otlp_logs_endpoint()),
                ..OtlpHttp::default()
            }),
        },
        ..PipelineSettings::default()
    };
    let yaml = steward_config::generate_config(&[], &settings).expect("config").yaml;
    let config_path = dir.path().join("collector.yaml");
    std::fs::write(&config_path, &yaml).expect("first config");
    let binary = tb.bin("otelcol-steward").expect("collector installed");
    let runner = Supervised::start(SuperviseSettings::new(binary.clone(), config_path.clone()));
    runner.running(Duration::from_secs(30)).await.expect("the collector runs");
    let versions = SqliteStore::open(dir.path().join("steward.db")).await.expect("store");
    let repair_log = SqliteStore::open(dir.path().join("steward.db")).await.expect("store");
    let mut agent_settings = AgentSettings::new(config_path, binary);
    agent_settings.canary = false;
    agent_settings.settle = Duration::from_millis(300);
    let agent = AgentManager::new(runner, versions, agent_settings);
    let outcome = agent.apply(&yaml, "first").await.expect("apply");
    assert!(matches!(outcome, Outcome::Applied { .. } | Outcome::Unchanged { .. }), "{outcome:?}");

    let mut monitor_settings = MonitorSettings::new("node-3");
    monitor_settings.e2e_timeout = Duration::from_secs(2);
    monitor_settings.repair =
        RepairSettings { restart_backoff: Duration::from_secs(1), ..RepairSettings::default() };
    let sink = Alertmanager::new(alertmanager.base_url()).expect("sink");
    let mut monitor = HealthMonitor::new(
        Endpoints::from_yaml(&yaml).expect("endpoints"),
        VictoriaLogsBackend::new(store.base_url()),
        Alertmanager::new(alertmanager.base_url()).expect("sink"),
        monitor_settings,
    );
    let round = monitor.run_once(true).await.expect("a round");
    assert!(round.repairs.is_empty(), "healthy: nothing to repair: {:?}", round.results);

    let hung = agent.runner().pid().expect("a pid");
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(hung as i32, libc::SIGSTOP) };
    let started = Instant::now();
    let done = loop {
        let round = monitor.run_once(agent.runner().pid().is_some()).await.expect("a round");
        let restart = round
            .repairs
            .iter()
            .find(|r| matches!(r, Repair::RestartFailedComponents { .. }))
            .cloned();
        if let Some(repair) = restart {
            break carry_out_and_record(&repair, &agent, &sink, "node-3", &repair_log)
                .await
                .expect("the repair is recorded");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no restart decided: {:?}",
            round.results
        );
    };
    eprintln!("repair: {} after {:?}", done.detail, started.elapsed());
    assert_eq!(done.outcome, RepairOutcome::Done, "{done:?}");
    assert_eq!(done.kind, "restart_failed_components");
    let recent = repair_log.recent(10).await.expect("the repair log reads");
    assert_eq!(recent.first().map(|r| r.id), Some(done.id), "durable: {recent:?}");
    let new = agent.runner().pid().expect("a new collector runs");
    assert_ne!(new, hung, "the hung process was replaced");

    let healed = Instant::now();
    loop {
        let round = monitor.run_once(true).await.expect("a round");
        let health = round.results.iter().find(|r| r.name == "collector_health").expect("health");
        if health.status == steward_health::checks::Status::Ok {
            break;
        }
        assert!(healed.elapsed() < Duration::from_secs(30), "still unhealthy: {health:?}");
    }
    assert!(
        monitor
            .repairs()
            .iter()
            .any(|r| matches!(r.repair, Repair::RestartFailedComponents { .. })),
        "the restart is recorded: {:?}",
        monitor.repairs()
    );
}
