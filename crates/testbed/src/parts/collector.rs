//! `otelcol-steward`, our collector distribution, run with a given config.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{READY_TIMEOUT, fetch_text, http_client, probe_http_ok};
use crate::{Error, Process, Result, Testbed, io_err};

/// A running collector. The config must enable the `health_check` extension on
/// `127.0.0.1:<health_port>`: readiness is its answer, since that comes only
/// after every pipeline has started.
#[derive(Debug)]
pub struct Collector {
    process: Process,
    config_path: PathBuf,
    health_port: u16,
}

impl Collector {
    /// Starts the collector with `config` (YAML), written to `collector.yaml`
    /// in the part's temp dir. `config_for` receives that temp dir first, so a
    /// config can place storage directories inside it.
    pub async fn start(
        tb: &Testbed,
        health_port: u16,
        config_for: impl FnOnce(&Path) -> String,
    ) -> Result<Self> {
        let bin = tb.bin("otelcol-steward")?;
        let dir = Process::temp_dir("otelcol")?;
        let config_path = dir.path().join("collector.yaml");
        let config = config_for(dir.path());
        std::fs::write(&config_path, config).map_err(io_err(&config_path))?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config").arg(&config_path);
        let mut process = Process::spawn("otelcol", cmd, dir)?;
        let http = http_client();
        let health = format!("http://127.0.0.1:{health_port}/");
        process.wait_ready(READY_TIMEOUT, || probe_http_ok(&http, &health)).await?;
        Ok(Collector { process, config_path, health_port })
    }

    /// Runs `otelcol-steward validate` on `config` and returns its verdict:
    /// `Ok(())`, or `Err` with what the collector printed.
    pub fn validate(tb: &Testbed, config: &str) -> Result<std::result::Result<(), String>> {
        let bin = tb.bin("otelcol-steward")?;
        let dir = Process::temp_dir("otelcol-validate")?;
        let path = dir.path().join("candidate.yaml");
        std::fs::write(&path, config).map_err(io_err(&path))?;
        let out = Command::new(&bin)
            .arg("validate")
            .arg("--config")
            .arg(&path)
            .output()
            .map_err(|source| Error::Spawn { part: "otelcol validate".into(), source })?;
        if out.status.success() {
            Ok(Ok(()))
        } else {
            Ok(Err(String::from_utf8_lossy(&out.stderr).into_owned()))
        }
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn health_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.health_port)
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    pub fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

/// Sums every sample of the metric `name` in the collector's Prometheus
/// telemetry at `metrics_url`. The collector adds a `_total` suffix to counters
/// depending on version and reader settings, so both spellings count.
pub async fn telemetry_sum(http: &reqwest::Client, metrics_url: &str, name: &str) -> Result<f64> {
    let request = http.get(metrics_url).header("Accept", "text/plain; version=0.0.4");
    let text = fetch_text(request, metrics_url).await?;
    sum_samples(&text, name).map_err(|detail| Error::Unexpected {
        what: format!("collector telemetry at {metrics_url}"),
        detail,
    })
}

/// Sums the samples of `name` (or `name_total`) in Prometheus text exposition.
fn sum_samples(text: &str, name: &str) -> std::result::Result<f64, String> {
    let total = format!("{name}_total");
    let mut sum = 0.0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        // `metric{labels} value [timestamp]`; label values may hold spaces, so
        // the value is found after the label set, not by splitting the line.
        let (metric, rest) = match line.find('{') {
            Some(open) => {
                let close = line.rfind('}').ok_or_else(|| format!("unclosed labels: {line:?}"))?;
                (&line[..open], &line[close + 1..])
            }
            None => line.split_once(char::is_whitespace).unwrap_or((line, "")),
        };
        if metric == name || metric == total {
            let value = rest.split_whitespace().next().unwrap_or_default();
            sum += value.parse::<f64>().map_err(|_| format!("unparsable sample: {line:?}"))?;
        }
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::sum_samples;

    #[test]
    fn sums_both_spellings_across_series_and_ignores_others() {
        let text = "# HELP x\n# TYPE otelcol_receiver_accepted_log_records counter\n\
            otelcol_receiver_accepted_log_records{receiver=\"file_log\",transport=\"\"} 600\n\
            otelcol_receiver_accepted_log_records_total{receiver=\"a b}\"} 400 1700000000000\n\
            otelcol_receiver_accepted_log_records_created 1.7e9\n\
            otelcol_receiver_refused_log_records 3\n";
        assert_eq!(sum_samples(text, "otelcol_receiver_accepted_log_records"), Ok(1000.0));
        assert_eq!(sum_samples(text, "otelcol_receiver_refused_log_records"), Ok(3.0));
        assert_eq!(sum_samples(text, "absent"), Ok(0.0));
    }

    #[test]
    fn a_garbled_sample_is_an_error_that_quotes_the_line() {
        let err = sum_samples("m{a=\"1\"} not-a-number\n", "m").unwrap_err();
        assert!(err.contains("not-a-number"), "{err}");
    }
}
