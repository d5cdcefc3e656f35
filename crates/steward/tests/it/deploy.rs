//! The files in `deploy/`: the systemd units pass `systemd-analyze verify`
//! (Debian's systemd, offline: no unit is started), and the command lines
//! of the units and the Dockerfile are ones the `steward` binary accepts.
//! Grafana cannot run here: its provisioning files are parsed and checked
//! for what they must name (the dashboard's queries run on a real
//! Prometheus in `api.rs`). The Docker image is not built (no registry).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const STEWARD: &str = env!("CARGO_BIN_EXE_steward");

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(deploy(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// Runs `steward ARGS` with its `--config` pointing at a file that does not
/// exist: the arguments parse (no clap usage error) and the one complaint is
/// the missing file, exit 2.
fn arguments_are_accepted(args: &[String]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("steward.yaml");
    let mut args = args.to_vec();
    let at = args.iter().position(|a| a == "--config").expect("a --config argument") + 1;
    args[at] = missing.display().to_string();
    let out = Command::new(STEWARD).args(&args).output().expect("run steward");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(&format!("cannot read {}", missing.display())), "{args:?}: {stderr}");
}

#[test]
fn the_systemd_units_verify_and_run_steward_as_it_expects() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Verification checks that ExecStart binaries exist: point them at
    // files that do (the unit is read, never started).
    let mut units = Vec::new();
    for unit in ["steward.service", "otelcol-steward.service"] {
        let text = read(&format!("systemd/{unit}"))
            .replace("/usr/local/bin/otelcol-steward", "/bin/true")
            .replace("/usr/local/bin/steward", STEWARD);
        let path = dir.path().join(unit);
        std::fs::write(&path, text).expect("write the unit");
        units.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .expect("systemd-analyze (Debian's systemd) runs");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let unit = read("systemd/steward.service");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("steward.service has an ExecStart");
    let args: Vec<String> = exec.split_whitespace().skip(1).map(str::to_owned).collect();
    assert_eq!(args.first().map(String::as_str), Some("run"), "{exec}");
    arguments_are_accepted(&args);
    // Exit 2 is a configuration error: restarting would not fix it.
    assert!(unit.lines().any(|l| l.trim() == "RestartPreventExitStatus=2"), "{unit}");
}

#[test]
fn the_dockerfile_runs_steward_with_arguments_it_accepts() {
    let dockerfile = read("docker/Dockerfile");
    let json_array = |instruction: &str| -> Vec<String> {
        let line = dockerfile
            .lines()
            .find_map(|l| l.strip_prefix(instruction))
            .unwrap_or_else(|| panic!("the Dockerfile has {instruction}"));
        serde_json::from_str(line.trim()).unwrap_or_else(|err| panic!("{instruction}: {err}"))
    };
    assert_eq!(json_array("ENTRYPOINT "), ["steward"]);
    arguments_are_accepted(&json_array("CMD "));
    assert!(dockerfile.contains("/healthz"), "the HEALTHCHECK asks /healthz");
}

#[test]
fn grafana_provisioning_names_loki_prometheus_and_the_dashboard() {
    let datasources: Value =
        serde_saphyr::from_str(&read("grafana/provisioning/datasources/steward.yaml"))
            .expect("datasources YAML");
    assert_eq!(datasources["apiVersion"], 1);
    let types: Vec<&str> = datasources["datasources"]
        .as_array()
        .expect("a datasources list")
        .iter()
        .filter_map(|d| d["type"].as_str())
        .collect();
    assert!(types.contains(&"loki") && types.contains(&"prometheus"), "{types:?}");

    let providers: Value =
        serde_saphyr::from_str(&read("grafana/provisioning/dashboards/steward.yaml"))
            .expect("dashboard provider YAML");
    let path = providers["providers"][0]["options"]["path"].as_str().expect("a provider path");
    assert!(path.starts_with('/'), "{path}");

    let dashboard: Value =
        serde_json::from_str(&read("grafana/dashboards/steward.json")).expect("dashboard JSON");
    assert_eq!(dashboard["uid"], "steward");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{} panels", panels.len());
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", panel["title"]);
    }
}
