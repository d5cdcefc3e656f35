//! How the API's reads scale with the registry: median and p99 latency of
//! `GET /api/v1/sources`, `/api/v1/overview` and `/metrics` with 100, 1,000
//! and 10,000 sources, against `GET /healthz` (no work) in the same process
//! as the baseline. In process: the real router, auth middleware and
//! handlers over a real SQLite store and registry; no network hop, so the
//! numbers are the handlers' cost, not a client's view.
//!
//! `cargo bench -p steward-api --bench api` prints a table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use steward_agent::runner::{AnyRunner, Signalled};
use steward_agent::{AgentManager, AgentSettings};
use steward_api::{ApiState, ApiToken, Live, Metrics, router};
use steward_discovery::{Origin, SourceId};
use steward_registry::store::{AnyStore, SourceStore as _};
use steward_registry::{Change, LogSource, LogSourceRegistry, SourceState};
use tower::ServiceExt as _;

const TOKEN: &str = "bench-token-0123456789";
const REQUESTS: usize = 200;

fn source(i: usize) -> LogSource {
    let id = format!("{i:064x}");
    LogSource {
        id: SourceId::docker(&id),
        path: format!("/var/lib/docker/containers/{id}/{id}-json.log").into(),
        labels: [
            ("container.name".to_owned(), format!("service-{i}")),
            ("container.image.name".to_owned(), "registry.example/app:1.2.3".to_owned()),
            ("service.name".to_owned(), format!("svc-{}", i % 50)),
        ]
        .into(),
        state: if i.is_multiple_of(10) { SourceState::Draining } else { SourceState::Active },
        origin: Origin::Docker,
        first_seen_ms: 1_700_000_000_000,
        updated_ms: 1_700_000_000_000,
        drain: None,
    }
}

async fn state(dir: &std::path::Path, sources: usize) -> Arc<ApiState> {
    let store =
        AnyStore::open(&format!("sqlite://{}", dir.join("s.db").display())).await.expect("store");
    let changes: Vec<Change> = (0..sources).map(|i| Change::Put(source(i))).collect();
    store.apply(&changes).await.expect("sources stored");
    let registry = Arc::new(
        LogSourceRegistry::open(store.clone(), Default::default()).await.expect("registry"),
    );
    let runner = AnyRunner::Signalled(Signalled { pid_file: dir.join("none.pid") });
    let settings = AgentSettings::new(dir.join("config.yaml"), "otelcol-steward".into());
    let agent = Arc::new(AgentManager::new(runner, store.clone(), settings));
    let (nudge, _triggers) = steward_workflow::triggers(steward_workflow::TriggerSettings {
        debounce: Duration::from_millis(200),
        max_delay: Duration::from_secs(2),
        period: Duration::from_secs(3600),
    });
    Arc::new(ApiState {
        node: "bench".into(),
        engine: "embedded".into(),
        registry,
        store,
        agent,
        nudge,
        live: Live::default(),
        metrics: Arc::new(Metrics::new()),
        alerts: Default::default(),
    })
}

/// Latencies of `REQUESTS` sequential GETs of `path`, sorted.
async fn measure(app: &axum::Router, path: &str) -> Vec<Duration> {
    let mut took = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let request = Request::get(path)
            .header("Authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .expect("a request");
        let start = Instant::now();
        let response = app.clone().oneshot(request).await.expect("infallible");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        took.push(start.elapsed());
        assert!(!body.is_empty(), "{path} answered");
    }
    took.sort();
    took
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let token = ApiToken::new(TOKEN).expect("token");
    println!(
        "{:>8}  {:<18} {:>10} {:>10} {:>14}",
        "sources", "route", "p50 ms", "p99 ms", "p50 / healthz"
    );
    for sources in [100, 1_000, 10_000] {
        let dir = tempfile::tempdir().expect("temp dir");
        let app = router(state(dir.path(), sources).await, token.clone());
        let baseline = measure(&app, "/healthz").await;
        let base_p50 = ms(baseline[REQUESTS / 2]);
        for path in ["/healthz", "/api/v1/sources", "/api/v1/overview", "/metrics"] {
            let took =
                if path == "/healthz" { baseline.clone() } else { measure(&app, path).await };
            let (p50, p99) = (ms(took[REQUESTS / 2]), ms(took[REQUESTS * 99 / 100]));
            println!("{sources:>8}  {path:<18} {p50:>10.3} {p99:>10.3} {:>13.1}x", p50 / base_p50);
        }
    }
}
