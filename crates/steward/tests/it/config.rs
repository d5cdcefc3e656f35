//! `steward config build | validate | diff` with the real collector binary.

use std::path::Path;
use std::process::{Command, Output};

fn steward(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steward"))
        .current_dir(dir)
        .args(args)
        .env("STEWARD_CONFIG", dir.join("steward.yaml"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run steward")
}

fn otelcol() -> String {
    let tb = steward_testbed::Testbed::locate().expect("test bench installed");
    tb.bin("otelcol-steward").expect("collector installed").display().to_string()
}

/// A `steward.yaml` whose collector settings point into `dir`.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = format!(
        "collector:\n  binary: {bin}\n  storage_dir: {d}/storage\n  canary_path: {d}/canary.log\n",
        bin = otelcol(),
        d = dir.path().display()
    );
    std::fs::write(dir.path().join("steward.yaml"), yaml).expect("steward.yaml");
    dir
}

/// The registry's JSON (as `sources list --output json` prints it, extra
/// fields included) builds a config that the real collector accepts.
#[test]
fn build_then_validate_with_the_real_collector() {
    let dir = workdir();
    let sources = r#"[{"id":"docker:abc","path":"/var/lib/docker/containers/abc/abc-json.log",
        "labels":{"service.name":"web","team":"${env:HOME}"},"state":"active","origin":"docker",
        "first_seen_ms":1,"updated_ms":2}]"#;
    std::fs::write(dir.path().join("sources.json"), sources).expect("sources");
    let built = steward(dir.path(), &["config", "build", "--sources", "sources.json"]);
    assert_eq!(built.status.code(), Some(0), "{}", String::from_utf8_lossy(&built.stderr));
    let yaml = String::from_utf8(built.stdout).expect("utf-8");
    assert!(yaml.contains("team: $${env:HOME}"), "escaped, not expanded:\n{yaml}");
    std::fs::write(dir.path().join("collector.yaml"), &yaml).expect("write");

    let valid = steward(dir.path(), &["config", "validate", "collector.yaml"]);
    assert_eq!(valid.status.code(), Some(0), "{}", String::from_utf8_lossy(&valid.stderr));
}

/// An invalid config exits 1 with the problem; the static checks speak first,
/// and what only the collector knows comes in the collector's own words.
#[test]
fn validate_refuses_invalid_configs_with_the_reason() {
    let dir = workdir();
    std::fs::write(dir.path().join("sources.json"), "[]").expect("sources");
    let yaml = String::from_utf8(
        steward(dir.path(), &["config", "build", "--sources", "sources.json"]).stdout,
    )
    .expect("utf-8");
    let dangling = yaml.replace("      - batch\n", "      - batch/missing\n");
    std::fs::write(dir.path().join("dangling.yaml"), dangling).expect("write");
    let out = steward(dir.path(), &["config", "validate", "dangling.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`batch/missing` is not defined"));

    let schema = yaml.replace("start_at: beginning", "start_at: sideways");
    std::fs::write(dir.path().join("schema.yaml"), schema).expect("write");
    let out = steward(dir.path(), &["config", "validate", "schema.yaml", "--otelcol", &otelcol()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sideways"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A sources file that breaks the schema exits 2 naming the first bad field.
#[test]
fn malformed_sources_exit_two_naming_the_field() {
    let dir = workdir();
    std::fs::write(
        dir.path().join("bad.json"),
        r#"[{"id":"a","path":"/a.log","labels":{}},{"id":"b","labels":{}}]"#,
    )
    .expect("write");
    let out = steward(dir.path(), &["config", "build", "--sources", "bad.json"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[1]") && stderr.contains("path"), "{stderr}");
}

/// `config diff` prints a unified diff: exit 0 when equal, 1 when not.
#[test]
fn diff_shows_what_changes() {
    let dir = workdir();
    std::fs::write(dir.path().join("a.yaml"), "x: 1\ny: 2\n").expect("write");
    std::fs::write(dir.path().join("b.yaml"), "x: 1\ny: 3\n").expect("write");
    let same = steward(dir.path(), &["config", "diff", "a.yaml", "a.yaml"]);
    assert_eq!((same.status.code(), same.stdout.len()), (Some(0), 0));
    let differ = steward(dir.path(), &["config", "diff", "a.yaml", "b.yaml"]);
    assert_eq!(differ.status.code(), Some(1));
    let text = String::from_utf8_lossy(&differ.stdout);
    assert!(text.contains("-y: 2") && text.contains("+y: 3"), "{text}");
}
