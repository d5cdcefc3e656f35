//! `steward`: the command-line entry point of Steward, a control plane for
//! OpenTelemetry Collector fleets.
//!
//! The binary stays thin: it parses arguments, loads `steward.yaml`, builds the
//! working objects from the libraries, and turns every outcome into an exit
//! code in one place ([`Failure::exit_code`]): 0 ok, 1 failure, 2 usage or
//! configuration error.

mod commands;
mod run;
mod settings;
mod temporal;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Steward keeps every node's OpenTelemetry Collector configured from what runs
/// on it: it discovers log sources, generates and validates the collector's
/// config, rolls it out safely, and proves that log lines arrive.
#[derive(Debug, Parser)]
#[command(name = "steward", version, about, long_about = None)]
struct Cli {
    /// Steward's configuration file.
    #[arg(long, global = true, env = "STEWARD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the reconcile loop: discovery, registry, config rollouts through
    /// the workflow engine (`workflow.engine`), and health checks, until
    /// SIGTERM or Ctrl-C. The collector keeps running when Steward stops
    /// (agent.mode: signal).
    Run,
    /// What discovery sees on this node right now (Docker, log directories,
    /// static globs), collectable or not, with the reason.
    Discover {
        /// Print one snapshot and exit. Without it, print every change as a
        /// JSON line until interrupted.
        #[arg(long)]
        once: bool,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// The registry of log sources.
    Sources {
        #[command(subcommand)]
        command: SourcesCommand,
    },
    /// How this node's pipeline is doing: the collector's health, its
    /// queues, push errors and the store's readiness, and an end-to-end probe
    /// (a marker line written to the canary file and found in the store).
    /// Exit 1 if any check failed.
    Status {
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// The reconcile loop's history: its recent cycles and every activity
    /// attempt in them.
    Workflow {
        #[command(subcommand)]
        command: WorkflowCommand,
    },
    /// The collector config: build it, validate it, compare two.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the collector config generated from a sources file (a JSON array
    /// as `sources list --output json` prints) and the `collector:` settings.
    /// Without `--sources`: the config with no sources, only the canary
    /// (what a collector can start on before Steward runs).
    Build {
        #[arg(long, value_name = "FILE.json")]
        sources: Option<PathBuf>,
    },
    /// Check a collector config statically and with the collector binary.
    /// Exit 0 if valid, 1 with every problem if not.
    Validate {
        file: PathBuf,
        /// The collector binary (default: `collector.binary` from steward.yaml).
        #[arg(long, value_name = "BIN")]
        otelcol: Option<PathBuf>,
    },
    /// A unified diff of two configs. Exit 0 if equal, 1 if they differ.
    Diff { a: PathBuf, b: PathBuf },
    /// Roll a config out to this node's collector: pre-flight, canary,
    /// atomic write, reload, verify, and roll back on failure (signal mode).
    Apply {
        file: PathBuf,
        /// Why this version is applied, for the history.
        #[arg(long, default_value = "applied by hand")]
        reason: String,
    },
    /// The config versions this node has seen, newest first.
    History {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Go back to VERSION (a hash, a prefix or `cfg-…`), or to the last good
    /// version before the applied one.
    Rollback { version: Option<String> },
    /// Release the hold a version applied or rolled back by hand puts on
    /// `steward run`'s loop, which then reconciles at its next cycle.
    Release,
}

#[derive(Debug, Subcommand)]
enum WorkflowCommand {
    /// Recent cycles, newest first, with their activities (embedded engine).
    History {
        #[arg(long, default_value_t = 10)]
        limit: usize,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
enum SourcesCommand {
    /// List the registry's sources (seed: `list_sources`).
    List {
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Bring the registry up to date with one snapshot of every discovery,
    /// and retire drained tombstones.
    Sync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// How a command failed; mapped to the exit status in one place.
#[derive(Debug)]
pub enum Failure {
    /// The command's answer is "no" (a config is invalid, two configs
    /// differ), already printed: exit 1 with nothing more to say.
    Negative,
    /// The arguments or the configuration are wrong: the user must change something.
    Usage(String),
    /// Something failed at run time.
    Runtime(anyhow::Error),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Negative | Failure::Runtime(_) => 1,
            Failure::Usage(_) => 2,
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Self {
        Failure::Runtime(err)
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            // clap models --help and --version as errors that go to stdout.
            return if err.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("steward: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            match &failure {
                Failure::Negative => {}
                Failure::Usage(message) => eprintln!("steward: {message}"),
                Failure::Runtime(err) => eprintln!("steward: {err:#}"),
            }
            ExitCode::from(failure.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let settings = settings::Settings::load(cli.config.as_deref())
        .map_err(|err| Failure::Usage(err.to_string()))?;
    match cli.command {
        Command::Run => run::run(&settings).await,
        Command::Discover { once: true, output } => {
            commands::discover_once(&settings, output).await
        }
        Command::Discover { once: false, output: Output::Json } => {
            commands::discover_watch(&settings).await
        }
        Command::Discover { once: false, output: Output::Table } => Err(Failure::Usage(
            "`steward discover` without --once streams JSON lines: add --output json".into(),
        )),
        Command::Sources { command: SourcesCommand::List { output } } => {
            commands::sources_list(&settings, output).await
        }
        Command::Sources { command: SourcesCommand::Sync } => {
            commands::sources_sync(&settings).await
        }
        Command::Workflow { command: WorkflowCommand::History { limit, output } } => {
            commands::workflow_history(&settings, limit, output).await
        }
        Command::Status { output } => commands::status(&settings, output).await,
        Command::Config { command: ConfigCommand::Build { sources } } => {
            commands::config_build(&settings, sources.as_deref())
        }
        Command::Config { command: ConfigCommand::Validate { file, otelcol } } => {
            commands::config_validate(&settings, &file, otelcol.as_deref())
        }
        Command::Config { command: ConfigCommand::Diff { a, b } } => commands::config_diff(&a, &b),
        Command::Config { command: ConfigCommand::Apply { file, reason } } => {
            commands::config_apply(&settings, &file, &reason).await
        }
        Command::Config { command: ConfigCommand::History { limit, output } } => {
            commands::config_history(&settings, limit, output).await
        }
        Command::Config { command: ConfigCommand::Release } => commands::config_release(&settings),
        Command::Config { command: ConfigCommand::Rollback { version } } => {
            commands::config_rollback(&settings, version.as_deref()).await
        }
    }
}

/// Logs go to stderr, so stdout stays parseable; `RUST_LOG` overrides.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    // notify reports every vanished watch at info/warn; that is routine here.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,notify=error,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
