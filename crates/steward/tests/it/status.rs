//! `steward status` against a real collector (on a generated config) and the
//! real VictoriaLogs, which stands in for Loki (Loki cannot run here).

use std::process::Command;

use steward_config::settings::{LogsExporter, LogsSettings, OtlpHttp, PipelineSettings};
use steward_testbed::parts::{Collector, VictoriaLogs};
use steward_testbed::{Testbed, free_port};

/// With everything up, every check is ok and the end-to-end probe reports
/// its latency; with the store down, the push-error check fails and the
/// command exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_every_check_and_fails_when_the_store_is_down() {
    let tb = Testbed::locate().expect("test bench installed");
    let mut store = VictoriaLogs::start(&tb).await.expect("VictoriaLogs starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("collector.yaml");
    let (health, telemetry) = (free_port(), free_port());
    let collector = Collector::start(&tb, health, |cdir| {
        let settings = PipelineSettings {
            storage_dir: cdir.join("storage").display().to_string(),
            canary_path: cdir.join("canary/canary.log").display().to_string(),
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
        let yaml = steward_config::generate_config(&[], &settings).expect("config").yaml;
        std::fs::write(&config_path, &yaml).expect("write the config for steward");
        yaml
    })
    .await
    .expect("collector starts");
    let pid_file = dir.path().join("collector.pid");
    std::fs::write(&pid_file, collector.process().pid().to_string()).expect("pid file");
    let steward_yaml = dir.path().join("steward.yaml");
    std::fs::write(
        &steward_yaml,
        format!(
            "agent:\n  mode: signal\n  config_path: {}\n  pid_file: {}\nhealth:\n  backend:\n    victoria_logs: {}\n  e2e_timeout_secs: 5\n",
            config_path.display(),
            pid_file.display(),
            store.base_url()
        ),
    )
    .expect("steward.yaml");
    let status = || {
        Command::new(env!("CARGO_BIN_EXE_steward"))
            .args(["--config", &steward_yaml.display().to_string(), "status", "--output", "json"])
            .env("RUST_LOG", "warn")
            .output()
            .expect("run steward status")
    };

    let out = status();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let by_name = |name: &str| {
        checks.as_array().unwrap().iter().find(|c| c["check"] == name).cloned().unwrap_or_default()
    };
    for name in [
        "collector_health",
        "collector_queue_backpressure",
        "loki_push_errors",
        "end_to_end_sample_log",
    ] {
        assert_eq!(by_name(name)["status"], "ok", "{name}: {:#}", by_name(name));
    }
    let latency = by_name("end_to_end_sample_log")["value"].as_f64().expect("a latency");

    // The table a person reads: the config the collector has, then a row
    // per check.
    let out = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["--config", &steward_yaml.display().to_string(), "status"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run steward status");
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    let config = std::fs::read_to_string(&config_path).expect("config");
    let version = steward_agent::manager::short(&steward_agent::manager::content_hash(&config));
    for needle in [
        "COLLECTOR CONFIG",
        &version,
        "none: the loop reconciles",
        "CHECK",
        "end_to_end_sample_log",
    ] {
        assert!(table.contains(needle), "{needle:?} in\n{table}");
    }
    eprintln!("steward status: end-to-end latency {latency:.0} ms");

    store.stop();
    let out = status();
    assert_eq!(out.status.code(), Some(1));
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let push = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "loki_push_errors")
        .cloned()
        .unwrap();
    assert_eq!(push["status"], "failed", "{push:#}");
}
