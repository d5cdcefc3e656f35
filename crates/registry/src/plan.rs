//! The registry's decisions, as pure functions: (current sources, what
//! happened, rules, now) → the [`Change`]s to make. No I/O, no clock, no
//! store: the caller supplies the time and the file sizes it observed.
//!
//! The rules of a source's life:
//! - collectable and kept by the relabel rules → `active`, with its final labels;
//! - stopped (removed, missing from a resync, no longer collectable, or dropped
//!   by a rule) while `active` → `draining`, keeping path and labels, so the
//!   collector still reads what is left in its file;
//! - `draining` and reported again → `active` once more (a restarted container);
//! - `draining`, and its file gone or unchanged for the grace period → deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use steward_discovery::{Event, Observed, SourceId};

use crate::labels::{RelabelRule, Sanitised, final_labels};
use crate::model::{Change, Drain, LogSource, SourceState};

/// The registry's current content, by id.
pub type Sources = BTreeMap<SourceId, LogSource>;

/// What applying one discovery event changes, plus what sanitising noted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub notes: Vec<(SourceId, Sanitised)>,
}

/// Plans one discovery event against the current sources.
pub fn plan_event(current: &Sources, event: &Event, rules: &[RelabelRule], now_ms: i64) -> Plan {
    let mut plan = Plan::default();
    match event {
        Event::Upsert(observed) => plan_observed(current, observed, rules, now_ms, &mut plan),
        Event::Remove { id } => {
            if let Some(change) = current.get(id).and_then(|source| stop(source, now_ms)) {
                plan.changes.push(change);
            }
        }
        Event::Resync { origin, sources } => {
            let seen: BTreeSet<&SourceId> = sources.iter().map(|o| &o.id).collect();
            for observed in sources {
                plan_observed(current, observed, rules, now_ms, &mut plan);
            }
            let gone = current.values().filter(|s| s.origin == *origin && !seen.contains(&s.id));
            plan.changes.extend(gone.filter_map(|source| stop(source, now_ms)));
        }
    }
    plan
}

fn plan_observed(
    current: &Sources,
    observed: &Observed,
    rules: &[RelabelRule],
    now_ms: i64,
    plan: &mut Plan,
) {
    let existing = current.get(&observed.id);
    let (labels, notes) = final_labels(&observed.labels, rules);
    plan.notes.extend(notes.into_iter().map(|note| (observed.id.clone(), note)));
    let labels = match labels {
        Some(labels) if observed.collect.is_yes() => labels,
        // Not collectable (any more), or a rule dropped it: what was collected drains.
        _ => {
            plan.changes.extend(existing.and_then(|source| stop(source, now_ms)));
            return;
        }
    };
    let path = observed.path.clone();
    if let Some(source) = existing
        && source.state == SourceState::Active
        && source.path == path
        && source.labels == labels
    {
        return; // Nothing changed: a level-triggered resync is a no-op.
    }
    plan.changes.push(Change::Put(LogSource {
        id: observed.id.clone(),
        path,
        labels,
        state: SourceState::Active,
        origin: observed.origin,
        first_seen_ms: existing.map_or(now_ms, |s| s.first_seen_ms),
        updated_ms: now_ms,
        drain: None,
    }));
}

/// An active source becomes a tombstone; a draining one stays as it is.
fn stop(source: &LogSource, now_ms: i64) -> Option<Change> {
    (source.state == SourceState::Active).then(|| {
        Change::Put(LogSource {
            state: SourceState::Draining,
            updated_ms: now_ms,
            drain: Some(Drain { since_ms: now_ms, last_size: None, last_growth_ms: now_ms }),
            ..source.clone()
        })
    })
}

/// Plans the tombstones' next step from the file sizes observed now (`None`:
/// the file is gone). A draining source whose size was not observed is left alone.
pub fn plan_drain(
    current: &Sources,
    sizes: &BTreeMap<SourceId, Option<u64>>,
    now_ms: i64,
    grace: Duration,
) -> Vec<Change> {
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    let mut changes = Vec::new();
    for source in current.values().filter(|s| s.state == SourceState::Draining) {
        let Some(size) = sizes.get(&source.id) else { continue };
        let drain = source.drain.unwrap_or(Drain {
            since_ms: source.updated_ms,
            last_size: None,
            last_growth_ms: source.updated_ms,
        });
        match size {
            // Nothing left to read.
            None => changes.push(Change::Delete(source.id.clone())),
            Some(size) if drain.last_size != Some(*size) => {
                // The first look only records the size; later differences are
                // new bytes, which restart the grace period.
                let last_growth_ms =
                    if drain.last_size.is_some() { now_ms } else { drain.last_growth_ms };
                changes.push(Change::Put(LogSource {
                    drain: Some(Drain { last_size: Some(*size), last_growth_ms, ..drain }),
                    updated_ms: now_ms,
                    ..source.clone()
                }));
            }
            Some(_) if now_ms.saturating_sub(drain.last_growth_ms) >= grace_ms => {
                changes.push(Change::Delete(source.id.clone()));
            }
            Some(_) => {}
        }
    }
    changes
}

/// Applies planned changes to an in-memory copy, as a store applies them.
pub fn apply(current: &mut Sources, changes: &[Change]) {
    for change in changes {
        match change {
            Change::Put(source) => {
                current.insert(source.id.clone(), source.clone());
            }
            Change::Delete(id) => {
                current.remove(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use steward_discovery::{Collect, Labels, Origin};

    use super::*;
    use crate::labels::{Action, AnchoredRegex};

    fn observed(id: &str, name: &str) -> Observed {
        let mut labels = Labels::new();
        labels.insert("container.name".into(), name.into());
        labels.insert("__meta_docker_container_name".into(), name.into());
        Observed {
            id: SourceId::docker(id),
            origin: Origin::Docker,
            path: PathBuf::from(format!("/logs/{id}.log")),
            labels,
            collect: Collect::Yes,
        }
    }

    /// Runs events through the planner and returns the resulting registry.
    fn check(events: &[(i64, Event)]) -> Sources {
        let mut sources = Sources::new();
        for (now, event) in events {
            let plan = plan_event(&sources, event, &[], *now);
            apply(&mut sources, &plan.changes);
        }
        sources
    }

    #[test]
    fn an_upsert_registers_an_active_source_without_meta_labels() {
        let sources = check(&[(10, Event::Upsert(observed("a", "web")))]);
        let a = &sources[&SourceId::docker("a")];
        assert_eq!(a.state, SourceState::Active);
        assert_eq!(a.labels.len(), 1);
        assert_eq!(a.labels["container.name"], "web");
        assert_eq!((a.first_seen_ms, a.updated_ms, a.drain), (10, 10, None));
    }

    #[test]
    fn the_same_upsert_twice_changes_nothing() {
        let sources = check(&[(10, Event::Upsert(observed("a", "web")))]);
        let plan = plan_event(&sources, &Event::Upsert(observed("a", "web")), &[], 20);
        assert_eq!(plan.changes, vec![]);
    }

    #[test]
    fn a_rename_updates_labels_and_keeps_first_seen() {
        let sources = check(&[
            (10, Event::Upsert(observed("a", "web"))),
            (20, Event::Upsert(observed("a", "api"))),
        ]);
        let a = &sources[&SourceId::docker("a")];
        assert_eq!(a.labels["container.name"], "api");
        assert_eq!((a.first_seen_ms, a.updated_ms), (10, 20));
    }

    #[test]
    fn remove_makes_a_tombstone_and_a_restart_revives_it() {
        let id = SourceId::docker("a");
        let sources = check(&[
            (10, Event::Upsert(observed("a", "web"))),
            (20, Event::Remove { id: id.clone() }),
        ]);
        assert_eq!(sources[&id].state, SourceState::Draining);
        assert_eq!(
            sources[&id].drain,
            Some(Drain { since_ms: 20, last_size: None, last_growth_ms: 20 })
        );
        let again = plan_event(&sources, &Event::Upsert(observed("a", "web")), &[], 30);
        assert!(
            matches!(&again.changes[..], [Change::Put(s)] if s.state == SourceState::Active && s.drain.is_none())
        );
        // Removing an unknown or already draining source is a no-op.
        assert_eq!(plan_event(&sources, &Event::Remove { id }, &[], 40).changes, vec![]);
    }

    #[test]
    fn a_resync_drains_what_its_origin_no_longer_reports_and_spares_other_origins() {
        let mut file = observed("f", "file");
        file.origin = Origin::LogDir;
        file.id = SourceId::file(std::path::Path::new("/logs/f.log"));
        let sources = check(&[
            (10, Event::Upsert(observed("a", "web"))),
            (10, Event::Upsert(observed("b", "db"))),
            (10, Event::Upsert(file.clone())),
            (20, Event::Resync { origin: Origin::Docker, sources: vec![observed("b", "db")] }),
        ]);
        assert_eq!(sources[&SourceId::docker("a")].state, SourceState::Draining);
        assert_eq!(sources[&SourceId::docker("b")].state, SourceState::Active);
        assert_eq!(sources[&file.id].state, SourceState::Active);
    }

    #[test]
    fn a_source_that_becomes_uncollectable_or_dropped_by_a_rule_drains() {
        let mut opted_out = observed("a", "web");
        opted_out.collect = Collect::No { reason: "steward.collect=false".into() };
        let sources = check(&[
            (10, Event::Upsert(observed("a", "web"))),
            (20, Event::Upsert(opted_out.clone())),
        ]);
        assert_eq!(sources[&SourceId::docker("a")].state, SourceState::Draining);
        // Never seen before and not collectable: not registered at all.
        assert!(check(&[(10, Event::Upsert(opted_out))]).is_empty());

        let drop_web = crate::labels::RelabelRule {
            source_labels: vec!["__meta_docker_container_name".into()],
            separator: ";".into(),
            regex: AnchoredRegex::new("web").unwrap(),
            target_label: None,
            replacement: "$1".into(),
            action: Action::Drop,
        };
        let plan =
            plan_event(&Sources::new(), &Event::Upsert(observed("a", "web")), &[drop_web], 10);
        assert_eq!(plan.changes, vec![]);
    }

    #[test]
    fn a_tombstone_leaves_after_its_file_is_quiet_for_the_grace_period() {
        let id = SourceId::docker("a");
        let grace = Duration::from_millis(30_000);
        let mut sources = check(&[
            (0, Event::Upsert(observed("a", "web"))),
            (1_000, Event::Remove { id: id.clone() }),
        ]);
        let sizes = |size| BTreeMap::from([(id.clone(), Some(size))]);
        let mut step = |now, size| {
            let changes = plan_drain(&sources, &sizes(size), now, grace);
            apply(&mut sources, &changes);
            changes
        };
        step(2_000, 100); // the first look records the size only
        step(20_000, 150); // new bytes: the grace period restarts at 20 s
        assert_eq!(step(49_999, 150), vec![], "quiet for 29.999 s: stays");
        assert_eq!(step(50_000, 150), vec![Change::Delete(id.clone())]);
    }

    #[test]
    fn a_tombstone_whose_file_is_gone_leaves_at_once_and_unobserved_ones_stay() {
        let id = SourceId::docker("a");
        let sources = check(&[
            (0, Event::Upsert(observed("a", "web"))),
            (1, Event::Remove { id: id.clone() }),
        ]);
        assert_eq!(
            plan_drain(&sources, &BTreeMap::from([(id.clone(), None)]), 2, Duration::from_secs(30)),
            vec![Change::Delete(id)]
        );
        assert_eq!(plan_drain(&sources, &BTreeMap::new(), 2, Duration::ZERO), vec![]);
    }
}
