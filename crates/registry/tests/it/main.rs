//! Integration tests of the registry against real parts: SQLite, PostgreSQL
//! and the Docker Engine.
mod docker;
mod store;
mod versions;
