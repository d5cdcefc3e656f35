//! A typed model of the collector config, just as much of it as Steward
//! generates. Serialising it is the only way a config comes into being: no
//! text templates, so no string from a container can break the YAML.
//!
//! Maps are `BTreeMap`s and field order is declaration order, so the same
//! model always serialises to the same bytes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};

/// A component's id, `type` or `type/name` (e.g. `file_log/src_1a2b…`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentId(String);

impl ComponentId {
    pub fn new(kind: &str, name: Option<&str>) -> Self {
        match name {
            Some(name) => ComponentId(format!("{kind}/{name}")),
            None => ComponentId(kind.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ComponentId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A string that came from a container (a label value, a path). The collector
/// expands `${…}` in every value it loads, so `$` is written `$$`: a label
/// `${env:AWS_SECRET_ACCESS_KEY}` stays that text and never becomes the secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Untrusted(pub String);

impl Untrusted {
    pub fn escaped(&self) -> String {
        self.0.replace('$', "$$")
    }
}

impl Serialize for Untrusted {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.escaped())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectorConfig {
    pub extensions: BTreeMap<ComponentId, Extension>,
    pub receivers: BTreeMap<ComponentId, Receiver>,
    pub processors: BTreeMap<ComponentId, Processor>,
    pub exporters: BTreeMap<ComponentId, Exporter>,
    pub service: Service,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Extension {
    HealthCheck { endpoint: String },
    FileStorage(FileStorage),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileStorage {
    pub directory: String,
    pub create_directory: bool,
    pub fsync: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Receiver {
    FileLog(FileLogReceiver),
    Otlp(OtlpReceiver),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileLogReceiver {
    pub include: Vec<Untrusted>,
    /// Always `beginning`: a file never seen before is read whole, and the
    /// offsets in `storage` keep a known file from being read twice.
    pub start_at: &'static str,
    pub include_file_path: bool,
    pub storage: ComponentId,
    pub poll_interval: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub resource: BTreeMap<String, Untrusted>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operators: Vec<Operator>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Operator {
    /// Parses docker json-file, CRI-O and containerd lines (auto-detected),
    /// recombining partial lines.
    Container { add_metadata_from_filepath: bool },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OtlpReceiver {
    pub protocols: OtlpProtocols,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OtlpProtocols {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<Endpoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Endpoint {
    pub endpoint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Processor {
    MemoryLimiter { check_interval: String, limit_percentage: u32, spike_limit_percentage: u32 },
    Batch { timeout: String, send_batch_size: u32, send_batch_max_size: u32 },
    Transform { error_mode: &'static str, log_statements: Vec<Statements> },
    ProbabilisticSampler { sampling_percentage: f64 },
    TailSampling { decision_wait: String, policies: Vec<TailPolicy> },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statements {
    pub context: &'static str,
    pub statements: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TailPolicy {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<StatusCodes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilistic: Option<Probabilistic>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusCodes {
    pub status_codes: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    pub threshold_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probabilistic {
    pub sampling_percentage: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Exporter {
    OtlpHttp(OtlpHttpExporter),
    OtlpGrpc(OtlpGrpcExporter),
    PrometheusRemoteWrite(RemoteWriteExporter),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OtlpHttpExporter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traces_endpoint: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    pub timeout: String,
    pub sending_queue: SendingQueue,
    pub retry_on_failure: Retry,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OtlpGrpcExporter {
    pub endpoint: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    pub tls: Tls,
    pub timeout: String,
    pub sending_queue: SendingQueue,
    pub retry_on_failure: Retry,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteWriteExporter {
    pub endpoint: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    pub timeout: String,
    pub retry_on_failure: Retry,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tls {
    pub insecure: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendingQueue {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<ComponentId>,
    pub queue_size: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retry {
    pub enabled: bool,
    pub initial_interval: String,
    pub max_interval: String,
    /// `0`: never give up, so nothing queued is dropped for being old.
    pub max_elapsed_time: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    pub extensions: Vec<ComponentId>,
    pub pipelines: BTreeMap<String, Pipeline>,
    pub telemetry: Telemetry,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pipeline {
    pub receivers: Vec<ComponentId>,
    pub processors: Vec<ComponentId>,
    pub exporters: Vec<ComponentId>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Telemetry {
    pub logs: TelemetryLogs,
    pub metrics: TelemetryMetrics,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TelemetryLogs {
    pub level: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TelemetryMetrics {
    pub readers: Vec<MetricReader>,
}

/// `- pull: {exporter: {prometheus: {host, port}}}`: the collector's own
/// metrics on a port Steward chooses, so health checks know where to look.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricReader {
    pub pull: PullReader,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PullReader {
    pub exporter: PullExporter,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PullExporter {
    pub prometheus: PrometheusEndpoint,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrometheusEndpoint {
    pub host: String,
    pub port: u16,
}
