#!/usr/bin/env bash
# One command per benchmark, on a fresh machine too: scripts/bench.sh compare|concurrency|build-push [ARGS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap.sh
# shellcheck disable=SC1091
source .sandbox/env
name="${1:-}"; shift || true
case "$name" in
  compare) bash bench/setup_peer.sh && exec python bench/compare_ecs_deploy.py "$@" ;;
  concurrency) exec python bench/concurrency.py "$@" ;;
  build-push) exec python bench/build_push.py "$@" ;;
  *) echo "usage: scripts/bench.sh compare|concurrency|build-push [ARGS]" >&2; exit 2 ;;
esac
