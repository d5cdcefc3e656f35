//! A log-store outage, end to end with real parts: Debian's dockerd, our
//! collector on a generated config, VictoriaLogs (standing in for Loki, which
//! cannot run here) and Debian's Prometheus Alertmanager.

use std::time::{Duration, Instant};

use steward_agent::verify::Endpoints;
use steward_config::settings::{LogsExporter, LogsSettings, OtlpHttp, PipelineSettings};
use steward_config::{Source, generate_config};
use steward_health::alerts::{AlertPolicy, Alertmanager};
use steward_health::backend::VictoriaLogs as VictoriaLogsBackend;
use steward_health::monitor::{HealthMonitor, MonitorSettings};
use steward_testbed::docker::{Container, connect};
use steward_testbed::parts::{Alertmanager as AlertmanagerPart, Collector, VictoriaLogs};
use steward_testbed::{Testbed, eventually, free_port};

const LINES: u64 = 600;

fn alert_names(alerts: &serde_json::Value) -> Vec<String> {
    alerts
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.pointer("/labels/alertname").and_then(|n| n.as_str()).map(str::to_owned))
        .collect()
}
const PREFIX: &str = "steward-outage line ";

/// Stopping VictoriaLogs fires an alert that the real Alertmanager lists
/// within 30 s; restarting it resolves the alert; and every line the
/// container wrote, during the outage too, is stored exactly once (the
/// collector's persistent queue held them). Prints the alert latency and
/// the end-to-end probe's latencies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_alerts_resolves_and_loses_no_line() {
    let tb = Testbed::locate().expect("test bench installed");
    let mut store = VictoriaLogs::start(&tb).await.expect("VictoriaLogs starts");
    let alertmanager = AlertmanagerPart::start(&tb).await.expect("Alertmanager starts");
    let (docker, host) = connect(&tb).await.expect("the shared engine answers");

    // About 20 lines a second for 30 s: the outage falls in the middle.
    let script = format!(
        "i=1; while [ $i -le {LINES} ]; do echo \"{PREFIX}$i\"; i=$((i+1)); \
         if [ $((i % 20)) -eq 0 ]; then usleep 1000000; fi; done"
    );
    let name = format!("steward-outage-{}-{}", std::process::id(), free_port());
    let container =
        Container::run(&docker, &host, &name, &[], &script).await.expect("container runs");

    let (health, telemetry) = (free_port(), free_port());
    let mut rendered = None;
    let collector = Collector::start(&tb, health, |dir| {
        let settings = PipelineSettings {
            storage_dir: dir.join("storage").display().to_string(),
            canary_path: dir.join("canary/canary.log").display().to_string(),
            health_check: format!("127.0.0.1:{health}"),
            telemetry: format!("127.0.0.1:{telemetry}"),
            fsync: false,
            logs: LogsSettings {
                exporter: LogsExporter::OtlpHttp(OtlpHttp {
                    logs_endpoint: Some(store.otlp_logs_endpoint()),
                    ..OtlpHttp::default()
                }),
            },
            ..PipelineSettings::default()
        };
        let source = Source {
            id: format!("docker:{}", container.id()),
            path: container.log_path().display().to_string(),
            labels: [("service.name".to_owned(), "outage".to_owned())].into(),
            state: None,
        };
        let yaml = generate_config(&[source], &settings).expect("config builds").yaml;
        rendered = Some(yaml.clone());
        yaml
    })
    .await
    .expect("collector starts");
    let endpoints =
        Endpoints::from_yaml(rendered.as_deref().expect("rendered")).expect("endpoints");

    let sink = Alertmanager::new(alertmanager.base_url()).expect("sink");
    let mut settings = MonitorSettings::new("node-1");
    settings.e2e_timeout = Duration::from_secs(3);
    settings.alerts =
        AlertPolicy { resolve_after: Duration::from_secs(2), ..AlertPolicy::default() };
    let mut monitor =
        HealthMonitor::new(endpoints, VictoriaLogsBackend::new(store.base_url()), sink, settings);
    let round = monitor.run_once(true).await.expect("a healthy round");
    assert!(round.notifications.is_empty(), "healthy pipeline, no alert: {:?}", round.results);
    let mut latencies = vec![monitor.last_e2e_latency_ms().expect("the probe found its marker")];

    store.stop();
    // A round that a reload overlapped is discarded: the store is down, yet
    // nothing reaches the alert book, and the last results stay the
    // healthy round's.
    let healthy = monitor.last().to_vec();
    let discarded = monitor.run_round(true, || true).await.expect("nothing to deliver");
    assert_eq!(discarded, None);
    assert_eq!(monitor.last(), &healthy[..]);
    let stopped = Instant::now();
    // The monitor runs rounds as `steward run` would; each loop below polls
    // Alertmanager until its condition holds or the deadline passes.
    let deadline = stopped + Duration::from_secs(30);
    let firing = loop {
        monitor.run_once(true).await.expect("alerts are delivered");
        let names = alert_names(&alertmanager.alerts().await.expect("Alertmanager answers"));
        if !names.is_empty() {
            break names;
        }
        assert!(Instant::now() < deadline, "no alert in Alertmanager within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let alert_latency = stopped.elapsed();
    eprintln!("store stopped → alert listed in Alertmanager: {alert_latency:?} ({firing:?})");

    store.restart().await.expect("VictoriaLogs restarts");
    let restarted = Instant::now();
    loop {
        let round = monitor.run_once(true).await.expect("alerts are delivered");
        if let Some(latency) = monitor.last_e2e_latency_ms() {
            latencies.push(latency);
        }
        let listed = alert_names(&alertmanager.alerts().await.expect("Alertmanager answers"));
        if listed.is_empty() {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(60),
            "alerts {listed:?} still listed a minute after the restart; {:?}",
            round.results
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("store restarted → alerts resolved: {:?}", restarted.elapsed());

    // Every line, those written during the outage too, arrives exactly once.
    let query = "\"service.name\":=\"outage\"";
    let copies = eventually("every line in the store", Duration::from_secs(90), || async {
        let records = store.query(query).await.map_err(|e| e.to_string())?;
        let mut copies = std::collections::BTreeMap::<u64, usize>::new();
        for record in &records {
            let msg = record.get("_msg").and_then(|m| m.as_str()).unwrap_or_default();
            if let Some(n) = msg.strip_prefix(PREFIX).and_then(|n| n.parse().ok()) {
                *copies.entry(n).or_default() += 1;
            }
        }
        if copies.len() as u64 == LINES {
            Ok(copies)
        } else {
            Err(format!("{} of {LINES} lines", copies.len()))
        }
    })
    .await
    .expect("no line lost");
    let duplicated: Vec<_> = copies.iter().filter(|(_, c)| **c > 1).collect();
    assert!(duplicated.is_empty(), "lines stored twice: {duplicated:?}");
    latencies.sort_by(f64::total_cmp);
    eprintln!("end-to-end probe latencies (ms): {latencies:?}");
    drop(collector);
}

/// An exporter that cannot deliver (its endpoint refuses connections) with a
/// small persistent queue: as canary lines pile up, the queue fills and the
/// real Alertmanager lists a backpressure alert naming the exporter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_exporter_queue_fires_a_backpressure_alert() {
    let tb = Testbed::locate().expect("test bench installed");
    let store = VictoriaLogs::start(&tb).await.expect("VictoriaLogs starts");
    let alertmanager = AlertmanagerPart::start(&tb).await.expect("Alertmanager starts");
    let closed = free_port();
    let (health, telemetry) = (free_port(), free_port());
    let mut rendered = None;
    let _collector = Collector::start(&tb, health, |dir| {
        let settings = PipelineSettings {
            storage_dir: dir.join("storage").display().to_string(),
            canary_path: dir.join("canary/canary.log").display().to_string(),
            health_check: format!("127.0.0.1:{health}"),
            telemetry: format!("127.0.0.1:{telemetry}"),
            fsync: false,
            logs: LogsSettings {
                exporter: LogsExporter::OtlpHttp(OtlpHttp {
                    logs_endpoint: Some(format!(
                        "http://127.0.0.1:{closed}/insert/opentelemetry/v1/logs"
                    )),
                    common: steward_config::settings::ExporterCommon {
                        queue_size: 5,
                        ..Default::default()
                    },
                    ..OtlpHttp::default()
                }),
            },
            ..PipelineSettings::default()
        };
        let yaml = generate_config(&[], &settings).expect("config builds").yaml;
        rendered = Some(yaml.clone());
        yaml
    })
    .await
    .expect("collector starts");
    let endpoints =
        Endpoints::from_yaml(rendered.as_deref().expect("rendered")).expect("endpoints");
    let canary = endpoints.canary.clone().expect("a canary file");

    let mut settings = MonitorSettings::new("node-2");
    // The probe cannot succeed with a dead exporter; keep each round short.
    settings.e2e_timeout = Duration::from_millis(500);
    let mut monitor = HealthMonitor::new(
        endpoints,
        VictoriaLogsBackend::new(store.base_url()),
        Alertmanager::new(alertmanager.base_url()).expect("sink"),
        settings,
    );
    let started = Instant::now();
    let mut line = 0;
    let names = loop {
        // Each batch the batch processor flushes is one queue entry.
        for _ in 0..3 {
            line += 1;
            steward_agent::verify::write_marker(&canary, &format!("filler {line}")).expect("write");
        }
        monitor.run_once(true).await.expect("alerts are delivered");
        let names = alert_names(&alertmanager.alerts().await.expect("Alertmanager answers"));
        if names.iter().any(|n| n == "StewardCollectorQueueBackpressure") {
            break names;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no backpressure alert; {names:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let alerts = alertmanager.alerts().await.expect("Alertmanager answers");
    let evidence = alerts
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| {
            a.pointer("/labels/alertname").and_then(|n| n.as_str())
                == Some("StewardCollectorQueueBackpressure")
        })
        .and_then(|a| {
            a.pointer("/annotations/evidence").and_then(|e| e.as_str()).map(str::to_owned)
        })
        .unwrap_or_default();
    assert!(evidence.contains("otlp_http/logs"), "the evidence names the exporter: {evidence}");
    eprintln!(
        "backpressure alert after {:?} and {line} lines: {names:?}; {evidence}",
        started.elapsed()
    );
}
