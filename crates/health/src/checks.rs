//! The seed's HealthMonitor checks. Each is a small async function that
//! looks once and returns a [`CheckResult`]: a status and the evidence for it.
//! None of them keeps state; what must be compared across looks (counters)
//! the caller keeps and passes back in.
//!
//! The metric-based logic lives in pure functions over Prometheus text
//! (`assess_queues`, `Counters::read`, `assess_push`), tested with canned
//! samples; the async functions only fetch and time.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use steward_agent::telemetry::{instance_id, scrape, sum_metric};
use steward_agent::verify::{Endpoints, marker, write_marker};

use crate::backend::LogBackend;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Warning,
    Failed,
    /// The check could not look (its source was unreadable): no verdict.
    Unknown,
}

/// What one check saw.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub name: &'static str,
    pub status: Status,
    /// Why, in words a person can act on.
    pub evidence: String,
    /// When it was observed, Unix milliseconds.
    pub observed_ms: i64,
    /// A measured value, where the check has one: the end-to-end latency in
    /// ms, the send failures per second, the fullest queue's fill ratio.
    pub value: Option<f64>,
}

impl CheckResult {
    fn new(name: &'static str, status: Status, evidence: impl Into<String>) -> Self {
        CheckResult { name, status, evidence: evidence.into(), observed_ms: now_ms(), value: None }
    }

    fn with_value(mut self, value: Option<f64>) -> Self {
        self.value = value;
        self
    }
}

pub const COLLECTOR_HEALTH: &str = "collector_health";
pub const QUEUE_BACKPRESSURE: &str = "collector_queue_backpressure";
pub const PUSH_ERRORS: &str = "loki_push_errors";
pub const END_TO_END: &str = "end_to_end_sample_log";

/// The default share of a queue's capacity at which backpressure fails.
pub const QUEUE_THRESHOLD: f64 = 0.8;

const QUEUE_SIZE: &str = "otelcol_exporter_queue_size";
const QUEUE_CAPACITY: &str = "otelcol_exporter_queue_capacity";
const ENQUEUE_FAILED: &str = "otelcol_exporter_enqueue_failed_log_records";
const SEND_FAILED: &str = "otelcol_exporter_send_failed_log_records";
const SENT: &str = "otelcol_exporter_sent_log_records";
const REFUSED: &str = "otelcol_receiver_refused_log_records";
const ACCEPTED: &str = "otelcol_receiver_accepted_log_records";

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The collector answers its `health_check` extension and its process runs.
pub async fn collector_health(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    pid_alive: bool,
) -> CheckResult {
    let url = &endpoints.health;
    let answer = match http.get(url).timeout(Duration::from_secs(2)).send().await {
        Ok(r) if r.status().is_success() => Ok(format!("health check {url}: HTTP {}", r.status())),
        Ok(r) => Err(format!("health check {url}: HTTP {}", r.status())),
        Err(e) => Err(format!("health check {url} unreachable: {e}")),
    };
    match (answer, pid_alive) {
        (Ok(answer), true) => {
            CheckResult::new(COLLECTOR_HEALTH, Status::Ok, format!("{answer}; process alive"))
        }
        (Ok(answer), false) => CheckResult::new(
            COLLECTOR_HEALTH,
            Status::Failed,
            format!("the collector process is not running ({answer}: another process answers)"),
        ),
        (Err(why), alive) => CheckResult::new(
            COLLECTOR_HEALTH,
            Status::Failed,
            if alive { why } else { format!("the collector process is not running; {why}") },
        ),
    }
}

/// The values of `label` on the samples of `metric` (or `metric_total`).
fn label_values(text: &str, metric: &str, label: &str) -> BTreeSet<String> {
    let total = format!("{metric}_total");
    let key = format!("{label}=\"");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (name, labels) = line.split_once('{')?;
            if name != metric && name != total {
                return None;
            }
            // The key must start a label, not end another one's name.
            let at = labels.match_indices(&key).find(|(i, _)| {
                *i == 0 || labels[..*i].ends_with(',') || labels[..*i].ends_with(' ')
            })?;
            let rest = &labels[at.0 + key.len()..];
            rest.split_once('"').map(|(value, _)| value.to_owned())
        })
        .collect()
}

/// One exporter's sending queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueFill {
    pub exporter: String,
    pub size: f64,
    pub capacity: f64,
    pub enqueue_failed: f64,
}

impl QueueFill {
    pub fn ratio(&self) -> f64 {
        if self.capacity > 0.0 { self.size / self.capacity } else { 0.0 }
    }
}

/// Each exporter's queue, read from Prometheus text.
pub fn queues(text: &str) -> Result<Vec<QueueFill>, String> {
    let mut exporters = label_values(text, QUEUE_SIZE, "exporter");
    exporters.extend(label_values(text, QUEUE_CAPACITY, "exporter"));
    exporters.extend(label_values(text, ENQUEUE_FAILED, "exporter"));
    exporters
        .into_iter()
        .map(|exporter| {
            let want = [("exporter", exporter.as_str())];
            Ok(QueueFill {
                size: sum_metric(text, QUEUE_SIZE, &want)?,
                capacity: sum_metric(text, QUEUE_CAPACITY, &want)?,
                enqueue_failed: sum_metric(text, ENQUEUE_FAILED, &want)?,
                exporter,
            })
        })
        .collect()
}

/// The verdict on queues: `Failed` when one is at least `threshold` full,
/// `Warning` when records were refused by a queue (dropped) at some point,
/// `Unknown` when the text reports no queue at all. The value is the fullest
/// queue's fill ratio.
pub fn assess_queues(text: &str, threshold: f64) -> (Status, String, Option<f64>) {
    let queues = match queues(text) {
        Ok(queues) => queues,
        Err(why) => return (Status::Unknown, format!("malformed metrics: {why}"), None),
    };
    if queues.is_empty() {
        return (Status::Unknown, format!("no exporter reports {QUEUE_SIZE}"), None);
    }
    let percent = |r: f64| (r * 100.0).round();
    let full: Vec<String> = queues
        .iter()
        .filter(|q| q.capacity > 0.0 && q.ratio() >= threshold)
        .map(|q| {
            format!(
                "queue {}% full on {} ({} of {})",
                percent(q.ratio()),
                q.exporter,
                q.size,
                q.capacity
            )
        })
        .collect();
    let dropped: Vec<String> = queues
        .iter()
        .filter(|q| q.enqueue_failed > 0.0)
        .map(|q| format!("{} log records failed to enqueue on {}", q.enqueue_failed, q.exporter))
        .collect();
    let fullest = queues.iter().map(QueueFill::ratio).fold(0.0, f64::max);
    let status = if !full.is_empty() {
        Status::Failed
    } else if !dropped.is_empty() {
        Status::Warning
    } else {
        Status::Ok
    };
    let evidence = if status == Status::Ok {
        let each: Vec<String> = queues
            .iter()
            .map(|q| {
                format!("{} {}% ({} of {})", q.exporter, percent(q.ratio()), q.size, q.capacity)
            })
            .collect();
        format!("queues below {}%: {}", percent(threshold), each.join(", "))
    } else {
        full.into_iter().chain(dropped).collect::<Vec<_>>().join("; ")
    };
    (status, evidence, Some(fullest))
}

/// Exporter queues filling up: the store is slower than the input, or gone.
pub async fn check_collector_queue_backpressure(
    http: &reqwest::Client,
    metrics_url: &str,
    threshold: f64,
) -> CheckResult {
    match scrape(http, metrics_url).await {
        Err(why) => CheckResult::new(
            QUEUE_BACKPRESSURE,
            Status::Unknown,
            format!("metrics unreadable: {why}"),
        ),
        Ok(text) => {
            let (status, evidence, value) = assess_queues(&text, threshold);
            CheckResult::new(QUEUE_BACKPRESSURE, status, evidence).with_value(value)
        }
    }
}

/// The push counters of one look, kept by the caller for the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Counters {
    pub send_failed: f64,
    pub sent: f64,
    pub refused: f64,
    /// Log records the receivers accepted: what Steward's UI charts as
    /// "lines accepted". Not part of the push verdict.
    pub accepted: f64,
    /// The collector service that counted (a reload starts from zero).
    pub instance: Option<String>,
    pub observed_ms: i64,
}

impl Counters {
    /// Reads the counters from Prometheus text observed at `observed_ms`.
    pub fn read(text: &str, observed_ms: i64) -> Result<Self, String> {
        Ok(Counters {
            send_failed: sum_metric(text, SEND_FAILED, &[])?,
            sent: sum_metric(text, SENT, &[])?,
            refused: sum_metric(text, REFUSED, &[])?,
            accepted: sum_metric(text, ACCEPTED, &[])?,
            instance: instance_id(text).map(str::to_owned),
            observed_ms,
        })
    }
}

/// What grew between two looks. Counters of another service instance (a
/// reload happened in between) count from zero.
#[derive(Debug, Clone, PartialEq)]
pub struct Growth {
    pub send_failed: f64,
    pub sent: f64,
    pub refused: f64,
    pub seconds: f64,
}

pub fn growth(previous: &Counters, now: &Counters) -> Growth {
    let restarted = previous.instance != now.instance
        || now.send_failed < previous.send_failed
        || now.sent < previous.sent
        || now.refused < previous.refused;
    let base = if restarted {
        Counters { send_failed: 0.0, sent: 0.0, refused: 0.0, accepted: 0.0, ..previous.clone() }
    } else {
        previous.clone()
    };
    Growth {
        send_failed: now.send_failed - base.send_failed,
        sent: now.sent - base.sent,
        refused: now.refused - base.refused,
        seconds: (now.observed_ms - previous.observed_ms).max(0) as f64 / 1000.0,
    }
}

/// Log records accepted since `previous`; a collector that restarted or
/// reloaded (another instance, or a counter that went down) counts from zero.
pub fn accepted_since(previous: Option<&Counters>, now: &Counters) -> f64 {
    match previous {
        Some(p) if p.instance == now.instance && now.accepted >= p.accepted => {
            now.accepted - p.accepted
        }
        Some(_) => now.accepted,
        // The first look has no interval to count over.
        None => 0.0,
    }
}

/// The verdict on pushing: `Failed` when the backend is not ready or send
/// failures grew; `Warning` when receivers refused records; else `Ok`. The
/// value is send failures per second.
pub fn assess_push(
    backend: Result<(), String>,
    previous: Option<&Counters>,
    now: &Counters,
) -> (Status, String, Option<f64>) {
    let mut failed = Vec::new();
    let mut warnings = Vec::new();
    let mut notes = Vec::new();
    match backend {
        Ok(()) => notes.push("backend ready".to_owned()),
        Err(why) => failed.push(format!("backend not ready: {why}")),
    }
    let mut rate = None;
    match previous {
        None => notes.push(format!(
            "first sample: {} sent, {} send failures, {} refused",
            now.sent, now.send_failed, now.refused
        )),
        Some(previous) => {
            let g = growth(previous, now);
            if g.seconds > 0.0 {
                rate = Some(g.send_failed / g.seconds);
            }
            let over = format!("in {:.1} s", g.seconds);
            if g.send_failed > 0.0 {
                failed.push(format!("{} log records failed to send {over}", g.send_failed));
            }
            if g.refused > 0.0 {
                warnings.push(format!("receivers refused {} log records {over}", g.refused));
            }
            notes.push(format!("{} sent {over}", g.sent));
        }
    }
    let status = if !failed.is_empty() {
        Status::Failed
    } else if !warnings.is_empty() {
        Status::Warning
    } else {
        Status::Ok
    };
    let evidence = failed.into_iter().chain(warnings).chain(notes).collect::<Vec<_>>().join("; ");
    (status, evidence, rate)
}

/// Push errors to the store, refused records, and the store's readiness.
/// Returns the counters to pass back as `previous` next time (`None` when the
/// metrics were unreadable).
pub async fn check_loki_push_errors(
    http: &reqwest::Client,
    metrics_url: &str,
    backend: &impl LogBackend,
    previous: Option<&Counters>,
) -> (CheckResult, Option<Counters>) {
    let (ready, text) = tokio::join!(backend.ready(), scrape(http, metrics_url));
    let ready = ready.map_err(|e| e.to_string());
    let counters = text.and_then(|text| Counters::read(&text, now_ms()));
    match counters {
        Ok(now) => {
            let (status, evidence, rate) = assess_push(ready, previous, &now);
            (CheckResult::new(PUSH_ERRORS, status, evidence).with_value(rate), Some(now))
        }
        Err(why) => {
            let result = match ready {
                Err(not_ready) => CheckResult::new(
                    PUSH_ERRORS,
                    Status::Failed,
                    format!("backend not ready: {not_ready}; metrics unreadable: {why}"),
                ),
                Ok(()) => CheckResult::new(
                    PUSH_ERRORS,
                    Status::Unknown,
                    format!("metrics unreadable: {why}; backend ready"),
                ),
            };
            (result, None)
        }
    }
}

/// How often the store is asked for the marker.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// How far before the write the search starts: clocks of the node and the
/// store may disagree a little.
const CLOCK_SLACK_MS: i64 = 5_000;

/// Proves that a line really flows: appends a unique marker to the canary
/// file the collector reads, then asks the store for it every 100 ms until
/// found (`Ok`, the latency in ms as the value) or `timeout` (`Failed`, with
/// the store's last answer).
pub async fn check_end_to_end_sample_log(
    backend: &impl LogBackend,
    canary_path: &Path,
    timeout: Duration,
) -> CheckResult {
    let marker = marker("e2e");
    let since_ms = now_ms() - CLOCK_SLACK_MS;
    let written = Instant::now();
    if let Err(e) = write_marker(canary_path, &marker) {
        return CheckResult::new(
            END_TO_END,
            Status::Failed,
            format!("cannot append to the canary file {}: {e}", canary_path.display()),
        );
    }
    let deadline = written + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let last = match tokio::time::timeout(remaining, backend.find_line(&marker, since_ms)).await
        {
            Ok(Ok(true)) => {
                let latency = written.elapsed().as_secs_f64() * 1000.0;
                return CheckResult::new(
                    END_TO_END,
                    Status::Ok,
                    format!("{marker:?} found in the store after {latency:.0} ms"),
                )
                .with_value(Some(latency));
            }
            Ok(Ok(false)) => "the store does not hold it yet".to_owned(),
            Ok(Err(e)) => format!("the store did not answer: {e}"),
            Err(_) => "the store's answer did not come in time".to_owned(),
        };
        if Instant::now() + PROBE_INTERVAL >= deadline {
            return CheckResult::new(
                END_TO_END,
                Status::Failed,
                format!("{marker:?} not found within {timeout:?}: {last}"),
            );
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUEUES: &str = "# HELP otelcol_exporter_queue_size Current size of the retry queue\n\
        # TYPE otelcol_exporter_queue_size gauge\n\
        otelcol_exporter_queue_size{data_type=\"logs\",exporter=\"otlp_http/loki\",service_instance_id=\"a\"} 46\n\
        otelcol_exporter_queue_size{data_type=\"traces\",exporter=\"otlp_http/traces\",service_instance_id=\"a\"} 1\n\
        otelcol_exporter_queue_capacity{data_type=\"logs\",exporter=\"otlp_http/loki\",service_instance_id=\"a\"} 50\n\
        otelcol_exporter_queue_capacity{data_type=\"traces\",exporter=\"otlp_http/traces\",service_instance_id=\"a\"} 5000\n";

    #[test]
    fn a_queue_over_the_threshold_fails_and_names_its_exporter() {
        let (status, evidence, value) = assess_queues(QUEUES, 0.8);
        assert_eq!(status, Status::Failed, "{evidence}");
        assert_eq!(evidence, "queue 92% full on otlp_http/loki (46 of 50)");
        assert_eq!(value, Some(0.92));
        let (status, evidence, _) = assess_queues(QUEUES, 0.95);
        assert_eq!(status, Status::Ok, "{evidence}");
        assert!(evidence.contains("otlp_http/loki 92% (46 of 50)"), "{evidence}");
    }

    #[test]
    fn enqueue_failures_warn_with_their_count_in_either_spelling() {
        let text = format!(
            "{QUEUES}otelcol_exporter_enqueue_failed_log_records_total{{exporter=\"otlp_http/traces\"}} 7\n"
        );
        let (status, evidence, _) = assess_queues(&text, 0.95);
        assert_eq!(status, Status::Warning, "{evidence}");
        assert_eq!(evidence, "7 log records failed to enqueue on otlp_http/traces");
        let (status, evidence, _) = assess_queues(&text, 0.8);
        assert_eq!(status, Status::Failed);
        assert!(evidence.contains("92%") && evidence.contains("7 log records"), "{evidence}");
    }

    #[test]
    fn no_queues_or_garbage_is_unknown() {
        let (status, evidence, _) = assess_queues("otelcol_process_uptime 3\n", 0.8);
        assert_eq!(status, Status::Unknown);
        assert!(evidence.contains("otelcol_exporter_queue_size"), "{evidence}");
        let (status, evidence, _) =
            assess_queues("otelcol_exporter_queue_size{exporter=\"x\"} many\n", 0.8);
        assert_eq!(status, Status::Unknown);
        assert!(evidence.contains("malformed") && evidence.contains("many"), "{evidence}");
    }

    #[test]
    fn label_values_match_whole_label_names() {
        let text = "m{sub_exporter=\"no\",exporter=\"yes\"} 1\nm_total{exporter=\"also\"} 1\nother{exporter=\"x\"} 1\n";
        let values: Vec<String> = label_values(text, "m", "exporter").into_iter().collect();
        assert_eq!(values, ["also", "yes"]);
    }

    fn counters(text: &str, at: i64) -> Counters {
        Counters::read(text, at).expect("readable")
    }

    #[test]
    fn send_failures_that_grew_fail_and_give_a_rate() {
        let before = counters(
            "target_info{service_instance_id=\"i1\"} 1\n\
             otelcol_exporter_sent_log_records_total{exporter=\"otlp_http/loki\"} 100\n\
             otelcol_exporter_send_failed_log_records_total{exporter=\"otlp_http/loki\"} 2\n",
            10_000,
        );
        assert_eq!((before.sent, before.send_failed, before.refused), (100.0, 2.0, 0.0));
        assert_eq!(before.instance.as_deref(), Some("i1"));
        let (status, evidence, rate) = assess_push(Ok(()), None, &before);
        assert_eq!(status, Status::Ok, "{evidence}");
        assert_eq!(rate, None);

        let after = counters(
            "target_info{service_instance_id=\"i1\"} 1\n\
             otelcol_exporter_sent_log_records{exporter=\"otlp_http/loki\"} 100\n\
             otelcol_exporter_send_failed_log_records{exporter=\"otlp_http/loki\"} 12\n",
            15_000,
        );
        let (status, evidence, rate) = assess_push(Ok(()), Some(&before), &after);
        assert_eq!(status, Status::Failed, "{evidence}");
        assert!(evidence.starts_with("10 log records failed to send in 5.0 s"), "{evidence}");
        assert_eq!(rate, Some(2.0));
    }

    #[test]
    fn unchanged_counters_are_ok_refusals_warn_and_a_reload_counts_from_zero() {
        let text = "target_info{service_instance_id=\"i1\"} 1\n\
            otelcol_exporter_send_failed_log_records 5\n\
            otelcol_receiver_refused_log_records{receiver=\"file_log/x\"} 1\n";
        let before = counters(text, 0);
        let (status, evidence, rate) = assess_push(Ok(()), Some(&before), &counters(text, 1000));
        assert_eq!(status, Status::Ok, "{evidence}");
        assert_eq!(rate, Some(0.0));

        let refused = counters(
            "target_info{service_instance_id=\"i1\"} 1\n\
             otelcol_exporter_send_failed_log_records 5\n\
             otelcol_receiver_refused_log_records{receiver=\"file_log/x\"} 4\n",
            1000,
        );
        let (status, evidence, _) = assess_push(Ok(()), Some(&before), &refused);
        assert_eq!(status, Status::Warning, "{evidence}");
        assert!(evidence.contains("refused 3 log records"), "{evidence}");

        // After a reload the new service counts from zero: 1 failure is new.
        let reloaded = counters(
            "target_info{service_instance_id=\"i2\"} 1\notelcol_exporter_send_failed_log_records 1\n",
            1000,
        );
        let (status, evidence, _) = assess_push(Ok(()), Some(&before), &reloaded);
        assert_eq!(status, Status::Failed, "{evidence}");
        assert!(evidence.starts_with("1 log records failed to send"), "{evidence}");
    }

    #[test]
    fn a_backend_that_is_not_ready_fails_whatever_the_counters() {
        let now = counters("otelcol_exporter_sent_log_records 1\n", 0);
        let (status, evidence, _) = assess_push(Err("HTTP 503".into()), Some(&now), &now);
        assert_eq!(status, Status::Failed);
        assert!(evidence.starts_with("backend not ready: HTTP 503"), "{evidence}");
        assert!(Counters::read("otelcol_exporter_sent_log_records x\n", 0).is_err());
    }

    #[test]
    fn accepted_lines_count_from_zero_after_a_reload() {
        let text = |n: u32, id: &str| {
            format!(
                "target_info{{service_instance_id=\"{id}\"}} 1\n\
                 otelcol_receiver_accepted_log_records_total{{receiver=\"r\"}} {n}\n"
            )
        };
        let a = Counters::read(&text(10, "a"), 0).unwrap();
        let b = Counters::read(&text(25, "a"), 1000).unwrap();
        let c = Counters::read(&text(4, "b"), 2000).unwrap();
        assert_eq!(accepted_since(None, &a), 0.0);
        assert_eq!(accepted_since(Some(&a), &b), 15.0);
        assert_eq!(accepted_since(Some(&b), &c), 4.0, "another instance counts from zero");
    }
}
