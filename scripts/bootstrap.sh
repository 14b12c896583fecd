#!/usr/bin/env bash
# Set up what deploy-agent's sandbox needs on a bare Debian machine, idempotently: system packages, a
# Python virtualenv with the project, Redis, a Docker engine and a base image; writes .sandbox/env.
# Usage: scripts/bootstrap.sh [--for tests|demo]
#   --for tests (the default): everything the test suite needs, the project with its [dev] extra
#     (test tools, linters) and the tools tests/ops and tests/worker use (chromium, prometheus, compose);
#   --for demo: only what scripts/demo.sh needs, the project with its [sandbox] extra.
# The terminal gets one line per step; apt's output goes to .sandbox/apt.log and pip's to .sandbox/pip.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${DEPLOY_AGENT_STATE_DIR:-$ROOT/.sandbox}"
VENV="${DEPLOY_AGENT_VENV:-$ROOT/.venv}"
mkdir -p "$STATE"
log() { printf '[bootstrap] %s\n' "$*" >&2; }

FOR=tests
while [ "$#" -gt 0 ]; do
  case "$1" in
    --for) FOR="${2:-}"; shift 2 ;;
    --for=*) FOR="${1#--for=}"; shift ;;
    *) log "unknown argument: $1 (usage: scripts/bootstrap.sh [--for tests|demo])"; exit 2 ;;
  esac
done
case "$FOR" in
  tests) EXTRA=dev ;;
  demo) EXTRA=sandbox ;;
  *) log "--for takes tests or demo, not '$FOR'"; exit 2 ;;
esac

# Run a noisy command with its output in a log file; on failure show the log's end and stop.
quietly() {
  local logfile="$1"; shift
  if ! "$@" >>"$logfile" 2>&1; then
    log "failed: $* (last lines of $logfile:)"; tail -20 "$logfile" >&2; exit 1
  fi
}

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
[ -x /bin/busybox ] || command -v busybox >/dev/null || need_apt+=(busybox-static)
if [ "$FOR" = tests ]; then
  command -v chromium >/dev/null || need_apt+=(chromium)  # renders the status page in tests/worker
  # Sentinels for the failover test (tests/integration): redis-sentinel, else redis-server --sentinel.
  command -v redis-sentinel >/dev/null || grep -q -- --sentinel <<<"$(redis-server --help 2>&1 || true)" \
    || need_apt+=(redis-sentinel)
  { command -v promtool && command -v prometheus; } >/dev/null || need_apt+=(prometheus)  # promtool + server (tests/ops)
  # Compose validates docker-compose.yml (tests/ops): the v2 plugin when the engine has one, else Debian's v1.
  docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || need_apt+=(docker-compose)
fi
engine_ok() { docker info >/dev/null 2>&1; }

# --- Docker engine: use the user's own when one answers, else our own ---------------------------
if [ -z "${DOCKER_HOST:-}" ] && [ -S "$STATE/docker.sock" ]; then export DOCKER_HOST="unix://$STATE/docker.sock"; fi
if ! command -v docker >/dev/null || ! engine_ok; then
  command -v dockerd >/dev/null || need_apt+=(docker.io)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then log "missing packages: ${need_apt[*]} (run as root or install them)"; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  log "updating apt's package lists (output: $STATE/apt.log)"
  quietly "$STATE/apt.log" apt-get update
  log "installing ${need_apt[*]} (output: $STATE/apt.log)"
  quietly "$STATE/apt.log" apt-get install -y "${need_apt[@]}"
fi

if ! engine_ok; then
  export DOCKER_HOST="unix://$STATE/docker.sock"
  if ! engine_ok; then
    log "starting dockerd (no bridge, no iptables; containers use the host network)"
    mkdir -p "$STATE/docker-data" "$STATE/docker-exec"
    # Never without --bridge=none: this machine may only talk to 127.0.0.0/8.
    nohup dockerd --bridge=none --iptables=false --ip-masq=false --ip-forward=false \
      --data-root "$STATE/docker-data" --exec-root "$STATE/docker-exec" \
      -H "$DOCKER_HOST" --pidfile "$STATE/dockerd.pid" >"$STATE/dockerd.log" 2>&1 &
    for _ in $(seq 1 120); do engine_ok && break; sleep 0.5; done
    engine_ok || { log "dockerd did not start; see $STATE/dockerd.log"; tail -20 "$STATE/dockerd.log" >&2; exit 1; }
  fi
fi

# --- Redis: reuse one that answers, else start our own -------------------------------------------
REDIS_PORT="${DEPLOY_AGENT_REDIS_PORT:-6379}"
if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  log "starting redis-server on 127.0.0.1:$REDIS_PORT"
  mkdir -p "$STATE/redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$STATE/redis" --logfile "$STATE/redis.log" --maxmemory-policy noeviction
  for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

# --- A base image, made locally (nothing can be pulled from Docker Hub here) ---------------------
BASE_IMAGE="${DEPLOY_AGENT_BASE_IMAGE:-deploy-agent/busybox:1}"
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "creating base image $BASE_IMAGE from the static busybox"
  tmp="$(mktemp -d)"; mkdir -p "$tmp/bin" "$tmp/tmp" "$tmp/www"
  cp "$(command -v busybox || echo /bin/busybox)" "$tmp/bin/busybox"
  for app in sh ls cat echo wget httpd sleep env mkdir printf test true false kill; do ln -s busybox "$tmp/bin/$app"; done
  tar -C "$tmp" -c . | docker import -c 'ENV PATH=/bin' - "$BASE_IMAGE" >/dev/null
  rm -rf "$tmp"
fi

# --- Python environment ---------------------------------------------------------------------------
if [ "${DEPLOY_AGENT_SKIP_PIP:-0}" != 1 ]; then
  if [ ! -x "$VENV/bin/python" ]; then log "creating $VENV"; python3 -m venv "$VENV"; fi
  # .installed holds the extra the venv has; [dev] includes [sandbox], so a demo venv is upgraded when
  # the tests run and a test venv serves the demo. (An empty marker predates the modes: it meant dev.)
  installed="$(cat "$VENV/.installed" 2>/dev/null || echo none)"
  [ -n "$installed" ] || installed=dev
  if [ "$installed" = none ] || [ "$ROOT/pyproject.toml" -nt "$VENV/.installed" ] \
    || { [ "$EXTRA" = dev ] && [ "$installed" != dev ]; }; then
    [ "$installed" = dev ] && EXTRA=dev  # never take the test tools away from a venv that had them
    log "installing the project with its [$EXTRA] extra into $VENV (output: $STATE/pip.log)"
    quietly "$STATE/pip.log" "$VENV/bin/pip" install --upgrade pip
    quietly "$STATE/pip.log" "$VENV/bin/pip" install -e "$ROOT[$EXTRA]"
    printf '%s\n' "$EXTRA" >"$VENV/.installed"
  fi
fi

cat >"$STATE/env" <<ENV
export DOCKER_HOST="${DOCKER_HOST:-}"
export DEPLOY_AGENT_BASE_IMAGE="$BASE_IMAGE"
export DEPLOY_AGENT_REDIS_PORT="$REDIS_PORT"
export PATH="$VENV/bin:\$PATH"
ENV
log "ready: $(docker version --format 'engine {{.Server.Version}}'), redis $(redis-cli -p "$REDIS_PORT" ping)"
