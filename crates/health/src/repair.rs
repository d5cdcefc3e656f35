//! RepairController: what to do when checks keep failing. The decisions are a
//! pure function of what the checks said and when (`RepairPlanner::observe`);
//! carrying them out is the caller's (the agent restarts, applies the
//! fallback, the alert book notifies), and every decision is recorded.
//!
//! Escalation, per check, while it keeps failing:
//! 1. `restart_failed_components`: restart the collector, at most once per
//!    backoff, the backoff doubling from `restart_backoff` to `max_backoff`;
//! 2. after `restarts_before_fallback` restarts that did not help,
//!    `auto_apply_fallback_config` (once per failure episode);
//! 3. once failing for `persistent_after`, `notify_on_persistent_failure`
//!    (once per episode; the alert book repeats and resolves it).
//!
//! A healthy observation ends the episode and resets the escalation.

use std::collections::BTreeMap;
use std::time::Duration;

/// A repair to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    RestartFailedComponents { check: String, attempt: u32 },
    AutoApplyFallbackConfig { check: String },
    NotifyOnPersistentFailure { check: String, failing_for: Duration },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairSettings {
    /// Checks whose failure a collector restart can mend (e.g. its health).
    pub restartable: Vec<String>,
    pub restart_backoff: Duration,
    pub max_backoff: Duration,
    pub restarts_before_fallback: u32,
    pub persistent_after: Duration,
}

impl Default for RepairSettings {
    fn default() -> Self {
        RepairSettings {
            restartable: vec!["collector_health".into()],
            restart_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
            restarts_before_fallback: 3,
            persistent_after: Duration::from_secs(120),
        }
    }
}

/// One check's failure episode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Episode {
    since_ms: i64,
    restarts: u32,
    next_restart_ms: i64,
    backoff: Duration,
    fell_back: bool,
    notified: bool,
}

/// A repair that was decided, with when: the record the issue asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub at_ms: i64,
    pub repair: Repair,
}

#[derive(Debug, Default)]
pub struct RepairPlanner {
    settings: RepairSettings,
    episodes: BTreeMap<String, Episode>,
    log: Vec<Record>,
}

impl RepairPlanner {
    pub fn new(settings: RepairSettings) -> Self {
        RepairPlanner { settings, episodes: BTreeMap::new(), log: Vec::new() }
    }

    /// Takes one check's verdict at `now_ms` and returns the repairs due now.
    pub fn observe(&mut self, check: &str, healthy: bool, now_ms: i64) -> Vec<Repair> {
        if healthy {
            self.episodes.remove(check);
            return Vec::new();
        }
        let settings = &self.settings;
        let episode = self.episodes.entry(check.to_owned()).or_insert_with(|| Episode {
            since_ms: now_ms,
            next_restart_ms: now_ms,
            backoff: settings.restart_backoff,
            ..Episode::default()
        });
        let mut due = Vec::new();
        let restartable = settings.restartable.iter().any(|c| c == check);
        if restartable && !episode.fell_back && now_ms >= episode.next_restart_ms {
            if episode.restarts >= settings.restarts_before_fallback {
                episode.fell_back = true;
                due.push(Repair::AutoApplyFallbackConfig { check: check.to_owned() });
            } else {
                episode.restarts += 1;
                episode.next_restart_ms = now_ms + ms(episode.backoff);
                episode.backoff = (episode.backoff * 2).min(settings.max_backoff);
                due.push(Repair::RestartFailedComponents {
                    check: check.to_owned(),
                    attempt: episode.restarts,
                });
            }
        }
        let failing_for =
            Duration::from_millis(now_ms.saturating_sub(episode.since_ms).max(0) as u64);
        if !episode.notified && failing_for >= settings.persistent_after {
            episode.notified = true;
            due.push(Repair::NotifyOnPersistentFailure { check: check.to_owned(), failing_for });
        }
        self.log.extend(due.iter().cloned().map(|repair| Record { at_ms: now_ms, repair }));
        due
    }

    /// Every repair decided so far, oldest first.
    pub fn records(&self) -> &[Record] {
        &self.log
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Carries out `repair` on this node (seed: `RepairController`): a restart
/// through the runner, the fallback through the agent, a notification
/// through the alert sink. Returns what was done, in words, or why it failed.
pub async fn carry_out<R, V, S>(
    repair: &Repair,
    agent: &steward_agent::AgentManager<R, V>,
    sink: &S,
    node: &str,
) -> Result<String, String>
where
    R: steward_agent::runner::CollectorRunner,
    V: steward_registry::store::VersionStore,
    S: crate::alerts::AlertSink,
{
    match repair {
        Repair::RestartFailedComponents { check, attempt } => {
            agent.runner().restart().await.map_err(|e| format!("restart: {e}"))?;
            Ok(format!("restarted the collector ({check} failing; attempt {attempt})"))
        }
        Repair::AutoApplyFallbackConfig { check } => {
            let fell_back = agent
                .auto_apply_fallback_config(&format!("{check} kept failing after restarts"))
                .await
                .map_err(|e| format!("fallback: {e}"))?;
            match fell_back.restored {
                Some(version) => Ok(format!("fallback {version} applied ({check} failing)")),
                None => Err("no good version and no fallback config to fall back to".into()),
            }
        }
        Repair::NotifyOnPersistentFailure { check, failing_for } => {
            let now = std::time::SystemTime::now();
            let alert = crate::alerts::Alert {
                labels: [
                    ("alertname", "StewardPersistentFailure".to_owned()),
                    ("severity", "critical".to_owned()),
                    ("node", node.to_owned()),
                    ("check", check.clone()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
                annotations: [(
                    "summary".to_owned(),
                    format!("{check} has failed for {failing_for:?} despite repairs"),
                )]
                .into(),
                starts_at: now.checked_sub(*failing_for).unwrap_or(now),
                ends_at: now + std::time::Duration::from_secs(600),
            };
            sink.send(&[crate::alerts::Notification::Firing { alert }])
                .await
                .map_err(|e| format!("notify: {e}"))?;
            Ok(format!("notified: {check} failing for {failing_for:?}"))
        }
    }
}

impl Repair {
    /// The seed's name for the repair: what the record's `kind` says.
    pub fn kind(&self) -> &'static str {
        match self {
            Repair::RestartFailedComponents { .. } => "restart_failed_components",
            Repair::AutoApplyFallbackConfig { .. } => "auto_apply_fallback_config",
            Repair::NotifyOnPersistentFailure { .. } => "notify_on_persistent_failure",
        }
    }

    pub fn check(&self) -> &str {
        match self {
            Repair::RestartFailedComponents { check, .. }
            | Repair::AutoApplyFallbackConfig { check }
            | Repair::NotifyOnPersistentFailure { check, .. } => check,
        }
    }
}

/// [`carry_out`], then record what happened in the store's repair log, done
/// or failed: every repair leaves a durable trace.
pub async fn carry_out_and_record<R, V, S, L>(
    repair: &Repair,
    agent: &steward_agent::AgentManager<R, V>,
    sink: &S,
    node: &str,
    log: &L,
) -> Result<steward_registry::store::RepairRecord, steward_registry::store::StoreError>
where
    R: steward_agent::runner::CollectorRunner,
    V: steward_registry::store::VersionStore,
    S: crate::alerts::AlertSink,
    L: steward_registry::store::RepairLog,
{
    use steward_registry::store::{NewRepair, RepairOutcome};
    let result = carry_out(repair, agent, sink, node).await;
    let (outcome, detail, error) = match result {
        Ok(detail) => (RepairOutcome::Done, detail, None),
        Err(error) => (RepairOutcome::Failed, format!("{repair:?}"), Some(error)),
    };
    log.record(NewRepair {
        at_ms: crate::checks::now_ms(),
        node: node.to_owned(),
        kind: repair.kind().to_owned(),
        check: repair.check().to_owned(),
        detail,
        outcome,
        error,
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planner() -> RepairPlanner {
        RepairPlanner::new(RepairSettings {
            restart_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(20),
            restarts_before_fallback: 2,
            persistent_after: Duration::from_secs(60),
            ..RepairSettings::default()
        })
    }

    /// Feeds a failing `check` every second from 0 to `until_s` and returns
    /// the repairs with the second they were decided.
    fn fail_every_second(p: &mut RepairPlanner, check: &str, until_s: i64) -> Vec<(i64, Repair)> {
        (0..=until_s)
            .flat_map(|s| p.observe(check, false, s * 1000).into_iter().map(move |r| (s, r)))
            .collect()
    }

    #[test]
    fn restarts_back_off_then_fall_back_then_notify_once() {
        let mut p = planner();
        let repairs = fail_every_second(&mut p, "collector_health", 90);
        let restart =
            |attempt| Repair::RestartFailedComponents { check: "collector_health".into(), attempt };
        assert_eq!(
            repairs,
            vec![
                (0, restart(1)),
                (5, restart(2)),
                // two restarts did not help: the fallback, once
                (15, Repair::AutoApplyFallbackConfig { check: "collector_health".into() }),
                (
                    60,
                    Repair::NotifyOnPersistentFailure {
                        check: "collector_health".into(),
                        failing_for: Duration::from_secs(60)
                    }
                ),
            ]
        );
        assert_eq!(p.records().len(), 4, "every repair is recorded");
    }

    #[test]
    fn a_check_a_restart_cannot_mend_only_notifies() {
        let mut p = planner();
        let repairs = fail_every_second(&mut p, "end_to_end_sample_log", 70);
        assert_eq!(repairs.len(), 1);
        assert!(matches!(repairs[0], (60, Repair::NotifyOnPersistentFailure { .. })));
    }

    #[test]
    fn recovery_ends_the_episode_and_resets_the_escalation() {
        let mut p = planner();
        assert_eq!(p.observe("collector_health", false, 0).len(), 1);
        assert_eq!(p.observe("collector_health", true, 1_000), vec![]);
        let again = p.observe("collector_health", false, 2_000);
        assert_eq!(
            again,
            vec![Repair::RestartFailedComponents { check: "collector_health".into(), attempt: 1 }]
        );
    }
}
