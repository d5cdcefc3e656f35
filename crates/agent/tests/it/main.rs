//! Integration tests of the agent with real parts: the real collector binary
//! (supervised), Debian's dockerd, VictoriaLogs as the log store, SQLite for
//! the version history, a real tmpfs for a full disk.
mod reloads;
mod rollout;
