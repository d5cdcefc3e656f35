//! LogSourceRegistry: the durable registry of log sources.
//!
//! Discovery reports what it sees ([`steward_discovery::Event`]); the registry
//! turns that into the set of sources the collector must read, with their
//! final labels, and remembers it across restarts. Seed methods:
//! `register_log_target`, `update_source_labels`, `list_sources`.
//!
//! - [`plan`] is pure: (current sources, one event, label rules, now) → the
//!   [`Change`]s to make. Most of the tests live there.
//! - [`labels`] sanitises untrusted labels and applies the user's relabel
//!   rules (Prometheus semantics).
//! - [`store`] keeps sources durably: SQLite or PostgreSQL.
//! - [`LogSourceRegistry`] ties them together, and drains tombstones: a
//!   stopped source stays (state `draining`) until its file has had no new
//!   bytes for a grace period, so its last lines are still collected.

pub mod labels;
mod model;
pub mod plan;
mod registry;
pub mod store;

pub use model::{Change, Drain, LogSource, SourceState};
pub use registry::{LogSourceRegistry, RegistryError, Settings};
