//! Steward's own metrics, served at `/metrics` in the OpenMetrics text
//! format (prometheus-client). Counters and histograms are fed as things
//! happen; gauges that mirror state (sources, alerts) are set at scrape
//! time from their source of truth, so they cannot drift.
//!
//! Every label value a dashboard filters on exists from the start (at 0),
//! so a query never has to tell "nothing happened" from "no such series".

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use steward_health::checks::{CheckResult, END_TO_END, Status};
use steward_workflow::{Activity, ActivityError, CycleReport, Observer, Stop};

use crate::live::Live;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActivityLabel {
    activity: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabel {
    trigger: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabel {
    check: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

/// The cycle outcomes, plus how a cycle can end without one.
pub const CYCLE_OUTCOMES: [&str; 9] = [
    "unchanged",
    "applied",
    "known_bad",
    "held",
    "refused",
    "canary_failed",
    "rolled_back",
    "failed",
    "parked",
];

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// 5 ms to about 82 s: an activity, a cycle, a reload or an end-to-end
/// probe all fall in this range.
fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    sources: Family<StateLabel, Gauge>,
    cycles: Family<OutcomeLabel, Counter>,
    cycle_duration: Histogram,
    activity_duration: HistogramFamily<ActivityLabel>,
    activity_failures: Family<ActivityLabel, Counter>,
    reloads: Family<ResultLabel, Counter>,
    reload_duration: Histogram,
    rollbacks: Family<TriggerLabel, Counter>,
    e2e_latency: Histogram,
    e2e_failures: Counter,
    alerts_firing: Family<CheckLabel, Gauge>,
    /// Every check that has a series in `alerts_firing`.
    alert_checks: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// The checks Steward alerts on: the health checks and the rollout.
const ALERT_CHECKS: [&str; 5] = [
    steward_health::checks::COLLECTOR_HEALTH,
    steward_health::checks::QUEUE_BACKPRESSURE,
    steward_health::checks::PUSH_ERRORS,
    END_TO_END,
    steward_workflow::cycle::ROLLOUT_CHECK,
];

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Metrics {
            sources: Family::default(),
            cycles: Family::default(),
            cycle_duration: seconds_histogram(),
            activity_duration: Family::new_with_constructor(seconds_histogram),
            activity_failures: Family::default(),
            reloads: Family::default(),
            reload_duration: seconds_histogram(),
            rollbacks: Family::default(),
            e2e_latency: seconds_histogram(),
            e2e_failures: Counter::default(),
            alerts_firing: Family::default(),
            alert_checks: std::sync::Mutex::new(
                ALERT_CHECKS.iter().map(|c| (*c).to_owned()).collect(),
            ),
            registry: Registry::default(),
        };
        m.registry.register(
            "steward_sources",
            "Log sources in the registry, by state",
            m.sources.clone(),
        );
        m.registry.register(
            "steward_reconcile_cycles",
            "Reconcile cycles run (embedded engine), by outcome",
            m.cycles.clone(),
        );
        m.registry.register(
            "steward_reconcile_cycle_duration_seconds",
            "How long a reconcile cycle took (embedded engine)",
            m.cycle_duration.clone(),
        );
        m.registry.register(
            "steward_activity_duration_seconds",
            "How long an activity attempt took, by activity",
            m.activity_duration.clone(),
        );
        m.registry.register(
            "steward_activity_failures",
            "Activity attempts that failed with an error, by activity",
            m.activity_failures.clone(),
        );
        m.registry.register(
            "steward_reloads",
            "Collector reloads (a pushed config, then verification), by result",
            m.reloads.clone(),
        );
        m.registry.register(
            "steward_reload_duration_seconds",
            "From a reload signal to the verdict of its verification",
            m.reload_duration.clone(),
        );
        m.registry.register(
            "steward_rollbacks",
            "Rollbacks carried out, by what asked for them",
            m.rollbacks.clone(),
        );
        m.registry.register(
            "steward_e2e_latency_seconds",
            "End-to-end probe: from writing a marker line to finding it in the store",
            m.e2e_latency.clone(),
        );
        m.registry.register(
            "steward_e2e_probe_failures",
            "End-to-end probes whose marker was not found in time",
            m.e2e_failures.clone(),
        );
        m.registry.register(
            "steward_alerts_firing",
            "Alerts Steward has firing now, by check",
            m.alerts_firing.clone(),
        );
        let info: Family<VersionLabel, Gauge> = Family::default();
        info.get_or_create(&VersionLabel { version: env!("CARGO_PKG_VERSION").into() }).set(1);
        m.registry.register("steward_build_info", "Steward's version", info);

        for state in ["active", "draining"] {
            let _ = m.sources.get_or_create(&StateLabel { state: state.into() });
        }
        for outcome in CYCLE_OUTCOMES {
            let _ = m.cycles.get_or_create(&OutcomeLabel { outcome: outcome.into() });
        }
        for activity in Activity::ALL {
            let label = ActivityLabel { activity: activity.name().into() };
            let _ = m.activity_failures.get_or_create(&label);
            let _ = m.activity_duration.get_or_create(&label);
        }
        for result in ["ok", "failed"] {
            let _ = m.reloads.get_or_create(&ResultLabel { result: result.into() });
        }
        for check in ALERT_CHECKS {
            let _ = m.alerts_firing.get_or_create(&CheckLabel { check: check.into() });
        }
        for trigger in ["workflow", "api"] {
            let _ = m.rollbacks.get_or_create(&TriggerLabel { trigger: trigger.into() });
        }
        m
    }

    /// A finished (or parked) cycle of the embedded engine.
    pub fn observe_cycle(&self, report: &CycleReport) {
        let outcome = match &report.outcome {
            Ok(outcome) => outcome.kind(),
            Err(Stop::Failed(_)) => "failed",
            Err(Stop::Parked(_)) => "parked",
        };
        self.cycles.get_or_create(&OutcomeLabel { outcome: outcome.into() }).inc();
        self.cycle_duration.observe(report.took.as_secs_f64());
    }

    /// A rollback asked for by a person (`api`) or decided by the loop.
    pub fn observe_rollback(&self, trigger: &str) {
        self.rollbacks.get_or_create(&TriggerLabel { trigger: trigger.into() }).inc();
    }

    /// A health round: its end-to-end probe, if one ran.
    pub fn observe_health(&self, results: &[CheckResult]) {
        for result in results.iter().filter(|r| r.name == END_TO_END) {
            match (result.status, result.value) {
                (Status::Ok, Some(ms)) => self.e2e_latency.observe(ms / 1000.0),
                (Status::Failed, _) => {
                    self.e2e_failures.inc();
                }
                _ => {}
            }
        }
    }

    /// Mirrors state kept elsewhere; called right before encoding.
    pub fn set_state(&self, active: usize, draining: usize, firing: &[String]) {
        let set = |state: &str, n: usize| {
            self.sources.get_or_create(&StateLabel { state: state.into() }).set(n as i64);
        };
        set("active", active);
        set("draining", draining);
        // Every check Steward alerts on keeps a series (0 or 1), so a
        // resolved alert reads 0 rather than vanishing.
        let mut checks = self.alert_checks.lock().unwrap_or_else(|p| p.into_inner());
        checks.extend(firing.iter().cloned());
        for check in checks.iter() {
            let on = firing.contains(check);
            self.alerts_firing
                .get_or_create(&CheckLabel { check: check.clone() })
                .set(i64::from(on));
        }
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// What the activities report to: the metrics, and the readiness flag.
pub struct Telemetry {
    pub metrics: Arc<Metrics>,
    pub live: Live,
}

impl Observer for Telemetry {
    fn activity(&self, activity: Activity, took: Duration, result: Result<bool, &ActivityError>) {
        let label = ActivityLabel { activity: activity.name().into() };
        self.metrics.activity_duration.get_or_create(&label).observe(took.as_secs_f64());
        match result {
            Err(_) => {
                self.metrics.activity_failures.get_or_create(&label).inc();
            }
            Ok(passed) => match activity {
                Activity::CurrentConfig => self.live.set_ready(),
                Activity::VerifyReload => {
                    let result = if passed { "ok" } else { "failed" };
                    self.metrics
                        .reloads
                        .get_or_create(&ResultLabel { result: result.into() })
                        .inc();
                    self.metrics.reload_duration.observe(took.as_secs_f64());
                }
                Activity::RollbackConfig => self.metrics.observe_rollback("workflow"),
                _ => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_a_dashboard_needs_exists_from_the_start() {
        let metrics = Metrics::new();
        metrics.set_state(3, 1, &["end_to_end_sample_log".to_owned()]);
        let text = metrics.encode();
        for line in [
            "steward_sources{state=\"active\"} 3",
            "steward_sources{state=\"draining\"} 1",
            "steward_reconcile_cycles_total{outcome=\"applied\"} 0",
            "steward_reloads_total{result=\"failed\"} 0",
            "steward_rollbacks_total{trigger=\"api\"} 0",
            "steward_activity_failures_total{activity=\"verify_reload\"} 0",
            "steward_alerts_firing{check=\"end_to_end_sample_log\"} 1",
            "steward_e2e_probe_failures_total 0",
            "steward_reconcile_cycle_duration_seconds_count 0",
            "steward_e2e_latency_seconds_count 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(text.contains("steward_build_info{version=\""), "{text}");
        assert!(text.ends_with("# EOF\n"));
        metrics.set_state(0, 0, &["custom".to_owned()]);
        metrics.set_state(0, 0, &[]);
        let text = metrics.encode();
        for line in [
            "steward_alerts_firing{check=\"end_to_end_sample_log\"} 0",
            "steward_alerts_firing{check=\"config_rollout\"} 0",
            "steward_alerts_firing{check=\"custom\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "resolved alerts read 0: {line:?} in\n{text}");
        }
    }

    #[test]
    fn activities_feed_reloads_rollbacks_failures_and_readiness() {
        let live = Live::default();
        let t = Telemetry { metrics: Arc::new(Metrics::new()), live: live.clone() };
        let second = Duration::from_secs(1);
        t.activity(Activity::VerifyReload, second, Ok(true));
        t.activity(Activity::VerifyReload, second, Ok(false));
        t.activity(Activity::RollbackConfig, second, Ok(true));
        let err = ActivityError::retryable("push_config", "disk full");
        t.activity(Activity::PushConfig, second, Err(&err));
        assert!(!live.is_ready());
        t.activity(Activity::CurrentConfig, second, Ok(true));
        assert!(live.is_ready());
        let text = t.metrics.encode();
        for line in [
            "steward_reloads_total{result=\"ok\"} 1",
            "steward_reloads_total{result=\"failed\"} 1",
            "steward_reload_duration_seconds_count 2",
            "steward_rollbacks_total{trigger=\"workflow\"} 1",
            "steward_activity_failures_total{activity=\"push_config\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn e2e_probes_feed_the_latency_histogram_and_failures() {
        let metrics = Metrics::new();
        let probe = |status, value| CheckResult {
            name: END_TO_END,
            status,
            evidence: String::new(),
            observed_ms: 0,
            value,
        };
        metrics.observe_health(&[probe(Status::Ok, Some(1500.0)), probe(Status::Failed, None)]);
        let text = metrics.encode();
        assert!(text.contains("steward_e2e_latency_seconds_sum 1.5"), "{text}");
        assert!(text.contains("steward_e2e_probe_failures_total 1"), "{text}");
    }
}
