//! The `collector:` part of `steward.yaml`: what the generated config points
//! at and how it behaves. Everything here is the operator's own text (trusted);
//! only sources are untrusted.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineSettings {
    /// The collector binary used to validate configs: the distribution the
    /// node runs (a bare name is looked up on `PATH`).
    pub binary: String,
    /// Where the collector keeps offsets and its persistent queue (`file_storage`).
    pub storage_dir: String,
    /// Write offsets and queue with fsync: slower, but nothing is lost on a
    /// power cut.
    pub fsync: bool,
    /// The canary log file Steward's health monitor appends marker lines to;
    /// every generated config collects it.
    pub canary_path: String,
    /// `host:port` of the `health_check` extension.
    pub health_check: String,
    /// `host:port` of the collector's own Prometheus metrics.
    pub telemetry: String,
    /// How often `file_log` looks for new lines.
    pub poll_interval: String,
    /// The `otlp` receiver, used by the metrics and traces pipelines.
    pub otlp_grpc: String,
    pub otlp_http: String,
    pub memory_limiter: MemoryLimiter,
    pub batch: Batch,
    pub logs: LogsSettings,
    /// Enabled by naming an exporter: `metrics: {prometheus_remote_write: URL}`.
    pub metrics: Option<MetricsSettings>,
    /// Enabled by naming an exporter: `traces: {otlp_grpc: HOST:PORT}`.
    pub traces: Option<TracesSettings>,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            binary: "otelcol-steward".into(),
            storage_dir: "/var/lib/steward/collector".into(),
            fsync: true,
            canary_path: "/var/lib/steward/canary/canary.log".into(),
            health_check: "127.0.0.1:13133".into(),
            telemetry: "127.0.0.1:8888".into(),
            poll_interval: "200ms".into(),
            otlp_grpc: "127.0.0.1:4317".into(),
            otlp_http: "127.0.0.1:4318".into(),
            memory_limiter: MemoryLimiter::default(),
            batch: Batch::default(),
            logs: LogsSettings::default(),
            metrics: None,
            traces: None,
        }
    }
}

impl PipelineSettings {
    /// What serde cannot check; the error names the field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if let Some(traces) = &self.traces
            && traces.otlp_grpc.is_none()
            && traces.otlp_http.is_none()
        {
            return Err((
                "collector.traces".into(),
                "name an exporter: otlp_grpc or otlp_http".into(),
            ));
        }
        if let LogsExporter::OtlpHttp(otlp) = &self.logs.exporter
            && otlp.endpoint.is_none()
            && otlp.logs_endpoint.is_none()
        {
            return Err((
                "collector.logs.exporter.otlp_http".into(),
                "needs endpoint or logs_endpoint".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryLimiter {
    pub check_interval: String,
    pub limit_percentage: u32,
    pub spike_limit_percentage: u32,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        MemoryLimiter {
            check_interval: "1s".into(),
            limit_percentage: 80,
            spike_limit_percentage: 25,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Batch {
    pub timeout: String,
    pub send_batch_size: u32,
    pub send_batch_max_size: u32,
}

impl Default for Batch {
    fn default() -> Self {
        Batch { timeout: "200ms".into(), send_batch_size: 8192, send_batch_max_size: 16384 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsSettings {
    pub exporter: LogsExporter,
}

impl Default for LogsSettings {
    fn default() -> Self {
        LogsSettings { exporter: LogsExporter::Loki(Loki::default()) }
    }
}

/// Where logs go. Loki 3 takes OTLP at `<endpoint>/otlp`; any other OTLP/HTTP
/// log store (VictoriaLogs) is named with `otlp_http`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LogsExporter {
    Loki(Loki),
    OtlpHttp(OtlpHttp),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Loki {
    /// Loki's base URL, e.g. `http://loki:3100`.
    pub endpoint: String,
    /// Sent as `X-Scope-OrgID` for multi-tenant Loki.
    pub tenant: Option<String>,
    #[serde(flatten)]
    pub common: ExporterCommon,
}

impl Default for Loki {
    fn default() -> Self {
        Loki {
            endpoint: "http://127.0.0.1:3100".into(),
            tenant: None,
            common: ExporterCommon::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct OtlpHttp {
    /// Base URL; the exporter appends `/v1/logs` (or `/v1/traces`).
    pub endpoint: Option<String>,
    /// A full URL for logs, when the store's path is not `/v1/logs`.
    pub logs_endpoint: Option<String>,
    #[serde(flatten)]
    pub common: ExporterCommon,
}

/// What every exporter takes. Credentials are never written into the config:
/// `headers_from_env: {Authorization: LOKI_AUTH}` becomes
/// `Authorization: ${env:LOKI_AUTH}`, expanded by the collector at load time.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct ExporterCommon {
    pub headers_from_env: BTreeMap<String, String>,
    pub timeout: String,
    /// Capacity of the persistent sending queue, in batches.
    pub queue_size: u32,
}

impl Default for ExporterCommon {
    fn default() -> Self {
        ExporterCommon {
            headers_from_env: BTreeMap::new(),
            timeout: "10s".into(),
            queue_size: 5000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum MetricsSettings {
    /// Prometheus' remote-write URL, e.g. `http://prometheus:9090/api/v1/write`.
    PrometheusRemoteWrite(#[serde(deserialize_with = "endpoint_or_map")] Endpointed),
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracesSettings {
    /// OTLP/gRPC `host:port` of Tempo or Jaeger.
    #[serde(deserialize_with = "opt_endpoint_or_map")]
    pub otlp_grpc: Option<Endpointed>,
    /// OTLP/HTTP base URL of Tempo or Jaeger.
    #[serde(deserialize_with = "opt_endpoint_or_map")]
    pub otlp_http: Option<Endpointed>,
    pub sampling: Sampling,
}

/// An exporter given as a bare endpoint, or as a map with more settings.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Endpointed {
    pub endpoint: String,
    /// For gRPC: no TLS (inside a trusted network, or in tests).
    pub insecure: bool,
    pub headers_from_env: BTreeMap<String, String>,
    pub timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EndpointOrMap {
    Endpoint(String),
    Map(Endpointed),
}

fn endpoint_or_map<'de, D: Deserializer<'de>>(d: D) -> Result<Endpointed, D::Error> {
    Ok(match EndpointOrMap::deserialize(d)? {
        EndpointOrMap::Endpoint(endpoint) => Endpointed { endpoint, ..Endpointed::default() },
        EndpointOrMap::Map(map) => map,
    })
}

fn opt_endpoint_or_map<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Endpointed>, D::Error> {
    endpoint_or_map(d).map(Some)
}

/// How traces are sampled before they are exported.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Sampling {
    /// Keep this percentage of traces, decided per trace id.
    Probabilistic(f64),
    /// Decide per whole trace: keep errors, slow traces, and a percentage of the rest.
    Tail { decision_wait: String, latency_threshold_ms: u64, percentage: f64 },
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling::Probabilistic(100.0)
    }
}
