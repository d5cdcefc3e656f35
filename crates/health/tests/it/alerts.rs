//! Alert sinks against real receivers: the test bench's Prometheus
//! Alertmanager 0.25 (Debian's `prometheus-alertmanager`) for the API v2
//! sink, and a small axum server in the test, recording what it is sent, for
//! the webhook.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use steward_health::alerts::{
    AlertBook, AlertError, AlertPolicy, AlertSink, Alertmanager, Notification, Observation,
    RetryPolicy, Severity, Webhook,
};
use steward_testbed::parts::Alertmanager as AlertmanagerPart;
use steward_testbed::{Testbed, eventually, free_port};

const SETTLE: Duration = Duration::from_secs(10);
/// No sink call may take longer than this, whatever the receiver does.
const NO_HANG: Duration = Duration::from_secs(20);

fn testbed() -> Testbed {
    Testbed::locate().expect("the test bench is installed (scripts/testbed.sh)")
}

/// A book that resolves as soon as a check is healthy, so tests need not wait.
fn quick_book() -> AlertBook {
    AlertBook::new(AlertPolicy { resolve_after: Duration::ZERO, ..AlertPolicy::default() })
}

/// The alert named `name` in Alertmanager's `GET /api/v2/alerts` answer.
fn find<'a>(alerts: &'a Value, name: &str) -> Option<&'a Value> {
    alerts.as_array()?.iter().find(|alert| alert["labels"]["alertname"] == name)
}

/// Real Alertmanager 0.25: a Firing notification posted to `/api/v2/alerts`
/// is listed back active, with our labels, annotations and `startsAt`; the
/// Resolved one (`endsAt` = now) takes it out of the list, which holds only
/// alerts whose `endsAt` has not passed.
#[tokio::test]
async fn alertmanager_lists_a_fired_alert_and_drops_it_when_resolved() {
    let part = AlertmanagerPart::start(&testbed()).await.expect("Alertmanager starts");
    let sink = Alertmanager::new(part.base_url()).expect("client");
    let mut book = quick_book();

    let check = "end_to_end_sample_log";
    let failing =
        Observation::unhealthy("node-a", check, "marker not found in VictoriaLogs after 30s")
            .with_severity(Severity::Critical);
    let fired = book.observe(&failing, SystemTime::now()).expect("fires");
    assert!(matches!(fired, Notification::Firing { .. }), "{fired:?}");
    sink.send(std::slice::from_ref(&fired)).await.expect("Alertmanager takes the alert");

    let listed = eventually("the alert to be listed", SETTLE, || async {
        let alerts = part.alerts().await.map_err(|err| err.to_string())?;
        find(&alerts, "StewardEndToEndSampleLog")
            .cloned()
            .ok_or_else(|| format!("alerts: {alerts}"))
    })
    .await
    .expect("Alertmanager lists the alert");
    assert_eq!(listed["status"]["state"], "active", "{listed}");
    assert_eq!(listed["labels"]["severity"], "critical", "{listed}");
    assert_eq!(listed["labels"]["node"], "node-a", "{listed}");
    assert_eq!(listed["labels"]["check"], check, "{listed}");
    assert_eq!(
        listed["annotations"]["evidence"], "marker not found in VictoriaLogs after 30s",
        "{listed}"
    );
    assert!(
        listed["annotations"]["summary"].as_str().is_some_and(|s| s.contains("node-a")),
        "{listed}"
    );
    let starts_at = humantime::format_rfc3339_millis(fired.alert().starts_at).to_string();
    assert_eq!(listed["startsAt"], starts_at, "{listed}");

    let resolved = book
        .observe(&Observation::healthy("node-a", check), SystemTime::now())
        .expect("resolves at once with resolve_after = 0");
    assert!(resolved.is_resolved(), "{resolved:?}");
    sink.send(&[resolved]).await.expect("Alertmanager takes the resolution");
    eventually("the alert to leave the list", SETTLE, || async {
        let alerts = part.alerts().await.map_err(|err| err.to_string())?;
        match find(&alerts, "StewardEndToEndSampleLog") {
            Some(alert) => Err(format!("still listed: {alert}")),
            None => Ok(()),
        }
    })
    .await
    .expect("a resolved alert is no longer listed");
}

/// Real Alertmanager 0.25: a re-send (Repeat) keeps the alert one alert, with
/// the first `startsAt`, and pushes its `endsAt` further out.
#[tokio::test]
async fn alertmanager_keeps_one_alert_across_resends() {
    let part = AlertmanagerPart::start(&testbed()).await.expect("Alertmanager starts");
    let sink = Alertmanager::new(part.base_url()).expect("client");
    let policy = AlertPolicy { repeat_interval: Duration::from_secs(1), ..AlertPolicy::default() };
    let mut book = AlertBook::new(policy);
    let failing = Observation::unhealthy("node-b", "queue_backpressure", "queue 95% full");

    let start = SystemTime::now();
    let fired = book.observe(&failing, start).expect("fires");
    sink.send(&[fired]).await.expect("post the alert");
    let repeat = book.observe(&failing, start + Duration::from_secs(2)).expect("re-sends");
    assert_eq!(repeat.kind(), "repeat");
    sink.send(std::slice::from_ref(&repeat)).await.expect("post the re-send");

    let ends_at = humantime::format_rfc3339_millis(repeat.alert().ends_at).to_string();
    let listed = eventually("the re-sent alert's endsAt", SETTLE, || async {
        let alerts = part.alerts().await.map_err(|err| err.to_string())?;
        let ours: Vec<&Value> = alerts
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["labels"]["alertname"] == "StewardQueueBackpressure")
            .collect();
        match ours.as_slice() {
            [one] if one["endsAt"] == ends_at => Ok((*one).clone()),
            _ => Err(format!("alerts: {alerts}")),
        }
    })
    .await
    .expect("one alert, extended");
    let starts_at = humantime::format_rfc3339_millis(start).to_string();
    assert_eq!(listed["startsAt"], starts_at, "{listed}");
    assert_eq!(listed["status"]["state"], "active", "{listed}");
}

/// An Alertmanager URL on which nothing listens: `send` gives up after the
/// 3 bounded attempts (about 0.75 s of backoff), naming the URL, and does not hang.
#[tokio::test]
async fn alertmanager_that_refuses_connections_fails_after_bounded_retries() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let sink = Alertmanager::new(&url).expect("client");
    let mut book = quick_book();
    let note =
        book.observe(&Observation::unhealthy("n", "collector_health", "down"), SystemTime::now());

    let started = Instant::now();
    let result = tokio::time::timeout(NO_HANG, sink.send(&[note.expect("fires")]))
        .await
        .expect("send gives up by itself");
    let err = result.expect_err("nothing listens there");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(matches!(err, AlertError::Transport { attempts: 3, .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&format!("{url}/api/v2/alerts")), "{message}");
    assert!(message.contains("3 attempts"), "{message}");
}

/// A receiver that accepts connections and never answers: each attempt times
/// out (here after 300 ms), and `send` fails after 3 of them.
#[tokio::test]
async fn alertmanager_that_never_answers_times_out() {
    // Bound, never accepted: the kernel completes the handshake, nobody replies.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("addr"));
    let retry = RetryPolicy {
        attempts: 3,
        timeout: Duration::from_millis(300),
        backoff: Duration::from_millis(50),
    };
    let sink = Alertmanager::with_retry(&url, retry).expect("client");
    let mut book = quick_book();
    let note =
        book.observe(&Observation::unhealthy("n", "collector_health", "down"), SystemTime::now());

    let result = tokio::time::timeout(NO_HANG, sink.send(&[note.expect("fires")]))
        .await
        .expect("send gives up by itself");
    let err = result.expect_err("nobody answers");
    let message = err.to_string();
    assert!(message.contains("after 3 attempts: timed out"), "{message}");
    assert!(message.contains(&url), "{message}");
    drop(silent);
}

/// What the test webhook server was sent: (Authorization header, body).
type Received = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// Starts an axum server on a free loopback port that records every POST to
/// `/hook` and answers `status`; returns its URL and the record.
async fn webhook_server(status: StatusCode) -> (String, Received) {
    async fn record(
        State((received, status)): State<(Received, StatusCode)>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> StatusCode {
        let auth =
            headers.get("authorization").map(|v| v.to_str().expect("ASCII header").to_owned());
        received.lock().expect("not poisoned").push((auth, body));
        status
    }
    let received = Received::default();
    let app = Router::new().route("/hook", post(record)).with_state((received.clone(), status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("webhook server runs") });
    (url, received)
}

/// A webhook (axum server in the test): a firing and a resolved alert arrive
/// as two documents of the documented shape, with the bearer token from the
/// named environment variable; a re-send is not posted.
#[tokio::test]
async fn webhook_posts_the_documented_shape_with_a_bearer_token() {
    let (url, received) = webhook_server(StatusCode::OK).await;
    // Cargo sets CARGO_PKG_NAME for the tests it runs; reading a variable the
    // process already has avoids `set_var` in a multi-threaded test binary.
    let token = std::env::var("CARGO_PKG_NAME").expect("cargo sets CARGO_PKG_NAME");
    let hook = Webhook::new(&url, Some("CARGO_PKG_NAME".to_owned())).expect("client");

    let policy = AlertPolicy {
        resolve_after: Duration::ZERO,
        repeat_interval: Duration::from_secs(1),
        ..AlertPolicy::default()
    };
    let mut book = AlertBook::new(policy);
    let now = SystemTime::now();
    let mut notes = Vec::new();
    notes.extend(book.observe(&Observation::unhealthy("n1", "collector_health", "HTTP 503"), now));
    notes.extend(book.observe(&Observation::unhealthy("n1", "push_errors", "12 failed"), now));
    let later = now + Duration::from_secs(2);
    notes
        .extend(book.observe(&Observation::unhealthy("n1", "collector_health", "HTTP 503"), later));
    notes.extend(book.observe(&Observation::healthy("n1", "push_errors"), later));
    let kinds: Vec<&str> = notes.iter().map(Notification::kind).collect();
    assert_eq!(kinds, ["firing", "firing", "repeat", "resolved"]);

    tokio::time::timeout(NO_HANG, hook.send(&notes))
        .await
        .expect("no hang")
        .expect("the webhook takes the documents");

    let received = received.lock().expect("not poisoned").clone();
    assert_eq!(received.len(), 2, "one document per status: {received:?}");
    for (auth, _) in &received {
        assert_eq!(auth.as_deref(), Some(format!("Bearer {token}").as_str()));
    }
    let firing = &received[0].1;
    assert_eq!(firing["version"], "1", "{firing}");
    assert_eq!(firing["status"], "firing", "{firing}");
    let alerts = firing["alerts"].as_array().expect("alerts array");
    assert_eq!(alerts.len(), 2, "both firing, the repeat left out: {firing}");
    let first = &alerts[0];
    assert_eq!(first["status"], "firing");
    assert_eq!(first["notification"], "firing");
    assert_eq!(first["labels"]["alertname"], "StewardCollectorHealth");
    assert_eq!(first["labels"]["severity"], "warning");
    assert_eq!(first["labels"]["node"], "n1");
    assert_eq!(first["labels"]["check"], "collector_health");
    assert_eq!(first["annotations"]["evidence"], "HTTP 503");
    assert!(first["annotations"]["summary"].is_string());
    let starts_at = humantime::format_rfc3339_millis(now).to_string();
    assert_eq!(first["startsAt"], starts_at);
    assert!(humantime::parse_rfc3339(first["endsAt"].as_str().expect("endsAt")).is_ok());

    let resolved = &received[1].1;
    assert_eq!(resolved["version"], "1", "{resolved}");
    assert_eq!(resolved["status"], "resolved", "{resolved}");
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    assert_eq!(resolved["alerts"][0]["labels"]["check"], "push_errors");
    let ends_at = humantime::format_rfc3339_millis(later).to_string();
    assert_eq!(resolved["alerts"][0]["endsAt"], ends_at);
}

/// A webhook (axum server in the test) answering 503: the POST is tried
/// exactly 3 times, and the error names the URL and the status. A bearer
/// variable that is not set fails before anything is sent.
#[tokio::test]
async fn webhook_errors_are_retried_then_named() {
    let (url, received) = webhook_server(StatusCode::SERVICE_UNAVAILABLE).await;
    let hook = Webhook::new(&url, None).expect("client");
    let mut book = quick_book();
    let note = book
        .observe(&Observation::unhealthy("n", "collector_health", "down"), SystemTime::now())
        .expect("fires");

    let err = tokio::time::timeout(NO_HANG, hook.send(std::slice::from_ref(&note)))
        .await
        .expect("no hang")
        .expect_err("the server answers 503");
    assert_eq!(received.lock().expect("not poisoned").len(), 3, "3 attempts");
    let message = err.to_string();
    assert!(message.contains(&url) && message.contains("503"), "{message}");

    let unset = "STEWARD_TEST_ALERTS_TOKEN_THAT_IS_NOT_SET";
    let hook = Webhook::new(&url, Some(unset.to_owned())).expect("client");
    let err = hook.send(&[note]).await.expect_err("no token");
    assert!(err.to_string().contains(unset), "{err}");
    assert_eq!(received.lock().expect("not poisoned").len(), 3, "nothing more was sent");
}
