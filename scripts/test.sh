#!/usr/bin/env bash
# Runs every test of Steward against real parts: installs (or re-checks) the
# test bench, then runs the whole Rust workspace's test suite.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/testbed.sh"
# Compiled dependencies live in the machine-level cache, so a fresh clone (CI's)
# only rebuilds the workspace's own crates.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${STEWARD_CACHE_DIR:-/var/cache/steward-testbed}/cargo-target}"
# The target dir is shared by every checkout on the machine, so compiled
# code may come from another one: say where this checkout's test bench is.
export STEWARD_TESTBED="${STEWARD_TESTBED:-$ROOT/.testbed}"
cd "$ROOT"
cargo test --workspace --locked "$@"
