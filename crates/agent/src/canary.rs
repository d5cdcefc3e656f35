//! The seed's `canary_reload`, at node level: before the main collector sees
//! a candidate config, a short-lived shadow collector runs the candidate's
//! logs pipeline (its processors and exporters, unchanged) on other ports,
//! with its own storage, reading only a canary file of its own. A marker line
//! must then be accepted by the backend. This catches what `validate` cannot
//! see: a wrong endpoint, bad credentials, an unreachable backend.
//!
//! The shadow exports without a queue or retries, so a refusal shows at
//! once, and the whole run is bounded by a timeout.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::telemetry::{scrape, sum_metric};
use crate::verify::{CANARY_RECEIVER, marker, write_marker};

/// What the canary found.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum CanaryVerdict {
    /// The backend accepted the marker, `took` after the shadow started.
    Passed {
        took: Duration,
    },
    /// The candidate has no logs pipeline: nothing to try.
    Skipped,
    Failed {
        reason: String,
    },
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The candidate rewritten into a shadow: only the logs pipeline, reading
/// `canary` only, listening on `health`/`metrics`, storing under `storage`.
pub fn shadow_config(
    candidate: &str,
    canary: &Path,
    storage: &Path,
    health: u16,
    metrics: u16,
) -> Result<Option<String>, String> {
    let tree =
        steward_config::validate::parse_tree(candidate).map_err(|e| format!("not YAML: {e}"))?;
    let Some(logs) = tree.pointer("/service/pipelines/logs") else { return Ok(None) };
    let processors = logs.get("processors").cloned().unwrap_or(json!([]));
    let exporter_ids: Vec<String> = logs
        .get("exporters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let mut exporters = serde_json::Map::new();
    for id in &exporter_ids {
        let mut exporter = tree
            .pointer(&format!("/exporters/{}", id.replace('/', "~1")))
            .cloned()
            .unwrap_or(json!({}));
        if let Some(map) = exporter.as_object_mut() {
            // Fail fast: no queue to absorb a refusal, no retry to hide it.
            map.insert("sending_queue".into(), json!({"enabled": false}));
            map.insert("retry_on_failure".into(), json!({"enabled": false}));
        }
        exporters.insert(id.clone(), exporter);
    }
    let escape = |p: &Path| {
        steward_config::builder::literal_glob(&p.display().to_string()).replace('$', "$$")
    };
    let shadow = json!({
        "extensions": {
            "health_check": {"endpoint": format!("127.0.0.1:{health}")},
            "file_storage": {"directory": storage.display().to_string().replace('$', "$$"), "create_directory": true},
        },
        "receivers": {
            CANARY_RECEIVER: {
                "include": [escape(canary)],
                "start_at": "beginning",
                "storage": "file_storage",
                "resource": {"service.name": "steward-canary", "steward.shadow": "true"},
            }
        },
        "processors": tree.get("processors").cloned().unwrap_or(json!({})),
        "exporters": exporters,
        "service": {
            "extensions": ["health_check", "file_storage"],
            "pipelines": {"logs": {"receivers": [CANARY_RECEIVER], "processors": processors, "exporters": exporter_ids}},
            "telemetry": {"metrics": {"readers": [{"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": metrics}}}}]}},
        },
    });
    serde_saphyr::to_string(&shadow).map(Some).map_err(|e| e.to_string())
}

/// Runs the shadow collector with `binary` for at most `timeout`.
pub async fn canary_reload(binary: &Path, candidate: &str, timeout: Duration) -> CanaryVerdict {
    match run(binary, candidate, timeout).await {
        Ok(verdict) => verdict,
        Err(reason) => CanaryVerdict::Failed { reason },
    }
}

async fn run(binary: &Path, candidate: &str, timeout: Duration) -> Result<CanaryVerdict, String> {
    let dir =
        tempfile::Builder::new().prefix("steward-canary-").tempdir().map_err(|e| e.to_string())?;
    let canary: PathBuf = dir.path().join("canary.log");
    let (health, metrics) =
        (free_port().map_err(|e| e.to_string())?, free_port().map_err(|e| e.to_string())?);
    let Some(shadow) =
        shadow_config(candidate, &canary, &dir.path().join("storage"), health, metrics)?
    else {
        return Ok(CanaryVerdict::Skipped);
    };
    let config = dir.path().join("shadow.yaml");
    std::fs::write(&config, shadow).map_err(|e| format!("writing the shadow config: {e}"))?;
    let log = dir.path().join("shadow.log");
    let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .arg("--config")
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let deadline = started + timeout;
    let metrics_url = format!("http://127.0.0.1:{metrics}/metrics");
    let mut marked = false;
    let verdict = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("the shadow collector exited ({status}): {}", last_error(&log)));
        }
        if Instant::now() >= deadline {
            break Err(format!(
                "no answer from the backend within {timeout:?}: {}",
                last_error(&log)
            ));
        }
        if !marked {
            let up = http
                .get(format!("http://127.0.0.1:{health}/"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                write_marker(&canary, &marker("canary")).map_err(|e| e.to_string())?;
                marked = true;
            }
        } else if let Ok(text) = scrape(&http, &metrics_url).await {
            let sent = sum_metric(&text, "otelcol_exporter_sent_log_records", &[]).unwrap_or(0.0);
            let failed =
                sum_metric(&text, "otelcol_exporter_send_failed_log_records", &[]).unwrap_or(0.0);
            if sent >= 1.0 {
                break Ok(CanaryVerdict::Passed { took: started.elapsed() });
            }
            if failed >= 1.0 {
                break Err(format!("the backend refused the marker: {}", last_error(&log)));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.start_kill();
    let _ = child.wait().await;
    verdict
}

/// The shadow's last error line, which names the endpoint and the cause.
fn last_error(log: &Path) -> String {
    std::fs::read_to_string(log)
        .ok()
        .and_then(|text| {
            text.lines()
                .rev()
                .find(|l| l.contains("error") || l.contains("Error"))
                .map(|l| l.chars().take(600).collect())
        })
        .unwrap_or_else(|| "no error in the shadow's log".into())
}
