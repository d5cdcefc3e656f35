//! The loop that never stops (seed: the Temporal workflow loop, "the brain"):
//! watch, register, build, validate, canary, push, verify, and on failure
//! roll back and alert, on every debounced discovery event and every period.
//!
//! - [`activities`]: the seed's activities as plain async functions with
//!   typed inputs and outputs, and their timeouts and retry policies.
//! - [`cycle`]: one cycle as a sequence of activity calls, deterministic given
//!   their results, written once for both engines; [`cycle::plan_rollout`]
//!   is the pure reconcile decision.
//! - [`trigger`]: debounced events and the safety-net period.
//! - [`embedded`]: the default engine, in-process, with a durable history
//!   in the store and crash resume by replay.
//! - [`temporal`]: the same loop as a Temporal workflow, Steward as its worker.
//! - [`retry`]: timeouts, bounded retries with backoff, retryable or not.

pub mod activities;
pub mod cycle;
pub mod embedded;
pub mod retry;
pub mod temporal;
pub mod trigger;

pub use activities::{
    Activities, Activity, ActivityPolicies, ActivitySettings, Dispatch, Judged, Observer,
};
pub use cycle::{CycleOutcome, CycleSettings, Stop, Trigger, reconcile_cycle};
pub use embedded::{CycleReport, EmbeddedEngine, Shutdown};
pub use retry::{ActivityError, ActivityOptions, RetryPolicy};
pub use trigger::{Nudge, TriggerSettings, Triggers, triggers};
