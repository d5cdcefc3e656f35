//! Steward's HTTP face (the seed's API layer): a JSON API over what the
//! control plane sees and did, with POST routes to reconcile, apply and roll
//! back; the web UI, embedded in the binary; and Steward's own metrics.
//!
//! - [`routes`]: the handlers; every one is in the OpenAPI document served at
//!   `/openapi.json` ([`openapi`]).
//! - [`auth`]: the bearer token all routes but `/healthz`, `/readyz` and the
//!   UI's static files require.
//! - [`live`]: what only the running process knows (the last health round,
//!   the end-to-end series, readiness).
//! - [`metrics`]: `/metrics` with prometheus-client, fed by the activities
//!   ([`metrics::Telemetry`] is the workflow's `Observer`), the engine's
//!   cycle reports and the health loop.
//! - [`ui`]: the static web UI (plain HTML, CSS and JS; no build step).
//!
//! The API reads through the same registry, store and `AgentManager` the
//! reconcile loop uses, so a rollback from the UI takes the same lock as a
//! rollout of the loop's, and is recorded in the same history.

pub mod auth;
pub mod live;
pub mod metrics;
pub mod model;
pub mod routes;
pub mod ui;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use steward_agent::AgentManager;
use steward_agent::runner::AnyRunner;
use steward_health::alerts::AlertLog;
use steward_registry::LogSourceRegistry;
use steward_registry::store::AnyStore;
use steward_workflow::Nudge;
use utoipa::OpenApi as _;

pub use auth::ApiToken;
pub use live::Live;
pub use metrics::{Metrics, Telemetry};

/// Everything a handler may read or drive.
pub struct ApiState {
    pub node: String,
    /// `embedded` or `temporal`.
    pub engine: String,
    pub registry: Arc<LogSourceRegistry<AnyStore>>,
    pub store: AnyStore,
    pub agent: Arc<AgentManager<AnyRunner, AnyStore>>,
    /// Starts a reconcile cycle.
    pub nudge: Nudge,
    pub live: Live,
    pub metrics: Arc<Metrics>,
    pub alerts: AlertLog,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Steward",
        description = "A self-driving control plane for OpenTelemetry Collector fleets: \
            what it sees (log sources, config versions, health, alerts, end-to-end latency) \
            and what it did (workflow history), with routes to reconcile, apply and roll back. \
            Every route but /healthz and /readyz needs `Authorization: Bearer <token>`."
    ),
    paths(
        routes::healthz, routes::readyz, routes::openapi_json, routes::metrics,
        routes::overview, routes::sources, routes::versions, routes::version_detail,
        routes::version_diff, routes::applied, routes::cycles, routes::health,
        routes::alerts, routes::e2e, routes::reconcile, routes::apply, routes::rollback,
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "probes", description = "Liveness and readiness; no token"),
        (name = "documents", description = "This document and Steward's metrics"),
        (name = "state", description = "What Steward sees"),
        (name = "config", description = "Collector config versions"),
        (name = "workflow", description = "What the reconcile loop did"),
        (name = "actions", description = "Reconcile, apply, roll back"),
    )
)]
struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The whole HTTP surface.
pub fn router(state: Arc<ApiState>, token: ApiToken) -> Router {
    let protected = Router::new()
        .route("/openapi.json", get(routes::openapi_json))
        .route("/metrics", get(routes::metrics))
        .route("/api/v1/overview", get(routes::overview))
        .route("/api/v1/sources", get(routes::sources))
        .route("/api/v1/config/versions", get(routes::versions))
        .route("/api/v1/config/versions/{id}", get(routes::version_detail))
        .route("/api/v1/config/versions/{id}/diff", get(routes::version_diff))
        .route("/api/v1/config/versions/{id}/apply", post(routes::apply))
        .route("/api/v1/config/applied", get(routes::applied))
        .route("/api/v1/workflow/cycles", get(routes::cycles))
        .route("/api/v1/health", get(routes::health))
        .route("/api/v1/alerts", get(routes::alerts))
        .route("/api/v1/e2e", get(routes::e2e))
        .route("/api/v1/reconcile", post(routes::reconcile))
        .route("/api/v1/rollback", post(routes::rollback))
        // Unknown /api paths are refused like known ones without a token,
        // so the API's shape is not readable without one.
        .route("/api/{*rest}", axum::routing::any(not_found))
        .route_layer(axum::middleware::from_fn_with_state(token, auth::require_token));
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .merge(ui::routes())
        .merge(protected)
        .with_state(state)
}

async fn not_found() -> routes::ApiError {
    routes::ApiError::NotFound("no such route".into())
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    token: ApiToken,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state, token)).with_graceful_shutdown(shutdown).await
}
