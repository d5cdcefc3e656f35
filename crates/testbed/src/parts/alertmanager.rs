//! Alertmanager (Debian's `prometheus-alertmanager`): where alerts raised by
//! Steward's rules land. It routes everything to a receiver that notifies
//! nobody, so tests read alerts back through its API instead.

use std::process::Command;

use serde_json::Value;

use super::{READY_TIMEOUT, fetch_json, http_client, probe_http_ok};
use crate::{Process, Result, Testbed, free_port, io_err};

/// One receiver with no integrations: alerts are kept and listed, never sent.
const CONFIG: &str = "\
route:
  receiver: 'null'
receivers:
  - name: 'null'
";

#[derive(Debug)]
pub struct Alertmanager {
    process: Process,
    port: u16,
    http: reqwest::Client,
}

impl Alertmanager {
    /// Starts Alertmanager from `PATH`; the test bench script installs the Debian package.
    pub async fn start(_tb: &Testbed) -> Result<Self> {
        let dir = Process::temp_dir("alertmanager")?;
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, CONFIG).map_err(io_err(&config_path))?;
        let port = free_port();
        let mut cmd = Command::new("prometheus-alertmanager");
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Clustering would bind the fixed gossip port 9094, so two
            // Alertmanagers (or two tests) could not run side by side.
            .arg("--cluster.listen-address=");
        let mut process = Process::spawn("alertmanager", cmd, dir)?;
        let http = http_client();
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        process.wait_ready(READY_TIMEOUT, || probe_http_ok(&http, &ready)).await?;
        Ok(Alertmanager { process, port, http })
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    /// Every alert Alertmanager holds, as the JSON array of `GET /api/v2/alerts`.
    pub async fn alerts(&self) -> Result<Value> {
        let url = format!("{}/api/v2/alerts", self.base_url());
        fetch_json(self.http.get(&url), &url).await
    }
}
