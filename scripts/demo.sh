#!/usr/bin/env bash
# The main job on the embedded default, for now: installs (or re-checks) the
# test bench, then runs the first-proof pipeline (a container's stdout →
# otelcol-steward → VictoriaLogs) and prints where to look. Ctrl-C stops it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/testbed.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${STEWARD_CACHE_DIR:-/var/cache/steward-testbed}/cargo-target}"
cd "$ROOT"
exec cargo run --locked --quiet -p steward-testbed --bin demo -- "$@"
