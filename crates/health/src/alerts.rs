//! Alerts: telling people when a health check fails, once, and when it is
//! healthy again, once.
//!
//! Two halves:
//! - [`AlertBook`] is a **pure** state machine (no I/O, no clock: `now` is
//!   passed in). It turns a stream of check observations, per check per node,
//!   into [`Notification`]s: [`Notification::Firing`] once, a
//!   [`Notification::Repeat`] every `repeat_interval` while the alert stays
//!   firing, and [`Notification::Resolved`] once the check has stayed healthy
//!   for `resolve_after`.
//! - [`AlertSink`] sends notifications: [`Alertmanager`] (Prometheus
//!   Alertmanager, API v2) and [`Webhook`] (a generic JSON document).
//!
//! The timing rules, and why:
//! - `for_` (default 0 s): a check must be unhealthy for this long, without a
//!   healthy observation in between, before it fires; like Prometheus' `for`,
//!   it absorbs one-off blips. The alert's `startsAt` is the first unhealthy
//!   observation of that run, not the moment `for_` ran out.
//! - `repeat_interval` (default 60 s): while firing, nothing is sent except a
//!   re-send this often, with the same `startsAt`. Alertmanager forgets an
//!   alert at its `endsAt`, so it must hear about it again before then.
//! - `lease` (default 4 min): a firing alert is posted with
//!   `endsAt = now + lease`. If Steward stops re-sending (it crashed, the node
//!   vanished), the alert resolves by itself when the lease runs out instead
//!   of firing forever. Keep it several `repeat_interval`s long so one lost
//!   re-send does not resolve the alert.
//! - `resolve_after` (default 60 s): a firing alert resolves only once the
//!   check has been healthy, without an unhealthy observation in between, for
//!   this long. This is the hysteresis against flapping: a check that goes
//!   healthy and unhealthy every few seconds makes one firing alert (and its
//!   re-sends), not a stream of fire/resolve pairs. 60 s is a whole re-send
//!   interval: a check must pass for a minute before anyone is told it is fine.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// How urgent an alert is; the `severity` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Severity {
    Info,
    #[default]
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// The timing rules of an [`AlertBook`]; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertPolicy {
    /// How long a check must stay unhealthy before it fires.
    pub for_: Duration,
    /// How often a firing alert is sent again.
    pub repeat_interval: Duration,
    /// How long a check must stay healthy before its alert resolves.
    pub resolve_after: Duration,
    /// How far in the future a firing alert's `endsAt` lies.
    pub lease: Duration,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy {
            for_: Duration::ZERO,
            repeat_interval: Duration::from_secs(60),
            resolve_after: Duration::from_secs(60),
            lease: Duration::from_secs(4 * 60),
        }
    }
}

/// One result of one check on one node: the input of an [`AlertBook`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub node: String,
    /// The check's name, e.g. `end_to_end_sample_log`.
    pub check: String,
    pub healthy: bool,
    /// What the check saw, in words; it becomes the `evidence` annotation.
    pub evidence: String,
    pub severity: Severity,
}

impl Observation {
    pub fn healthy(node: impl Into<String>, check: impl Into<String>) -> Self {
        Observation {
            node: node.into(),
            check: check.into(),
            healthy: true,
            evidence: String::new(),
            severity: Severity::default(),
        }
    }

    pub fn unhealthy(
        node: impl Into<String>,
        check: impl Into<String>,
        evidence: impl Into<String>,
    ) -> Self {
        Observation {
            node: node.into(),
            check: check.into(),
            healthy: false,
            evidence: evidence.into(),
            severity: Severity::default(),
        }
    }

    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    pub fn with_evidence(mut self, evidence: impl Into<String>) -> Self {
        self.evidence = evidence.into();
        self
    }
}

/// An alert as receivers see it, in Alertmanager's terms.
///
/// Labels: `alertname` (`Steward` + the check name in CamelCase), `severity`,
/// `node`, `check`. Annotations: `summary`, `evidence`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// When the check was first seen unhealthy in this run; the same in every
    /// notification of one alert.
    pub starts_at: SystemTime,
    /// For a firing alert, `now + lease`; for a resolved one, when it resolved.
    pub ends_at: SystemTime,
}

impl Alert {
    /// The `alertname` label.
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }
}

/// What an [`AlertBook`] wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// The alert starts firing.
    Firing { alert: Alert },
    /// The alert still fires; sent every `repeat_interval`.
    Repeat { alert: Alert },
    /// The check has been healthy for `resolve_after`.
    Resolved { alert: Alert },
}

impl Notification {
    pub fn alert(&self) -> &Alert {
        match self {
            Notification::Firing { alert }
            | Notification::Repeat { alert }
            | Notification::Resolved { alert } => alert,
        }
    }

    pub fn is_resolved(&self) -> bool {
        matches!(self, Notification::Resolved { .. })
    }

    /// `firing`, `repeat` or `resolved`.
    pub fn kind(&self) -> &'static str {
        match self {
            Notification::Firing { .. } => "firing",
            Notification::Repeat { .. } => "repeat",
            Notification::Resolved { .. } => "resolved",
        }
    }
}

/// `Steward` + the check name in CamelCase: `end_to_end-sample` →
/// `StewardEndToEndSample`.
pub fn alert_name(check: &str) -> String {
    let mut name = String::from("Steward");
    for part in check.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            name.push(first.to_ascii_uppercase());
            name.extend(chars);
        }
    }
    name
}

/// The state of one (node, check) that is not simply healthy.
#[derive(Debug, Clone)]
enum State {
    /// Unhealthy since `since`, not yet for `for_`.
    Pending { since: SystemTime, evidence: String, severity: Severity },
    /// Notified as firing.
    Firing {
        starts_at: SystemTime,
        last_sent: SystemTime,
        /// Set while the latest observations are healthy: since when.
        healthy_since: Option<SystemTime>,
        /// The latest unhealthy evidence.
        evidence: String,
        severity: Severity,
    },
}

/// The pure alerting state machine; see the module documentation.
///
/// Feed it every check result with [`AlertBook::observe`]; call
/// [`AlertBook::tick`] now and then to let time alone resolve or re-send.
#[derive(Debug, Clone, Default)]
pub struct AlertBook {
    policy: AlertPolicy,
    /// Keyed by (node, check); a healthy, quiet check has no entry.
    states: BTreeMap<(String, String), State>,
}

impl AlertBook {
    pub fn new(policy: AlertPolicy) -> Self {
        AlertBook { policy, states: BTreeMap::new() }
    }

    pub fn policy(&self) -> &AlertPolicy {
        &self.policy
    }

    /// Takes one observation made at `now`; returns what to send, if anything.
    pub fn observe(&mut self, obs: &Observation, now: SystemTime) -> Option<Notification> {
        let key = (obs.node.clone(), obs.check.clone());
        let state = match (self.states.remove(&key), obs.healthy) {
            (None, true) | (Some(State::Pending { .. }), true) => return None,
            (None, false) => State::Pending {
                since: now,
                evidence: obs.evidence.clone(),
                severity: obs.severity,
            },
            (Some(State::Pending { since, .. }), false) => {
                State::Pending { since, evidence: obs.evidence.clone(), severity: obs.severity }
            }
            (Some(State::Firing { starts_at, last_sent, .. }), false) => State::Firing {
                starts_at,
                last_sent,
                healthy_since: None,
                evidence: obs.evidence.clone(),
                severity: obs.severity,
            },
            (
                Some(State::Firing { starts_at, last_sent, healthy_since, evidence, severity }),
                true,
            ) => State::Firing {
                starts_at,
                last_sent,
                healthy_since: Some(healthy_since.unwrap_or(now)),
                evidence,
                severity,
            },
        };
        let (state, note) = self.advance(&key, state, now);
        if let Some(state) = state {
            self.states.insert(key, state);
        }
        note
    }

    /// Lets time pass without new observations: pending checks whose `for_`
    /// ran out fire, healthy ones whose `resolve_after` ran out resolve, and
    /// due re-sends are made. In (node, check) order.
    pub fn tick(&mut self, now: SystemTime) -> Vec<Notification> {
        let mut notes = Vec::new();
        for (key, state) in std::mem::take(&mut self.states) {
            let (state, note) = self.advance(&key, state, now);
            notes.extend(note);
            if let Some(state) = state {
                self.states.insert(key, state);
            }
        }
        notes
    }

    /// The (node, check) pairs whose alert is firing.
    pub fn firing(&self) -> impl Iterator<Item = (&str, &str)> {
        self.states.iter().filter_map(|((node, check), state)| match state {
            State::Firing { .. } => Some((node.as_str(), check.as_str())),
            State::Pending { .. } => None,
        })
    }

    /// The time-driven transitions of one state.
    fn advance(
        &self,
        (node, check): &(String, String),
        state: State,
        now: SystemTime,
    ) -> (Option<State>, Option<Notification>) {
        let policy = &self.policy;
        match state {
            State::Pending { since, evidence, severity } => {
                if elapsed(since, now) < policy.for_ {
                    return (Some(State::Pending { since, evidence, severity }), None);
                }
                let alert = self.alert(node, check, severity, &evidence, since, now + policy.lease);
                let state = State::Firing {
                    starts_at: since,
                    last_sent: now,
                    healthy_since: None,
                    evidence,
                    severity,
                };
                (Some(state), Some(Notification::Firing { alert }))
            }
            State::Firing { starts_at, last_sent, healthy_since, evidence, severity } => {
                if let Some(healthy) = healthy_since
                    && elapsed(healthy, now) >= policy.resolve_after
                {
                    let ends_at = now.max(starts_at);
                    let alert = self.alert(node, check, severity, &evidence, starts_at, ends_at);
                    return (None, Some(Notification::Resolved { alert }));
                }
                let due = elapsed(last_sent, now) >= policy.repeat_interval;
                let note = due.then(|| Notification::Repeat {
                    alert: self.alert(
                        node,
                        check,
                        severity,
                        &evidence,
                        starts_at,
                        now + policy.lease,
                    ),
                });
                let last_sent = if due { now } else { last_sent };
                let state =
                    State::Firing { starts_at, last_sent, healthy_since, evidence, severity };
                (Some(state), note)
            }
        }
    }

    fn alert(
        &self,
        node: &str,
        check: &str,
        severity: Severity,
        evidence: &str,
        starts_at: SystemTime,
        ends_at: SystemTime,
    ) -> Alert {
        let labels = BTreeMap::from([
            ("alertname".to_owned(), alert_name(check)),
            ("severity".to_owned(), severity.as_str().to_owned()),
            ("node".to_owned(), node.to_owned()),
            ("check".to_owned(), check.to_owned()),
        ]);
        let annotations = BTreeMap::from([
            ("summary".to_owned(), format!("Steward check {check} is failing on node {node}")),
            ("evidence".to_owned(), evidence.to_owned()),
        ]);
        Alert { labels, annotations, starts_at, ends_at }
    }
}

/// `now - then`, or zero if the clock went backwards.
fn elapsed(then: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or(Duration::ZERO)
}

/// RFC 3339 in UTC with milliseconds, as both receivers expect.
fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

// ---------------------------------------------------------------------------
// Sinks

/// Why notifications could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("building the HTTP client for alerts")]
    Client(#[source] reqwest::Error),
    #[error("POST {url} answered HTTP {status} (attempt {attempts}): {body}")]
    Status { url: String, status: u16, attempts: u32, body: String },
    #[error("POST {url} failed after {attempts} attempts: {reason}")]
    Transport {
        url: String,
        attempts: u32,
        reason: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("bearer token for {url}: environment variable {var} is not set (or not UTF-8)")]
    MissingToken { url: String, var: String },
}

/// Where notifications go.
pub trait AlertSink: Send + Sync {
    /// Delivers `notes` (all of them, or an error); an empty slice sends nothing.
    fn send(&self, notes: &[Notification]) -> impl Future<Output = Result<(), AlertError>> + Send;
}

/// How a sink retries: `attempts` tries in all, each with `timeout`, waiting
/// `backoff`, then twice that, ... in between. Connection errors, timeouts,
/// HTTP 408, 429 and 5xx are retried; any other status is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub timeout: Duration,
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            timeout: Duration::from_secs(5),
            backoff: Duration::from_millis(250),
        }
    }
}

fn client(retry: &RetryPolicy) -> Result<reqwest::Client, AlertError> {
    reqwest::Client::builder().timeout(retry.timeout).build().map_err(AlertError::Client)
}

/// POSTs `body` as JSON with bounded retries.
async fn post_json(
    http: &reqwest::Client,
    retry: &RetryPolicy,
    url: &str,
    bearer: Option<&str>,
    body: &serde_json::Value,
) -> Result<(), AlertError> {
    let attempts = retry.attempts.max(1);
    let mut backoff = retry.backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut request = http.post(url).json(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let failure = match request.send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                let error = AlertError::Status {
                    url: url.to_owned(),
                    status: status.as_u16(),
                    attempts: attempt,
                    body: truncate(text.trim(), 512),
                };
                let retryable = status.is_server_error()
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status == reqwest::StatusCode::REQUEST_TIMEOUT;
                if !retryable {
                    return Err(error);
                }
                error
            }
            Err(source) => {
                let reason = if source.is_timeout() {
                    "timed out"
                } else if source.is_connect() {
                    "could not connect"
                } else {
                    "request failed"
                };
                AlertError::Transport { url: url.to_owned(), attempts: attempt, reason, source }
            }
        };
        if attempt >= attempts {
            return Err(failure);
        }
        tracing::debug!(url, attempt, error = %failure, "alert delivery failed; retrying");
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Prometheus Alertmanager, API v2: `POST {base_url}/api/v2/alerts`.
///
/// Each notification becomes one element of the posted array:
/// `{labels, annotations, startsAt, endsAt, generatorURL?}`, times in RFC 3339.
/// A firing or re-sent alert has `endsAt` in the future (`now + lease`), so
/// Alertmanager keeps it active until then; a resolved one has `endsAt` =
/// the moment it resolved, which Alertmanager takes as resolved.
#[derive(Debug, Clone)]
pub struct Alertmanager {
    base_url: String,
    generator_url: Option<String>,
    retry: RetryPolicy,
    http: reqwest::Client,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert<'a> {
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    generator_url: Option<&'a str>,
}

impl Alertmanager {
    pub fn new(base_url: impl Into<String>) -> Result<Self, AlertError> {
        Self::with_retry(base_url, RetryPolicy::default())
    }

    pub fn with_retry(base_url: impl Into<String>, retry: RetryPolicy) -> Result<Self, AlertError> {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        Ok(Alertmanager { base_url, generator_url: None, retry, http: client(&retry)? })
    }

    /// A link shown with each alert in Alertmanager (e.g. Steward's status page).
    pub fn with_generator_url(mut self, url: impl Into<String>) -> Self {
        self.generator_url = Some(url.into());
        self
    }

    pub fn url(&self) -> String {
        format!("{}/api/v2/alerts", self.base_url)
    }

    /// The JSON array that [`AlertSink::send`] posts.
    pub fn body(&self, notes: &[Notification]) -> serde_json::Value {
        let alerts: Vec<PostableAlert<'_>> = notes
            .iter()
            .map(|note| {
                let alert = note.alert();
                PostableAlert {
                    labels: &alert.labels,
                    annotations: &alert.annotations,
                    starts_at: rfc3339(alert.starts_at),
                    ends_at: rfc3339(alert.ends_at),
                    generator_url: self.generator_url.as_deref(),
                }
            })
            .collect();
        serde_json::to_value(alerts).expect("alerts serialise to JSON")
    }
}

impl AlertSink for Alertmanager {
    async fn send(&self, notes: &[Notification]) -> Result<(), AlertError> {
        if notes.is_empty() {
            return Ok(());
        }
        post_json(&self.http, &self.retry, &self.url(), None, &self.body(notes)).await
    }
}

/// A generic JSON webhook.
///
/// Each [`AlertSink::send`] POSTs at most two documents, one per status: first
/// the firing alerts, then the resolved ones, each shaped
///
/// ```json
/// {
///   "version": "1",
///   "status": "firing",
///   "alerts": [
///     {
///       "status": "firing",
///       "notification": "firing",
///       "labels": {"alertname": "StewardEndToEnd", "severity": "warning",
///                  "node": "node-1", "check": "end_to_end"},
///       "annotations": {"summary": "...", "evidence": "..."},
///       "startsAt": "2025-01-02T03:04:05.678Z",
///       "endsAt": "2025-01-02T03:08:05.678Z"
///     }
///   ]
/// }
/// ```
///
/// `status` is `firing` or `resolved` (the same for the document and each of
/// its alerts); `notification` is `firing`, `repeat` or `resolved`. Re-sends
/// ([`Notification::Repeat`]) are left out unless [`Webhook::with_repeats`]
/// asks for them: a chat channel wants to hear once, not every minute.
///
/// With `bearer_env`, the request carries `Authorization: Bearer <token>`,
/// the token read from that environment variable at each send (so a rotated
/// secret is picked up, and none is kept in the config).
#[derive(Debug, Clone)]
pub struct Webhook {
    url: String,
    bearer_env: Option<String>,
    repeats: bool,
    retry: RetryPolicy,
    http: reqwest::Client,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookAlert<'a> {
    status: &'static str,
    notification: &'static str,
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    starts_at: String,
    ends_at: String,
}

#[derive(Serialize)]
struct WebhookDocument<'a> {
    version: &'static str,
    status: &'static str,
    alerts: Vec<WebhookAlert<'a>>,
}

impl Webhook {
    pub fn new(url: impl Into<String>, bearer_env: Option<String>) -> Result<Self, AlertError> {
        Self::with_retry(url, bearer_env, RetryPolicy::default())
    }

    pub fn with_retry(
        url: impl Into<String>,
        bearer_env: Option<String>,
        retry: RetryPolicy,
    ) -> Result<Self, AlertError> {
        Ok(Webhook { url: url.into(), bearer_env, repeats: false, retry, http: client(&retry)? })
    }

    /// Whether re-sends of firing alerts are posted too (default: no).
    pub fn with_repeats(mut self, repeats: bool) -> Self {
        self.repeats = repeats;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The documents that [`AlertSink::send`] posts, in order.
    pub fn documents(&self, notes: &[Notification]) -> Vec<serde_json::Value> {
        let mut documents = Vec::new();
        for status in ["firing", "resolved"] {
            let alerts: Vec<WebhookAlert<'_>> = notes
                .iter()
                .filter(|note| {
                    let note_status = if note.is_resolved() { "resolved" } else { "firing" };
                    note_status == status
                        && (self.repeats || !matches!(note, Notification::Repeat { .. }))
                })
                .map(|note| {
                    let alert = note.alert();
                    WebhookAlert {
                        status,
                        notification: note.kind(),
                        labels: &alert.labels,
                        annotations: &alert.annotations,
                        starts_at: rfc3339(alert.starts_at),
                        ends_at: rfc3339(alert.ends_at),
                    }
                })
                .collect();
            if !alerts.is_empty() {
                let document = WebhookDocument { version: "1", status, alerts };
                documents.push(serde_json::to_value(document).expect("alerts serialise to JSON"));
            }
        }
        documents
    }
}

impl AlertSink for Webhook {
    async fn send(&self, notes: &[Notification]) -> Result<(), AlertError> {
        let documents = self.documents(notes);
        if documents.is_empty() {
            return Ok(());
        }
        let token = match &self.bearer_env {
            Some(var) => Some(std::env::var(var).map_err(|_| AlertError::MissingToken {
                url: self.url.clone(),
                var: var.clone(),
            })?),
            None => None,
        };
        for document in &documents {
            post_json(&self.http, &self.retry, &self.url, token.as_deref(), document).await?;
        }
        Ok(())
    }
}

/// Every sink `steward.yaml` names, as one: each gets every notification;
/// one failing does not keep the others from theirs, and the first error is
/// returned after all were tried. No sinks: notifications are only logged.
#[derive(Debug, Clone, Default)]
pub struct Sinks {
    pub alertmanagers: Vec<Alertmanager>,
    pub webhooks: Vec<Webhook>,
    /// Steward's own record of what it notified, shared by every clone: what
    /// its API, UI and metrics show.
    pub log: AlertLog,
}

impl AlertSink for Sinks {
    async fn send(&self, notes: &[Notification]) -> Result<(), AlertError> {
        for note in notes {
            tracing::warn!(alert = note.alert().name(), kind = note.kind(), "alert");
        }
        // Recorded before delivery: an alert is firing whether or not a
        // receiver could be told.
        self.log.record(notes, SystemTime::now());
        let mut first_error = None;
        for sink in &self.alertmanagers {
            if let Err(err) = sink.send(notes).await {
                first_error.get_or_insert(err);
            }
        }
        for sink in &self.webhooks {
            if let Err(err) = sink.send(notes).await {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// How many resolved alerts the [`AlertLog`] keeps, newest first.
const RESOLVED_KEPT: usize = 50;

/// The newest notification of every alert Steward sent, keyed by (node,
/// check): what is firing now, and the most recently resolved. In memory;
/// receivers (Alertmanager) keep the durable record.
#[derive(Debug, Clone, Default)]
pub struct AlertLog(Arc<Mutex<LogEntries>>);

/// (node, check) → the newest notification and when it was recorded.
type LogEntries = BTreeMap<(String, String), (Notification, SystemTime)>;

impl AlertLog {
    pub fn record(&self, notes: &[Notification], now: SystemTime) {
        let mut log = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for note in notes {
            let labels = &note.alert().labels;
            let key = (
                labels.get("node").cloned().unwrap_or_default(),
                labels.get("check").cloned().unwrap_or_default(),
            );
            log.insert(key, (note.clone(), now));
        }
        let mut resolved: Vec<_> = log
            .iter()
            .filter(|(_, (note, _))| note.is_resolved())
            .map(|(key, (_, at))| (*at, key.clone()))
            .collect();
        if resolved.len() > RESOLVED_KEPT {
            resolved.sort();
            for (_, key) in &resolved[..resolved.len() - RESOLVED_KEPT] {
                log.remove(key);
            }
        }
    }

    /// Firing alerts first, then resolved ones; newest first within each.
    pub fn entries(&self) -> Vec<Notification> {
        let log = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut entries: Vec<_> = log.values().cloned().collect();
        entries.sort_by(|(a, at), (b, bt)| a.is_resolved().cmp(&b.is_resolved()).then(bt.cmp(at)));
        entries.into_iter().map(|(note, _)| note).collect()
    }

    /// The checks whose alert fires now.
    pub fn firing(&self) -> Vec<String> {
        let log = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        log.iter().filter(|(_, (n, _))| !n.is_resolved()).map(|((_, c), _)| c.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECK: &str = "end_to_end_sample_log";

    fn t(secs: u64) -> SystemTime {
        // A fixed, realistic instant (2023-11-14) so formatted times are sane.
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn bad(node: &str, check: &str) -> Observation {
        Observation::unhealthy(node, check, "marker not found after 30s")
    }

    fn good(node: &str, check: &str) -> Observation {
        Observation::healthy(node, check)
    }

    fn kinds(notes: &[Notification]) -> Vec<&'static str> {
        notes.iter().map(Notification::kind).collect()
    }

    /// Observes `obs` at each of `times` (seconds), collecting what is sent.
    fn feed(
        book: &mut AlertBook,
        obs: &Observation,
        times: impl IntoIterator<Item = u64>,
    ) -> Vec<(u64, Notification)> {
        times.into_iter().filter_map(|s| book.observe(obs, t(s)).map(|n| (s, n))).collect()
    }

    #[test]
    fn an_unhealthy_check_fires_once_with_labels_and_annotations() {
        let mut book = AlertBook::new(AlertPolicy::default());
        let note = book
            .observe(&bad("node-1", CHECK).with_severity(Severity::Critical), t(0))
            .expect("fires at once with for_ = 0");
        let Notification::Firing { alert } = &note else { panic!("not Firing: {note:?}") };
        assert_eq!(alert.name(), "StewardEndToEndSampleLog");
        assert_eq!(alert.labels["severity"], "critical");
        assert_eq!(alert.labels["node"], "node-1");
        assert_eq!(alert.labels["check"], CHECK);
        assert_eq!(alert.labels.len(), 4);
        assert_eq!(alert.annotations["evidence"], "marker not found after 30s");
        assert!(alert.annotations["summary"].contains(CHECK));
        assert!(alert.annotations["summary"].contains("node-1"));
        assert_eq!(alert.starts_at, t(0));
        assert_eq!(alert.ends_at, t(0) + AlertPolicy::default().lease);
        assert_eq!(book.firing().collect::<Vec<_>>(), vec![("node-1", CHECK)]);
    }

    #[test]
    fn a_firing_alert_is_not_sent_again_before_the_repeat_interval() {
        let mut book = AlertBook::new(AlertPolicy::default());
        let sent = feed(&mut book, &bad("n", CHECK), (0..60).step_by(5));
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].1.kind(), "firing");
    }

    #[test]
    fn a_firing_alert_is_resent_every_repeat_interval_with_the_same_start() {
        let mut book = AlertBook::new(AlertPolicy::default());
        let sent = feed(&mut book, &bad("n", CHECK), (0..=210).step_by(10));
        let at: Vec<(u64, &str)> = sent.iter().map(|(s, n)| (*s, n.kind())).collect();
        assert_eq!(at, vec![(0, "firing"), (60, "repeat"), (120, "repeat"), (180, "repeat")]);
        for (s, note) in &sent {
            assert_eq!(note.alert().starts_at, t(0));
            assert_eq!(note.alert().ends_at, t(*s) + AlertPolicy::default().lease);
        }
    }

    #[test]
    fn for_absorbs_a_blip_and_fires_from_the_start_of_a_sustained_run() {
        let policy = AlertPolicy { for_: Duration::from_secs(30), ..AlertPolicy::default() };
        let mut book = AlertBook::new(policy);
        assert_eq!(book.observe(&bad("n", CHECK), t(0)), None);
        assert_eq!(book.observe(&bad("n", CHECK), t(10)), None);
        assert_eq!(book.observe(&good("n", CHECK), t(20)), None, "the blip is forgotten");
        assert_eq!(book.observe(&bad("n", CHECK), t(40)), None);
        assert_eq!(book.observe(&bad("n", CHECK), t(60)), None);
        let note = book.observe(&bad("n", CHECK), t(70)).expect("30 s unhealthy");
        assert_eq!(note.kind(), "firing");
        assert_eq!(note.alert().starts_at, t(40));
    }

    #[test]
    fn an_alert_resolves_only_after_resolve_after_of_steady_health() {
        let mut book = AlertBook::new(AlertPolicy::default());
        book.observe(&bad("n", CHECK), t(0)).expect("fires");
        // Healthy from 10 s on: nothing until 10 + 60 s.
        let sent = feed(&mut book, &good("n", CHECK), (10..=70).step_by(5));
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!((sent[0].0, sent[0].1.kind()), (60, "repeat"), "still firing while it settles");
        let (at, resolved) = &sent[1];
        assert_eq!((*at, resolved.kind()), (70, "resolved"));
        assert_eq!(resolved.alert().starts_at, t(0));
        assert_eq!(resolved.alert().ends_at, t(70));
        assert_eq!(resolved.alert().annotations["evidence"], "marker not found after 30s");
        assert_eq!(book.firing().count(), 0);
        // Healthy stays quiet; a new failure is a new alert.
        assert_eq!(book.observe(&good("n", CHECK), t(80)), None);
        let again = book.observe(&bad("n", CHECK), t(90)).expect("fires again");
        assert_eq!((again.kind(), again.alert().starts_at), ("firing", t(90)));
    }

    #[test]
    fn an_unhealthy_observation_restarts_the_hysteresis() {
        let mut book = AlertBook::new(AlertPolicy::default());
        book.observe(&bad("n", CHECK), t(0));
        assert_eq!(book.observe(&good("n", CHECK), t(10)), None);
        assert_eq!(book.observe(&bad("n", CHECK), t(50)), None);
        assert_eq!(book.observe(&good("n", CHECK), t(55)), None);
        // 10 + 60 would have resolved, but health only counts from 55.
        assert_eq!(book.observe(&good("n", CHECK), t(70)).map(|n| n.kind()), Some("repeat"));
        assert_eq!(book.observe(&good("n", CHECK), t(100)), None);
        assert_eq!(book.observe(&good("n", CHECK), t(115)).map(|n| n.kind()), Some("resolved"));
    }

    #[test]
    fn a_check_flapping_every_2s_for_5_minutes_makes_one_alert() {
        let mut book = AlertBook::new(AlertPolicy::default());
        let mut sent = Vec::new();
        for s in (0..300).step_by(2) {
            let obs = if (s / 2) % 2 == 0 { bad("n", CHECK) } else { good("n", CHECK) };
            sent.extend(book.observe(&obs, t(s)));
        }
        assert_eq!(kinds(&sent), vec!["firing", "repeat", "repeat", "repeat", "repeat"]);
        assert!(sent.iter().all(|n| n.alert().starts_at == t(0)));
        // Then it settles: exactly one Resolved, resolve_after later.
        let mut settled = Vec::new();
        for s in (300..=400).step_by(2) {
            settled.extend(book.observe(&good("n", CHECK), t(s)).map(|n| (s, n)));
        }
        let resolved: Vec<u64> =
            settled.iter().filter(|(_, n)| n.is_resolved()).map(|(s, _)| *s).collect();
        assert_eq!(resolved, vec![358], "healthy since 298: {settled:?}");
    }

    #[test]
    fn checks_and_nodes_are_independent() {
        let mut book = AlertBook::new(AlertPolicy::default());
        let a = book.observe(&bad("n1", "collector_health"), t(0)).expect("n1 fires");
        let b = book.observe(&bad("n1", "queue"), t(5)).expect("another check fires");
        let c = book.observe(&bad("n2", "collector_health"), t(10)).expect("another node fires");
        assert_eq!(a.alert().name(), "StewardCollectorHealth");
        assert_eq!(b.alert().name(), "StewardQueue");
        assert_eq!(c.alert().labels["node"], "n2");
        assert_eq!(book.firing().count(), 3);
        // Resolving one leaves the others firing.
        book.observe(&good("n1", "collector_health"), t(20));
        let resolved = book.observe(&good("n1", "collector_health"), t(80)).expect("resolves");
        assert_eq!(resolved.alert().labels["check"], "collector_health");
        assert_eq!(resolved.alert().labels["node"], "n1");
        assert_eq!(
            book.firing().collect::<Vec<_>>(),
            vec![("n1", "queue"), ("n2", "collector_health")]
        );
    }

    #[test]
    fn tick_lets_time_alone_fire_resend_and_resolve() {
        let policy = AlertPolicy { for_: Duration::from_secs(20), ..AlertPolicy::default() };
        let mut book = AlertBook::new(policy);
        assert_eq!(book.observe(&bad("n", "a"), t(0)), None);
        book.observe(&bad("n", "b"), t(0));
        assert!(book.tick(t(10)).is_empty());
        let fired = book.tick(t(20));
        assert_eq!(kinds(&fired), vec!["firing", "firing"]);
        assert_eq!(fired[0].alert().labels["check"], "a", "in (node, check) order");
        assert_eq!(kinds(&book.tick(t(80))), vec!["repeat", "repeat"]);
        book.observe(&good("n", "a"), t(90));
        assert!(book.tick(t(139)).is_empty());
        let notes = book.tick(t(150));
        assert_eq!(kinds(&notes), vec!["resolved", "repeat"]);
        assert_eq!(notes[0].alert().labels["check"], "a");
    }

    #[test]
    fn alert_names_are_camel_case() {
        assert_eq!(alert_name("collector_health"), "StewardCollectorHealth");
        assert_eq!(alert_name("end-to-end"), "StewardEndToEnd");
        assert_eq!(alert_name("queueBackpressure"), "StewardQueueBackpressure");
        assert_eq!(alert_name(""), "Steward");
    }

    #[test]
    fn alertmanager_body_has_rfc3339_times_and_generator_url() {
        let mut book = AlertBook::new(AlertPolicy::default());
        let note = book.observe(&bad("n", CHECK), t(0)).expect("fires");
        let am = Alertmanager::new("http://am:9093/")
            .expect("client")
            .with_generator_url("http://steward/");
        assert_eq!(am.url(), "http://am:9093/api/v2/alerts");
        let body = am.body(&[note]);
        assert_eq!(body[0]["startsAt"], "2023-11-14T22:13:20.000Z");
        assert_eq!(body[0]["endsAt"], "2023-11-14T22:17:20.000Z");
        assert_eq!(body[0]["generatorURL"], "http://steward/");
        assert_eq!(body[0]["labels"]["alertname"], "StewardEndToEndSampleLog");
        assert_eq!(body[0]["annotations"]["evidence"], "marker not found after 30s");
    }

    #[test]
    fn webhook_splits_by_status_and_drops_repeats_unless_asked() {
        let mut book = AlertBook::new(AlertPolicy::default());
        let firing = book.observe(&bad("n", "a"), t(0)).expect("fires");
        book.observe(&bad("n", "b"), t(0));
        book.observe(&good("n", "b"), t(1));
        let notes = book.tick(t(61));
        assert_eq!(kinds(&notes), vec!["repeat", "resolved"]);
        let mut all = vec![firing];
        all.extend(notes);

        let hook = Webhook::new("http://hook", None).expect("client");
        let docs = hook.documents(&all);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["version"], "1");
        assert_eq!(docs[0]["status"], "firing");
        assert_eq!(docs[0]["alerts"].as_array().map(Vec::len), Some(1), "the repeat is left out");
        assert_eq!(docs[0]["alerts"][0]["notification"], "firing");
        assert_eq!(docs[1]["status"], "resolved");
        assert_eq!(docs[1]["alerts"][0]["status"], "resolved");
        assert_eq!(docs[1]["alerts"][0]["labels"]["check"], "b");

        let docs = hook.with_repeats(true).documents(&all);
        assert_eq!(docs[0]["alerts"].as_array().map(Vec::len), Some(2));
        assert_eq!(docs[0]["alerts"][1]["notification"], "repeat");
    }

    #[test]
    fn the_alert_log_keeps_the_newest_notification_of_each_alert() {
        let mut book = AlertBook::new(AlertPolicy::default());
        let log = AlertLog::default();
        let fired = book.observe(&bad("n1", CHECK), t(0)).expect("fires");
        let other = book.observe(&bad("n1", "collector_health"), t(1)).expect("fires");
        log.record(&[fired.clone(), other], t(1));
        let mut firing = log.firing();
        firing.sort();
        assert_eq!(firing, vec!["collector_health".to_owned(), CHECK.to_owned()]);

        let resolved = Notification::Resolved { alert: fired.alert().clone() };
        log.record(&[resolved], t(5));
        assert_eq!(log.firing(), vec!["collector_health".to_owned()]);
        let kinds: Vec<_> = log.entries().iter().map(Notification::kind).collect();
        assert_eq!(kinds, ["firing", "resolved"], "firing first");
    }

    #[test]
    fn the_alert_log_forgets_the_oldest_resolved_alerts() {
        let mut book = AlertBook::new(AlertPolicy::default());
        let log = AlertLog::default();
        for i in 0..(RESOLVED_KEPT as u64 + 5) {
            let fired = book.observe(&bad("n1", &format!("check_{i}")), t(i)).expect("fires");
            log.record(&[Notification::Resolved { alert: fired.alert().clone() }], t(i));
        }
        let entries = log.entries();
        assert_eq!(entries.len(), RESOLVED_KEPT);
        assert_eq!(entries[0].alert().labels["check"], format!("check_{}", RESOLVED_KEPT + 4));
    }
}
