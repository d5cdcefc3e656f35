//! The README's main command runs the `demo` binary; this keeps it working.

use std::process::Command;

/// `demo --once` runs `steward run` on the real parts (the `steward` binary
/// built beside it by `cargo test --workspace`), reports no missing or
/// duplicated line, prints where to look, and exits 0.
#[test]
fn demo_once_runs_the_pipeline_and_exits_zero() {
    let out = Command::new(env!("CARGO_BIN_EXE_demo")).arg("--once").output().expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("100 records, 0 missing, 0 duplicated"),
        "unexpected summary:\n{stdout}"
    );
    assert!(stdout.contains("see the logs:"), "no pointer to the UI:\n{stdout}");
    assert!(stdout.contains("web UI and API:      http://127.0.0.1:"), "no UI address:\n{stdout}");
}

/// An unknown argument is a usage error: exit 2.
#[test]
fn demo_rejects_unknown_arguments_with_exit_two() {
    let out = Command::new(env!("CARGO_BIN_EXE_demo")).arg("--bogus").output().expect("run demo");
    assert_eq!(out.status.code(), Some(2));
}
