//! Integration tests of the test bench against real parts.
mod first_proof;
mod smoke;
