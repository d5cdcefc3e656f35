//! Integration tests of the test bench against real parts: one binary, one
//! module per area, so the suite links once.
mod collector;
mod demo;
mod first_proof;
mod script;
mod smoke;
