//! The test bench: Steward's real data-plane parts, started on demand for
//! integration tests and for the demo.
//!
//! `scripts/testbed.sh` installs every part, pinned, into `.testbed/bin/` and
//! starts the one shared service, a Docker Engine. This crate starts everything
//! else per test: each part gets free loopback ports and a temp dir of its own,
//! is waited for with a deadline until it answers, and is stopped when its
//! handle drops. A part whose test panicked keeps its temp dir and prints where
//! its log is, so a red test can be read after the fact.
//!
//! Tour:
//! - [`Testbed`] finds `.testbed/` and the installed binaries;
//! - [`Process`] owns one child process, its log and its temp dir;
//! - [`parts`] has one module per part ([`parts::Collector`], [`parts::VictoriaLogs`],
//!   [`parts::Prometheus`], ...);
//! - [`docker`] runs throwaway containers on the test bench's engine;
//! - [`first_proof`] is the pipeline shared by the first end-to-end test and the demo.
//!
//! ```no_run
//! # async fn example() -> Result<(), steward_testbed::Error> {
//! let tb = steward_testbed::Testbed::locate()?;
//! let logs = steward_testbed::parts::VictoriaLogs::start(&tb).await?;
//! println!("query API at {}", logs.base_url());
//! # Ok(()) }
//! ```

pub mod docker;
pub mod first_proof;
pub mod node;
pub mod parts;
mod process;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use process::{Process, eventually, free_port};

/// Everything that can go wrong while starting or driving a part.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "test bench not found: no .testbed/ above {searched_from} (run scripts/testbed.sh first)"
    )]
    NoTestbed { searched_from: PathBuf },
    #[error("part `{part}` is not installed at {path} (run scripts/testbed.sh)")]
    MissingPart { part: String, path: PathBuf },
    #[error("could not start `{part}`")]
    Spawn {
        part: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{part}` exited before it was ready ({status}); last log lines:\n{log_tail}")]
    Exited { part: String, status: String, log_tail: String },
    #[error("timed out after {waited:?} waiting for {what}; last observation: {last}")]
    Timeout { what: String, waited: Duration, last: String },
    #[error("I/O on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Docker Engine at {host}")]
    Docker {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("HTTP request to {url}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: {detail}")]
    Unexpected { what: String, detail: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// The installed test bench: `.testbed/` at the top of the checkout.
#[derive(Debug, Clone)]
pub struct Testbed {
    root: PathBuf,
}

impl Testbed {
    /// Finds `.testbed/`: `$STEWARD_TESTBED` if set, else the nearest ancestor
    /// of this crate's source directory that has one.
    pub fn locate() -> Result<Self> {
        if let Some(dir) = std::env::var_os("STEWARD_TESTBED") {
            return Ok(Testbed { root: PathBuf::from(dir) });
        }
        let start = Path::new(env!("CARGO_MANIFEST_DIR"));
        start
            .ancestors()
            .map(|dir| dir.join(".testbed"))
            .find(|candidate| candidate.join("bin").is_dir())
            .map(|root| Testbed { root })
            .ok_or_else(|| Error::NoTestbed { searched_from: start.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of an installed binary, or a [`Error::MissingPart`] that says how to get it.
    pub fn bin(&self, name: &str) -> Result<PathBuf> {
        let path = self.root.join("bin").join(name);
        if path.exists() {
            Ok(path)
        } else {
            Err(Error::MissingPart { part: name.to_owned(), path })
        }
    }

    /// The Docker Engine the script found or started (`unix://…`).
    pub fn docker_host(&self) -> Result<String> {
        let file = self.root.join("docker-host");
        let host = std::fs::read_to_string(&file).map_err(io_err(&file))?;
        Ok(host.trim().to_owned())
    }
}
