//! VictoriaLogs: the log store that stands in for Loki in tests. It takes OTLP
//! logs (and the Loki push API) and answers LogsQL queries.

use std::process::Command;

use serde_json::{Map, Value};

use super::{READY_TIMEOUT, fetch_text, http_client, probe_http_ok};
use crate::{Error, Process, Result, Testbed, free_port};

#[derive(Debug)]
pub struct VictoriaLogs {
    process: Process,
    bin: std::path::PathBuf,
    port: u16,
    http: reqwest::Client,
}

impl VictoriaLogs {
    pub async fn start(tb: &Testbed) -> Result<Self> {
        let bin = tb.bin("victoria-logs")?;
        let dir = Process::temp_dir("victoria-logs")?;
        let port = free_port();
        let http = http_client();
        let process = Self::launch(&bin, port, dir, &http).await?;
        Ok(VictoriaLogs { process, bin, port, http })
    }

    async fn launch(
        bin: &std::path::Path,
        port: u16,
        dir: tempfile::TempDir,
        http: &reqwest::Client,
    ) -> Result<Process> {
        let mut cmd = Command::new(bin);
        cmd.arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-storageDataPath={}", dir.path().join("data").display()));
        let mut process = Process::spawn("victoria-logs", cmd, dir)?;
        let health = format!("http://127.0.0.1:{port}/health");
        process.wait_ready(READY_TIMEOUT, || probe_http_ok(http, &health)).await?;
        Ok(process)
    }

    /// Stops the store (an outage); its data stays for [`VictoriaLogs::restart`].
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Starts the store again on the same port and data.
    pub async fn restart(&mut self) -> Result<()> {
        self.process.stop();
        let dir = self.process.take_dir().ok_or_else(|| Error::Unexpected {
            what: "restarting VictoriaLogs".into(),
            detail: "its data dir is gone".into(),
        })?;
        self.process = Self::launch(&self.bin, self.port, dir, &self.http).await?;
        Ok(())
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where an `otlp_http` exporter sends logs (`logs_endpoint`).
    pub fn otlp_logs_endpoint(&self) -> String {
        format!("{}/insert/opentelemetry/v1/logs", self.base_url())
    }

    /// The built-in web UI, for people.
    pub fn ui_url(&self) -> String {
        format!("{}/select/vmui/", self.base_url())
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    /// Runs a LogsQL query and returns every matching record as a JSON object.
    pub async fn query(&self, logsql: &str) -> Result<Vec<Map<String, Value>>> {
        let url = format!("{}/select/logsql/query", self.base_url());
        let request = self.http.get(&url).query(&[("query", logsql), ("limit", "1000000")]);
        let body = fetch_text(request, &url).await?;
        // The answer is JSON lines, one object per record.
        body.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(record)) => Ok(record),
                other => Err(Error::Unexpected {
                    what: format!("VictoriaLogs answer to {logsql:?}"),
                    detail: format!("not a JSON object line: {line:?} ({other:?})"),
                }),
            })
            .collect()
    }
}
