//! Generated configs: snapshots of representative registries, determinism,
//! and acceptance by the real `otelcol-steward validate`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use steward_config::settings::{LogsExporter, OtlpHttp, PipelineSettings};
use steward_config::validate::{otelcol_validate, static_check};
use steward_config::{Source, generate_config};

fn source(id: &str, path: &str, labels: &[(&str, &str)]) -> Source {
    Source {
        id: id.into(),
        path: path.into(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        state: None,
    }
}

/// Settings with every path fixed, so snapshots do not depend on the machine.
fn settings() -> PipelineSettings {
    PipelineSettings {
        storage_dir: "/var/lib/steward/collector".into(),
        canary_path: "/var/lib/steward/canary/canary.log".into(),
        ..PipelineSettings::default()
    }
}

fn docker_pair() -> Vec<Source> {
    vec![
        source(
            "docker:b2c3",
            "/var/lib/docker/containers/b2c3/b2c3-json.log",
            &[("container.id", "b2c3"), ("container.name", "api"), ("service.name", "api")],
        ),
        source(
            "docker:a1b2",
            "/var/lib/docker/containers/a1b2/a1b2-json.log",
            &[("container.id", "a1b2"), ("container.name", "web"), ("service.name", "web")],
        ),
    ]
}

fn testbed_collector() -> PathBuf {
    steward_testbed::Testbed::locate()
        .and_then(|tb| tb.bin("otelcol-steward"))
        .expect("the test bench's collector is installed")
}

/// Validates `yaml` with the real collector binary, from a temp file.
fn real_validate(rendered: &steward_config::Rendered) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("collector.yaml");
    std::fs::write(&file, &rendered.yaml).expect("write config");
    otelcol_validate(&testbed_collector(), &file, &rendered.receivers)
        .map_err(|e| format!("{e:#?}"))
}

/// Two Docker sources: a receiver each, stable ids, labels as resource,
/// the canary, memory_limiter first, batch last, Loki over OTLP with a
/// persistent queue. The real collector accepts it.
#[test]
fn a_docker_registry_gives_the_expected_logs_pipeline() {
    let rendered = generate_config(&docker_pair(), &settings()).expect("builds");
    insta::assert_snapshot!("docker_pair", rendered.yaml);
    assert_eq!(static_check(&rendered.yaml), vec![]);
    real_validate(&rendered).expect("otelcol-steward accepts it");
}

/// Order of sources does not matter, and a rebuild gives the same bytes.
#[test]
fn the_same_inputs_give_the_same_bytes_and_hash() {
    let mut reversed = docker_pair();
    reversed.reverse();
    let a = generate_config(&docker_pair(), &settings()).unwrap();
    let b = generate_config(&reversed, &settings()).unwrap();
    assert_eq!(a.yaml, b.yaml);
    assert_eq!(a.hash, b.hash);
    assert!(a.version().starts_with("cfg-") && a.version().len() == 16);
}

/// Hostile label values are escaped, never expanded, and the config stays valid.
#[test]
fn hostile_values_are_escaped_and_still_valid() {
    let sources = vec![source(
        "docker:evil",
        "/var/lib/docker/containers/evil/$HOME-json.log",
        &[
            ("container.name", "${env:AWS_SECRET_ACCESS_KEY}"),
            ("service.name", "x\n- y: [on, yes]\n'\"#&*!|>%@`: {}"),
        ],
    )];
    let rendered = generate_config(&sources, &settings()).unwrap();
    assert!(rendered.yaml.contains("$${env:AWS_SECRET_ACCESS_KEY}"), "{}", rendered.yaml);
    assert!(rendered.yaml.contains("$$HOME-json.log"), "{}", rendered.yaml);
    assert_eq!(static_check(&rendered.yaml), vec![]);
    real_validate(&rendered).expect("otelcol-steward accepts it");
}

/// Metrics and traces each take two lines of settings.
#[test]
fn metrics_and_traces_are_two_lines_each() {
    let yaml = "metrics:\n  prometheus_remote_write: http://127.0.0.1:9090/api/v1/write\n\
                traces:\n  otlp_grpc: {endpoint: 127.0.0.1:14317, insecure: true}\n";
    let mut settings: PipelineSettings = serde_saphyr::from_str(yaml).expect("settings parse");
    settings.storage_dir = "/var/lib/steward/collector".into();
    let rendered = generate_config(&docker_pair(), &settings).unwrap();
    insta::assert_snapshot!("logs_metrics_traces", rendered.yaml);
    assert_eq!(static_check(&rendered.yaml), vec![]);
    real_validate(&rendered).expect("otelcol-steward accepts it");
}

/// Any OTLP/HTTP log store can be named instead of Loki.
#[test]
fn a_generic_otlp_log_store_can_be_named() {
    let settings = PipelineSettings {
        logs: steward_config::settings::LogsSettings {
            exporter: LogsExporter::OtlpHttp(OtlpHttp {
                logs_endpoint: Some("http://127.0.0.1:9428/insert/opentelemetry/v1/logs".into()),
                ..OtlpHttp::default()
            }),
        },
        ..settings()
    };
    let rendered = generate_config(&docker_pair(), &settings).unwrap();
    assert!(
        rendered.yaml.contains("logs_endpoint: http://127.0.0.1:9428/insert/opentelemetry/v1/logs")
    );
    real_validate(&rendered).expect("otelcol-steward accepts it");
}

/// A broken config is refused by the real binary, with its message mapped
/// back to the source whose receiver it names.
#[test]
fn the_collectors_refusal_names_the_source() {
    let mut rendered = generate_config(&docker_pair(), &settings()).unwrap();
    let (receiver, source_id) =
        rendered.receivers.iter().next().map(|(r, s)| (r.clone(), s.clone())).unwrap();
    rendered.yaml = rendered.yaml.replacen("start_at: beginning", "start_at: sideways", 1);
    let err = real_validate(&rendered).expect_err("an invalid start_at is refused");
    assert!(err.contains(receiver.as_str()) && err.contains(&source_id), "{err}");
}

/// Bad sources are refused with the field named.
#[test]
fn bad_sources_are_refused_naming_the_field() {
    let bad_key = vec![source("docker:x", "/x.log", &[("bad key", "v")])];
    let err = generate_config(&bad_key, &settings()).unwrap_err().to_string();
    assert!(err.contains("docker:x") && err.contains("labels.bad key"), "{err}");
    let dup = vec![source("docker:x", "/x.log", &[]), source("docker:x", "/y.log", &[])];
    assert!(generate_config(&dup, &settings()).unwrap_err().to_string().contains("share the id"));
    let no_path = vec![source("docker:x", "", &[])];
    assert!(generate_config(&no_path, &settings()).unwrap_err().to_string().contains("path"));
    let _ = BTreeMap::<String, String>::new();
}

/// A mixed registry: kubelet and podman files, a static glob (plain lines, no
/// container operator), multi-tenant Loki with a credential from the
/// environment, and tail sampling for traces.
#[test]
fn a_mixed_registry_with_tenant_credentials_and_tail_sampling() {
    let yaml = "logs:\n  exporter:\n    loki:\n      endpoint: http://loki:3100/\n      tenant: team-a\n      headers_from_env: {Authorization: LOKI_AUTH}\n\
                traces:\n  otlp_http: http://tempo:4318\n  sampling:\n    tail: {decision_wait: 5s, latency_threshold_ms: 500, percentage: 10}\n";
    let mut settings: PipelineSettings = serde_saphyr::from_str(yaml).expect("settings parse");
    settings.storage_dir = "/var/lib/steward/collector".into();
    let sources = vec![
        source(
            "file:/var/log/pods/shop_cart-7d9_0c1a/cart/0.log",
            "/var/log/pods/shop_cart-7d9_0c1a/cart/0.log",
            &[
                ("k8s.namespace.name", "shop"),
                ("k8s.pod.name", "cart-7d9"),
                ("k8s.pod.uid", "0c1a"),
                ("k8s.container.name", "cart"),
            ],
        ),
        source(
            "file:/var/lib/containers/storage/overlay-containers/ab12/userdata/ctr.log",
            "/var/lib/containers/storage/overlay-containers/ab12/userdata/ctr.log",
            &[("container.id", "ab12"), ("container.runtime", "podman")],
        ),
        source(
            "static:/var/log/legacy/*.log",
            "/var/log/legacy/*.log",
            &[("service.name", "legacy")],
        ),
    ];
    let rendered = generate_config(&sources, &settings).unwrap();
    insta::assert_snapshot!("mixed_registry", rendered.yaml);
    assert!(rendered.yaml.contains("Authorization: ${env:LOKI_AUTH}"), "a reference, not a secret");
    assert_eq!(static_check(&rendered.yaml), vec![]);
    real_validate(&rendered).expect("otelcol-steward accepts it");
}

/// A registry of 8,000 sources (past the YAML parser's default node budget)
/// still passes the static checks.
#[test]
fn a_large_registry_passes_the_static_checks() {
    let sources: Vec<Source> = (0..8_000)
        .map(|i| {
            source(
                &format!("docker:{i:064x}"),
                &format!("/var/lib/docker/containers/{i:064x}/{i:064x}-json.log"),
                &[("container.name", &format!("c{i}")), ("service.name", "svc")],
            )
        })
        .collect();
    let rendered = generate_config(&sources, &settings()).unwrap();
    assert_eq!(static_check(&rendered.yaml), vec![]);
}
