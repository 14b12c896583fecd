#!/usr/bin/env bash
# The main job on the local sandbox: set up what is missing, then deploy two releases through a real
# worker (one succeeds, one is rolled back) and follow each to its end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap.sh --for demo  # what the demo needs, not the test tools
# shellcheck disable=SC1091
source .sandbox/env
exec python -m sandbox_harness.demo "$@"
