//! The log-store clients. VictoriaLogs is tested against the real
//! VictoriaLogs of the test bench. Loki cannot run here (it is not part of
//! the test bench, which has no network to fetch it), so the Loki client is
//! tested against wiremock serving the responses Loki's HTTP API documents
//! (`GET /ready`, `GET /loki/api/v1/query_range` with `resultType: streams`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use steward_health::backend::{BackendError, LogBackend, Loki, VictoriaLogs};
use steward_testbed::parts::{self, http_client};
use steward_testbed::{Testbed, eventually, free_port};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const MARKER: &str = "steward-verify e2e 1767225600000000000";

fn now_ms() -> i64 {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis();
    i64::try_from(ms).expect("fits")
}

/// Loki's documented `query_range` answer for a streams query, holding `line`.
fn streams_answer(line: &str) -> serde_json::Value {
    json!({
        "status": "success",
        "data": {
            "resultType": "streams",
            "result": [{
                "stream": {"service_name": "steward-canary", "steward_canary": "true"},
                "values": [["1767225600000000001", line]]
            }],
            "stats": {"summary": {"bytesProcessedPerSecond": 1024, "execTime": 0.001}}
        }
    })
}

/// Loki (documented API responses, served by wiremock; a real Loki cannot
/// run here): `find_line` sends the LogQL query `{service_name="steward-canary"}
/// |= "<marker>"` with `limit=1`, start in nanoseconds and the tenant's
/// `X-Scope-OrgID`, and answers true only when a returned line holds the
/// marker; an empty `result` is false.
#[tokio::test]
async fn loki_finds_the_marker_in_a_streams_answer() {
    let loki = MockServer::start().await;
    let since_ms = now_ms() - 5_000;
    let query = format!(r#"{{service_name="steward-canary"}} |= "{MARKER}""#);
    Mock::given(method("GET"))
        .and(path("/loki/api/v1/query_range"))
        .and(query_param("query", query.as_str()))
        .and(query_param("limit", "1"))
        .and(query_param("start", (i128::from(since_ms) * 1_000_000).to_string().as_str()))
        .and(header("X-Scope-OrgID", "team-a"))
        .respond_with(ResponseTemplate::new(200).set_body_json(streams_answer(MARKER)))
        .mount(&loki)
        .await;
    let other = "steward-verify e2e 2";
    Mock::given(method("GET"))
        .and(path("/loki/api/v1/query_range"))
        .and(query_param("query", format!(r#"{{service_name="steward-canary"}} |= "{other}""#)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "success",
            "data": {"resultType": "streams", "result": [], "stats": {}}
        })))
        .mount(&loki)
        .await;

    let backend = Loki::new(loki.uri()).with_tenant("team-a");
    assert!(backend.find_line(MARKER, since_ms).await.expect("an answer"), "the marker is found");
    assert!(!backend.find_line(other, since_ms).await.expect("an answer"), "an empty result");
}

/// Loki (documented API responses, served by wiremock; a real Loki cannot
/// run here): a streams answer whose lines lack the marker is false, and a
/// marker with quotes and a backslash is escaped in the LogQL string.
#[tokio::test]
async fn loki_needs_the_marker_itself_and_escapes_it() {
    let loki = MockServer::start().await;
    let tricky = r#"steward "verify" \ 3"#;
    Mock::given(method("GET"))
        .and(path("/loki/api/v1/query_range"))
        .and(query_param(
            "query",
            r#"{service_name="steward-canary"} |= "steward \"verify\" \\ 3""#,
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(streams_answer("steward-verify e2e other")),
        )
        .mount(&loki)
        .await;
    let found = Loki::new(loki.uri()).find_line(tricky, now_ms()).await.expect("an answer");
    assert!(!found, "a line without the marker does not count");
}

/// Loki (documented API responses, served by wiremock; a real Loki cannot
/// run here): `/ready` answering 200 "ready" is ready; 503 "Ingester not
/// ready: …" (what Loki says while starting) is an error that carries the
/// URL, the status and Loki's words.
#[tokio::test]
async fn loki_readiness_follows_the_ready_endpoint() {
    let ready = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/ready"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ready\n"))
        .mount(&ready)
        .await;
    Loki::new(ready.uri()).ready().await.expect("ready");

    let starting = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/ready"))
        .respond_with(
            ResponseTemplate::new(503)
                .set_body_string("Ingester not ready: waiting for 15s after being ready\n"),
        )
        .mount(&starting)
        .await;
    let err = Loki::new(starting.uri()).ready().await.expect_err("not ready");
    assert!(matches!(err, BackendError::Status { status: 503, .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("{}/ready", starting.uri())), "{text}");
    assert!(text.contains("Ingester not ready"), "{text}");
}

/// Loki (documented API responses, served by wiremock; a real Loki cannot
/// run here): what is not Loki's documented answer is an error, never a
/// panic nor a false "not found": a garbage body, a 500, an answer slower
/// than the timeout, and nobody listening at all.
#[tokio::test]
async fn loki_failures_are_errors_that_name_the_url() {
    let loki = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/loki/api/v1/query_range"))
        .and(query_param("query", r#"{service_name="steward-canary"} |= "garbage""#))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>proxy login</html>"))
        .mount(&loki)
        .await;
    Mock::given(method("GET"))
        .and(path("/loki/api/v1/query_range"))
        .and(query_param("query", r#"{service_name="steward-canary"} |= "error""#))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_string("rpc error: code = Unavailable desc = no healthy upstream"),
        )
        .mount(&loki)
        .await;
    Mock::given(method("GET"))
        .and(path("/loki/api/v1/query_range"))
        .and(query_param("query", r#"{service_name="steward-canary"} |= "slow""#))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(streams_answer("slow"))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&loki)
        .await;
    let url = format!("{}/loki/api/v1/query_range", loki.uri());
    let backend =
        Loki::new(loki.uri()).with_timeouts(Duration::from_millis(300), Duration::from_secs(2));

    let err = backend.find_line("garbage", now_ms()).await.expect_err("garbage");
    assert!(matches!(err, BackendError::Garbage { .. }), "{err:?}");
    assert!(err.to_string().contains(&url) && err.to_string().contains("proxy login"), "{err}");

    let err = backend.find_line("error", now_ms()).await.expect_err("HTTP 500");
    assert!(matches!(err, BackendError::Status { status: 500, .. }), "{err:?}");
    assert!(err.to_string().contains("no healthy upstream"), "{err}");

    let started = Instant::now();
    let err = backend.find_line("slow", now_ms()).await.expect_err("too slow");
    assert!(matches!(err, BackendError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "gave up after {:?}", started.elapsed());

    let nobody = format!("http://127.0.0.1:{}", free_port());
    let err = Loki::new(&nobody).ready().await.expect_err("nobody listens");
    assert!(err.to_string().contains(&format!("{nobody}/ready")), "{err}");
}

/// VictoriaLogs, the real one: `ready` is its `/health`; a line posted with
/// VictoriaLogs' JSON-lines ingestion API is found by its exact marker
/// (LogsQL phrase filter, `start`, `limit=1`) once searchable, and a marker
/// never written is not. A stopped VictoriaLogs is not ready, with its URL
/// in the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn victoria_logs_finds_an_ingested_line() {
    let tb = Testbed::locate().expect("test bench installed");
    let store = parts::VictoriaLogs::start(&tb).await.expect("VictoriaLogs starts");
    let backend = VictoriaLogs::new(store.base_url());
    backend.ready().await.expect("VictoriaLogs is ready");

    let since_ms = now_ms() - 1_000;
    let marker = format!("steward-verify backend-test {}", now_ms());
    let url =
        format!("{}/insert/jsonline?_msg_field=msg&_stream_fields=service.name", store.base_url());
    let line = json!({"msg": marker, "service.name": "steward-canary"}).to_string();
    let response = http_client().post(&url).body(line).send().await.expect("POST a log line");
    assert!(response.status().is_success(), "POST {url}: {}", response.status());

    eventually("the marker searchable in VictoriaLogs", Duration::from_secs(30), || async {
        match backend.find_line(&marker, since_ms).await {
            Ok(true) => Ok(()),
            Ok(false) => Err("not found yet".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
    .expect("the line is found");
    let absent = format!("steward-verify never-written {}", now_ms());
    assert!(!backend.find_line(&absent, since_ms).await.expect("an answer"), "absent marker");
    // Only the exact phrase counts, not its words in another order.
    let shuffled = marker.replacen("steward-verify backend-test", "backend-test steward-verify", 1);
    assert!(!backend.find_line(&shuffled, since_ms).await.expect("an answer"), "{shuffled}");

    let base = store.base_url();
    drop(store);
    let err = backend.ready().await.expect_err("a stopped VictoriaLogs is not ready");
    assert!(err.to_string().contains(&format!("{base}/health")), "{err}");
}
