#!/bin/sh
# Create .bench-peer, a virtualenv of its own holding the peer tool ecs-deploy (1.17.x), once.
# Idempotent: an existing venv whose `ecs --version` answers 1.17.x is left as it is.
set -eu
cd "$(dirname "$0")/.."
VERSION="${ECS_DEPLOY_VERSION:-1.17.0}"
if .bench-peer/bin/ecs --version 2>/dev/null | grep -q "version 1\.17\."; then
    .bench-peer/bin/ecs --version
    exit 0
fi
python3 -m venv .bench-peer
.bench-peer/bin/pip install --quiet --disable-pip-version-check "ecs-deploy==${VERSION}"
.bench-peer/bin/ecs --version
