#!/usr/bin/env bash
# The test command: set up everything the tests need on this machine, then lint, type-check and test.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/core -k rollout).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap.sh
# shellcheck disable=SC1091
source .sandbox/env
ruff check src tests
ruff format --check src tests
mypy
# Tests that drive real containers on a loaded 2-core host are retried once on failure (and reported
# as rerun): a second failure fails the run.
pytest --reruns 1 --reruns-delay 2 "$@"
