"""Real parts for adapter tests: a moto server, a docker registry, the Docker engine.

A missing engine or registry binary makes the tests fail, never skip: these are the parts the
adapters exist to talk to.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import docker
import pytest
import requests

from deploy_agent.adapters.aws import AwsClients
from ecs_sandbox import Sandbox
from tests.support import free_port, wait_until

REGION = "us-east-1"
ACCOUNT = "123456789012"


def wait_for_http(url: str, timeout: float = 10.0) -> None:
    """Return once ``url`` answers at all (any status)."""
    wait_until(
        lambda: requests.get(url, timeout=1).status_code,
        what=f"{url} to answer",
        timeout=timeout,
        ignoring=(requests.ConnectionError,),
    )


@pytest.fixture(scope="session")
def moto_server(session_sandbox: Sandbox) -> str:
    """The session's moto server (the sandbox's: moto's backends are process-wide, so there is one)."""
    return session_sandbox.aws_endpoint_url


@pytest.fixture
def moto(session_sandbox: Sandbox) -> Iterator[str]:
    """Give each test empty AWS backends; return the moto server URL.

    DescribeServices answers consistently here: adapter tests read back what they just wrote, one
    call each; ECS's eventual consistency is what the strategies and the worker must ride out
    (tests/strategies, tests/integration), not a single adapter call.
    """
    session_sandbox.reset()
    consistent = replace(session_sandbox.scheduler.realism, consistency_window_seconds=0.0)
    saved = session_sandbox.scheduler.realism
    session_sandbox.use_profile(consistent)
    yield session_sandbox.aws_endpoint_url
    session_sandbox.use_profile(saved)


@pytest.fixture
def aws(moto: str) -> AwsClients:
    """AwsClients reaching moto through AWS_ENDPOINT_URL, as a worker would."""
    return AwsClients(region=REGION)


@dataclass(frozen=True)
class Registry:
    host: str  # "127.0.0.1:PORT"

    @property
    def url(self) -> str:
        return f"http://{self.host}"


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Run the CNCF distribution registry on a free loopback port with temporary storage."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is not installed (apt-get install -y docker-registry)")
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = (root / "registry.log").open("wb")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v2/")
        yield Registry(host=f"127.0.0.1:{port}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="session")
def docker_api() -> Iterator[docker.APIClient]:
    """A docker-py APIClient on DOCKER_HOST with a push-friendly timeout."""
    base_url = os.environ.get("DOCKER_HOST")
    if not base_url:
        pytest.fail("DOCKER_HOST is not set: source .sandbox/env (a Docker engine is required)")
    api = docker.APIClient(base_url=base_url, version="auto", timeout=300)
    try:
        api.ping()
    except Exception as exc:
        pytest.fail(f"the Docker engine at {base_url} does not answer: {exc}")
    yield api
    api.close()


@pytest.fixture(scope="session")
def base_image(docker_api: docker.APIClient) -> str:
    """The local base image the test apps build FROM (no pulls are possible here)."""
    name = os.environ.get("DEPLOY_AGENT_BASE_IMAGE", "deploy-agent/busybox:1")
    try:
        docker_api.inspect_image(name)  # type: ignore[no-untyped-call]
    except docker.errors.ImageNotFound:
        pytest.fail(f"base image {name} is missing from the engine (see ENVIRONMENT.md: docker import)")
    return name


@pytest.fixture(scope="session")
def web_app_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "examples" / "web"
