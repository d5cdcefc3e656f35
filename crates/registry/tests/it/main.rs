//! Integration tests of the registry against real parts: SQLite, PostgreSQL
//! and the Docker Engine.
mod bench;
mod docker;
mod repairs;
mod store;
mod versions;
mod workflow;
