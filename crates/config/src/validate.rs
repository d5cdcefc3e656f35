//! The seed's `validate_config`: a config must pass both gates before any
//! collector sees it (a bad config makes a SIGHUP-reloaded collector exit).
//!
//! 1. [`static_check`]: pure checks on the YAML tree, every problem at once:
//!    components referenced but not defined, pipelines without receivers or
//!    exporters, listeners sharing a port, endpoints that do not parse,
//!    storage that names no extension.
//! 2. [`otelcol_validate`]: the collector binary's own dry run
//!    (`otelcol validate --config`), which knows every component's schema.
//!    Only meaningful with the distribution the fleet runs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One thing wrong with a config, located by its path in the YAML tree.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub at: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

const KINDS: [&str; 5] = ["receivers", "processors", "exporters", "extensions", "connectors"];

/// Parses a collector config into a tree. The parser's default node budget
/// (250,000 nodes) would refuse a generated config of about 7,000 sources, so
/// it is lifted; alias expansion stays limited, which is what guards against
/// "billion laughs" documents.
pub fn parse_tree(yaml: &str) -> Result<Value, String> {
    let mut options = serde_saphyr::Options::default();
    options.budget = None;
    serde_saphyr::from_str_with_options::<Value>(yaml, options).map_err(|err| err.to_string())
}

/// Parses `yaml` and checks it; an unparsable file is one problem.
pub fn static_check(yaml: &str) -> Vec<Problem> {
    match parse_tree(yaml) {
        Ok(tree) => check_tree(&tree),
        Err(err) => vec![Problem { at: "(file)".into(), message: format!("not YAML: {err}") }],
    }
}

fn ids(tree: &Value, kind: &str) -> BTreeSet<String> {
    tree.get(kind)
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn problem(problems: &mut Vec<Problem>, at: impl Into<String>, message: impl Into<String>) {
    problems.push(Problem { at: at.into(), message: message.into() });
}

/// The pure checks on a parsed config.
pub fn check_tree(tree: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    let Some(top) = tree.as_object() else {
        return vec![Problem {
            at: "(file)".into(),
            message: "the top level must be a map".into(),
        }];
    };
    for key in top.keys() {
        if !KINDS.contains(&key.as_str()) && key != "service" {
            problem(&mut problems, key.clone(), "unknown top-level section");
        }
    }
    let defined: BTreeMap<&str, BTreeSet<String>> =
        KINDS.iter().map(|k| (*k, ids(tree, k))).collect();
    let service = tree.get("service");

    let pipelines = service.and_then(|s| s.get("pipelines")).and_then(Value::as_object);
    match pipelines {
        None => problem(&mut problems, "service.pipelines", "no pipeline is defined"),
        Some(pipelines) if pipelines.is_empty() => {
            problem(&mut problems, "service.pipelines", "no pipeline is defined")
        }
        Some(pipelines) => {
            for (name, pipeline) in pipelines {
                let signal = name.split('/').next().unwrap_or_default();
                if !["logs", "metrics", "traces"].contains(&signal) {
                    problem(
                        &mut problems,
                        format!("service.pipelines.{name}"),
                        "a pipeline is logs, metrics or traces",
                    );
                }
                for (role, kind, required) in [
                    ("receivers", "receivers", true),
                    ("processors", "processors", false),
                    ("exporters", "exporters", true),
                ] {
                    let at = format!("service.pipelines.{name}.{role}");
                    let list = pipeline.get(role).and_then(Value::as_array);
                    if required && list.is_none_or(|l| l.is_empty()) {
                        problem(
                            &mut problems,
                            at.clone(),
                            format!("a pipeline needs at least one of its {role}"),
                        );
                    }
                    for (i, id) in list.into_iter().flatten().enumerate() {
                        let id = id.as_str().unwrap_or_default();
                        if !defined[kind].contains(id) && !defined["connectors"].contains(id) {
                            problem(
                                &mut problems,
                                format!("{at}[{i}]"),
                                format!("`{id}` is not defined under {kind}"),
                            );
                        }
                    }
                }
            }
        }
    }
    for (i, id) in service
        .and_then(|s| s.get("extensions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let id = id.as_str().unwrap_or_default();
        if !defined["extensions"].contains(id) {
            problem(
                &mut problems,
                format!("service.extensions[{i}]"),
                format!("`{id}` is not defined under extensions"),
            );
        }
    }

    // Storage named by a receiver or a sending queue must be an extension the
    // service starts.
    let started: BTreeSet<&str> = service
        .and_then(|s| s.get("extensions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for kind in ["receivers", "exporters"] {
        for (id, component) in tree.get(kind).and_then(Value::as_object).into_iter().flatten() {
            for (at, storage) in [
                (format!("{kind}.{id}.storage"), component.get("storage")),
                (
                    format!("{kind}.{id}.sending_queue.storage"),
                    component.get("sending_queue").and_then(|q| q.get("storage")),
                ),
            ] {
                if let Some(storage) = storage.and_then(Value::as_str)
                    && !started.contains(storage)
                {
                    problem(
                        &mut problems,
                        at,
                        format!("storage `{storage}` is not an extension the service starts"),
                    );
                }
            }
        }
    }

    check_listeners(tree, &mut problems);
    check_endpoints(tree, &mut problems);
    problems.sort();
    problems
}

/// No two listeners on one port (a collector that cannot bind exits).
fn check_listeners(tree: &Value, problems: &mut Vec<Problem>) {
    let mut listeners: Vec<(String, String)> = Vec::new();
    for (id, receiver) in tree.get("receivers").and_then(Value::as_object).into_iter().flatten() {
        for (protocol, settings) in
            receiver.get("protocols").and_then(Value::as_object).into_iter().flatten()
        {
            if let Some(endpoint) = settings.get("endpoint").and_then(Value::as_str) {
                listeners.push((
                    format!("receivers.{id}.protocols.{protocol}.endpoint"),
                    endpoint.into(),
                ));
            }
        }
    }
    for (id, extension) in tree.get("extensions").and_then(Value::as_object).into_iter().flatten() {
        if let Some(endpoint) = extension.get("endpoint").and_then(Value::as_str) {
            listeners.push((format!("extensions.{id}.endpoint"), endpoint.into()));
        }
    }
    let readers = tree.pointer("/service/telemetry/metrics/readers").and_then(Value::as_array);
    for (i, reader) in readers.into_iter().flatten().enumerate() {
        if let Some(prom) = reader.pointer("/pull/exporter/prometheus") {
            let host = prom.get("host").and_then(Value::as_str).unwrap_or("localhost");
            if let Some(port) = prom.get("port").and_then(Value::as_u64) {
                listeners.push((
                    format!("service.telemetry.metrics.readers[{i}]"),
                    format!("{host}:{port}"),
                ));
            }
        }
    }
    let mut by_port: BTreeMap<String, &str> = BTreeMap::new();
    for (at, endpoint) in &listeners {
        if endpoint.contains("${") {
            continue;
        }
        let Some(port) = endpoint.rsplit_once(':').map(|(_, p)| p.to_owned()) else {
            problem(problems, at.clone(), format!("`{endpoint}` is not host:port"));
            continue;
        };
        if port.parse::<u16>().is_err() {
            problem(problems, at.clone(), format!("`{endpoint}` has no valid port"));
        } else if let Some(first) = by_port.insert(port.clone(), at) {
            problem(problems, at.clone(), format!("port {port} is also taken by {first}"));
        }
    }
}

/// Exporter endpoints must be URLs (or host:port for gRPC).
fn check_endpoints(tree: &Value, problems: &mut Vec<Problem>) {
    for (id, exporter) in tree.get("exporters").and_then(Value::as_object).into_iter().flatten() {
        let kind = id.split('/').next().unwrap_or_default();
        for field in ["endpoint", "logs_endpoint", "traces_endpoint", "metrics_endpoint"] {
            let Some(value) = exporter.get(field).and_then(Value::as_str) else { continue };
            if value.contains("${") {
                continue;
            }
            let grpc = matches!(kind, "otlp_grpc" | "otlp");
            let ok = if grpc { host_port(value) || url(value) } else { url(value) };
            if !ok {
                let want = if grpc { "host:port or an http(s) URL" } else { "an http(s) URL" };
                problem(
                    problems,
                    format!("exporters.{id}.{field}"),
                    format!("`{value}` is not {want}"),
                );
            }
        }
    }
}

fn url(value: &str) -> bool {
    let rest = value.strip_prefix("http://").or_else(|| value.strip_prefix("https://"));
    rest.is_some_and(|rest| {
        let authority = rest.split('/').next().unwrap_or_default();
        !authority.is_empty() && !authority.contains(char::is_whitespace)
    })
}

fn host_port(value: &str) -> bool {
    value
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// The collector refused a config: its words, and the sources they point at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the collector refused the config: {message}")]
pub struct Refusal {
    pub message: String,
    /// Source ids whose receivers the message names.
    pub sources: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("could not run {binary}")]
    Run {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{binary} validate did not finish within {timeout:?}")]
    Timeout { binary: PathBuf, timeout: Duration },
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// How long one `otelcol validate` may take before it counts as hung.
pub const VALIDATE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `<binary> validate --config <file>`. `receivers` (from
/// [`crate::Rendered`]) maps receiver ids in the collector's message back to
/// source ids.
pub fn otelcol_validate(
    binary: &Path,
    file: &Path,
    receivers: &BTreeMap<crate::model::ComponentId, String>,
) -> Result<(), ValidateError> {
    let run_err = |source| ValidateError::Run { binary: binary.to_owned(), source };
    // stderr goes to a file: a pipe could fill and stall the child while we wait.
    let mut stderr_file = tempfile().map_err(run_err)?;
    let mut child = Command::new(binary)
        .arg("validate")
        .arg("--config")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr_file.try_clone().map_err(run_err)?)
        .spawn()
        .map_err(run_err)?;
    let deadline = Instant::now() + VALIDATE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(run_err)? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ValidateError::Timeout {
                binary: binary.to_owned(),
                timeout: VALIDATE_TIMEOUT,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if status.success() {
        return Ok(());
    }
    let mut message = String::new();
    use std::io::Seek as _;
    let _ = stderr_file.seek(std::io::SeekFrom::Start(0));
    let _ = stderr_file.read_to_string(&mut message);
    let message = message.trim().to_owned();
    let sources = receivers
        .iter()
        .filter(|(id, _)| message.contains(id.as_str()))
        .map(|(_, source)| source.clone())
        .collect();
    Err(Refusal { message, sources }.into())
}

/// An anonymous temp file (unlinked at once).
fn tempfile() -> std::io::Result<std::fs::File> {
    let path = std::env::temp_dir().join(format!(
        "steward-validate-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}
