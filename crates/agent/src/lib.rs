//! AgentManager: rolls a config out to a node's collector without leaving the
//! node without a running collector, and without losing or repeating a line.
//!
//! - [`runner`]: how the collector runs: [`runner::Supervised`] (Steward's child,
//!   restarted with backoff, crash loops reported) or [`runner::Signalled`]
//!   (systemd/Kubernetes run it; Steward signals the pid file's PID).
//! - [`manager::AgentManager::apply`]: record the version → pre-flight (static
//!   checks + the node's own `otelcol validate`) → [`canary`] (a shadow
//!   collector must get a marker into the backend) → [`atomic`] write → SIGHUP
//!   → [`verify`] (health, a fresh canary line accepted, still running after a
//!   settle time) → mark applied, or roll back to what ran before.
//! - [`telemetry`]: reading the collector's own metrics.
//!
//! Offsets live in `file_storage` under ids that never change across
//! generations (see `steward-config`), which is what makes a SIGHUP reload
//! neither lose nor repeat lines.

pub mod atomic;
pub mod canary;
pub mod hold;
pub mod manager;
pub mod runner;
pub mod telemetry;
pub mod verify;

pub use hold::Hold;
pub use manager::{AgentEvent, AgentManager, AgentSettings, Current, FellBack, Outcome, Pushed};

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot signal pid {pid}")]
    Signal {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("pid file {path}")]
    PidFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the collector is not running (waited {waited:?})")]
    NotRunning { waited: Duration },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config: {0}")]
    Config(String),
    #[error("version history")]
    Store(#[from] steward_registry::store::StoreError),
    #[error("unknown config version {0}")]
    UnknownVersion(String),
    #[error("no earlier good version to roll back to")]
    NoRollbackTarget,
    #[error("rolling back to {version} failed too: {reason}")]
    RollbackFailed { version: String, reason: String },
}
