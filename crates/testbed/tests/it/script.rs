//! `scripts/testbed.sh` itself: what it does when a part cannot be installed.

use std::path::Path;
use std::process::Command;

/// With the Go module proxy switched off (`GOPROXY=off`: the real `go` tool
/// refuses every download) and empty caches, the script stops at the first
/// part it must build, names that part and the command that failed, and exits
/// non-zero, leaving nothing half-installed in `bin/`.
#[test]
fn a_part_that_cannot_be_installed_stops_the_script_and_names_itself() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/testbed.sh");
    let scratch = tempfile::tempdir().expect("temp dir");
    let out = Command::new("bash")
        .arg(&script)
        .env("STEWARD_TESTBED", scratch.path().join("testbed"))
        .env("STEWARD_CACHE_DIR", scratch.path().join("cache"))
        .env("GOMODCACHE", scratch.path().join("gomod"))
        .env("GOPROXY", "off")
        .output()
        .expect("run testbed.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains("otelcol-steward: command failed: env GOBIN="),
        "no failed command named:\n{stderr}"
    );
    assert!(
        stderr.contains("go install go.opentelemetry.io/collector/cmd/builder@"),
        "command not shown:\n{stderr}"
    );
    assert!(
        stderr.contains("ERROR: otelcol-steward could not be installed"),
        "part not named:\n{stderr}"
    );
    assert!(
        !scratch.path().join("testbed/bin/otelcol-steward").exists(),
        "a failed build must not be linked as installed"
    );
    let leftovers: Vec<_> = std::fs::read_dir(scratch.path().join("cache"))
        .expect("cache dir exists")
        .map(|entry| entry.expect("dir entry").file_name())
        .collect();
    assert!(leftovers.is_empty(), "the failed build left {leftovers:?} in the cache");
}
