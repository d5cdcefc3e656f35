//! When a cycle runs: after discovery events, debounced, so a burst of
//! container starts gives one rollout; and every `period` as a safety net
//! that resyncs discovery in full.
//!
//! Nudges are coalescing: whoever changes the registry calls
//! [`Nudge::nudge`], which never blocks and never queues more than one.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::cycle::Trigger;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerSettings {
    /// A cycle starts once no nudge came for this long...
    pub debounce: Duration,
    /// ...or this long after the first nudge, whichever is first, so a
    /// steady trickle of events cannot hold a rollout back for ever.
    pub max_delay: Duration,
    /// The safety-net period.
    pub period: Duration,
}

impl Default for TriggerSettings {
    fn default() -> Self {
        TriggerSettings {
            debounce: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            period: Duration::from_secs(15),
        }
    }
}

/// The sending side: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct Nudge(mpsc::Sender<()>);

impl Nudge {
    pub fn nudge(&self) {
        // Full means a nudge is already pending: that one covers this.
        let _ = self.0.try_send(());
    }
}

/// The receiving side, owned by the engine's loop.
#[derive(Debug)]
pub struct Triggers {
    rx: mpsc::Receiver<()>,
    settings: TriggerSettings,
    next_period: Instant,
}

pub fn triggers(settings: TriggerSettings) -> (Nudge, Triggers) {
    let (tx, rx) = mpsc::channel(1);
    let next_period = Instant::now() + settings.period;
    (Nudge(tx), Triggers { rx, settings, next_period })
}

impl Triggers {
    /// Waits for the next reason to run a cycle; `None` once every [`Nudge`]
    /// is dropped (shutdown).
    pub async fn next(&mut self) -> Option<Trigger> {
        tokio::select! {
            nudge = self.rx.recv() => {
                nudge?;
                let first = Instant::now();
                let latest = first + self.settings.max_delay;
                loop {
                    let quiet = (Instant::now() + self.settings.debounce).min(latest);
                    tokio::select! {
                        more = self.rx.recv() => {
                            more?;
                            if Instant::now() >= latest {
                                break;
                            }
                        }
                        () = tokio::time::sleep_until(quiet) => break,
                    }
                }
                Some(Trigger::Event)
            }
            () = tokio::time::sleep_until(self.next_period) => {
                self.next_period = Instant::now() + self.settings.period;
                Some(Trigger::Period)
            }
        }
    }

    /// A full resync just ran (startup): the next period counts from now.
    pub fn reset_period(&mut self) {
        self.next_period = Instant::now() + self.settings.period;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> TriggerSettings {
        TriggerSettings {
            debounce: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            period: Duration::from_secs(15),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_gives_one_event_after_it_goes_quiet() {
        let (nudge, mut triggers) = triggers(settings());
        let start = Instant::now();
        let burst = tokio::spawn(async move {
            for _ in 0..50 {
                nudge.nudge();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            nudge
        });
        assert_eq!(triggers.next().await, Some(Trigger::Event));
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(690) && waited <= Duration::from_millis(720),
            "one cycle 200 ms after the last of 50 nudges, not 50 cycles: {waited:?}"
        );
        let _nudge = burst.await.unwrap();
        // Nothing pending: the next trigger is the period.
        assert_eq!(triggers.next().await, Some(Trigger::Period));
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_trickle_is_cut_at_max_delay() {
        let (nudge, mut triggers) = triggers(settings());
        let start = Instant::now();
        let trickle = tokio::spawn(async move {
            for _ in 0..100 {
                nudge.nudge();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        assert_eq!(triggers.next().await, Some(Trigger::Event));
        let waited = start.elapsed();
        assert!(waited <= Duration::from_millis(2_100), "capped by max_delay: {waited:?}");
        trickle.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn the_period_fires_without_events_and_dropping_the_nudge_ends() {
        let (nudge, mut triggers) = triggers(settings());
        let start = Instant::now();
        assert_eq!(triggers.next().await, Some(Trigger::Period));
        assert_eq!(start.elapsed(), Duration::from_secs(15));
        drop(nudge);
        assert_eq!(triggers.next().await, None);
    }
}
