//! A hold on the reconcile loop: after a person applies or rolls back a
//! version by hand, the loop must not undo it at its next cycle. The hold
//! says which version was chosen and why; the loop leaves the collector
//! alone while it stands, and a requested reconcile releases it.
//!
//! It is a small JSON file beside the collector's config (written
//! atomically), so it survives a restart of Steward and is seen by every
//! engine's activities in the process.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::AgentError;
use crate::atomic::write_atomic;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The version chosen by hand (`cfg-…`).
    pub version: String,
    /// Who or what asked, in words.
    pub reason: String,
    /// Since when, Unix milliseconds.
    pub since_ms: i64,
}

/// Where the hold of the collector config at `config_path` lives.
pub fn hold_path(config_path: &Path) -> PathBuf {
    let mut name = config_path.file_name().unwrap_or_default().to_os_string();
    name.push(".steward-hold.json");
    config_path.with_file_name(name)
}

/// The hold, if one stands. An unreadable or corrupt file is reported and
/// counts as no hold: a broken file must not freeze the loop for good.
pub fn read_hold(config_path: &Path) -> Option<Hold> {
    let path = hold_path(config_path);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "hold file unreadable; ignored");
            return None;
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(hold) => Some(hold),
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "hold file corrupt; ignored");
            None
        }
    }
}

pub fn write_hold(config_path: &Path, hold: &Hold) -> Result<(), AgentError> {
    let path = hold_path(config_path);
    let json =
        serde_json::to_vec_pretty(hold).map_err(|err| AgentError::Config(err.to_string()))?;
    write_atomic(&path, &json).map_err(|source| AgentError::Write { path, source })
}

/// Removes the hold; `true` if there was one.
pub fn release_hold(config_path: &Path) -> Result<bool, AgentError> {
    let path = hold_path(config_path);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(AgentError::Write { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_is_written_read_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        assert_eq!(read_hold(&config), None);
        let hold = Hold { version: "cfg-abc".into(), reason: "rolled back".into(), since_ms: 7 };
        write_hold(&config, &hold).unwrap();
        assert_eq!(hold_path(&config), dir.path().join("config.yaml.steward-hold.json"));
        assert_eq!(read_hold(&config), Some(hold));
        assert!(release_hold(&config).unwrap());
        assert!(!release_hold(&config).unwrap());
        assert_eq!(read_hold(&config), None);
    }

    #[test]
    fn a_corrupt_hold_counts_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(hold_path(&config), b"{not json").unwrap();
        assert_eq!(read_hold(&config), None);
    }
}
