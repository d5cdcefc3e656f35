//! `HealthMonitor`: runs every check in a round, turns the verdicts into
//! alerts (through the [`AlertBook`]) and repair decisions (through the
//! [`RepairPlanner`]), and keeps the last results for `steward status`.
//!
//! A check that cannot look (`Unknown`) gives no verdict to the alert book:
//! an unreadable metrics endpoint alone should not page anyone, while the
//! collector's own health check covers a collector that is gone.

use std::time::{Duration, SystemTime};

use steward_agent::verify::Endpoints;

use crate::alerts::{AlertBook, AlertError, AlertPolicy, AlertSink, Notification, Observation};
use crate::backend::LogBackend;
use crate::checks::{
    CheckResult, Counters, QUEUE_THRESHOLD, Status, check_collector_queue_backpressure,
    check_end_to_end_sample_log, check_loki_push_errors, collector_health,
};
use crate::repair::{Repair, RepairPlanner, RepairSettings};

#[derive(Debug, Clone)]
pub struct MonitorSettings {
    /// The node's name, a label on every alert.
    pub node: String,
    /// How long the end-to-end probe waits for its marker in the store.
    pub e2e_timeout: Duration,
    pub queue_threshold: f64,
    pub alerts: AlertPolicy,
    pub repair: RepairSettings,
}

impl MonitorSettings {
    pub fn new(node: impl Into<String>) -> Self {
        MonitorSettings {
            node: node.into(),
            e2e_timeout: Duration::from_secs(30),
            queue_threshold: QUEUE_THRESHOLD,
            alerts: AlertPolicy::default(),
            repair: RepairSettings::default(),
        }
    }
}

/// What one round found and decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    pub results: Vec<CheckResult>,
    pub notifications: Vec<Notification>,
    pub repairs: Vec<Repair>,
}

pub struct HealthMonitor<B, S> {
    http: reqwest::Client,
    endpoints: Endpoints,
    backend: B,
    sink: S,
    settings: MonitorSettings,
    book: AlertBook,
    planner: RepairPlanner,
    counters: Option<Counters>,
    last: Vec<CheckResult>,
}

impl<B: LogBackend, S: AlertSink> HealthMonitor<B, S> {
    pub fn new(endpoints: Endpoints, backend: B, sink: S, settings: MonitorSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("a reqwest client with rustls builds");
        HealthMonitor {
            http,
            endpoints,
            backend,
            sink,
            book: AlertBook::new(settings.alerts),
            planner: RepairPlanner::new(settings.repair.clone()),
            settings,
            counters: None,
            last: Vec::new(),
        }
    }

    /// The collector's endpoints, as its config now says. Only a change
    /// forgets the push counters: the health loop calls this every round,
    /// and forgetting them each time made every look a "first sample", so
    /// send failures between rounds were never counted.
    pub fn set_endpoints(&mut self, endpoints: Endpoints) {
        if endpoints != self.endpoints {
            self.endpoints = endpoints;
            self.counters = None;
        }
    }

    /// One round: every check, then alerts sent and repairs decided. An
    /// alert that could not be delivered is an error; the round's results
    /// are kept either way.
    pub async fn run_once(&mut self, pid_alive: bool) -> Result<Round, AlertError> {
        let round = self.run_round(pid_alive, || false).await?;
        Ok(round.expect("a round that cannot be disturbed is never discarded"))
    }

    /// [`HealthMonitor::run_once`], unless `disturbed()` says, once the
    /// checks are done, that something changed the collector under them (a
    /// reload began): then the round is discarded (`None`): no verdict
    /// reaches the alert book or the repair planner, and `last` keeps the
    /// previous round. A check that met a collector restarting for a reload
    /// would otherwise fire an alert and order a restart.
    pub async fn run_round(
        &mut self,
        pid_alive: bool,
        disturbed: impl FnOnce() -> bool,
    ) -> Result<Option<Round>, AlertError> {
        let metrics = self.endpoints.metrics.clone();
        // The checks look at different things; run them side by side, so a
        // hung collector costs one timeout per round, not one per check.
        let (health, queues, (push, counters)) = tokio::join!(
            collector_health(&self.http, &self.endpoints, pid_alive),
            check_collector_queue_backpressure(&self.http, &metrics, self.settings.queue_threshold),
            check_loki_push_errors(&self.http, &metrics, &self.backend, self.counters.as_ref()),
        );
        let mut results = vec![health, queues];
        if counters.is_some() {
            self.counters = counters;
        }
        results.push(push);
        if let Some(canary) = self.endpoints.canary.clone() {
            results.push(self.end_to_end(&canary).await);
        }
        if disturbed() {
            return Ok(None);
        }

        let now = SystemTime::now();
        let now_ms = crate::checks::now_ms();
        let mut notifications = Vec::new();
        let mut repairs = Vec::new();
        for result in &results {
            let healthy = match result.status {
                Status::Ok | Status::Warning => true,
                Status::Failed => false,
                Status::Unknown => continue,
            };
            let observation = if healthy {
                Observation::healthy(&self.settings.node, result.name)
            } else {
                Observation::unhealthy(&self.settings.node, result.name, &result.evidence)
            };
            notifications.extend(self.book.observe(&observation, now));
            repairs.extend(self.planner.observe(result.name, healthy, now_ms));
        }
        notifications.extend(self.book.tick(now));
        for repair in &repairs {
            tracing::warn!(?repair, "repair decided");
        }
        self.last = results.clone();
        self.sink.send(&notifications).await?;
        Ok(Some(Round { results, notifications, repairs }))
    }

    async fn end_to_end(&self, canary: &std::path::Path) -> CheckResult {
        check_end_to_end_sample_log(&self.backend, canary, self.settings.e2e_timeout).await
    }

    /// The last round's results.
    pub fn last(&self) -> &[CheckResult] {
        &self.last
    }

    /// The last end-to-end latency in milliseconds, if the probe succeeded.
    pub fn last_e2e_latency_ms(&self) -> Option<f64> {
        self.last
            .iter()
            .find(|r| r.name == crate::checks::END_TO_END && r.status == Status::Ok)
            .and_then(|r| r.value)
    }

    /// The collector's push counters at the last round, if readable.
    pub fn counters(&self) -> Option<&Counters> {
        self.counters.as_ref()
    }

    /// Every repair decided so far.
    pub fn repairs(&self) -> &[crate::repair::Record] {
        self.planner.records()
    }
}
