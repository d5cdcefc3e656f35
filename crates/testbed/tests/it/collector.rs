//! Our collector distribution, `otelcol-steward`, as built by the test bench.

use std::process::Command;

use steward_testbed::Testbed;
use steward_testbed::parts::Collector;

/// Every component the distribution promises (issue 2), under the names this
/// release registers: v0.158.0 lists `file_log`, `otlp_http`, `otlp_grpc` and
/// `prometheus_remote_write` and still accepts the older spellings as aliases.
const EXPECTED: &[(&str, &[&str])] = &[
    ("receivers", &["file_log", "otlp"]),
    (
        "processors",
        &[
            "memory_limiter",
            "batch",
            "resource",
            "attributes",
            "transform",
            "probabilistic_sampler",
            "tail_sampling",
        ],
    ),
    ("exporters", &["otlp_http", "otlp_grpc", "prometheus_remote_write", "debug", "file"]),
    ("extensions", &["health_check", "file_storage", "opamp"]),
];

/// `otelcol-steward components` lists every component of the manifest.
#[test]
fn components_lists_every_promised_component() {
    let tb = Testbed::locate().expect("test bench installed");
    let out = Command::new(tb.bin("otelcol-steward").expect("collector installed"))
        .arg("components")
        .output()
        .expect("run otelcol-steward components");
    assert!(out.status.success(), "components failed: {}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8_lossy(&out.stdout);

    // The listing is YAML: a top-level key per kind, then `- name: X` entries.
    let mut kind = "";
    let mut found: Vec<(String, String)> = Vec::new();
    for line in listing.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            kind = line.trim_end_matches(':');
        } else if let Some(name) = line.trim_start().strip_prefix("- name: ") {
            found.push((kind.to_owned(), name.trim().to_owned()));
        }
    }
    for (kind, names) in EXPECTED {
        for name in *names {
            assert!(
                found.iter().any(|(k, n)| k == kind && n == name),
                "{kind}/{name} missing from `otelcol-steward components`:\n{listing}"
            );
        }
    }
}

/// `otelcol-steward validate` refuses a config that references an undefined
/// component and names it; it accepts a minimal valid one.
#[test]
fn validate_refuses_a_broken_config_and_names_the_problem() {
    let tb = Testbed::locate().expect("test bench installed");
    let valid = "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:0\nexporters:\n  debug: {}\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [debug]\n";
    assert_eq!(Collector::validate(&tb, valid).expect("validate runs"), Ok(()));

    let broken = valid.replace("exporters: [debug]", "exporters: [otlp_http/nowhere]");
    let verdict = Collector::validate(&tb, &broken).expect("validate runs");
    let message = verdict.expect_err("a pipeline naming an undefined exporter is invalid");
    assert!(message.contains("otlp_http/nowhere"), "message does not name the exporter: {message}");
}
