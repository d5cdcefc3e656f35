//! The binary's contract with scripts: exit codes and identification.

use std::process::Command;

fn steward(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_steward")).args(args).output().expect("run steward")
}

#[test]
fn version_exits_zero_and_names_the_binary() {
    let out = steward(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("steward "), "unexpected --version output: {stdout:?}");
}

#[test]
fn unknown_flag_is_a_usage_error_with_exit_two() {
    let out = steward(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
}

#[test]
fn no_arguments_prints_help_and_exits_two() {
    let out = steward(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"));
}
