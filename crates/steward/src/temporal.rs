//! `workflow.engine: temporal` (being built).

use std::sync::Arc;

use steward_workflow::{Activities, ActivityPolicies, CycleSettings, Shutdown, Triggers};

use crate::settings::Settings;

pub async fn run(
    _settings: &Settings,
    _activities: Arc<Activities>,
    _triggers: Triggers,
    _policies: ActivityPolicies,
    _cycle: CycleSettings,
    _shutdown: Shutdown,
) -> anyhow::Result<()> {
    anyhow::bail!("workflow.engine: temporal is not available in this build yet")
}
