//! The OpAMP supervisor: the agent-side half of Steward's fleet management. It
//! runs `otelcol-steward` as its child, connects to an OpAMP server (Steward,
//! or a test's stand-in) and relays the collector's identity, health and
//! effective config to it, and remote configs back.
//!
//! What binds where, and why none of it is a fixed port:
//! - its health endpoint: a free port given here (off unless configured);
//! - its local OpAMP server, which the collector's `opamp` extension dials:
//!   a random port the supervisor picks itself when `agent.opamp_server_port`
//!   is unset, as it is here;
//! - the collector's own metrics endpoint, by default 8888: switched off with
//!   a `--set` argument, which the supervisor passes both to the bootstrap run
//!   (a short collector run that only reports its description) and to the
//!   real one. A config file would not reach the bootstrap run.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{READY_TIMEOUT, http_client, probe_http_ok};
use crate::{Error, Process, Result, Testbed, free_port, io_err};

/// How often [`Supervisor::start`] tries when it meets the upstream race below.
const BOOTSTRAP_ATTEMPTS: u32 = 3;

/// Why one start attempt failed.
enum Attempt {
    /// The supervisor v0.149.0 runs `otelcol-steward featuregate` to learn
    /// whether the collector allows a config without pipelines, but its
    /// one-shot runner calls `Wait` while its goroutines still read the pipes
    /// ("Error reading agent stdout: read |0: file already closed"). When it
    /// loses that race it sees no gates, bootstraps the collector with `nop`
    /// components, which our distribution cannot have (the module proxy refuses
    /// `receiver/nopreceiver` v0.158.0), and exits. Seen here about once in
    /// four starts; a fresh start is the only remedy short of patching upstream.
    BootstrapRace(Process),
    Failed(Error),
}

impl From<Error> for Attempt {
    fn from(err: Error) -> Self {
        Attempt::Failed(err)
    }
}

/// True if the bootstrap collector refused the `nop` pipeline, the mark of the race.
fn lost_featuregate_race(process: &Process) -> bool {
    let agent_log = process.dir().join("storage").join("agent.log");
    std::fs::read_to_string(agent_log).is_ok_and(|log| log.contains("unknown type: \"nop\""))
}

#[derive(Debug)]
pub struct Supervisor {
    process: Process,
    health_port: u16,
}

impl Supervisor {
    /// Starts the supervisor against the OpAMP server at `server_endpoint`
    /// (`ws://…/v1/opamp` or `http://…`) and returns once it has bootstrapped
    /// its collector and started its OpAMP client. The server need not answer
    /// yet: the client keeps retrying in the background.
    pub async fn start(tb: &Testbed, server_endpoint: &str) -> Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::start_once(tb, server_endpoint).await {
                Err(Attempt::BootstrapRace(mut process)) if attempt < BOOTSTRAP_ATTEMPTS => {
                    // A lost race is not worth keeping for a post-mortem.
                    process.discard_dir_on_drop();
                    attempt += 1;
                }
                Err(Attempt::BootstrapRace(_)) => {
                    return Err(Error::Unexpected {
                        what: "opampsupervisor bootstrap".into(),
                        detail: format!(
                            "lost the upstream stdout race {BOOTSTRAP_ATTEMPTS} times in a row"
                        ),
                    });
                }
                Err(Attempt::Failed(err)) => return Err(err),
                Ok(supervisor) => return Ok(supervisor),
            }
        }
    }

    async fn start_once(tb: &Testbed, server_endpoint: &str) -> Result<Self, Attempt> {
        let bin = tb.bin("opampsupervisor")?;
        let collector = tb.bin("otelcol-steward")?;
        let dir = Process::temp_dir("opampsupervisor")?;
        let health_port = free_port();
        let config = config(server_endpoint, &collector, &dir.path().join("storage"), health_port);
        let config_path = dir.path().join("supervisor.yaml");
        std::fs::write(&config_path, config).map_err(io_err(&config_path))?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config").arg(&config_path);
        let mut process = Process::spawn("opampsupervisor", cmd, dir)?;
        let http = http_client();
        // The endpoint answers 200 only once the bootstrap run is done and the
        // collector's first config is composed: before that it says 503.
        let health = format!("http://127.0.0.1:{health_port}/health");
        match process.wait_ready(READY_TIMEOUT, || probe_http_ok(&http, &health)).await {
            Ok(()) => Ok(Supervisor { process, health_port }),
            Err(Error::Exited { ref log_tail, .. })
                if log_tail.contains("could not get bootstrap info")
                    && lost_featuregate_race(&process) =>
            {
                Err(Attempt::BootstrapRace(process))
            }
            Err(err) => Err(Attempt::Failed(err)),
        }
    }

    pub fn health_url(&self) -> String {
        format!("http://127.0.0.1:{}/health", self.health_port)
    }

    /// The supervisor's state: its instance id, the collector's config, its log.
    pub fn storage_dir(&self) -> PathBuf {
        self.process.dir().join("storage")
    }

    /// The collector's own log, written by the supervisor.
    pub fn agent_log_path(&self) -> PathBuf {
        self.storage_dir().join("agent.log")
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    /// The instance UID the supervisor reports for its collector (a UUID, as
    /// text), from the state file the supervisor keeps in its storage dir.
    pub fn instance_uid(&self) -> Result<String> {
        let path = self.storage_dir().join("persistent_state.yaml");
        let state = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        state
            .lines()
            .find_map(|line| line.strip_prefix("instance_id:"))
            .map(|value| value.trim().trim_matches(['"', '\'']).to_owned())
            .filter(|uid| !uid.is_empty())
            .ok_or_else(|| Error::Unexpected {
                what: format!("the supervisor's state file {}", path.display()),
                detail: format!("no `instance_id:` line in:\n{state}"),
            })
    }
}

fn config(server_endpoint: &str, collector: &Path, storage: &Path, health_port: u16) -> String {
    // Paths and the endpoint are quoted as YAML strings; `{:?}` of a Rust
    // string is a valid double-quoted YAML scalar for anything a temp path holds.
    let endpoint = format!("{server_endpoint:?}");
    let executable = format!("{:?}", collector.display().to_string());
    let storage = format!("{:?}", storage.display().to_string());
    format!(
        "\
server:
  endpoint: {endpoint}
capabilities:
  accepts_remote_config: true
  reports_remote_config: true
  reports_effective_config: true
  reports_health: true
  reports_heartbeat: true
  reports_available_components: true
  accepts_restart_command: true
  # Own metrics would go where the server says; the test bench's stand-in
  # servers say nothing, and the collector's metrics endpoint is off.
  reports_own_metrics: false
agent:
  executable: {executable}
  args:
    - --set=service::telemetry::metrics::level=none
  # A cold collector start on a busy two-core machine can exceed the 3 s default;
  # a lost bootstrap race (see `Attempt`) costs this much before the retry.
  bootstrap_timeout: 10s
  config_apply_timeout: 30s
storage:
  directory: {storage}
healthcheck:
  endpoint: 127.0.0.1:{health_port}
"
    )
}
