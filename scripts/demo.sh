#!/usr/bin/env bash
# The main job on the embedded default: installs (or re-checks) the test
# bench, builds Steward, then runs `steward run` (SQLite, embedded workflow
# engine) on one Docker host with the real collector and VictoriaLogs, shows a
# new container's lines arriving with no manual step, and prints where to see
# them. Ctrl-C stops it; `--once` exits after the check.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/testbed.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${STEWARD_CACHE_DIR:-/var/cache/steward-testbed}/cargo-target}"
# The target dir is shared by every checkout on the machine, so compiled
# code may come from another one: say where this checkout's test bench is.
export STEWARD_TESTBED="${STEWARD_TESTBED:-$ROOT/.testbed}"
cd "$ROOT"
cargo build --locked --quiet -p steward -p steward-testbed --bins
exec "$CARGO_TARGET_DIR/debug/demo" "$@"
