//! The log store's query API behind one trait: is the store ready, and does it
//! hold a given line? That is all the health checks need of it.
//!
//! - [`VictoriaLogs`]: `GET /health`, and LogsQL at `/select/logsql/query`.
//! - [`Loki`]: `GET /ready`, and LogQL at `/loki/api/v1/query_range`.
//!
//! Every request has a timeout (5 s, 2 s to connect, unless set otherwise);
//! an answer that is not the store's documented format is an error that says
//! so, never a panic.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;

/// The timeout of a whole request, by default.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The timeout of connecting, by default.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The stream the canary's lines are stored in: the generated config gives
/// the canary file `service.name: steward-canary`, which Loki indexes as the
/// label `service_name`.
pub const CANARY_SELECTOR: &str = r#"{service_name="steward-canary"}"#;

/// Why a question to the log store got no answer. Each names the URL.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// No HTTP answer: refused, timed out, reset.
    #[error("{url}: {cause}")]
    Unreachable { url: String, cause: String },
    /// An HTTP answer that says no.
    #[error("{url}: HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
    /// An answer that is not what the store's API documents.
    #[error("{url}: unexpected answer: {detail}")]
    Garbage { url: String, detail: String },
    /// A setting that cannot work (an unset credential variable).
    #[error("{url}: {detail}")]
    Config { url: String, detail: String },
}

/// A log store, asked two things.
pub trait LogBackend: Send + Sync {
    /// `Ok` when the store says it is ready to take and serve logs.
    fn ready(&self) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Whether the store holds a line containing `needle` (an exact marker
    /// string) at or after `since_ms` (Unix milliseconds).
    fn find_line(
        &self,
        needle: &str,
        since_ms: i64,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;
}

fn client(request: Duration, connect: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(request)
        .connect_timeout(connect)
        .build()
        .expect("a reqwest client with timeouts builds")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// At most this much of an error body goes into an error message.
const BODY_EXCERPT: usize = 256;

fn excerpt(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(BODY_EXCERPT) {
        Some((cut, _)) => format!("{}…", &body[..cut]),
        None => body.to_owned(),
    }
}

/// Sends `request`, returning the body of a 2xx answer.
async fn fetch(request: reqwest::RequestBuilder, url: &str) -> Result<String, BackendError> {
    let unreachable = |e: reqwest::Error| BackendError::Unreachable {
        url: url.to_owned(),
        cause: if e.is_timeout() { format!("timed out ({e})") } else { error_chain(&e) },
    };
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    let body = response.text().await.map_err(unreachable)?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(BackendError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            body: excerpt(&body),
        })
    }
}

/// An error and its causes, as reqwest's top-level message alone rarely says
/// what happened ("error sending request").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// VictoriaLogs: `GET /health`, and LogsQL queries.
#[derive(Debug, Clone)]
pub struct VictoriaLogs {
    pub base_url: String,
    http: reqwest::Client,
}

impl VictoriaLogs {
    /// A store at `base_url` (`http://host:9428`), with the default timeouts.
    pub fn new(base_url: impl Into<String>) -> Self {
        VictoriaLogs {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            http: client(REQUEST_TIMEOUT, CONNECT_TIMEOUT),
        }
    }

    /// The same store with other timeouts.
    pub fn with_timeouts(mut self, request: Duration, connect: Duration) -> Self {
        self.http = client(request, connect);
        self
    }
}

/// A LogsQL phrase filter for exactly `needle`: a quoted string, escaped as
/// JSON strings are (which LogsQL's quoted strings accept).
pub fn logsql_phrase(needle: &str) -> String {
    serde_json::to_string(needle).expect("a string serialises")
}

/// Whether a VictoriaLogs JSON-lines answer holds a record whose `_msg`
/// contains `needle`. A line that is not a JSON object is garbage.
fn victoria_answer_has(body: &str, needle: &str) -> Result<bool, String> {
    let mut found = false;
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(record)) => {
                found |=
                    record.get("_msg").and_then(Value::as_str).is_some_and(|m| m.contains(needle));
            }
            _ => return Err(format!("not a JSON object line: {}", excerpt(line))),
        }
    }
    Ok(found)
}

impl LogBackend for VictoriaLogs {
    async fn ready(&self) -> Result<(), BackendError> {
        let url = format!("{}/health", self.base_url);
        fetch(self.http.get(&url), &url).await.map(drop)
    }

    async fn find_line(&self, needle: &str, since_ms: i64) -> Result<bool, BackendError> {
        let url = format!("{}/select/logsql/query", self.base_url);
        let start = since_ms.div_euclid(1000).to_string();
        let query = logsql_phrase(needle);
        let request = self.http.get(&url).query(&[
            ("query", query.as_str()),
            ("start", &start),
            ("limit", "1"),
        ]);
        let body = fetch(request, &url).await?;
        victoria_answer_has(&body, needle)
            .map_err(|detail| BackendError::Garbage { url: url.clone(), detail })
    }
}

/// Grafana Loki: `GET /ready`, and LogQL `query_range` over the canary's
/// stream.
#[derive(Debug, Clone)]
pub struct Loki {
    pub base_url: String,
    /// Sent as `X-Scope-OrgID` (multi-tenant Loki).
    pub tenant: Option<String>,
    /// The name of an environment variable holding a bearer token, read at
    /// each request (so a rotated token is picked up, and it is never stored).
    pub bearer_env: Option<String>,
    /// The LogQL stream selector searched: [`CANARY_SELECTOR`] by default.
    pub selector: String,
    http: reqwest::Client,
}

impl Loki {
    /// A Loki at `base_url` (`http://loki:3100`), with the default timeouts.
    pub fn new(base_url: impl Into<String>) -> Self {
        Loki {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            tenant: None,
            bearer_env: None,
            selector: CANARY_SELECTOR.to_owned(),
            http: client(REQUEST_TIMEOUT, CONNECT_TIMEOUT),
        }
    }

    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    pub fn with_bearer_env(mut self, variable: impl Into<String>) -> Self {
        self.bearer_env = Some(variable.into());
        self
    }

    /// The same Loki with other timeouts.
    pub fn with_timeouts(mut self, request: Duration, connect: Duration) -> Self {
        self.http = client(request, connect);
        self
    }

    fn get(&self, url: &str) -> Result<reqwest::RequestBuilder, BackendError> {
        let mut request = self.http.get(url);
        if let Some(tenant) = &self.tenant {
            request = request.header("X-Scope-OrgID", tenant);
        }
        if let Some(variable) = &self.bearer_env {
            let token = std::env::var(variable).map_err(|_| BackendError::Config {
                url: url.to_owned(),
                detail: format!("the bearer token variable {variable} is not set"),
            })?;
            request = request.bearer_auth(token);
        }
        Ok(request)
    }
}

/// A LogQL string literal of `text`: double-quoted, with `\` and `"` escaped
/// (and control characters, which a marker should not hold, escaped too).
pub fn logql_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Loki's documented `query_range` answer, as far as it is read here.
#[derive(Deserialize)]
struct LokiAnswer {
    status: String,
    data: LokiData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LokiData {
    result_type: String,
    result: Vec<LokiStream>,
}

#[derive(Deserialize)]
struct LokiStream {
    /// `[["<unix nanos>", "<line>"], ...]`; Loki 3 may add a third element
    /// (structured metadata), which is ignored.
    values: Vec<Vec<Value>>,
}

/// Whether a Loki `query_range` answer (`resultType: streams`) holds a line
/// containing `needle`.
fn loki_answer_has(body: &str, needle: &str) -> Result<bool, String> {
    let answer: LokiAnswer = serde_json::from_str(body)
        .map_err(|e| format!("not Loki's query_range JSON ({e}): {}", excerpt(body)))?;
    if answer.status != "success" {
        return Err(format!("status {:?}: {}", answer.status, excerpt(body)));
    }
    if answer.data.result_type != "streams" {
        return Err(format!("resultType {:?}, not \"streams\"", answer.data.result_type));
    }
    let mut found = false;
    for value in answer.data.result.iter().flat_map(|s| &s.values) {
        match value.get(1).and_then(Value::as_str) {
            Some(line) => found |= line.contains(needle),
            None => return Err(format!("a value that is not [\"<ns>\", \"<line>\"]: {value:?}")),
        }
    }
    Ok(found)
}

impl LogBackend for Loki {
    async fn ready(&self) -> Result<(), BackendError> {
        let url = format!("{}/ready", self.base_url);
        let body = fetch(self.get(&url)?, &url).await?;
        if body.trim() == "ready" {
            Ok(())
        } else {
            Err(BackendError::Garbage {
                url,
                detail: format!("HTTP 200 without \"ready\": {}", excerpt(&body)),
            })
        }
    }

    async fn find_line(&self, needle: &str, since_ms: i64) -> Result<bool, BackendError> {
        let url = format!("{}/loki/api/v1/query_range", self.base_url);
        let query = format!("{} |= {}", self.selector, logql_string(needle));
        let nanos = |ms: i64| i128::from(ms).saturating_mul(1_000_000).to_string();
        // A second of slack for a clock that runs ahead of the store's.
        let (start, end) = (nanos(since_ms), nanos(now_ms().max(since_ms) + 1000));
        let request = self.get(&url)?.query(&[
            ("query", query.as_str()),
            ("start", &start),
            ("end", &end),
            ("limit", "1"),
            ("direction", "backward"),
        ]);
        let body = fetch(request, &url).await?;
        loki_answer_has(&body, needle).map_err(|detail| BackendError::Garbage { url, detail })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logql_strings_escape_quotes_and_backslashes() {
        assert_eq!(logql_string("steward-verify e2e 1"), r#""steward-verify e2e 1""#);
        assert_eq!(logql_string(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(logql_string("x\ny"), r#""x\ny""#);
    }

    #[test]
    fn logsql_phrases_are_quoted_json_strings() {
        assert_eq!(logsql_phrase(r#"m "q" \"#), r#""m \"q\" \\""#);
    }

    #[test]
    fn loki_answers_are_read_or_refused() {
        let with = r#"{"status":"success","data":{"resultType":"streams","result":[
            {"stream":{"service_name":"steward-canary"},"values":[["1700000000000000000","steward-verify x 1"]]}],
            "stats":{}}}"#;
        assert_eq!(loki_answer_has(with, "steward-verify x 1"), Ok(true));
        assert_eq!(loki_answer_has(with, "steward-verify x 2"), Ok(false));
        let empty = r#"{"status":"success","data":{"resultType":"streams","result":[]}}"#;
        assert_eq!(loki_answer_has(empty, "m"), Ok(false));
        assert!(loki_answer_has("<html>", "m").unwrap_err().contains("not Loki"));
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(loki_answer_has(matrix, "m").unwrap_err().contains("matrix"));
        let bad = r#"{"status":"success","data":{"resultType":"streams","result":[{"stream":{},"values":[[1]]}]}}"#;
        assert!(loki_answer_has(bad, "m").is_err());
    }

    #[test]
    fn victoria_answers_are_json_lines() {
        let body = "{\"_msg\":\"steward-verify x 1\",\"_time\":\"2026-01-01T00:00:00Z\"}\n";
        assert_eq!(victoria_answer_has(body, "steward-verify x 1"), Ok(true));
        assert_eq!(victoria_answer_has("", "m"), Ok(false));
        assert!(victoria_answer_has("garbage\n", "m").is_err());
    }
}
