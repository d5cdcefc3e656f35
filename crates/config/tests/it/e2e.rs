//! End to end with real parts: a config made only by `generate_config` runs in
//! the real `otelcol-steward` and delivers logs, metrics and traces to real
//! stores. VictoriaLogs stands in for Loki, which cannot run here: both take
//! OTLP/HTTP logs, and the generator's `otlp_http` logs exporter is the one
//! Loki 3 is fed by.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use steward_config::settings::{
    Endpointed, LogsExporter, LogsSettings, MetricsSettings, OtlpHttp, PipelineSettings, Sampling,
    TracesSettings,
};
use steward_config::validate::static_check;
use steward_config::{Source, generate_config};
use steward_testbed::docker::{self, Container};
use steward_testbed::parts::{
    Collector, Jaeger, Prometheus, VictoriaLogs, http_client, telemetry_sum,
};
use steward_testbed::{Testbed, eventually, free_port};

/// How long data may take to show up in a store.
const ARRIVAL: Duration = Duration::from_secs(60);

/// Lines each container prints.
const LINES: usize = 200;

/// A label value the collector would expand if it were not escaped.
const EXPANSION: &str = "${env:HOME}";

/// A label value spanning lines, with YAML metacharacters on the second.
const MULTILINE: &str = "first line\n- second: [line] # not a comment";

/// Where the collector listens, all on free loopback ports.
struct Ports {
    health: u16,
    telemetry: u16,
    otlp_grpc: u16,
    otlp_http: u16,
}

impl Ports {
    fn new() -> Self {
        Ports {
            health: free_port(),
            telemetry: free_port(),
            otlp_grpc: free_port(),
            otlp_http: free_port(),
        }
    }

    fn otlp_http_url(&self, signal: &str) -> String {
        format!("http://127.0.0.1:{}/v1/{signal}", self.otlp_http)
    }

    fn telemetry_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.telemetry)
    }
}

/// Settings with the collector's storage and canary inside its temp dir `dir`
/// and logs sent to `logs_endpoint`.
fn settings(dir: &Path, ports: &Ports, logs_endpoint: String) -> PipelineSettings {
    PipelineSettings {
        storage_dir: dir.join("storage").display().to_string(),
        fsync: false,
        canary_path: dir.join("canary").join("canary.log").display().to_string(),
        health_check: format!("127.0.0.1:{}", ports.health),
        telemetry: format!("127.0.0.1:{}", ports.telemetry),
        otlp_grpc: format!("127.0.0.1:{}", ports.otlp_grpc),
        otlp_http: format!("127.0.0.1:{}", ports.otlp_http),
        logs: LogsSettings {
            exporter: LogsExporter::OtlpHttp(OtlpHttp {
                logs_endpoint: Some(logs_endpoint),
                ..OtlpHttp::default()
            }),
        },
        ..PipelineSettings::default()
    }
}

/// Starts the real collector on the config that `generate_config` makes of
/// `sources` and the settings `configure` derives from the collector's temp
/// dir. Returns the collector and the settings it runs with.
async fn start_collector(
    tb: &Testbed,
    ports: &Ports,
    sources: &[Source],
    configure: impl FnOnce(&Path) -> PipelineSettings,
) -> (Collector, PipelineSettings) {
    let mut used = None;
    let collector = Collector::start(tb, ports.health, |dir| {
        let settings = configure(dir);
        let rendered = generate_config(sources, &settings).expect("the config builds");
        assert_eq!(static_check(&rendered.yaml), vec![], "static checks of\n{}", rendered.yaml);
        used = Some(settings);
        rendered.yaml
    })
    .await
    .expect("the collector starts on the generated config");
    (collector, used.expect("the config was generated"))
}

/// A logs endpoint nobody listens on, for tests that send no logs.
fn unused_logs_endpoint() -> String {
    format!("http://127.0.0.1:{}/v1/logs", free_port())
}

fn unix_nanos() -> String {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_nanos().to_string()
}

/// A LogsQL filter for records whose `field` is exactly `value`.
fn exactly(field: &str, value: &str) -> String {
    let quote = |s: &str| serde_json::to_string(s).expect("a string serialises");
    format!("{}:={}", quote(field), quote(value))
}

fn field<'a>(record: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    record.get(name).and_then(Value::as_str)
}

/// Waits until VictoriaLogs holds at least `count` records of `service`.
async fn records_of(store: &VictoriaLogs, service: &str, count: usize) -> Vec<Map<String, Value>> {
    eventually(&format!("{count} records of {service} in VictoriaLogs"), ARRIVAL, || async {
        let records =
            store.query(&exactly("service.name", service)).await.map_err(|e| e.to_string())?;
        if records.len() >= count {
            Ok(records)
        } else {
            Err(format!("{} of {count} records", records.len()))
        }
    })
    .await
    .expect("the records arrive")
}

/// The bodies (`_msg`) of `records`, sorted.
fn sorted_bodies(records: &[Map<String, Value>]) -> Vec<&str> {
    let mut bodies: Vec<&str> =
        records.iter().map(|r| field(r, "_msg").unwrap_or_default()).collect();
    bodies.sort_unstable();
    bodies
}

/// A container of the test that prints numbered lines, and the source the
/// registry would describe it as.
struct Printer {
    container: Container,
    service: String,
    lines: Vec<String>,
}

impl Printer {
    async fn run(engine: &bollard::Docker, host: &str, tag: &str) -> Self {
        let name = format!("steward-config-e2e-{tag}-{}-{}", std::process::id(), free_port());
        let prefix = format!("steward-config-e2e {tag} line ");
        let script =
            format!("i=1; while [ $i -le {LINES} ]; do echo \"{prefix}$i\"; i=$((i+1)); done");
        let container =
            Container::run(engine, host, &name, &[("steward.test", "config-e2e")], &script)
                .await
                .expect("the container runs");
        let status = container.wait(engine, ARRIVAL).await.expect("the container exits");
        assert_eq!(status, 0, "container {name} exit status");
        Printer {
            container,
            service: format!("steward-e2e-{tag}"),
            lines: (1..=LINES).map(|n| format!("{prefix}{n}")).collect(),
        }
    }

    fn source(&self) -> Source {
        let labels = BTreeMap::from([
            ("container.id".to_owned(), self.container.id().to_owned()),
            ("container.name".to_owned(), self.container.name().to_owned()),
            ("service.name".to_owned(), self.service.clone()),
            ("steward.expansion".to_owned(), EXPANSION.to_owned()),
            ("steward.multiline".to_owned(), MULTILINE.to_owned()),
        ]);
        Source {
            id: format!("docker:{}", self.container.id()),
            path: self.container.log_path().display().to_string(),
            labels,
            state: Some("active".into()),
        }
    }
}

/// Logs, with Debian's dockerd, `otelcol-steward` and VictoriaLogs (for
/// Loki): two busybox containers print 200 numbered lines each and exit; the
/// collector runs the config generated from their two sources. Every line of
/// each container is stored exactly once with its body exactly as printed (no
/// trailing newline), under its own source's resource attributes only; a label
/// `${env:HOME}` arrives as that text, not as the collector's home directory,
/// and a label spanning lines arrives verbatim. A marker appended to the canary
/// file after start-up arrives as `service.name` = `steward-canary`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_config_delivers_each_containers_lines_once_with_its_own_labels() {
    let tb = Testbed::locate().expect("test bench installed");
    let (engine, host) = docker::connect(&tb).await.expect("the test bench's Docker Engine");
    let store = VictoriaLogs::start(&tb).await.expect("VictoriaLogs starts");
    let printers =
        [Printer::run(&engine, &host, "alpha").await, Printer::run(&engine, &host, "beta").await];
    let sources: Vec<Source> = printers.iter().map(Printer::source).collect();
    let ports = Ports::new();
    let (_collector, settings) = start_collector(&tb, &ports, &sources, |dir| {
        settings(dir, &ports, store.otlp_logs_endpoint())
    })
    .await;

    for (printer, source) in printers.iter().zip(&sources) {
        let service = &printer.service;
        let records = records_of(&store, service, LINES).await;
        let mut expected: Vec<&str> = printer.lines.iter().map(String::as_str).collect();
        expected.sort_unstable();
        assert_eq!(
            sorted_bodies(&records),
            expected,
            "{service}: each printed line once, its body exactly as printed"
        );
        for record in &records {
            for (label, value) in &source.labels {
                assert_eq!(field(record, label), Some(value.as_str()), "{label} of {record:?}");
            }
            let path = Some(source.path.as_str());
            assert_eq!(field(record, "log.file.path"), path, "{record:?}");
        }
    }
    // The store could be short of a late duplicate; the collector's counters
    // cannot: it read and sent each of the lines once.
    let (http, telemetry_url) = (http_client(), ports.telemetry_url());
    let telemetry = |metric| telemetry_sum(&http, &telemetry_url, metric);
    let total = (2 * LINES) as f64;
    let accepted = telemetry("otelcol_receiver_accepted_log_records").await.expect("telemetry");
    assert_eq!(accepted, total, "records the file_log receivers accepted");
    let sent = eventually("every record counted as sent", ARRIVAL, || async {
        match telemetry("otelcol_exporter_sent_log_records").await {
            Ok(sent) if sent >= total => Ok(sent),
            Ok(sent) => Err(format!("{sent} sent")),
            Err(err) => Err(err.to_string()),
        }
    })
    .await
    .expect("telemetry");
    assert_eq!(sent, total, "records the logs exporter sent");

    // The canary: a marker appended once the collector runs arrives as such.
    let canary = PathBuf::from(&settings.canary_path);
    std::fs::create_dir_all(canary.parent().expect("the canary has a directory"))
        .expect("create the canary's directory");
    let marker = format!("steward canary {}", unix_nanos());
    {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&canary)
            .expect("open the canary file");
        writeln!(file, "{marker}").expect("append the marker");
    }
    let found = eventually("the canary marker in VictoriaLogs", ARRIVAL, || async {
        let records = store.query(&exactly("_msg", &marker)).await.map_err(|e| e.to_string())?;
        records.into_iter().next().ok_or_else(|| "not yet".to_owned())
    })
    .await
    .expect("the canary marker arrives");
    assert_eq!(field(&found, "service.name"), Some("steward-canary"), "{found:?}");
    assert_eq!(field(&found, "steward.canary"), Some("true"), "{found:?}");
}

/// Metrics, with `otelcol-steward` and Prometheus (remote-write receiver):
/// with `metrics: {prometheus_remote_write: …}` in the settings, a gauge of 42
/// sent as OTLP/JSON to the collector's OTLP/HTTP receiver is stored in
/// Prometheus under its own name, with `service.name` as `job`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_config_forwards_otlp_metrics_to_prometheus() {
    let tb = Testbed::locate().expect("test bench installed");
    let prometheus = Prometheus::start(&tb).await.expect("Prometheus starts");
    let ports = Ports::new();
    let (_collector, _) = start_collector(&tb, &ports, &[], |dir| PipelineSettings {
        metrics: Some(MetricsSettings::PrometheusRemoteWrite(Endpointed {
            endpoint: prometheus.remote_write_url(),
            ..Endpointed::default()
        })),
        ..settings(dir, &ports, unused_logs_endpoint())
    })
    .await;

    let metrics = json!({"resourceMetrics": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "steward-e2e"}}
        ]},
        "scopeMetrics": [{
            "scope": {"name": "steward-config-e2e"},
            "metrics": [{
                "name": "steward_e2e_gauge",
                "gauge": {"dataPoints": [{"asDouble": 42.0, "timeUnixNano": unix_nanos()}]}
            }]
        }]
    }]});
    let url = ports.otlp_http_url("metrics");
    let response = http_client().post(&url).json(&metrics).send().await.expect("POST metrics");
    assert!(response.status().is_success(), "POST {url}: {}", response.status());

    let series = eventually("steward_e2e_gauge in Prometheus", ARRIVAL, || async {
        let data = prometheus
            .query(r#"{__name__=~"steward_e2e_gauge.*"}"#)
            .await
            .map_err(|err| err.to_string())?;
        match data.get("result").and_then(Value::as_array) {
            Some(result) if !result.is_empty() => Ok(result.clone()),
            _ => Err(format!("no series yet: {data}")),
        }
    })
    .await
    .expect("the gauge arrives");
    assert_eq!(series.len(), 1, "one series: {series:?}");
    let labels = &series[0]["metric"];
    assert_eq!(labels["__name__"], "steward_e2e_gauge", "{series:?}");
    assert_eq!(labels["job"], "steward-e2e", "{series:?}");
    assert_eq!(series[0]["value"][1], "42", "{series:?}");
}

/// Traces, with `otelcol-steward` and Jaeger v2: with `traces: {otlp_grpc: …}`
/// and 100 % probabilistic sampling in the settings, a span sent as OTLP/JSON
/// to the collector's OTLP/HTTP receiver reaches Jaeger, which then lists its
/// service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_config_forwards_otlp_traces_to_jaeger() {
    let tb = Testbed::locate().expect("test bench installed");
    let jaeger = Jaeger::start(&tb).await.expect("Jaeger starts");
    let ports = Ports::new();
    let (_collector, _) = start_collector(&tb, &ports, &[], |dir| PipelineSettings {
        traces: Some(TracesSettings {
            otlp_grpc: Some(Endpointed {
                endpoint: jaeger.otlp_grpc_endpoint(),
                insecure: true,
                ..Endpointed::default()
            }),
            sampling: Sampling::Probabilistic(100.0),
            ..TracesSettings::default()
        }),
        ..settings(dir, &ports, unused_logs_endpoint())
    })
    .await;

    let start = unix_nanos();
    let traces = json!({"resourceSpans": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "steward-e2e-traces"}}
        ]},
        "scopeSpans": [{
            "scope": {"name": "steward-config-e2e"},
            "spans": [{
                "traceId": "5b8efff798038103d269b633813fc60c",
                "spanId": "eee19b7ec3c1b174",
                "name": "steward-e2e-span",
                "kind": 1,
                "startTimeUnixNano": start,
                "endTimeUnixNano": unix_nanos()
            }]
        }]
    }]});
    let url = ports.otlp_http_url("traces");
    let response = http_client().post(&url).json(&traces).send().await.expect("POST traces");
    assert!(response.status().is_success(), "POST {url}: {}", response.status());

    eventually("steward-e2e-traces among Jaeger's services", ARRIVAL, || async {
        let services = jaeger.services().await.map_err(|err| err.to_string())?;
        if services.iter().any(|s| s == "steward-e2e-traces") {
            Ok(())
        } else {
            Err(format!("services so far: {services:?}"))
        }
    })
    .await
    .expect("the span arrives");
}

/// Stanza expressions, with Debian's dockerd, `otelcol-steward` and
/// VictoriaLogs (for Loki): the `file_log` receiver evaluates `EXPR(…)` in
/// resource values, where the generator puts container labels. A container
/// labelled `EXPR(env("HOME"))` must get that text as its attribute, not the
/// collector's home directory (nor, with another variable, its secrets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_that_looks_like_an_expression_arrives_as_text() {
    const EXPR: &str = "EXPR(env(\"HOME\"))";
    let tb = Testbed::locate().expect("test bench installed");
    let (engine, host) = docker::connect(&tb).await.expect("the test bench's Docker Engine");
    let store = VictoriaLogs::start(&tb).await.expect("VictoriaLogs starts");
    let printer = Printer::run(&engine, &host, "expr").await;
    let mut source = printer.source();
    source.labels.insert("steward.expr".into(), EXPR.into());
    let ports = Ports::new();
    let (_collector, _) = start_collector(&tb, &ports, &[source], |dir| {
        settings(dir, &ports, store.otlp_logs_endpoint())
    })
    .await;

    let records = records_of(&store, &printer.service, LINES).await;
    let values: BTreeMap<Option<&str>, usize> =
        records.iter().fold(BTreeMap::new(), |mut values, record| {
            *values.entry(field(record, "steward.expr")).or_default() += 1;
            values
        });
    assert_eq!(
        values,
        BTreeMap::from([(Some(EXPR), records.len())]),
        "values of the label steward.expr across the records"
    );
}

/// Literal paths with glob characters, with Debian's dockerd,
/// `otelcol-steward` and VictoriaLogs (for Loki): a `file:` source names one
/// file, but `file_log` reads `include` as a glob. Two containers' json-file
/// logs are copied to `pod-{a,b}-[1]/0*.log` (the source) and
/// `pod-a-1/0-decoy.log` (which that path, read as a glob, would match). The
/// source's lines, and only they, arrive under its labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_path_with_glob_characters_is_read_as_that_file_only() {
    let tb = Testbed::locate().expect("test bench installed");
    let (engine, host) = docker::connect(&tb).await.expect("the test bench's Docker Engine");
    let store = VictoriaLogs::start(&tb).await.expect("VictoriaLogs starts");
    let wanted = Printer::run(&engine, &host, "glob").await;
    let decoy = Printer::run(&engine, &host, "decoy").await;
    let logs = tempfile::tempdir().expect("temp dir");
    let literal = logs.path().join("pod-{a,b}-[1]").join("0*.log");
    let lookalike = logs.path().join("pod-a-1").join("0-decoy.log");
    for (from, to) in [(&wanted, &literal), (&decoy, &lookalike)] {
        std::fs::create_dir_all(to.parent().expect("a directory")).expect("create directory");
        std::fs::copy(from.container.log_path(), to).expect("copy the container's log");
    }
    let source = Source {
        id: format!("file:{}", literal.display()),
        path: literal.display().to_string(),
        labels: BTreeMap::from([("service.name".to_owned(), wanted.service.clone())]),
        state: None,
    };
    let ports = Ports::new();
    let (_collector, _) = start_collector(&tb, &ports, &[source], |dir| {
        settings(dir, &ports, store.otlp_logs_endpoint())
    })
    .await;

    let records = records_of(&store, &wanted.service, LINES).await;
    let bodies = sorted_bodies(&records);
    let from_decoy = bodies.iter().filter(|body| decoy.lines.iter().any(|l| l == *body)).count();
    assert_eq!(
        from_decoy,
        0,
        "{from_decoy} of {} records under {} are lines of {lookalike:?}, which the source's \
         path {literal:?} matches when read as a glob",
        bodies.len(),
        wanted.service
    );
    let mut expected: Vec<&str> = wanted.lines.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(bodies, expected, "records under {}: the lines of {literal:?}", wanted.service);
}
