//! The README's main job, for now: runs the first-proof pipeline on the test
//! bench (a container's stdout → `otelcol-steward` → VictoriaLogs), checks that
//! every line arrived, prints where to look, and keeps the parts up until
//! Ctrl-C. `--once` exits after the check (used by the test suite).
//! A later issue replaces this with `steward run`.

use std::process::ExitCode;
use std::time::Duration;

use steward_testbed::Testbed;
use steward_testbed::first_proof::FirstProof;

const LINES: u64 = 1_000;

#[tokio::main]
async fn main() -> ExitCode {
    let once = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--once") => true,
        Some(other) => {
            eprintln!("demo: unknown argument {other:?} (usage: demo [--once])");
            return ExitCode::from(2);
        }
    };
    match run(once).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("demo: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(once: bool) -> Result<(), steward_testbed::Error> {
    let tb = Testbed::locate()?;
    println!(
        "starting VictoriaLogs, a busybox container printing {LINES} lines, and otelcol-steward…"
    );
    let proof = FirstProof::start(&tb, LINES).await?;
    let tally = proof.wait_for_lines(LINES, Duration::from_secs(60)).await?;
    let (missing, duplicated) = (tally.missing(LINES), tally.duplicated());
    println!(
        "container {} → collector → VictoriaLogs: {} records, {} missing, {} duplicated",
        proof.container.name(),
        tally.records(),
        missing.len(),
        duplicated.len()
    );
    println!("  VictoriaLogs UI:     {}", proof.logs.ui_url());
    println!("  LogsQL query:        {}", proof.query());
    println!("  collector config:    {}", proof.collector.config_path().display());
    println!("  collector log:       {}", proof.collector.process().log_path().display());
    println!("  collector telemetry: {}", proof.metrics_url);
    if !missing.is_empty() || !duplicated.is_empty() {
        return Err(steward_testbed::Error::Unexpected {
            what: "first proof".into(),
            detail: format!("missing lines {missing:?}, duplicated {duplicated:?}"),
        });
    }
    if !once {
        println!("running; press Ctrl-C to stop and clean up");
        let _ = tokio::signal::ctrl_c().await;
    }
    Ok(())
}
