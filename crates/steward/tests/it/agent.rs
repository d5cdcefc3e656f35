//! `steward config apply | history | rollback` in signal mode, against the
//! real `otelcol-steward` (run by the test as a process manager would, with a
//! pid file), VictoriaLogs as its log store and SQLite for the history.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use steward_config::settings::{LogsExporter, LogsSettings, OtlpHttp, PipelineSettings};
use steward_config::{Rendered, generate_config};
use steward_testbed::parts::{VictoriaLogs, http_client};
use steward_testbed::{Process, Testbed, eventually, free_port};

fn steward(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steward"))
        .current_dir(dir)
        .args(args)
        .env("STEWARD_CONFIG", dir.join("steward.yaml"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run steward")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `config history --output json`: version name → (status, failure).
fn history(dir: &Path) -> Vec<Value> {
    let out = steward(dir, &["config", "history", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "history: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("history is JSON")
}

fn status_of(history: &[Value], rendered: &Rendered) -> String {
    history
        .iter()
        .find(|v| v["hash"] == rendered.hash.as_str())
        .and_then(|v| v["status"].as_str())
        .unwrap_or_else(|| panic!("{} in the history: {history:?}", rendered.version()))
        .to_owned()
}

async fn health(endpoint: &str) -> Result<(), String> {
    let url = format!("http://{endpoint}/");
    match http_client().get(&url).timeout(Duration::from_secs(2)).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("{url}: HTTP {}", r.status())),
        Err(e) => Err(format!("{url}: {e}")),
    }
}

/// Signal mode, with the real `otelcol-steward` started by the test through
/// `sh` (which writes its pid file and execs the collector, as a unit file
/// would), VictoriaLogs and SQLite: `config apply FILE` of a generated config
/// exits 0 and says `applied`, and `config history --output json` shows it
/// applied; a second generated config is applied by SIGHUP (same PID); a
/// config the collector refuses (`start_at: sideways`) exits 1 with the
/// collector's reason and leaves the file and the process alone; `config
/// rollback` exits 0 and brings the first config back, with the history
/// saying first applied, second superseded, broken failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_mode_apply_history_refusal_and_rollback() {
    let tb = Testbed::locate().expect("test bench installed");
    let binary = tb.bin("otelcol-steward").expect("otelcol-steward installed");
    let logs = VictoriaLogs::start(&tb).await.expect("VictoriaLogs starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let settings = PipelineSettings {
        binary: binary.display().to_string(),
        storage_dir: d.join("storage").display().to_string(),
        fsync: false,
        canary_path: d.join("canary").join("canary.log").display().to_string(),
        health_check: format!("127.0.0.1:{}", free_port()),
        telemetry: format!("127.0.0.1:{}", free_port()),
        otlp_grpc: format!("127.0.0.1:{}", free_port()),
        otlp_http: format!("127.0.0.1:{}", free_port()),
        logs: LogsSettings {
            exporter: LogsExporter::OtlpHttp(OtlpHttp {
                logs_endpoint: Some(logs.otlp_logs_endpoint()),
                ..OtlpHttp::default()
            }),
        },
        ..PipelineSettings::default()
    };
    let first = generate_config(&[], &settings).expect("the first config builds");
    let second = generate_config(
        &[],
        &PipelineSettings {
            batch: steward_config::settings::Batch {
                timeout: "100ms".into(),
                ..settings.batch.clone()
            },
            ..settings.clone()
        },
    )
    .expect("the second config builds");
    let broken = second.yaml.replace("start_at: beginning", "start_at: sideways");
    assert_ne!(broken, second.yaml);
    for (name, yaml) in [("first.yaml", &first.yaml), ("second.yaml", &second.yaml)] {
        std::fs::write(d.join(name), yaml).expect("write a config");
    }
    std::fs::write(d.join("broken.yaml"), &broken).expect("write the broken config");

    let config_path = d.join("collector.yaml");
    let pid_file = d.join("collector.pid");
    std::fs::write(
        d.join("steward.yaml"),
        format!(
            "store_url: sqlite://{db}\n\
             agent:\n  mode: signal\n  config_path: {config}\n  pid_file: {pid}\n  \
             canary: false\n  settle_ms: 300\n\
             collector:\n  binary: {bin}\n",
            db = d.join("s.db").display(),
            config = config_path.display(),
            pid = pid_file.display(),
            bin = binary.display(),
        ),
    )
    .expect("write steward.yaml");

    // The process manager's part: the collector on the first config.
    std::fs::write(&config_path, &first.yaml).expect("write the collector's config");
    let mut sh = Command::new("sh");
    sh.arg("-c").arg("echo $$ > \"$1\"; exec \"$2\" --config \"$3\"").arg("sh").args([
        pid_file.as_os_str(),
        binary.as_os_str(),
        config_path.as_os_str(),
    ]);
    let mut collector = Process::spawn_in("otelcol-steward", sh, d).expect("start the collector");
    let pid = collector.pid();
    eventually("the collector's health check", Duration::from_secs(30), || {
        health(&settings.health_check)
    })
    .await
    .expect("the collector answers");
    let written = std::fs::read_to_string(&pid_file).expect("the pid file");
    assert_eq!(written.trim(), pid.to_string(), "sh execs the collector: one pid");

    let out = steward(d, &["config", "apply", "first.yaml"]);
    assert_eq!(out.status.code(), Some(0), "apply first: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("applied {}", first.version()));
    assert_eq!(status_of(&history(d), &first), "applied");

    let out = steward(d, &["config", "apply", "second.yaml"]);
    assert_eq!(out.status.code(), Some(0), "apply second: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("applied {}", second.version()));
    assert_eq!(std::fs::read_to_string(&config_path).expect("read"), second.yaml);

    let out = steward(d, &["config", "apply", "broken.yaml"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "apply broken: {stderr}");
    assert!(stderr.contains("refused") && stderr.contains("sideways"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&config_path).expect("read"), second.yaml, "untouched");

    let out = steward(d, &["config", "rollback"]);
    assert_eq!(out.status.code(), Some(0), "rollback: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("applied {}", first.version()));
    assert_eq!(std::fs::read_to_string(&config_path).expect("read"), first.yaml);
    health(&settings.health_check).await.expect("the collector answers after the rollback");
    assert_eq!(
        std::fs::read_to_string(&pid_file).expect("the pid file").trim(),
        pid.to_string(),
        "every change was a SIGHUP reload of the same process"
    );
    let history = history(d);
    assert_eq!(status_of(&history, &first), "applied");
    assert_eq!(status_of(&history, &second), "superseded");
    let broken_version = history
        .iter()
        .find(|v| v["status"] == "failed")
        .unwrap_or_else(|| panic!("the broken version is recorded failed: {history:?}"));
    let failure = broken_version["failure"].as_str().unwrap_or_default();
    assert!(failure.contains("sideways"), "{broken_version}");
    assert_eq!(history.len(), 3, "{history:?}");

    // A choice made by hand holds `steward run`'s loop until released.
    let hold_file = d.join("collector.yaml.steward-hold.json");
    let hold: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&hold_file).expect("a hold is written"))
            .expect("the hold is JSON");
    assert_eq!(hold["version"], first.version(), "{hold}");
    let out = steward(d, &["config", "release"]);
    assert_eq!((out.status.code(), text(&out.stdout).trim()), (Some(0), "released"));
    assert!(!hold_file.exists());
    collector.check_running().expect("the collector ran throughout");
}
