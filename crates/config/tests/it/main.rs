//! Integration tests of the config builder: golden snapshots, hostile input,
//! and the real collector binary's verdict.
mod build;
mod e2e;
mod hostile;
