//! The README's main job: `steward run` with the embedded default (SQLite,
//! the embedded workflow engine) on one Docker host of the test bench, with
//! the real collector run as a service manager would and VictoriaLogs as the
//! store. It starts a busybox container that prints numbered lines, waits
//! until every line is queryable, exactly once, with no manual step, prints
//! where to look, and keeps everything running until Ctrl-C. `--once` exits
//! after the check (the test suite runs that).
//!
//! The `steward` binary is the one built next to this one (`--steward PATH`
//! overrides): `scripts/demo.sh` builds both.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use steward_testbed::docker::{Container, connect};
use steward_testbed::node::{Node, NodeOptions};
use steward_testbed::{Error, Testbed, eventually};

const LINES: usize = 100;

struct Args {
    once: bool,
    steward: PathBuf,
}

/// A progress bar on a terminal; hidden when output is piped or under CI
/// (`CI` set), where it would only clutter the log.
fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal as _;
    if std::env::var_os("CI").is_some() || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} ({elapsed})")
    {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn args() -> Result<Args, String> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("steward")))
        .unwrap_or_else(|| PathBuf::from("steward"));
    let mut args = Args { once: false, steward: beside };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--once" => args.once = true,
            "--steward" => {
                args.steward = it.next().map(PathBuf::from).ok_or("--steward needs a path")?
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?} (usage: demo [--once] [--steward PATH])"
                ));
            }
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match args() {
        Ok(args) => args,
        Err(usage) => {
            eprintln!("demo: {usage}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
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

async fn run(args: Args) -> Result<(), Error> {
    if !args.steward.exists() {
        return Err(Error::MissingPart {
            part: "steward (cargo build -p steward)".into(),
            path: args.steward,
        });
    }
    let tb = Testbed::locate()?;
    println!(
        "starting VictoriaLogs, otelcol-steward (as its service manager would) and `steward run`…"
    );
    // The API and web UI on a free port; checks (and the e2e probe the UI
    // charts) every 5 s rather than 30, so there is something to see.
    let options = NodeOptions { api: true, health_interval_secs: 5, ..NodeOptions::default() };
    let mut node = Node::start(&tb, &args.steward, options).await?;
    node.start_steward()?;
    let (docker, host) = connect(&tb).await?;
    let name = format!("steward-demo-{}", node.label);
    println!("starting container {name}, which prints {LINES} lines; nothing else is done by hand");
    let container = Container::run(
        &docker,
        &host,
        &name,
        &node.labels(),
        &format!("for i in $(seq 1 {LINES}); do echo \"demo line $i\"; done; exec sleep 86400"),
    )
    .await?;
    let query = format!("container.name:{name:?}");
    let progress = progress(LINES as u64, "lines queryable in VictoriaLogs");
    let records = eventually(
        &format!("{LINES} lines of {name} in VictoriaLogs"),
        Duration::from_secs(90),
        || async {
            match node.logs.query(&query).await {
                Ok(records) if records.len() >= LINES => Ok(records),
                Ok(records) => {
                    progress.set_position(records.len() as u64);
                    Err(format!("{} so far", records.len()))
                }
                Err(err) => Err(err.to_string()),
            }
        },
    )
    .await?;
    progress.finish_and_clear();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for record in &records {
        *seen.entry(record["_msg"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
    }
    let missing = (1..=LINES).filter(|i| !seen.contains_key(&format!("demo line {i}"))).count();
    let duplicated = seen.values().filter(|n| **n > 1).count();
    println!(
        "container {name} → steward run → otelcol-steward → VictoriaLogs: {} records, {missing} missing, {duplicated} duplicated",
        records.len()
    );
    let steward = node.steward.as_ref().expect("started above");
    let config = node.dir().join("steward.yaml");
    println!("  see the logs:        {} (query: {query})", node.logs.ui_url());
    println!("  steward.yaml:        {}", config.display());
    println!("  steward's log:       {}", steward.log_path().display());
    println!("  collector config:    {}", node.config_path.display());
    if let Some(api) = &node.api {
        println!(
            "  web UI and API:      {}/ (token in {})",
            api.url,
            node.dir().join("api-token").display()
        );
        println!(
            "  Steward's metrics:   curl -H 'Authorization: Bearer {}' {}/metrics",
            api.token, api.url
        );
    }
    println!(
        "  rollouts:            STEWARD_CONFIG={} {} workflow history",
        config.display(),
        args.steward.display()
    );
    if missing > 0 || duplicated > 0 {
        return Err(Error::Unexpected {
            what: "the demo's lines".into(),
            detail: format!("{missing} missing, {duplicated} duplicated"),
        });
    }
    if !args.once {
        println!(
            "running; start containers with the label steward.node={} to see them collected; Ctrl-C stops everything",
            node.label
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    drop(container);
    Ok(())
}
