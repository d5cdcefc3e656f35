//! One single-Docker-host node, as `steward run` manages it: the real
//! `otelcol-steward` started the way a service manager would (through `sh`,
//! which writes its pid file and execs it), VictoriaLogs as the log store,
//! SQLite for Steward's state, the test bench's Docker Engine, and
//! `steward run` itself. Shared by the end-to-end tests, the latency
//! benchmark and the demo.
//!
//! Only containers labelled `steward.node=<label>` are collected (a relabel
//! `keep` rule), so nodes started side by side on one engine, or by tests
//! running in parallel, do not collect each other's containers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::parts::VictoriaLogs;
use crate::{Error, Process, Result, Testbed, eventually, free_port, io_err};

/// How `steward run` is set up.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// `embedded` or `temporal`.
    pub engine: String,
    /// `host:port` of a Temporal frontend (engine `temporal`).
    pub temporal_address: Option<String>,
    pub canary: bool,
    pub settle_ms: u64,
    pub verify_timeout_secs: u64,
    pub period_secs: u64,
    pub debounce_ms: u64,
    /// `batch.timeout` of the generated config.
    pub batch_timeout: String,
    /// `poll_interval` of each file_log receiver.
    pub poll_interval: String,
    /// `RUST_LOG` for `steward run`.
    pub log: String,
    /// Serve the HTTP API and UI on a free port, with a token file.
    pub api: bool,
    /// `health.interval_secs`: how often checks (and the e2e probe) run.
    pub health_interval_secs: u64,
}

/// Where a node's API answers, and its token.
#[derive(Debug, Clone)]
pub struct NodeApi {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    pub token: String,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            engine: "embedded".into(),
            temporal_address: None,
            canary: true,
            settle_ms: 500,
            verify_timeout_secs: 20,
            period_secs: 15,
            debounce_ms: 200,
            batch_timeout: "200ms".into(),
            poll_interval: "200ms".into(),
            log: "info,sqlx=warn,notify=error".into(),
            api: false,
            health_interval_secs: 30,
        }
    }
}

pub struct Node {
    pub logs: VictoriaLogs,
    pub collector: Process,
    pub steward: Option<Process>,
    /// The value of the `steward.node` label this node collects.
    pub label: String,
    pub health_check: String,
    pub config_path: PathBuf,
    pub pid_file: PathBuf,
    pub db_path: PathBuf,
    pub api: Option<NodeApi>,
    steward_bin: PathBuf,
    options: NodeOptions,
    // Last: dropped after the processes that use it. An `Option` so that
    // `Drop` can keep it.
    dir: Option<TempDir>,
}

impl Drop for Node {
    /// A failed test or benchmark keeps the node's dir: `steward.yaml`,
    /// Steward's and the collector's logs, the SQLite history.
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            if let Some(steward) = &mut self.steward {
                steward.stop();
            }
            self.collector.stop();
            eprintln!("test bench: kept the node's dir {}", dir.keep().display());
        }
    }
}

impl Node {
    /// Starts the store and the collector on the bootstrap config; `steward
    /// run` is started by [`Node::start_steward`].
    pub async fn start(tb: &Testbed, steward_bin: &Path, options: NodeOptions) -> Result<Node> {
        let logs = VictoriaLogs::start(tb).await?;
        let otelcol = tb.bin("otelcol-steward")?;
        let dir = Process::temp_dir("steward-node")?;
        let d = dir.path().to_owned();
        let label = d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let health_check = format!("127.0.0.1:{}", free_port());
        let config_path = d.join("collector").join("config.yaml");
        let pid_file = d.join("collector.pid");
        let db_path = d.join("data").join("steward.db");
        let workflow = match (&options.engine[..], &options.temporal_address) {
            ("temporal", Some(address)) => {
                format!("  engine: temporal\n  temporal:\n    address: '{address}'\n")
            }
            (engine, _) => format!("  engine: {engine}\n"),
        };
        let api = if options.api {
            // Unique per node and long enough; a test secret, not a real one.
            let token = format!("steward-test-token-{label}");
            let token_file = d.join("api-token");
            std::fs::write(&token_file, format!("{token}\n")).map_err(io_err(&token_file))?;
            let port = free_port();
            let section = format!(
                "api:\n  listen: 127.0.0.1:{port}\n  token_file: {}\n",
                token_file.display()
            );
            Some((NodeApi { url: format!("http://127.0.0.1:{port}"), token }, section))
        } else {
            None
        };
        let yaml = format!(
            "data_dir: {data}\n\
             node: {label}\n\
             discovery:\n  docker:\n    host: {docker}\n  log_dirs:\n    enabled: false\n\
             registry:\n  drain_grace_secs: 2\n  relabel:\n    \
             - source_labels: [__meta_docker_container_label_steward_node]\n      \
               regex: '{label}'\n      action: keep\n\
             collector:\n  binary: {otelcol}\n  storage_dir: {storage}\n  fsync: false\n  \
             canary_path: {canary}\n  health_check: {health}\n  telemetry: 127.0.0.1:{telemetry}\n  \
             otlp_grpc: 127.0.0.1:{grpc}\n  otlp_http: 127.0.0.1:{http}\n  \
             poll_interval: {poll}\n  batch:\n    timeout: {batch}\n  \
             logs:\n    exporter:\n      otlp_http:\n        logs_endpoint: {endpoint}\n\
             agent:\n  mode: signal\n  config_path: {config}\n  pid_file: {pid}\n  \
             canary: {canary_on}\n  settle_ms: {settle}\n  verify_timeout_secs: {verify}\n\
             health:\n  backend:\n    victoria_logs: {store}\n  interval_secs: {interval}\n\
             workflow:\n{workflow}  period_secs: {period}\n  debounce_ms: {debounce}\n{api}",
            data = d.join("data").display(),
            docker = tb.docker_host()?,
            otelcol = otelcol.display(),
            storage = d.join("storage").display(),
            canary = d.join("canary").join("canary.log").display(),
            health = health_check,
            telemetry = free_port(),
            grpc = free_port(),
            http = free_port(),
            poll = options.poll_interval,
            batch = options.batch_timeout,
            endpoint = logs.otlp_logs_endpoint(),
            config = config_path.display(),
            pid = pid_file.display(),
            canary_on = options.canary,
            settle = options.settle_ms,
            verify = options.verify_timeout_secs,
            store = logs.base_url(),
            period = options.period_secs,
            debounce = options.debounce_ms,
            interval = options.health_interval_secs,
            api = api.as_ref().map(|(_, section)| section.as_str()).unwrap_or_default(),
        );
        let steward_yaml = d.join("steward.yaml");
        std::fs::write(&steward_yaml, yaml).map_err(io_err(&steward_yaml))?;

        // What the service manager's unit would do before the first start:
        // the collector's first config is the one with no sources.
        let out = Command::new(steward_bin)
            .args(["config", "build"])
            .env("STEWARD_CONFIG", &steward_yaml)
            .output()
            .map_err(io_err(steward_bin))?;
        if !out.status.success() {
            return Err(Error::Unexpected {
                what: "steward config build".into(),
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let parent = config_path.parent().expect("config has a parent");
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        std::fs::write(&config_path, &out.stdout).map_err(io_err(&config_path))?;

        let mut sh = Command::new("sh");
        sh.arg("-c").arg("echo $$ > \"$1\"; exec \"$2\" --config \"$3\"").arg("sh").args([
            pid_file.as_os_str(),
            otelcol.as_os_str(),
            config_path.as_os_str(),
        ]);
        let collector = Process::spawn_in("otelcol-steward", sh, &d)?;
        let node = Node {
            logs,
            collector,
            steward: None,
            label,
            health_check,
            config_path,
            pid_file,
            db_path,
            api: api.map(|(api, _)| api),
            steward_bin: steward_bin.to_owned(),
            options,
            dir: Some(dir),
        };
        eventually("the collector's health check", Duration::from_secs(30), || async {
            node.collector_health().await.map_err(|err| err.to_string())
        })
        .await?;
        Ok(node)
    }

    /// The engine `steward run` was configured with.
    pub fn options_engine(&self) -> &str {
        &self.options.engine
    }

    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("kept until drop").path()
    }

    /// `steward …` with this node's `steward.yaml`.
    pub fn steward_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.steward_bin);
        cmd.args(args)
            .env("STEWARD_CONFIG", self.dir().join("steward.yaml"))
            .env("RUST_LOG", &self.options.log);
        cmd
    }

    /// Runs `steward ARGS` (a command with `--output json`) and parses what
    /// it prints; a non-zero exit is an error with its stderr.
    pub fn steward_json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let what = format!("steward {}", args.join(" "));
        let out = self.steward_command(args).output().map_err(io_err(&self.steward_bin))?;
        if !out.status.success() {
            let detail = String::from_utf8_lossy(&out.stderr).into_owned();
            return Err(Error::Unexpected { what, detail });
        }
        serde_json::from_slice(&out.stdout)
            .map_err(|err| Error::Unexpected { what, detail: format!("not JSON: {err}") })
    }

    /// Starts `steward run` (again).
    pub fn start_steward(&mut self) -> Result<()> {
        let cmd = self.steward_command(&["run"]);
        let name = match &self.steward {
            None => "steward-run".to_owned(),
            Some(_) => "steward-run-again".to_owned(),
        };
        self.steward = Some(Process::spawn_in(&name, cmd, self.dir())?);
        Ok(())
    }

    /// `kill -9` of `steward run`: no chance to clean up.
    pub fn kill_steward(&mut self) {
        if let Some(steward) = &mut self.steward {
            steward.signal(libc::SIGKILL);
            steward.stop();
        }
    }

    /// The collector's health check answers 2xx.
    pub async fn collector_health(&self) -> Result<()> {
        let url = format!("http://{}/", self.health_check);
        let response = crate::parts::http_client()
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map_err(|source| Error::Http { url: url.clone(), source })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Error::Unexpected { what: url, detail: format!("HTTP {}", response.status()) })
        }
    }

    /// The labels a container needs to be collected by this node.
    pub fn labels(&self) -> [(&str, &str); 1] {
        [("steward.node", self.label.as_str())]
    }

    /// How many records holding `needle` the store has.
    pub async fn count(&self, needle: &str) -> Result<usize> {
        let quoted = serde_json::to_string(needle).expect("a string encodes");
        Ok(self.logs.query(&format!("_msg:{quoted}")).await?.len())
    }
}
