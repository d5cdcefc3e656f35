//! The checks against real parts: `otelcol-steward` running a config made
//! only by `generate_config` (no sources: the canary file is its one input),
//! exporting with `otlp_http` to the real VictoriaLogs, which stands in for
//! Loki (it cannot run here; both take OTLP/HTTP logs).

use std::path::Path;
use std::time::Duration;

use steward_agent::verify::{Endpoints, marker, write_marker};
use steward_config::generate_config;
use steward_config::settings::{LogsExporter, LogsSettings, OtlpHttp, PipelineSettings};
use steward_health::backend::VictoriaLogs;
use steward_health::checks::{
    QUEUE_THRESHOLD, Status, check_collector_queue_backpressure, check_end_to_end_sample_log,
    check_loki_push_errors, collector_health,
};
use steward_testbed::parts::{self, Collector, http_client};
use steward_testbed::{Testbed, eventually, free_port};

/// How long one end-to-end probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings with the collector's storage and canary in its temp dir `dir`,
/// every port free, and logs sent to `logs_endpoint` with a sending queue of
/// `queue_size` batches.
fn settings(dir: &Path, logs_endpoint: String, queue_size: u32) -> PipelineSettings {
    let mut otlp = OtlpHttp { logs_endpoint: Some(logs_endpoint), ..OtlpHttp::default() };
    otlp.common.queue_size = queue_size;
    PipelineSettings {
        storage_dir: dir.join("storage").display().to_string(),
        fsync: false,
        canary_path: dir.join("canary").join("canary.log").display().to_string(),
        health_check: format!("127.0.0.1:{}", free_port()),
        telemetry: format!("127.0.0.1:{}", free_port()),
        otlp_grpc: format!("127.0.0.1:{}", free_port()),
        otlp_http: format!("127.0.0.1:{}", free_port()),
        logs: LogsSettings { exporter: LogsExporter::OtlpHttp(otlp) },
        ..PipelineSettings::default()
    }
}

/// The real collector on a generated config, and where to ask it how it is
/// (read back from the config, as the health monitor does).
async fn start_collector(
    tb: &Testbed,
    logs_endpoint: String,
    queue_size: u32,
) -> (Collector, Endpoints) {
    // The health port must be known before the config is generated.
    let health = free_port();
    let mut yaml = String::new();
    let collector = Collector::start(tb, health, |dir| {
        let settings = PipelineSettings {
            health_check: format!("127.0.0.1:{health}"),
            ..settings(dir, logs_endpoint, queue_size)
        };
        yaml = generate_config(&[], &settings).expect("the config builds").yaml;
        yaml.clone()
    })
    .await
    .expect("the collector starts on the generated config");
    let endpoints = Endpoints::from_yaml(&yaml).expect("the config names its endpoints");
    (collector, endpoints)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank]
}

/// A healthy pipeline, with `otelcol-steward` and VictoriaLogs: the
/// collector is healthy (and is not, when its process is said to be gone);
/// its queues are below the threshold; two looks at push errors are Ok; and
/// 20 end-to-end probes each find their marker in the store, the latency
/// (from appending the marker to the canary file to finding it) reported as
/// the value and printed as p50/p90/max.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_pipeline_passes_every_check() {
    let tb = Testbed::locate().expect("test bench installed");
    let store = parts::VictoriaLogs::start(&tb).await.expect("VictoriaLogs starts");
    let (mut collector, endpoints) = start_collector(&tb, store.otlp_logs_endpoint(), 5000).await;
    let http = http_client();
    let backend = VictoriaLogs::new(store.base_url());

    let alive = collector.process_mut().check_running().is_ok();
    let health = collector_health(&http, &endpoints, alive).await;
    assert_eq!(health.status, Status::Ok, "{health:?}");
    let dead = collector_health(&http, &endpoints, false).await;
    assert_eq!(dead.status, Status::Failed, "{dead:?}");
    assert!(dead.evidence.contains("not running"), "{dead:?}");

    let (first, counters) = check_loki_push_errors(&http, &endpoints.metrics, &backend, None).await;
    assert_eq!(first.status, Status::Ok, "{first:?}");
    let counters = counters.expect("the metrics are readable");

    let canary = endpoints.canary.as_deref().expect("the config collects a canary file");
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let probe = check_end_to_end_sample_log(&backend, canary, PROBE_TIMEOUT).await;
        assert_eq!(probe.status, Status::Ok, "{probe:?}");
        latencies.push(probe.value.expect("the latency"));
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "end-to-end sample log latency over {} probes: p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        latencies[latencies.len() - 1],
    );

    let (second, _) =
        check_loki_push_errors(&http, &endpoints.metrics, &backend, Some(&counters)).await;
    assert_eq!(second.status, Status::Ok, "{second:?}");
    assert_eq!(second.value, Some(0.0), "no send failures per second: {second:?}");

    let queues =
        check_collector_queue_backpressure(&http, &endpoints.metrics, QUEUE_THRESHOLD).await;
    assert_eq!(queues.status, Status::Ok, "{queues:?}");
    assert!(queues.evidence.contains("otlp_http/logs"), "{queues:?}");
}

/// Backpressure, with `otelcol-steward` exporting to a port nobody listens
/// on through a sending queue of 5 batches: canary lines written every
/// 100 ms (one batch per 200 ms batch timeout) fill the queue while the
/// exporter retries, and the check eventually fails, naming the exporter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_fails_the_backpressure_check() {
    let tb = Testbed::locate().expect("test bench installed");
    let closed = format!("http://127.0.0.1:{}/insert/opentelemetry/v1/logs", free_port());
    let (_collector, endpoints) = start_collector(&tb, closed, 5).await;
    let http = http_client();
    let canary = endpoints.canary.clone().expect("the config collects a canary file");

    let before =
        check_collector_queue_backpressure(&http, &endpoints.metrics, QUEUE_THRESHOLD).await;
    assert_eq!(before.status, Status::Ok, "an empty queue at first: {before:?}");

    let mut lines = 0;
    let full = eventually("the backpressure check to fail", Duration::from_secs(60), || {
        lines += 1;
        let written = write_marker(&canary, &marker(&format!("fill {lines}")));
        let (http, metrics) = (&http, &endpoints.metrics);
        async move {
            written.map_err(|e| format!("cannot write the canary file: {e}"))?;
            let result = check_collector_queue_backpressure(http, metrics, QUEUE_THRESHOLD).await;
            if result.status == Status::Failed { Ok(result) } else { Err(format!("{result:?}")) }
        }
    })
    .await
    .expect("the queue fills");
    println!("after {lines} canary lines: {}", full.evidence);
    assert!(full.evidence.contains("full on otlp_http/logs"), "{full:?}");
    assert!(full.value.is_some_and(|v| v >= QUEUE_THRESHOLD), "{full:?}");
}

/// A store that goes away, with `otelcol-steward` and VictoriaLogs: while
/// the store runs, push errors are Ok; once it is stopped, the check fails
/// with the store not ready (naming its URL), the end-to-end probe fails
/// after its timeout, and once the collector is stopped too, the health
/// check fails as unreachable and the push-error check still fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_store_fails_the_push_error_check() {
    let tb = Testbed::locate().expect("test bench installed");
    let store = parts::VictoriaLogs::start(&tb).await.expect("VictoriaLogs starts");
    let (collector, endpoints) = start_collector(&tb, store.otlp_logs_endpoint(), 5000).await;
    let http = http_client();
    let backend = VictoriaLogs::new(store.base_url());

    let (running, counters) =
        check_loki_push_errors(&http, &endpoints.metrics, &backend, None).await;
    assert_eq!(running.status, Status::Ok, "{running:?}");

    let base = store.base_url();
    drop(store);
    let (stopped, _) =
        check_loki_push_errors(&http, &endpoints.metrics, &backend, counters.as_ref()).await;
    assert_eq!(stopped.status, Status::Failed, "{stopped:?}");
    assert!(stopped.evidence.starts_with("backend not ready"), "{stopped:?}");
    assert!(stopped.evidence.contains(&format!("{base}/health")), "{stopped:?}");

    let canary = endpoints.canary.as_deref().expect("the config collects a canary file");
    let probe = check_end_to_end_sample_log(&backend, canary, Duration::from_secs(1)).await;
    assert_eq!(probe.status, Status::Failed, "{probe:?}");
    assert!(probe.evidence.contains("did not answer"), "{probe:?}");

    drop(collector);
    let health = collector_health(&http, &endpoints, false).await;
    assert_eq!(health.status, Status::Failed, "{health:?}");
    assert!(health.evidence.contains("unreachable"), "{health:?}");
    let (neither, next) = check_loki_push_errors(&http, &endpoints.metrics, &backend, None).await;
    assert_eq!(neither.status, Status::Failed, "{neither:?}");
    assert!(neither.evidence.contains("metrics unreadable"), "{neither:?}");
    assert_eq!(next, None);
}
