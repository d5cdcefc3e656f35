//! One module per data-plane part. Each `start` picks free loopback ports,
//! writes its config into the part's temp dir, spawns it through [`Process`],
//! and returns once the part answers on its API (or with the reason it did not).
//!
//! [`Process`]: crate::Process

mod alertmanager;
mod collector;
mod dockerd;
mod jaeger;
mod postgres;
mod prometheus;
mod supervisor;
mod temporal;
mod victoria_logs;

pub use alertmanager::Alertmanager;
pub use collector::{Collector, telemetry_sum};
pub use dockerd::DockerEngine;
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

/// Sends `request` (to `url`, which errors name) and returns the body of a
/// 2xx answer as text.
pub(crate) async fn fetch_text(
    request: reqwest::RequestBuilder,
    url: &str,
) -> crate::Result<String> {
    let http_err = |source| crate::Error::Http { url: url.to_owned(), source };
    request
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(http_err)?
        .text()
        .await
        .map_err(http_err)
}

/// Like [`fetch_text`], for a JSON answer.
pub(crate) async fn fetch_json<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
    url: &str,
) -> crate::Result<T> {
    let body = fetch_text(request, url).await?;
    serde_json::from_str(&body).map_err(|err| crate::Error::Unexpected {
        what: format!("answer from {url}"),
        detail: format!("not the JSON expected ({err}): {body}"),
    })
}

/// A readiness probe: `Ok` when `url` answers 2xx.
pub async fn probe_http_ok(client: &reqwest::Client, url: &str) -> Result<(), String> {
    match client.get(url).send().await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("GET {url}: HTTP {}", resp.status())),
        Err(err) => Err(format!("GET {url}: {err}")),
    }
}
