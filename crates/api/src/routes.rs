//! The handlers, one per route, each described for the OpenAPI document.
//! They read the store, the registry and the live state, and carry out
//! rollouts through the node's `AgentManager` (the same one, and the same
//! lock, the reconcile loop uses).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use steward_agent::AgentError;
use steward_registry::store::{StoreError, VersionStore as _, WorkflowHistory as _};

use steward_workflow::retry::error_chain as chain;

use crate::ApiState;
use crate::model::*;

// ---------------------------------------------------------------------------
// Errors and the JSON body extractor.

#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    NotFound(String),
    /// A rollout that did not succeed, with its result.
    Conflict(Box<RolloutResult>),
    /// The conflict has no rollout result (nothing to roll back to).
    ConflictMessage(String),
    Unavailable(String),
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::Conflict(result) => {
                return (StatusCode::CONFLICT, Json(*result)).into_response();
            }
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::ConflictMessage(m) => (StatusCode::CONFLICT, m),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "api: internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, m)
            }
        };
        (status, Json(ErrorBody { error: message })).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match &err {
            StoreError::UnknownVersion { .. } | StoreError::BadVersionName { .. } => {
                ApiError::NotFound(err.to_string())
            }
            StoreError::AmbiguousVersion { .. } => ApiError::BadRequest(err.to_string()),
            _ => ApiError::Internal(chain(&err)),
        }
    }
}

impl From<AgentError> for ApiError {
    fn from(err: AgentError) -> Self {
        match err {
            AgentError::Store(store) => store.into(),
            AgentError::UnknownVersion(v) => {
                ApiError::NotFound(format!("unknown config version {v}"))
            }
            AgentError::NoRollbackTarget => ApiError::ConflictMessage(err.to_string()),
            AgentError::NotRunning { .. }
            | AgentError::PidFile { .. }
            | AgentError::Signal { .. } => ApiError::Unavailable(chain(&err)),
            err => ApiError::Internal(chain(&err)),
        }
    }
}

/// A JSON request body: an object, or nothing (an empty body or `null`)
/// for the defaults, so `{}` need not be sent. Anything else is a 400 that
/// names the field at fault; an array is refused even where serde would
/// read a struct from one.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|err| ApiError::BadRequest(format!("unreadable request body: {err}")))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(T::default()));
        }
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|err| ApiError::BadRequest(format!("invalid JSON body: {err}")))?;
        match value {
            serde_json::Value::Null => Ok(Body(T::default())),
            serde_json::Value::Object(_) => {
                serde_path_to_error::deserialize(value).map(Body).map_err(|err| {
                    let path = err.path().to_string();
                    let inner = err.into_inner();
                    if path == "." {
                        ApiError::BadRequest(format!("invalid JSON body: {inner}"))
                    } else {
                        ApiError::BadRequest(format!("invalid JSON body: field `{path}`: {inner}"))
                    }
                })
            }
            other => Err(ApiError::BadRequest(format!(
                "invalid JSON body: expected an object, got {}",
                match other {
                    serde_json::Value::Array(_) => "an array",
                    serde_json::Value::String(_) => "a string",
                    serde_json::Value::Number(_) => "a number",
                    _ => "a boolean",
                }
            ))),
        }
    }
}

type Api = State<Arc<ApiState>>;

// ---------------------------------------------------------------------------
// Probes, documents.

/// The process answers. No token needed.
#[utoipa::path(get, path = "/healthz", tag = "probes",
    responses((status = 200, description = "Steward answers", body = Healthz)))]
pub async fn healthz() -> Json<Healthz> {
    Json(Healthz { status: "ok".into() })
}

/// Ready when the reconcile loop has read the collector's state once and
/// the store answers. No token needed.
#[utoipa::path(get, path = "/readyz", tag = "probes",
    responses(
        (status = 200, description = "Ready", body = Readyz),
        (status = 503, description = "Not ready, and why", body = Readyz)))]
pub async fn readyz(State(api): Api) -> (StatusCode, Json<Readyz>) {
    let not_ready = |reason: String| {
        (StatusCode::SERVICE_UNAVAILABLE, Json(Readyz { ready: false, reason: Some(reason) }))
    };
    if !api.live.is_ready() {
        return not_ready("the reconcile loop has not completed its first look yet".into());
    }
    match tokio::time::timeout(Duration::from_secs(2), api.store.applied()).await {
        Ok(Ok(_)) => (StatusCode::OK, Json(Readyz { ready: true, reason: None })),
        Ok(Err(err)) => not_ready(format!("the store: {}", chain(&err))),
        Err(_) => not_ready("the store did not answer within 2 s".into()),
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "documents",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json"),
        (status = 401, description = "Missing or wrong token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn openapi_json() -> Response {
    Json(crate::openapi()).into_response()
}

/// Steward's own metrics, in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "documents",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text"),
        (status = 401, description = "Missing or wrong token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn metrics(State(api): Api) -> Response {
    let (active, draining) = api.registry.counts().await;
    api.metrics.set_state(active, draining, &api.alerts.firing());
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        api.metrics.encode(),
    )
        .into_response()
}

// ---------------------------------------------------------------------------
// Reading.

/// What the node's pipeline is doing, at a glance.
#[utoipa::path(get, path = "/api/v1/overview", tag = "state",
    responses((status = 200, body = Overview),
        (status = 401, description = "Missing or wrong token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn overview(State(api): Api) -> Result<Json<Overview>, ApiError> {
    let (active, draining) = api.registry.counts().await;
    let applied = api.store.applied().await?;
    let (_, checks) = api.live.checks();
    let alerts_firing: Vec<AlertView> =
        api.alerts.entries().iter().filter(|n| !n.is_resolved()).map(AlertView::from).collect();
    let last = api.live.last_ok_e2e();
    let last_cycle = match api.store.recent_cycles(1).await?.into_iter().next() {
        Some(cycle) => {
            let steps = api.store.steps(cycle.id).await?;
            Some(CycleView::new(&cycle, &steps))
        }
        None => None,
    };
    Ok(Json(Overview {
        node: api.node.clone(),
        engine: api.engine.clone(),
        pipeline_state: crate::live::pipeline_state(&checks, alerts_firing.len()).to_owned(),
        applied: applied.as_ref().map(VersionSummary::from),
        hold: api.agent.hold().map(HoldView::from),
        sources: SourceCounts { active, draining },
        last_e2e_latency_ms: last.as_ref().and_then(|p| p.latency_ms),
        last_e2e_at_ms: last.map(|p| p.at_ms),
        alerts_firing,
        last_cycle,
    }))
}

/// Every log source in the registry, by id.
#[utoipa::path(get, path = "/api/v1/sources", tag = "state",
    responses((status = 200, body = [SourceView]),
        (status = 401, description = "Missing or wrong token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn sources(State(api): Api) -> Json<Vec<SourceView>> {
    Json(api.registry.list_sources().await.iter().map(SourceView::from).collect())
}

/// The config version history, newest first.
#[utoipa::path(get, path = "/api/v1/config/versions", tag = "config",
    params(Limit),
    responses((status = 200, body = [VersionSummary]),
        (status = 400, description = "A malformed parameter"),
        (status = 401, description = "Missing or wrong token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn versions(
    State(api): Api,
    Query(limit): Query<Limit>,
) -> Result<Json<Vec<VersionSummary>>, ApiError> {
    let versions = api.store.history(limit.get(50).map_err(ApiError::BadRequest)?).await?;
    Ok(Json(versions.iter().map(VersionSummary::from).collect()))
}

async fn version(
    api: &ApiState,
    id: &str,
) -> Result<steward_registry::store::ConfigVersion, ApiError> {
    api.store
        .get(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("unknown config version {id}")))
}

/// One version with its YAML.
#[utoipa::path(get, path = "/api/v1/config/versions/{id}", tag = "config",
    params(("id" = String, Path, description = "`cfg-<12 hex>`, a full hash, or a prefix of at least 6 hex digits")),
    responses((status = 200, body = VersionDetail),
        (status = 400, description = "An ambiguous prefix", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such version", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn version_detail(
    State(api): Api,
    Path(id): Path<String>,
) -> Result<Json<VersionDetail>, ApiError> {
    Ok(Json(VersionDetail::from(&version(&api, &id).await?)))
}

/// What changed from `against` (default: the previous generation) to `id`.
#[utoipa::path(get, path = "/api/v1/config/versions/{id}/diff", tag = "config",
    params(("id" = String, Path, description = "The newer side"), Against),
    responses((status = 200, body = Diff),
        (status = 400, description = "An ambiguous prefix", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such version, or no previous one", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn version_diff(
    State(api): Api,
    Path(id): Path<String>,
    Query(against): Query<Against>,
) -> Result<Json<Diff>, ApiError> {
    let to = version(&api, &id).await?;
    let from = match &against.against {
        Some(other) => version(&api, other).await?,
        None => previous_generation(&api, to.generation).await?.ok_or_else(|| {
            ApiError::NotFound(format!(
                "{} is the first version: nothing to compare with",
                to.name()
            ))
        })?,
    };
    Ok(Json(Diff::between(&from, &to)))
}

/// The newest version older than `generation`. The history is read newest
/// first, so this is a bounded walk, not a full scan.
async fn previous_generation(
    api: &ApiState,
    generation: i64,
) -> Result<Option<steward_registry::store::ConfigVersion>, ApiError> {
    // Generations are dense (1, 2, 3…), so the one wanted is at most
    // `newest - generation + 1` entries down.
    let newest = api.store.history(1).await?.first().map_or(0, |v| v.generation);
    let depth = usize::try_from(newest - generation + 2).unwrap_or(0).min(100_000);
    Ok(api.store.history(depth).await?.into_iter().find(|v| v.generation < generation))
}

/// The version the collector runs now, as last verified.
#[utoipa::path(get, path = "/api/v1/config/applied", tag = "config",
    responses((status = 200, body = VersionDetail),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No version applied yet", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn applied(State(api): Api) -> Result<Json<VersionDetail>, ApiError> {
    let applied = api.store.applied().await?;
    applied
        .map(|v| Json(VersionDetail::from(&v)))
        .ok_or_else(|| ApiError::NotFound("no version is applied yet".into()))
}

/// The embedded engine's recent cycles with every attempt, newest first.
/// Under Temporal, the history is Temporal's and this list is empty.
#[utoipa::path(get, path = "/api/v1/workflow/cycles", tag = "workflow",
    params(Limit),
    responses((status = 200, body = [CycleView]),
        (status = 400, description = "A malformed parameter"),
        (status = 401, description = "Missing or wrong token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cycles(
    State(api): Api,
    Query(limit): Query<Limit>,
) -> Result<Json<Vec<CycleView>>, ApiError> {
    let mut views = Vec::new();
    for cycle in api.store.recent_cycles(limit.get(20).map_err(ApiError::BadRequest)?).await? {
        let steps = api.store.steps(cycle.id).await?;
        views.push(CycleView::new(&cycle, &steps));
    }
    Ok(Json(views))
}

/// The last health round's checks.
#[utoipa::path(get, path = "/api/v1/health", tag = "state",
    responses((status = 200, body = Health),
        (status = 401, description = "Missing or wrong token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn health(State(api): Api) -> Json<Health> {
    let (observed_ms, checks) = api.live.checks();
    Json(Health { observed_ms, checks: checks.iter().map(CheckBody::from).collect() })
}

/// Alerts Steward sent: firing first, then recently resolved.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "state",
    responses((status = 200, body = [AlertView]),
        (status = 401, description = "Missing or wrong token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn alerts(State(api): Api) -> Json<Vec<AlertView>> {
    Json(api.alerts.entries().iter().map(AlertView::from).collect())
}

/// The end-to-end probes (latency and lines accepted), oldest first.
#[utoipa::path(get, path = "/api/v1/e2e", tag = "state",
    params(Limit),
    responses((status = 200, body = E2eSeries),
        (status = 400, description = "A malformed parameter"),
        (status = 401, description = "Missing or wrong token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn e2e(State(api): Api, Query(limit): Query<Limit>) -> Result<Json<E2eSeries>, ApiError> {
    let points = api.live.e2e(limit.get(120).map_err(ApiError::BadRequest)?);
    Ok(Json(E2eSeries { points }))
}

// ---------------------------------------------------------------------------
// Acting.

/// Releases any hold and starts a reconcile cycle now (asynchronously).
#[utoipa::path(post, path = "/api/v1/reconcile", tag = "actions",
    request_body(content = Option<ReconcileRequest>, description = "Optional; `{}`"),
    responses((status = 202, body = ReconcileAccepted),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reconcile(
    State(api): Api,
    Body(_request): Body<ReconcileRequest>,
) -> Result<(StatusCode, Json<ReconcileAccepted>), ApiError> {
    let released_hold = api.agent.release_hold()?;
    if released_hold {
        tracing::info!("api: hold released; reconciling");
    }
    api.nudge.nudge();
    Ok((StatusCode::ACCEPTED, Json(ReconcileAccepted { accepted: true, released_hold })))
}

/// Applies a recorded version (validate, canary, push, verify) and holds
/// the loop at it until the next requested reconcile.
#[utoipa::path(post, path = "/api/v1/config/versions/{id}/apply", tag = "actions",
    params(("id" = String, Path, description = "The version to apply")),
    request_body(content = Option<ApplyRequest>, description = "Optional"),
    responses((status = 200, description = "Applied, or already running", body = RolloutResult),
        (status = 400, description = "Malformed JSON or an ambiguous prefix", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such version", body = ErrorBody),
        (status = 409, description = "Refused, canary failed, or rolled back", body = ConflictBody),
        (status = 503, description = "The collector is not running", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn apply(
    State(api): Api,
    Path(id): Path<String>,
    Body(request): Body<ApplyRequest>,
) -> Result<Json<RolloutResult>, ApiError> {
    let target = version(&api, &id).await?;
    let reason = request.reason.unwrap_or_else(|| "applied via the API".into());
    let outcome = api.agent.apply(&target.yaml, &reason).await?;
    finish(&api, RolloutResult::new(&outcome), &reason)
}

/// Rolls back to `to`, or to the last good version before the applied one,
/// and holds the loop there until the next requested reconcile.
#[utoipa::path(post, path = "/api/v1/rollback", tag = "actions",
    request_body(content = Option<RollbackRequest>, description = "Optional"),
    responses((status = 200, description = "Rolled back", body = RolloutResult),
        (status = 400, description = "Malformed JSON or an ambiguous prefix", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such version", body = ErrorBody),
        (status = 409, description = "Nothing to roll back to, or the rollback failed", body = ConflictBody),
        (status = 503, description = "The collector is not running", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rollback(
    State(api): Api,
    Body(request): Body<RollbackRequest>,
) -> Result<Json<RolloutResult>, ApiError> {
    let outcome = api.agent.rollback(request.to.as_deref()).await?;
    let reason = request.reason.unwrap_or_else(|| "rolled back via the API".into());
    let result = RolloutResult::new(&outcome);
    if result.outcome == "applied" {
        api.metrics.observe_rollback("api");
    }
    finish(&api, result, &reason)
}

fn finish(
    api: &ApiState,
    mut result: RolloutResult,
    reason: &str,
) -> Result<Json<RolloutResult>, ApiError> {
    if !result.succeeded() {
        return Err(ApiError::Conflict(Box::new(result)));
    }
    let hold = api.agent.set_hold(&result.version, reason)?;
    tracing::info!(version = %hold.version, reason = %hold.reason, "api: the loop is held");
    result.hold = Some(hold.into());
    Ok(Json(result))
}
