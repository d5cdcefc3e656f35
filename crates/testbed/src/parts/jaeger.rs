//! Jaeger v2: the traces store. It is itself a collector distribution, so it is
//! configured like one: an OTLP receiver feeds an in-memory trace store, and
//! the `jaeger_query` extension serves the HTTP API that tests read back from.

use std::process::Command;

use serde_json::Value;

use super::{READY_TIMEOUT, fetch_json, http_client, probe_http_ok};
use crate::{Error, Process, Result, Testbed, free_port, io_err};

#[derive(Debug)]
pub struct Jaeger {
    process: Process,
    otlp_grpc_port: u16,
    otlp_http_port: u16,
    query_port: u16,
    http: reqwest::Client,
}

/// The loopback ports one Jaeger listens on.
struct Ports {
    otlp_grpc: u16,
    otlp_http: u16,
    query_http: u16,
    query_grpc: u16,
    health: u16,
}

impl Ports {
    /// Jaeger's config. Every listener is given explicitly: each default
    /// (4317, 4318, 16686, 16685, 13133, 8888) is a fixed port that would make
    /// two Jaegers, or Jaeger and a collector, collide. Internal metrics are
    /// off for the same reason (their endpoint is 8888).
    fn config(&self) -> String {
        let Ports { otlp_grpc, otlp_http, query_http, query_grpc, health } = self;
        format!(
            "\
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp_grpc}
      http:
        endpoint: 127.0.0.1:{otlp_http}
processors:
  batch: {{}}
exporters:
  jaeger_storage_exporter:
    trace_storage: store
extensions:
  jaeger_storage:
    backends:
      store:
        memory:
          max_traces: 100000
  jaeger_query:
    # On by default: Jaeger would trace itself to an OTLP exporter on the
    # fixed localhost:4317, retrying (and slowing shutdown) when none is there.
    enable_tracing: false
    storage:
      traces: store
    http:
      endpoint: 127.0.0.1:{query_http}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health}
"
        )
    }
}

impl Jaeger {
    pub async fn start(tb: &Testbed) -> Result<Self> {
        let bin = tb.bin("jaeger")?;
        let dir = Process::temp_dir("jaeger")?;
        let ports = Ports {
            otlp_grpc: free_port(),
            otlp_http: free_port(),
            query_http: free_port(),
            query_grpc: free_port(),
            health: free_port(),
        };
        let config_path = dir.path().join("jaeger.yaml");
        std::fs::write(&config_path, ports.config()).map_err(io_err(&config_path))?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config").arg(&config_path);
        let mut process = Process::spawn("jaeger", cmd, dir)?;
        let http = http_client();
        // The health status turns OK only once every pipeline and extension
        // has started, the query API included.
        let health = format!("http://127.0.0.1:{}/status", ports.health);
        process.wait_ready(READY_TIMEOUT, || probe_http_ok(&http, &health)).await?;
        Ok(Jaeger {
            process,
            otlp_grpc_port: ports.otlp_grpc,
            otlp_http_port: ports.otlp_http,
            query_port: ports.query_http,
            http,
        })
    }

    /// Where an `otlp` (gRPC) exporter sends traces: `host:port`, no scheme.
    pub fn otlp_grpc_endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.otlp_grpc_port)
    }

    /// The OTLP/HTTP base URL; traces go to `<this>/v1/traces`.
    pub fn otlp_http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.otlp_http_port)
    }

    /// The query service: the HTTP API under `/api`, and the UI.
    pub fn query_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.query_port)
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    /// The names of the services Jaeger has stored spans for.
    pub async fn services(&self) -> Result<Vec<String>> {
        let url = format!("{}/api/services", self.query_url());
        let body: Value = fetch_json(self.http.get(&url), &url).await?;
        let unexpected = || Error::Unexpected {
            what: format!("Jaeger answer from {url}"),
            detail: body.to_string(),
        };
        // An empty store answers `"data": null` rather than `[]`.
        match body.get("data") {
            Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(names)) => names
                .iter()
                .map(|name| name.as_str().map(str::to_owned).ok_or_else(unexpected))
                .collect(),
            _ => Err(unexpected()),
        }
    }
}
