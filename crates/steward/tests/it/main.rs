//! Integration tests of the `steward` binary: its exit codes, and its
//! commands against real parts (the Docker Engine, real files, SQLite).
mod agent;
mod api;
mod cli;
mod config;
mod deploy;
mod run;
mod sources;
mod status;
mod ui;
