#!/usr/bin/env bash
# Set up everything deploy-agent's sandbox and tests need on a bare Debian machine, idempotently:
# system packages, a Python virtualenv with the project, Redis, a Docker engine and a base image.
# Usage: source <(scripts/bootstrap.sh --print-env)   or   scripts/bootstrap.sh  (writes .sandbox/env)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${DEPLOY_AGENT_STATE_DIR:-$ROOT/.sandbox}"
VENV="${DEPLOY_AGENT_VENV:-$ROOT/.venv}"
mkdir -p "$STATE"
log() { printf '[bootstrap] %s\n' "$*" >&2; }

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
[ -x /bin/busybox ] || command -v busybox >/dev/null || need_apt+=(busybox-static)
command -v chromium >/dev/null || need_apt+=(chromium)  # renders the status page in tests/worker
{ command -v promtool && command -v prometheus; } >/dev/null || need_apt+=(prometheus)  # promtool + server (tests/ops)
# Compose validates docker-compose.yml (tests/ops): the v2 plugin when the engine has one, else Debian's v1.
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || need_apt+=(docker-compose)
engine_ok() { docker info >/dev/null 2>&1; }

# --- Docker engine: use the user's own when one answers, else our own ---------------------------
if [ -z "${DOCKER_HOST:-}" ] && [ -S "$STATE/docker.sock" ]; then export DOCKER_HOST="unix://$STATE/docker.sock"; fi
if ! command -v docker >/dev/null || ! engine_ok; then
  command -v dockerd >/dev/null || need_apt+=(docker.io)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then log "missing packages: ${need_apt[*]} (run as root or install them)"; exit 1; fi
  log "installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${need_apt[@]}" >&2
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
  if [ ! -f "$VENV/.installed" ] || [ "$ROOT/pyproject.toml" -nt "$VENV/.installed" ]; then
    log "installing the project and its test tools"
    "$VENV/bin/pip" install -q --upgrade pip >&2
    "$VENV/bin/pip" install -q -e "$ROOT[dev]" >&2
    touch "$VENV/.installed"
  fi
fi

cat >"$STATE/env" <<ENV
export DOCKER_HOST="${DOCKER_HOST:-}"
export DEPLOY_AGENT_BASE_IMAGE="$BASE_IMAGE"
export DEPLOY_AGENT_REDIS_PORT="$REDIS_PORT"
export PATH="$VENV/bin:\$PATH"
ENV
log "ready: $(docker version --format 'engine {{.Server.Version}}'), redis $(redis-cli -p "$REDIS_PORT" ping)"
