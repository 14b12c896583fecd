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
# Only tests marked integration (the real parts: Redis, Docker engine, registry, moto server on a loaded
# 2-core host) are retried, once, on failure; tests/conftest.py marks them and ends the run with a
# "rerun: N" line naming them. A second failure fails the run; a unit test that fails is never rerun.
pytest "$@"
