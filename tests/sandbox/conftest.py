"""One sandbox per test session (real Docker engine, registry, moto server), reset between tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from ecs_sandbox import Sandbox

from .realism_helpers import playing

_ROOT = Path(__file__).resolve().parents[2]
APP = _ROOT / "examples" / "web"
ECR_REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web"


@pytest.fixture
def sandbox(session_sandbox: Sandbox) -> Iterator[Sandbox]:
    """The session's sandbox with DescribeServices consistent, reset before and after the test.

    These tests read the emulation's own transitions right after the write that caused them; ECS's
    eventual consistency is tested on its own (test_consistency.py) and faced by the worker in
    tests/integration, where it stays on.
    """
    consistent = replace(session_sandbox.scheduler.realism, consistency_window_seconds=0.0)
    # tests/integration runs first and never resets: its clusters and services must not show here
    session_sandbox.reset()
    with playing(session_sandbox, consistent):
        yield session_sandbox
    session_sandbox.reset()


@pytest.fixture(scope="session")
def web_image(session_sandbox: Sandbox, docker_client: docker.DockerClient) -> Callable[[str, str], str]:
    """Build examples/web with VERSION and MODE, push it, and return its ECR-style URI."""
    built: dict[tuple[str, str], str] = {}

    def build(version: str, mode: str = "ok") -> str:
        if (version, mode) not in built:
            tag = f"{version}-{mode}"
            local = f"{session_sandbox.registry_host}/web"
            for event in docker_client.api.build(
                path=str(APP),
                tag=f"{local}:{tag}",
                buildargs={"VERSION": version, "MODE": mode},
                network_mode="host",
                decode=True,
            ):
                assert "error" not in event, event
            for event in docker_client.api.push(local, tag=tag, stream=True, decode=True):
                assert "error" not in event, event
            built[(version, mode)] = f"{ECR_REPO}:{tag}"
        return built[(version, mode)]

    return build
