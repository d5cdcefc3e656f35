//! The seed's `verify_reload`: after a reload, the collector answers its
//! health check, reads a fresh marker line from the canary file, and is still
//! running after a settle time. A process that merely exists proves nothing.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::AgentError;
use crate::telemetry::{instance_id, scrape, sum_metric};

/// Where a config says its collector can be asked how it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// `http://host:port/` of the `health_check` extension.
    pub health: String,
    /// `http://host:port/metrics` of the internal telemetry.
    pub metrics: String,
    /// The canary file, if the config collects one.
    pub canary: Option<PathBuf>,
}

pub const CANARY_RECEIVER: &str = "file_log/steward_canary";

impl Endpoints {
    /// Reads the endpoints from a config's YAML.
    pub fn from_yaml(yaml: &str) -> Result<Self, AgentError> {
        let tree = steward_config::validate::parse_tree(yaml)
            .map_err(|e| AgentError::Config(format!("not YAML: {e}")))?;
        let health = tree
            .pointer("/extensions/health_check/endpoint")
            .and_then(Value::as_str)
            .ok_or_else(|| AgentError::Config("no health_check extension endpoint".into()))?;
        let prom = tree
            .pointer("/service/telemetry/metrics/readers/0/pull/exporter/prometheus")
            .ok_or_else(|| AgentError::Config("no pull prometheus telemetry reader".into()))?;
        let host = prom.get("host").and_then(Value::as_str).unwrap_or("127.0.0.1");
        let port = prom
            .get("port")
            .and_then(Value::as_u64)
            .ok_or_else(|| AgentError::Config("the telemetry reader has no port".into()))?;
        let canary = tree
            .pointer(&format!("/receivers/{}/include/0", CANARY_RECEIVER.replace('/', "~1")))
            .and_then(Value::as_str)
            .map(|glob| PathBuf::from(unescape_glob(&glob.replace("$$", "$"))));
        Ok(Endpoints {
            health: format!("http://{}/", local(health)),
            metrics: format!("http://{}/metrics", local(&format!("{host}:{port}"))),
            canary,
        })
    }
}

/// A listener on all interfaces is reached through loopback.
fn local(endpoint: &str) -> String {
    match endpoint.rsplit_once(':') {
        Some(("" | "0.0.0.0" | "[::]" | "::", port)) => format!("127.0.0.1:{port}"),
        _ => endpoint.to_owned(),
    }
}

fn unescape_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// Appends one marker line to the canary file (creating it and its directory).
pub fn write_marker(path: &std::path::Path, marker: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(file, "{marker}")?;
    file.sync_data()
}

/// A marker no one else writes: `steward-verify <what> <unix nanos>`.
pub fn marker(what: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("steward-verify {what} {nanos}")
}

async fn health_ok(http: &reqwest::Client, url: &str) -> Result<(), String> {
    match http.get(url).timeout(Duration::from_secs(2)).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("health check {url}: HTTP {}", r.status())),
        Err(e) => Err(format!("health check {url}: {e}")),
    }
}

/// Lines the canary receiver accepted, and the service instance that counted
/// them (each reload starts a new one, counting from zero).
async fn canary_accepted(
    http: &reqwest::Client,
    url: &str,
) -> Result<(f64, Option<String>), String> {
    let text = scrape(http, url).await?;
    let accepted = sum_metric(
        &text,
        "otelcol_receiver_accepted_log_records",
        &[("receiver", CANARY_RECEIVER)],
    )?;
    Ok((accepted, instance_id(&text).map(str::to_owned)))
}

/// Why verification stops at once: the process under test is gone, and a
/// restart of it would only load the same file again.
pub const EXITED: &str = "the collector exited during verification";

/// Polls `probe` every 50 ms until it succeeds or `deadline` passes; fails
/// at once when `alive` says the collector no longer runs.
async fn until<T, F, Fut>(
    deadline: Instant,
    alive: &impl Fn() -> bool,
    mut probe: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    loop {
        if !alive() {
            return Err(EXITED.to_owned());
        }
        match probe().await {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => return Err(last),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Verifies a freshly reloaded collector: `alive` says whether the process
/// being verified still runs; once it says no, verification fails at once.
/// Returns the reason on failure.
pub async fn verify_reload(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    alive: impl Fn() -> bool,
    timeout: Duration,
    settle: Duration,
    version: &str,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    until(deadline, &alive, || health_ok(http, &endpoints.health)).await?;
    if let Some(canary) = &endpoints.canary {
        // Right after a SIGHUP the service that is shutting down may still
        // answer; a count it gave is no baseline for its successor.
        let (before, counted_by) =
            until(deadline, &alive, || canary_accepted(http, &endpoints.metrics)).await?;
        let write = || {
            write_marker(canary, &marker(version))
                .map_err(|e| format!("cannot write the canary file {}: {e}", canary.display()))
        };
        write()?;
        // The service a SIGHUP is replacing may still read the marker on its
        // way out and save the offset past it; its successor then never sees
        // it. Another marker each second closes that race.
        let mut written = Instant::now();
        let counted_by = &counted_by;
        until(deadline, &alive, || {
            let rewrite = if written.elapsed() >= Duration::from_secs(1) {
                written = Instant::now();
                write()
            } else {
                Ok(())
            };
            async move {
                rewrite?;
                let (now, instance) = canary_accepted(http, &endpoints.metrics).await?;
                let baseline = if instance == *counted_by {
                    before
                } else {
                    tracing::debug!(
                        ?counted_by,
                        ?instance,
                        "a new service instance: counting from zero"
                    );
                    0.0
                };
                if now > baseline {
                    Ok(())
                } else {
                    Err(format!("the canary receiver accepted no new line ({now} so far)"))
                }
            }
        })
        .await?;
    }
    tokio::time::sleep(settle).await;
    if !alive() {
        return Err(format!("the collector exited within {settle:?} of the reload"));
    }
    health_ok(http, &endpoints.health).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_come_from_the_config_itself() {
        let yaml = "extensions:\n  health_check: {endpoint: '0.0.0.0:13133'}\n\
            receivers:\n  file_log/steward_canary: {include: ['/var/lib/s/can\\[1\\]$$x.log']}\n\
            service:\n  telemetry:\n    metrics:\n      readers:\n      - pull: {exporter: {prometheus: {host: 127.0.0.1, port: 8888}}}\n";
        let endpoints = Endpoints::from_yaml(yaml).unwrap();
        assert_eq!(endpoints.health, "http://127.0.0.1:13133/");
        assert_eq!(endpoints.metrics, "http://127.0.0.1:8888/metrics");
        assert_eq!(endpoints.canary, Some(PathBuf::from("/var/lib/s/can[1]$x.log")));
        assert!(Endpoints::from_yaml("receivers: {}\n").is_err());
    }
}
