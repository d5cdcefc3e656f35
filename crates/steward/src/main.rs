//! `steward`: the command-line entry point of Steward, a control plane for
//! OpenTelemetry Collector fleets.
//!
//! The binary stays thin: it parses arguments, builds the working objects from
//! the libraries, and turns every outcome into an exit code in one place:
//! 0 ok, 1 failure, 2 usage or configuration error.
//!
//! Subcommands arrive with the issues that build them (discovery, config,
//! agent, health, the reconcile loop); today the binary only identifies itself.

use std::process::ExitCode;

use clap::Parser;

/// Steward keeps every node's OpenTelemetry Collector configured from what runs
/// on it: it discovers log sources, generates and validates the collector's
/// config, rolls it out safely, and proves that log lines arrive.
#[derive(Debug, Parser)]
#[command(name = "steward", version, about, long_about = None, arg_required_else_help = true)]
struct Cli {}

const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    match Cli::try_parse() {
        Ok(Cli {}) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = err.print();
            // clap models --help and --version as errors that go to stdout.
            if err.use_stderr() { ExitCode::from(EXIT_USAGE) } else { ExitCode::SUCCESS }
        }
    }
}
