//! What the running process knows and the store does not keep: the last
//! health round, the recent end-to-end probes, and whether the loop has
//! come up. The health loop and the activities write it; the API reads it.
//! In memory, bounded: the long view is Prometheus' (`/metrics`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use steward_health::checks::{CheckResult, END_TO_END, Status};

/// How many end-to-end points are kept: a day at the default 30 s interval.
pub const E2E_POINTS: usize = 2880;

/// One end-to-end probe, and the lines the collector accepted since the
/// previous one; served as is by `GET /api/v1/e2e`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct E2ePoint {
    pub at_ms: i64,
    /// Whether the marker line was found in the store in time.
    pub ok: bool,
    /// From writing the marker to finding it, in ms; `null` if not found.
    pub latency_ms: Option<f64>,
    /// Log records the collector's receivers accepted since the previous
    /// point; `null` when its metrics were unreadable.
    pub lines_accepted: Option<f64>,
}

#[derive(Debug, Default)]
struct State {
    checks: Vec<CheckResult>,
    checks_ms: Option<i64>,
    e2e: VecDeque<E2ePoint>,
    ready: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Live(Arc<Mutex<State>>);

impl Live {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the API down with it.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A health round's results; its end-to-end probe (if it ran) becomes a
    /// point of the series, with `lines_accepted` since the last round.
    pub fn record_round(&self, results: &[CheckResult], lines_accepted: Option<f64>) {
        let mut state = self.state();
        state.checks = results.to_vec();
        state.checks_ms = results.iter().map(|r| r.observed_ms).max();
        if let Some(e2e) = results.iter().find(|r| r.name == END_TO_END) {
            let ok = e2e.status == Status::Ok;
            state.e2e.push_back(E2ePoint {
                at_ms: e2e.observed_ms,
                ok,
                latency_ms: if ok { e2e.value } else { None },
                lines_accepted,
            });
            while state.e2e.len() > E2E_POINTS {
                state.e2e.pop_front();
            }
        }
    }

    pub fn checks(&self) -> (Option<i64>, Vec<CheckResult>) {
        let state = self.state();
        (state.checks_ms, state.checks.clone())
    }

    /// The newest `limit` points, oldest first.
    pub fn e2e(&self, limit: usize) -> Vec<E2ePoint> {
        let state = self.state();
        let skip = state.e2e.len().saturating_sub(limit);
        state.e2e.iter().skip(skip).cloned().collect()
    }

    /// The newest probe that found its marker.
    pub fn last_ok_e2e(&self) -> Option<E2ePoint> {
        self.state().e2e.iter().rev().find(|p| p.ok).cloned()
    }

    /// The loop has read the collector's state once: discovery, registry
    /// and config generation all worked.
    pub fn set_ready(&self) {
        self.state().ready = true;
    }

    pub fn is_ready(&self) -> bool {
        self.state().ready
    }
}

/// The pipeline's state from the last checks: any failed → `failing`, any
/// warning → `degraded`, all ok → `healthy`; nothing known → `unknown`.
pub fn pipeline_state(checks: &[CheckResult], alerts_firing: usize) -> &'static str {
    if checks.iter().any(|c| c.status == Status::Failed) {
        "failing"
    } else if checks.iter().any(|c| c.status == Status::Warning) || alerts_firing > 0 {
        "degraded"
    } else if checks.iter().any(|c| c.status == Status::Ok) {
        "healthy"
    } else {
        "unknown"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &'static str, status: Status, value: Option<f64>, at: i64) -> CheckResult {
        CheckResult { name, status, evidence: "e".into(), observed_ms: at, value }
    }

    #[test]
    fn rounds_give_a_bounded_series_oldest_first() {
        let live = Live::default();
        for i in 0..(E2E_POINTS as i64 + 3) {
            let ok = i % 2 == 0;
            let status = if ok { Status::Ok } else { Status::Failed };
            live.record_round(
                &[check(END_TO_END, status, Some(i as f64), i), check("x", Status::Ok, None, i)],
                Some(1.0),
            );
        }
        let all = live.e2e(usize::MAX);
        assert_eq!(all.len(), E2E_POINTS);
        assert_eq!(all.last().unwrap().at_ms, E2E_POINTS as i64 + 2);
        let last = live.e2e(2);
        assert_eq!(last.len(), 2);
        assert!(last[0].at_ms < last[1].at_ms);
        let failed = last.iter().find(|p| !p.ok).unwrap();
        assert_eq!(failed.latency_ms, None, "a failed probe has no latency");
        let (at, checks) = live.checks();
        assert_eq!((at, checks.len()), (Some(E2E_POINTS as i64 + 2), 2));
        let last_ok = live.last_ok_e2e().expect("an ok probe");
        assert!(last_ok.ok && last_ok.at_ms > E2E_POINTS as i64, "{last_ok:?}");
    }

    #[test]
    fn the_pipeline_state_is_the_worst_check() {
        let view = |status| check("c", status, None, 0);
        assert_eq!(pipeline_state(&[], 0), "unknown");
        assert_eq!(pipeline_state(&[view(Status::Ok)], 0), "healthy");
        assert_eq!(pipeline_state(&[view(Status::Ok)], 1), "degraded");
        assert_eq!(pipeline_state(&[view(Status::Ok), view(Status::Warning)], 0), "degraded");
        assert_eq!(pipeline_state(&[view(Status::Failed), view(Status::Warning)], 0), "failing");
        assert_eq!(pipeline_state(&[view(Status::Unknown)], 0), "unknown");
    }
}
