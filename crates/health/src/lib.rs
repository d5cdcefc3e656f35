//! HealthMonitor: checks that prove logs really flow (not only that a process
//! runs), each returning a status with its evidence; and alerts that tell
//! people, deduplicated and resistant to flapping.
//!
//! - `checks`: collector health, queue backpressure, push errors and backend
//!   readiness, and the end-to-end sample log (a marker line appended to the
//!   canary file, then found in the store, its latency recorded).
//! - `backend`: the log store's query API behind one trait: Loki (LogQL
//!   `query_range`, `/ready`) and VictoriaLogs (LogsQL, `/health`).
//! - `alerts`: Prometheus Alertmanager (API v2) and a generic JSON webhook.
//! - `monitor`: `HealthMonitor`: one round of every check, alerts sent,
//!   repairs decided, the last results kept.
//! - `repair`: RepairController: restart with backoff, then the fallback
//!   config, then a notification, decided by a pure planner and recorded.

pub mod alerts;
pub mod backend;
pub mod checks;
pub mod monitor;
pub mod repair;
