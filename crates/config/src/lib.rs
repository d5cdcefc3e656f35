//! OtelConfigBuilder: the collector's config, generated from the registry and
//! never edited by hand.
//!
//! - [`builder::generate_config`] is a pure function: (sources, pipeline
//!   settings) → [`builder::Rendered`] (typed config, YAML bytes, SHA-256).
//!   Same inputs, same bytes. Strings from containers are [`model::Untrusted`]:
//!   `$` is written `$$`, so the collector's `${…}` expansion never fires on
//!   them, and YAML quoting is the serialiser's job, never a template's.
//! - [`model`] is the typed config; [`settings`] the `collector:` part of
//!   `steward.yaml`, where metrics and traces are each two lines away.
//! - [`validate`] checks a config statically (references, pipelines, ports,
//!   endpoints) and with the collector binary itself (`otelcol validate`).
//! - [`diff`] shows what changes between two configs.
//!
//! This crate does no I/O but for [`validate::otelcol_validate`], which runs
//! the collector binary; it knows nothing of Docker, the registry's store or
//! HTTP.

pub mod builder;
pub mod diff;
pub mod model;
pub mod settings;
pub mod validate;

pub use builder::{BuildError, Rendered, Source, generate_config};
pub use settings::PipelineSettings;
