//! `workflow.engine: temporal`: the settings turned into the engine's, and
//! the engine run (see `steward_workflow::temporal`).

use std::sync::Arc;
use std::time::Duration;

use steward_workflow::temporal::TemporalSettings;
use steward_workflow::{Activities, ActivityPolicies, CycleSettings, Shutdown, Triggers};

use crate::settings::Settings;

pub async fn run(
    settings: &Settings,
    activities: Arc<Activities>,
    triggers: Triggers,
    policies: ActivityPolicies,
    cycle: CycleSettings,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let t = &settings.workflow.temporal;
    let mut engine = TemporalSettings::for_node(&settings.node(), &t.address, &t.namespace);
    if let Some(queue) = &t.task_queue {
        engine.task_queue = queue.clone();
    }
    engine.cycles_per_run = t.cycles_per_run;
    engine.period = Duration::from_secs(settings.workflow.period_secs);
    steward_workflow::temporal::run(engine, activities, triggers, policies, cycle, shutdown)
        .await
        .map_err(anyhow::Error::new)
}
