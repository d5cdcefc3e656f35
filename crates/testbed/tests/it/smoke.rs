//! Smoke tests: each part of the test bench starts and answers.
//!
//! Every test starts its part for real, on its own ports, and asserts an answer
//! only that part can give. Waits are for conditions, with deadlines.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use steward_testbed::parts::{
    Alertmanager, Jaeger, Postgres, Prometheus, Supervisor, Temporal, http_client,
};
use steward_testbed::{Testbed, eventually};
use tokio::sync::mpsc;

/// How long a test waits for data it sent to become visible.
const SETTLE: Duration = Duration::from_secs(30);

fn testbed() -> Testbed {
    Testbed::locate().expect("the test bench is installed (scripts/testbed.sh)")
}

/// Prometheus from Debian: it evaluates PromQL, and its remote-write receiver
/// is switched on (it rejects an empty payload as malformed instead of
/// answering 404, which is what it says when the receiver is off).
#[tokio::test]
async fn prometheus_answers_promql_and_receives_remote_writes() {
    let prometheus = Prometheus::start(&testbed()).await.expect("Prometheus starts");

    let data = prometheus.query("vector(41 + 1)").await.expect("query vector(41 + 1)");
    assert_eq!(data["resultType"], "vector", "{data}");
    assert_eq!(data["result"][0]["value"][1], "42", "{data}");

    let resp = http_client()
        .post(prometheus.remote_write_url())
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .send()
        .await
        .expect("POST to the remote-write endpoint");
    assert_eq!(resp.status(), 400, "an empty remote write is rejected as malformed, not 404");
}

/// Alertmanager from Debian: an alert posted to its v2 API is listed back.
#[tokio::test]
async fn alertmanager_lists_a_posted_alert() {
    let alertmanager = Alertmanager::start(&testbed()).await.expect("Alertmanager starts");

    let alert = json!([{
        "labels": {"alertname": "StewardSmoke", "severity": "info"},
        "annotations": {"summary": "posted by the test bench smoke test"},
    }]);
    http_client()
        .post(format!("{}/api/v2/alerts", alertmanager.base_url()))
        .json(&alert)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("POST /api/v2/alerts");

    let listed = eventually("the StewardSmoke alert to be listed", SETTLE, || async {
        let alerts = alertmanager.alerts().await.map_err(|err| err.to_string())?;
        let found = alerts
            .as_array()
            .into_iter()
            .flatten()
            .find(|alert| alert["labels"]["alertname"] == "StewardSmoke");
        found.cloned().ok_or_else(|| format!("alerts: {alerts}"))
    })
    .await
    .expect("Alertmanager lists the alert");
    assert_eq!(listed["labels"]["severity"], "info", "{listed}");
    assert_eq!(listed["status"]["state"], "active", "{listed}");
}

/// PostgreSQL 15 from Debian, in a fresh cluster: it runs SQL, with the
/// settings the part gives it.
#[tokio::test]
async fn postgres_runs_sql() {
    let postgres = Postgres::start(&testbed()).await.expect("PostgreSQL starts");

    assert_eq!(postgres.psql("select 41+1").expect("psql select"), "42");
    assert_eq!(postgres.psql("show fsync").expect("psql show fsync"), "off");
    assert!(postgres.url().ends_with(&format!(":{}/postgres", postgres.port())));
}

/// Jaeger v2 with in-memory storage: a span sent as OTLP/JSON over HTTP is
/// stored, and its service shows up in the query API.
#[tokio::test]
async fn jaeger_stores_an_otlp_span() {
    let jaeger = Jaeger::start(&testbed()).await.expect("Jaeger starts");

    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970");
    let start = now.as_nanos() - 1_000_000;
    let span = json!({"resourceSpans": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "steward-smoke"}},
        ]},
        "scopeSpans": [{
            "scope": {"name": "steward-testbed"},
            "spans": [{
                "traceId": "5b8efff798038103d269b633813fc60c",
                "spanId": "eee19b7ec3c1b174",
                "name": "smoke",
                "kind": 1,
                "startTimeUnixNano": start.to_string(),
                "endTimeUnixNano": now.as_nanos().to_string(),
            }],
        }],
    }]});
    http_client()
        .post(format!("{}/v1/traces", jaeger.otlp_http_endpoint()))
        .json(&span)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("POST /v1/traces");

    eventually("Jaeger to list service steward-smoke", SETTLE, || async {
        let services = jaeger.services().await.map_err(|err| err.to_string())?;
        if services.iter().any(|s| s == "steward-smoke") {
            Ok(())
        } else {
            Err(format!("services: {services:?}"))
        }
    })
    .await
    .expect("Jaeger stores the span");
}

/// Temporal's dev server: its frontend serves the `default` namespace it
/// creates at start, as the real CLI reports it.
#[tokio::test]
async fn temporal_serves_the_default_namespace() {
    let temporal = Temporal::start(&testbed()).await.expect("Temporal starts");

    let out = temporal
        .cli(&["operator", "namespace", "describe", "--namespace", "default", "--output", "json"])
        .await
        .expect("temporal operator namespace describe");
    let described: Value = serde_json::from_str(&out).expect("the CLI prints JSON");
    assert_eq!(described["namespaceInfo"]["name"], "default", "{described}");
    assert_eq!(described["namespaceInfo"]["state"], "NAMESPACE_STATE_REGISTERED", "{described}");
}

/// Accepts OpAMP WebSocket connections and forwards every binary frame.
async fn opamp_socket(
    ws: WebSocketUpgrade,
    State(frames): State<mpsc::UnboundedSender<Vec<u8>>>,
) -> Response {
    ws.on_upgrade(move |mut socket: WebSocket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if let Message::Binary(bytes) = message
                && frames.send(bytes.to_vec()).is_err()
            {
                break;
            }
        }
    })
}

/// The OpAMP supervisor (collector-contrib v0.149.0) running our collector
/// (v0.158.0): it bootstraps the collector, then connects to an OpAMP server,
/// here a stand-in started by the test, and sends it `AgentToServer` messages
/// over WebSocket. Each is a binary frame of the 0x00 header byte and a
/// non-empty protobuf carrying the supervisor's instance UID; one of them
/// describes the collector, whose name, `otelcol-steward`, it contains.
#[tokio::test]
async fn supervisor_reports_to_an_opamp_server() {
    let (frames_tx, mut frames) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
    let port = listener.local_addr().expect("the listener's address").port();
    let app = Router::new().route("/v1/opamp", get(opamp_socket)).with_state(frames_tx);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let supervisor = Supervisor::start(&testbed(), &format!("ws://127.0.0.1:{port}/v1/opamp"))
        .await
        .expect("the supervisor starts");

    let mut seen: Vec<Vec<u8>> = Vec::new();
    let description =
        eventually("the supervisor to describe its collector", SETTLE, || {
            while let Ok(frame) = frames.try_recv() {
                seen.push(frame);
            }
            let found = seen.iter().find(|frame| contains(frame, b"otelcol-steward")).cloned();
            let count = seen.len();
            async move {
                found.ok_or_else(|| format!("{count} binary frames, none names otelcol-steward"))
            }
        })
        .await
        .expect("the supervisor sends an AgentToServer that describes the collector");

    // The instance UID travels as 16 raw bytes; finding them in a frame shows
    // it is this supervisor's message without decoding protobuf.
    let uid = supervisor.instance_uid().expect("the supervisor's instance UID");
    let uid_bytes = uuid_bytes(&uid);
    for frame in [&seen[0], &description] {
        assert_eq!(frame.first(), Some(&0x00), "OpAMP WebSocket header byte: {frame:02x?}");
        assert!(frame.len() > 1, "AgentToServer is not empty: {frame:02x?}");
        assert!(contains(frame, &uid_bytes), "frame {frame:02x?} carries instance UID {uid}");
    }
    server.abort();
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// The 16 bytes of a UUID written as text (`8-4-4-4-12` hex digits).
fn uuid_bytes(uuid: &str) -> Vec<u8> {
    let hex: String = uuid.chars().filter(|c| *c != '-').collect();
    assert_eq!(hex.len(), 32, "a UUID has 32 hex digits: {uuid}");
    (0..32)
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("UUID hex digits"))
        .collect()
}
