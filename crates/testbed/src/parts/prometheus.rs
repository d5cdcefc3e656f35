//! Prometheus (Debian's `prometheus`): the metrics store. Collectors push to it
//! through its remote-write receiver, and tests read back with PromQL. It
//! scrapes nothing itself unless a test gives it scrape jobs
//! (`start_with_config`).

use std::process::Command;

use serde_json::Value;

use super::{READY_TIMEOUT, fetch_json, http_client, probe_http_ok};
use crate::{Error, Process, Result, Testbed, free_port, io_err};

/// No scrape configs: a test bench Prometheus only receives remote writes.
const CONFIG: &str = "global:\n  scrape_interval: 15s\n";

#[derive(Debug)]
pub struct Prometheus {
    process: Process,
    port: u16,
    http: reqwest::Client,
}

impl Prometheus {
    /// Starts Prometheus from `PATH`; the test bench script installs the Debian package.
    pub async fn start(tb: &Testbed) -> Result<Self> {
        Prometheus::start_with_config(tb, CONFIG).await
    }

    /// Starts Prometheus with `config` as its `prometheus.yml` (e.g. with
    /// scrape jobs).
    pub async fn start_with_config(_tb: &Testbed, config: &str) -> Result<Self> {
        let dir = Process::temp_dir("prometheus")?;
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).map_err(io_err(&config_path))?;
        let port = free_port();
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver");
        let mut process = Process::spawn("prometheus", cmd, dir)?;
        let http = http_client();
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        process.wait_ready(READY_TIMEOUT, || probe_http_ok(&http, &ready)).await?;
        Ok(Prometheus { process, port, http })
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where a `prometheusremotewrite` exporter sends metrics (`endpoint`).
    pub fn remote_write_url(&self) -> String {
        format!("{}/api/v1/write", self.base_url())
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    /// Runs an instant PromQL query and returns its `data` object
    /// (`{"resultType": ..., "result": [...]}`).
    pub async fn query(&self, promql: &str) -> Result<Value> {
        let url = format!("{}/api/v1/query", self.base_url());
        let body: Value = fetch_json(self.http.get(&url).query(&[("query", promql)]), &url).await?;
        match (body.get("status").and_then(Value::as_str), body.get("data")) {
            (Some("success"), Some(data)) => Ok(data.clone()),
            _ => Err(Error::Unexpected {
                what: format!("Prometheus answer to {promql:?}"),
                detail: body.to_string(),
            }),
        }
    }
}
