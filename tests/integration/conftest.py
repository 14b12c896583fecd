"""The real parts for end-to-end tests: the sandbox in this process, real worker subprocesses.

The publisher side (this process) and the workers share Redis databases 13-15, flushed per session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import redis

REDIS_URL = "redis://127.0.0.1:" + os.environ.get("DEPLOY_AGENT_REDIS_PORT", "6379")
DBS = {"broker_db": 13, "result_db": 14, "state_db": 15}
APPS = Path(__file__).resolve().parents[2] / "examples"
ACCOUNT = "123456789012"
ECR_HOST = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"

# The publisher's settings must be in place before deploy_agent.worker.app is imported.
os.environ.update(
    DEPLOY_AGENT_BROKER_URL=f"{REDIS_URL}/{DBS['broker_db']}",
    DEPLOY_AGENT_RESULT_BACKEND=f"{REDIS_URL}/{DBS['result_db']}",
    DEPLOY_AGENT_STATE_REDIS_URL=f"{REDIS_URL}/{DBS['state_db']}",
)

from ecs_sandbox.environment import Sandbox  # noqa: E402
from sandbox_harness.stack import StackConfig, WorkerProcess  # noqa: E402


@pytest.fixture(scope="session")
def sandbox(session_sandbox: Sandbox) -> Sandbox:
    """The session's sandbox, not reset: each integration test provisions its own service."""
    for db in DBS.values():
        redis.Redis.from_url(f"{REDIS_URL}/{db}").flushdb()
    return session_sandbox


@pytest.fixture(scope="session")
def stack_config(sandbox: Sandbox) -> StackConfig:
    return StackConfig(
        aws_endpoint_url=sandbox.aws_endpoint_url,
        registry_host=sandbox.registry_host,
        build_root=APPS,
        redis_url=REDIS_URL,
        poll_interval_seconds=0.1,
        extra_env={"AWS_MAX_ATTEMPTS": "2", "DEPLOY_AGENT_HEALTH_INTERVAL_DEFAULT_SECONDS": "0.1"},
        **DBS,
    )


@pytest.fixture(scope="session")
def worker(stack_config: StackConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = WorkerProcess(stack_config, log, concurrency=2).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def docker_api() -> docker.APIClient:
    return docker.APIClient(
        base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"), version="auto"
    )


@pytest.fixture(scope="session")
def push_app(sandbox: Sandbox, docker_api: docker.APIClient) -> Any:
    """Build the test app with a version and mode, push it; return its ECR-style URI (by tag)."""

    def push(version: str, mode: str = "ok", repository: str = "web") -> str:
        tag = f"{version}-{mode}"
        local = f"{sandbox.registry_host}/{repository}"
        for chunk in docker_api.build(
            path=str(APPS / "web"),
            tag=f"{local}:{tag}",
            buildargs={"VERSION": version, "MODE": mode},
            network_mode="host",
            decode=True,
            rm=True,
        ):
            assert "error" not in chunk, chunk
        for chunk in docker_api.push(local, tag=tag, stream=True, decode=True):
            assert "error" not in chunk, chunk
        return f"{ECR_HOST}/{repository}:{tag}"

    return push


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
