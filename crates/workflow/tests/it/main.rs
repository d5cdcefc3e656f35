//! The embedded engine against a real SQLite history, with scripted
//! activities: what a crash, a shutdown and a retry leave in the history,
//! and what a restarted engine does with it. (The same with the real
//! activities and real parts is in the `steward` crate's `run` tests.)
mod embedded;
