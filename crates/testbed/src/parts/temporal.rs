//! Temporal's development server (`temporal server start-dev`): the workflow
//! engine Steward's long-running operations run on. Its state is one SQLite
//! file in the part's temp dir; the CLI that runs it also drives it in tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::READY_TIMEOUT;
use crate::{Error, Process, Result, Testbed, free_port};

/// How long one CLI call may take before it counts as hung.
const CLI_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug)]
pub struct Temporal {
    process: Process,
    cli: PathBuf,
    port: u16,
    http_port: u16,
}

impl Temporal {
    pub async fn start(tb: &Testbed) -> Result<Self> {
        let cli = tb.bin("temporal")?;
        let dir = Process::temp_dir("temporal")?;
        let (port, http_port, metrics_port) = (free_port(), free_port(), free_port());
        let mut cmd = Command::new(&cli);
        cmd.args(["server", "start-dev", "--ip", "127.0.0.1", "--headless", "--log-level", "warn"])
            .arg("--port")
            .arg(port.to_string())
            // Left to itself the server derives these from `--port` or uses fixed
            // defaults; naming them keeps parallel servers apart.
            .arg("--http-port")
            .arg(http_port.to_string())
            .arg("--metrics-port")
            .arg(metrics_port.to_string())
            .arg("--db-filename")
            .arg(dir.path().join("temporal.db"));
        let mut process = Process::spawn("temporal", cmd, dir)?;
        let address = format!("127.0.0.1:{port}");
        process
            .wait_ready(READY_TIMEOUT, || async {
                run_cli(&cli, &["operator", "cluster", "health", "--address", &address])
                    .await
                    .map(drop)
            })
            .await?;
        Ok(Temporal { process, cli, port, http_port })
    }

    /// The frontend's gRPC address, `host:port`, as clients and `--address` take it.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The frontend's HTTP API.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    /// Runs the `temporal` CLI against this server (`--address` is added) and
    /// returns its standard output.
    pub async fn cli(&self, args: &[&str]) -> Result<String> {
        let address = self.address();
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--address", &address]);
        run_cli(&self.cli, &full).await.map_err(|detail| Error::Unexpected {
            what: format!("temporal {}", full.join(" ")),
            detail,
        })
    }
}

/// Runs the CLI with a deadline; `Err` explains a failure, a hang, or a non-zero exit.
async fn run_cli(cli: &Path, args: &[&str]) -> std::result::Result<String, String> {
    let mut cmd = tokio::process::Command::new(cli);
    cmd.args(args).stdin(std::process::Stdio::null()).kill_on_drop(true);
    match tokio::time::timeout(CLI_TIMEOUT, cmd.output()).await {
        Ok(Ok(out)) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Ok(Ok(out)) => Err(format!(
            "temporal {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(Err(err)) => Err(format!("temporal {}: {err}", args.join(" "))),
        Err(_) => Err(format!("temporal {} did not finish within {CLI_TIMEOUT:?}", args.join(" "))),
    }
}
