//! `steward.yaml`: the raw file, parsed strictly, then checked into settings
//! the libraries can use. A file that cannot be used is a usage error (exit 2)
//! that names the line and the field.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use steward_discovery::docker::DockerSettings;
use steward_discovery::logdir::LogDirSettings;
use steward_discovery::static_files::{StaticSource, validate_glob};
use steward_health::backend::Loki;

/// Where `steward.yaml` is looked for when `--config` is not given.
pub const DEFAULT_PATH: &str = "steward.yaml";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where Steward keeps its state; the SQLite database lives here.
    pub data_dir: PathBuf,
    /// The registry's database: `sqlite:///path/steward.db` or
    /// `postgres://user@host/db`. Unset: SQLite in `data_dir`.
    pub store_url: Option<String>,
    pub discovery: DiscoverySettings,
    pub registry: steward_registry::Settings,
    /// The generated collector config: where it sends logs, metrics, traces.
    pub collector: steward_config::PipelineSettings,
    /// How configs reach the node's collector.
    pub agent: AgentSection,
    /// Where the end-to-end probe looks for its marker lines.
    pub health: HealthSection,
    /// The reconcile loop of `steward run`.
    pub workflow: WorkflowSection,
    /// Where alerts go; none: they are only logged.
    pub alerts: AlertsSection,
    /// This node's name in alerts and the history; default: the host name.
    pub node: Option<String>,
    /// The HTTP API, web UI and `/metrics` of `steward run`.
    pub api: ApiSection,
}

/// Off unless `listen` is set. The token is read at start from `token_file`
/// if set, else from the environment variable `token_env`; it is never
/// logged.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSection {
    /// `host:port`, e.g. `127.0.0.1:7480`; port 0 picks a free one (logged).
    pub listen: Option<String>,
    pub token_env: String,
    pub token_file: Option<PathBuf>,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection { listen: None, token_env: "STEWARD_API_TOKEN".into(), token_file: None }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkflowSection {
    pub engine: EngineKind,
    /// The safety-net period: a full resync and reconcile at least this often.
    pub period_secs: u64,
    /// A cycle starts once discovery has been quiet this long...
    pub debounce_ms: u64,
    /// ...or this long after the first event, whichever comes first.
    pub max_delay_ms: u64,
    /// A candidate config that failed is not tried again for this long
    /// unless the sources change.
    pub retry_failed_after_secs: u64,
    /// Used when `engine: temporal`.
    pub temporal: TemporalSection,
}

impl Default for WorkflowSection {
    fn default() -> Self {
        WorkflowSection {
            engine: EngineKind::Embedded,
            period_secs: 15,
            debounce_ms: 200,
            max_delay_ms: 2000,
            retry_failed_after_secs: 300,
            temporal: TemporalSection::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// In-process, history in the store: the default.
    Embedded,
    /// A Temporal cluster runs the loop as a workflow; Steward is its worker.
    Temporal,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemporalSection {
    /// The frontend's gRPC address, `host:port`.
    pub address: String,
    pub namespace: String,
    /// Default: `steward-<node>`, so each node's worker gets its node's work.
    pub task_queue: Option<String>,
    /// How many cycles one workflow run holds before continue-as-new.
    pub cycles_per_run: u32,
}

impl Default for TemporalSection {
    fn default() -> Self {
        TemporalSection {
            address: "127.0.0.1:7233".into(),
            namespace: "default".into(),
            task_queue: None,
            cycles_per_run: 100,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsSection {
    /// Alertmanager base URLs (`http://alertmanager:9093`).
    pub alertmanagers: Vec<String>,
    pub webhooks: Vec<WebhookSection>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    pub url: String,
    /// Environment variable holding a bearer token, read at each send.
    #[serde(default)]
    pub bearer_env: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthSection {
    /// The log store's query API; unset: no end-to-end probe.
    pub backend: Option<BackendSection>,
    /// How long the end-to-end probe waits for its marker.
    pub e2e_timeout_secs: u64,
    /// How often `steward run` runs every check.
    pub interval_secs: u64,
}

impl Default for HealthSection {
    fn default() -> Self {
        HealthSection { backend: None, e2e_timeout_secs: 30, interval_secs: 30 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BackendSection {
    /// Loki's base URL (`query_range`, `/ready`).
    Loki {
        url: String,
        #[serde(default)]
        tenant: Option<String>,
        #[serde(default)]
        bearer_env: Option<String>,
    },
    /// VictoriaLogs' base URL (LogsQL, `/health`).
    VictoriaLogs(String),
}

impl BackendSection {
    /// The Loki client for a `loki:` backend with its tenant and token.
    pub fn loki(url: &str, tenant: Option<&str>, bearer_env: Option<&str>) -> Loki {
        let mut backend = Loki::new(url.to_owned());
        if let Some(tenant) = tenant {
            backend = backend.with_tenant(tenant.to_owned());
        }
        if let Some(variable) = bearer_env {
            backend = backend.with_bearer_env(variable.to_owned());
        }
        backend
    }
}

/// How the node's collector runs and how a rollout is checked.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSection {
    /// `supervise`: Steward runs the collector as its child (`steward run`).
    /// `signal`: systemd or Kubernetes runs it; Steward SIGHUPs `pid_file`.
    pub mode: AgentMode,
    /// The config file the collector loads.
    pub config_path: PathBuf,
    /// The collector's pid file (signal mode).
    pub pid_file: PathBuf,
    /// Try every candidate in a shadow collector before the real one.
    pub canary: bool,
    pub canary_timeout_secs: u64,
    pub verify_timeout_secs: u64,
    pub settle_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentMode {
    Supervise,
    Signal,
}

impl Default for AgentSection {
    fn default() -> Self {
        AgentSection {
            mode: AgentMode::Signal,
            config_path: PathBuf::from("/etc/otelcol-steward/config.yaml"),
            pid_file: PathBuf::from("/run/otelcol-steward.pid"),
            canary: true,
            canary_timeout_secs: 15,
            verify_timeout_secs: 20,
            settle_ms: 1000,
        }
    }
}

impl AgentSection {
    pub fn manager_settings(&self, binary: &str) -> steward_agent::AgentSettings {
        let mut settings =
            steward_agent::AgentSettings::new(self.config_path.clone(), PathBuf::from(binary));
        settings.canary = self.canary;
        settings.canary_timeout = std::time::Duration::from_secs(self.canary_timeout_secs);
        settings.verify_timeout = std::time::Duration::from_secs(self.verify_timeout_secs);
        settings.settle = std::time::Duration::from_millis(self.settle_ms);
        settings
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: PathBuf::from("/var/lib/steward"),
            store_url: None,
            discovery: DiscoverySettings::default(),
            registry: steward_registry::Settings::default(),
            collector: steward_config::PipelineSettings::default(),
            agent: AgentSection::default(),
            health: HealthSection::default(),
            workflow: WorkflowSection::default(),
            alerts: AlertsSection::default(),
            node: None,
            api: ApiSection::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoverySettings {
    /// Docker discovery; `docker: {enabled: false}` turns it off.
    pub docker: DockerSettings,
    /// Log-directory discovery (kubelet and podman layouts).
    pub log_dirs: LogDirSettings,
    /// Files of non-container apps: globs with labels.
    pub static_sources: Vec<StaticSource>,
}

/// Why `steward.yaml` cannot be used. Every variant is a usage error.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {field}: {message}")]
    Invalid { path: PathBuf, field: String, message: String },
}

impl Settings {
    /// Reads `path`; a missing file at the default path means the defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, SettingsError> {
        let (path, explicit) = match path {
            Some(path) => (path.to_owned(), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if !explicit && err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Settings::default());
            }
            Err(source) => return Err(SettingsError::Read { path, source }),
        };
        Self::parse(&text, &path)
    }

    /// Parses and checks a `steward.yaml` text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, SettingsError> {
        // An empty file is valid YAML for "all defaults".
        let settings: Settings = if text.trim().is_empty() {
            Settings::default()
        } else {
            serde_saphyr::from_str(text).map_err(|err| SettingsError::Parse {
                path: path.to_owned(),
                message: err.to_string(),
            })?
        };
        settings.check(path)?;
        Ok(settings)
    }

    /// What serde cannot check.
    fn check(&self, path: &Path) -> Result<(), SettingsError> {
        let invalid = |field: String, message: String| SettingsError::Invalid {
            path: path.to_owned(),
            field,
            message,
        };
        if let Err((field, message)) = self.collector.validate() {
            return Err(invalid(field, message));
        }
        if let Err(err) = self.registry.validate() {
            return Err(invalid(format!("registry.relabel[{}]", err.index), err.reason));
        }
        let w = &self.workflow;
        for (field, value) in [
            ("workflow.period_secs", w.period_secs),
            ("workflow.debounce_ms", w.debounce_ms),
            ("workflow.max_delay_ms", w.max_delay_ms),
            ("health.interval_secs", self.health.interval_secs),
        ] {
            if value == 0 {
                return Err(invalid(field.into(), "must be greater than 0".into()));
            }
        }
        if w.max_delay_ms < w.debounce_ms {
            return Err(invalid(
                "workflow.max_delay_ms".into(),
                format!("must be at least debounce_ms ({})", w.debounce_ms),
            ));
        }
        if w.engine == EngineKind::Temporal && !w.temporal.address.contains(':') {
            return Err(invalid(
                "workflow.temporal.address".into(),
                format!("{:?} is not host:port", w.temporal.address),
            ));
        }
        for (i, url) in self.alerts.alertmanagers.iter().enumerate() {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    format!("alerts.alertmanagers[{i}]"),
                    format!("{url:?} is not an http(s) URL"),
                ));
            }
        }
        for (i, hook) in self.alerts.webhooks.iter().enumerate() {
            if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
                return Err(invalid(
                    format!("alerts.webhooks[{i}].url"),
                    format!("{:?} is not an http(s) URL", hook.url),
                ));
            }
        }
        if let Some(listen) = &self.api.listen
            && listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(invalid(
                "api.listen".into(),
                format!("{listen:?} is not ip:port (e.g. 127.0.0.1:7480)"),
            ));
        }
        if self.api.token_env.trim().is_empty() {
            return Err(invalid("api.token_env".into(), "must name a variable".into()));
        }
        for (i, source) in self.discovery.static_sources.iter().enumerate() {
            if let Err(err) = validate_glob(&source.path) {
                return Err(invalid(
                    format!("discovery.static_sources[{i}].path"),
                    err.to_string(),
                ));
            }
        }
        Ok(())
    }

    /// This node's name: `node`, else the host name.
    pub fn node(&self) -> String {
        self.node.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|name| name.trim().to_owned())
                .ok()
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "localhost".into())
        })
    }

    /// The store URL, defaulting to SQLite in the data dir.
    pub fn store_url(&self) -> String {
        match &self.store_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("steward.db").display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, SettingsError> {
        Settings::parse(text, Path::new("steward.yaml"))
    }

    #[test]
    fn an_empty_file_is_all_defaults() {
        assert_eq!(parse("").unwrap(), Settings::default());
        assert_eq!(Settings::default().store_url(), "sqlite:///var/lib/steward/steward.db");
    }

    #[test]
    fn a_full_file_parses() {
        let settings = parse(
            "data_dir: /tmp/st\n\
             discovery:\n  docker:\n    host: unix:///run/docker.sock\n    api_timeout: 5\n\
             \x20 log_dirs:\n    enabled: false\n\
             \x20 static_sources:\n    - path: /var/log/app/*.log\n      labels: {service.name: app}\n\
             registry:\n  drain_grace_secs: 10\n  relabel:\n    - source_labels: [container.name]\n      target_label: team\n",
        )
        .unwrap();
        assert_eq!(settings.discovery.docker.host.as_deref(), Some("unix:///run/docker.sock"));
        assert!(settings.discovery.docker.enabled);
        assert!(!settings.discovery.log_dirs.enabled);
        assert_eq!(settings.discovery.static_sources[0].labels["service.name"], "app");
        assert_eq!(settings.registry.drain_grace_secs, 10);
        assert_eq!(settings.store_url(), "sqlite:///tmp/st/steward.db");
    }

    #[test]
    fn an_unknown_field_is_named_with_its_line() {
        let err = parse("data_dir: /x\nregistry:\n  drain_grace: 3\n").unwrap_err().to_string();
        assert!(err.contains("drain_grace"), "{err}");
        assert!(err.contains('3'), "the line is named: {err}");
    }

    #[test]
    fn traces_without_an_exporter_are_refused() {
        let err = parse("collector:\n  traces:\n    sampling: {probabilistic: 10}\n").unwrap_err();
        assert!(err.to_string().contains("collector.traces"), "{err}");
        let ok = parse("collector:\n  traces:\n    otlp_grpc: tempo:4317\n").unwrap();
        assert!(ok.collector.traces.is_some());
    }

    #[test]
    fn unknown_fields_inside_discovery_settings_are_refused_too() {
        let err = parse("discovery:\n  docker:\n    hots: x\n").unwrap_err().to_string();
        assert!(err.contains("hots") && err.contains("line 3"), "{err}");
    }

    /// The example shipped in the repo is a valid `steward.yaml`.
    #[test]
    fn the_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/steward.yaml");
        let text = std::fs::read_to_string(&path).expect("examples/steward.yaml");
        let settings = Settings::parse(&text, &path).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(settings.workflow.engine, EngineKind::Embedded);
        assert_eq!(settings.agent.mode, AgentMode::Signal);
        assert_eq!(settings.alerts.alertmanagers, vec!["http://alertmanager:9093".to_owned()]);
        assert_eq!(settings.api.listen.as_deref(), Some("127.0.0.1:7480"));
    }

    #[test]
    fn workflow_and_alerts_parse_and_bad_values_name_their_field() {
        let ok = parse(
            "workflow:\n  engine: temporal\n  period_secs: 5\n  temporal: {address: 'tmp:7233'}\n\
             alerts:\n  alertmanagers: [http://am:9093]\n  webhooks: [{url: http://hook, bearer_env: TOKEN}]\n",
        )
        .unwrap();
        assert_eq!(ok.workflow.engine, EngineKind::Temporal);
        assert_eq!(ok.workflow.period_secs, 5);
        assert_eq!(ok.alerts.webhooks[0].bearer_env.as_deref(), Some("TOKEN"));
        let err = parse("workflow:\n  engine: cron\n").unwrap_err().to_string();
        assert!(err.contains("cron") && err.contains("line 2"), "{err}");
        let err = parse("workflow:\n  period_secs: 0\n").unwrap_err().to_string();
        assert!(err.contains("workflow.period_secs"), "{err}");
        let err = parse("alerts:\n  alertmanagers: [am:9093]\n").unwrap_err().to_string();
        assert!(err.contains("alerts.alertmanagers[0]"), "{err}");
        let err = parse("workflow:\n  engine: temporal\n  temporal: {address: nowhere}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("workflow.temporal.address"), "{err}");
    }

    #[test]
    fn the_api_is_off_by_default_and_a_bad_listen_address_names_its_field() {
        assert_eq!(parse("").unwrap().api.listen, None);
        let ok =
            parse("api:\n  listen: 127.0.0.1:7480\n  token_file: /etc/steward/token\n").unwrap();
        assert_eq!(ok.api.listen.as_deref(), Some("127.0.0.1:7480"));
        assert_eq!(ok.api.token_env, "STEWARD_API_TOKEN");
        let err = parse("api:\n  listen: localhost\n").unwrap_err().to_string();
        assert!(err.contains("api.listen"), "{err}");
        let err = parse("api:\n  tokn: x\n").unwrap_err().to_string();
        assert!(err.contains("tokn"), "{err}");
    }

    #[test]
    fn a_bad_rule_or_glob_names_its_field() {
        let err = parse("registry:\n  relabel:\n    - action: replace\n").unwrap_err().to_string();
        assert!(err.contains("registry.relabel[0]") && err.contains("target_label"), "{err}");
        let err = parse("registry:\n  relabel:\n    - regex: '('\n      target_label: x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid regex"), "{err}");
        let err = parse("discovery:\n  static_sources:\n    - path: relative/*.log\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("discovery.static_sources[0].path"), "{err}");
    }
}
