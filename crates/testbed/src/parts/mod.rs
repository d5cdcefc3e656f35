//! One module per data-plane part. Each `start` picks free loopback ports,
//! writes its config into the part's temp dir, spawns it through [`Process`],
//! and returns once the part answers on its API (or with the reason it did not).
//!
//! [`Process`]: crate::Process

mod alertmanager;
mod collector;
mod jaeger;
mod postgres;
mod prometheus;
mod supervisor;
mod temporal;
mod victoria_logs;

pub use alertmanager::Alertmanager;
pub use collector::{Collector, telemetry_sum};
pub use jaeger::Jaeger;
pub use postgres::Postgres;
pub use prometheus::Prometheus;
pub use supervisor::Supervisor;
pub use temporal::Temporal;
pub use victoria_logs::VictoriaLogs;

use std::time::Duration;

/// How long any part may take to become ready. Generous: a cold start on a
/// busy two-core machine (Temporal, Jaeger) takes seconds, and the wait ends
/// as soon as the part answers.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A reqwest client for probes and queries: every call has a timeout.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("a reqwest client with rustls builds")
}

/// A readiness probe: `Ok` when `url` answers 2xx.
pub async fn probe_http_ok(client: &reqwest::Client, url: &str) -> Result<(), String> {
    match client.get(url).send().await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("GET {url}: HTTP {}", resp.status())),
        Err(err) => Err(format!("GET {url}: {err}")),
    }
}
