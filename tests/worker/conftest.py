"""The integration parts the worker's HTTP tests share with tests/integration: sandbox and test-app images."""

from __future__ import annotations

from tests.integration.conftest import docker_api, push_app, sandbox

__all__ = ["docker_api", "push_app", "sandbox"]
