"""Session-wide real parts: the Docker engine and ONE sandbox (moto server, scheduler, balancer, registry).

There is one sandbox per test session because moto's backends are process-wide: two moto servers
in one process would share (and reset) the same state under each other's scheduler. Define no other
session sandbox in another conftest.

Docker and the sandbox (hence moto) are imported inside the fixtures, never here: unit tests of the
core and the models run without them (tests/test_unit_imports.py holds that). tests/real_parts.py
checks that every test needing them is marked integration, and reruns only those.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import docker

    from ecs_sandbox import Sandbox

pytest_plugins = ("tests.real_parts", "tests.thread_safe_ast", "tests.quiet_result_gc", "pytester")

#: sandbox seconds per AWS second in tests: a 5-minute ECS deployment runs in 3 s
TEST_TIME_SCALE = 0.01


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    import docker  # here, not at the top: see the module docstring

    client = docker.from_env()
    client.ping()  # no engine: the suite fails here, it does not skip
    return client


@pytest.fixture(scope="session")
def session_sandbox(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Sandbox]:
    """Start the sandbox once and point boto3 (this process and its children) at it."""
    from ecs_sandbox import Sandbox  # here, not at the top: see the module docstring
    from ecs_sandbox.realism import REALISTIC

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # The realism profile (real ECS timelines, eventual consistency, target health as configured,
    # AWS's rules), time-scaled so a test's AWS minutes take seconds. A test that needs the idealised
    # ECS plays it with tests/sandbox/realism_helpers.playing and says why.
    box = Sandbox.start(
        tmp_path_factory.mktemp("sandbox"),
        registry_port=0,
        docker_client=docker_client,
        profile=REALISTIC,
        time_scale=float(os.environ.get("DEPLOY_AGENT_TEST_TIME_SCALE", TEST_TIME_SCALE)),
    )
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("AWS_ENDPOINT_URL_") or name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
                patch.delenv(name)
        patch.setenv("AWS_ENDPOINT_URL", box.aws_endpoint_url)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.setenv("AWS_MAX_ATTEMPTS", "1")
        yield box
    box.stop()
