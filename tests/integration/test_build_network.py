"""A build's RUN steps cannot reach the worker host's addresses unless ``build_network`` is "host".

A loopback TCP listener stands in for what a build must not reach (the instance metadata service,
the Redis on 127.0.0.1): with the default setting (and with "none") its ``RUN wget`` gets nothing
through and the listener sees no connection; with "host" the same build reaches it, which proves
the test would catch a build on the host network. Real Docker engine builds, no mocks.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import redis

from deploy_agent.adapters.docker_builder import BuildNetwork, DockerBuilder
from deploy_agent.settings import Settings
from deploy_agent.tasks.runtime import Runtime

pytestmark = pytest.mark.integration


class Listener:
    """A TCP server on 127.0.0.1 that counts connections and answers each with a tiny HTTP 200."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 8\r\n\r\nREACHED\n")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture(scope="module")
def docker_api() -> Iterator[docker.APIClient]:
    base_url = os.environ.get("DOCKER_HOST")
    if not base_url:
        pytest.fail("DOCKER_HOST is not set: source .sandbox/env (a Docker engine is required)")
    api = docker.APIClient(base_url=base_url, version="auto", timeout=300)
    yield api
    api.close()


@pytest.fixture(scope="module")
def base_image(docker_api: docker.APIClient) -> str:
    name = os.environ.get("DEPLOY_AGENT_BASE_IMAGE", "deploy-agent/busybox:1")
    try:
        docker_api.inspect_image(name)  # type: ignore[no-untyped-call]
    except docker.errors.ImageNotFound:
        pytest.fail(f"base image {name} is missing from the engine (see ENVIRONMENT.md: docker import)")
    return name


def build_reaching(
    api: docker.APIClient, network: BuildNetwork, base_image: str, port: int, tmp_path: Path
) -> list[str]:
    """Build an image whose RUN step tries the listener; return the build's output lines."""
    marker = uuid.uuid4().hex  # a fresh RUN line each time: the build cache must not answer for it
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image}\n"
        f"RUN echo {marker}; if wget -q -O - http://127.0.0.1:{port}/; "
        "then echo outcome=reached; else echo outcome=unreachable; fi\n"
    )
    lines: list[str] = []
    built = DockerBuilder(api, network=network).build(tmp_path, "Dockerfile", "", on_log=lines.append)
    api.remove_image(built.image_id, force=True)
    return [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in lines]  # stderr comes colour-coded


@pytest.mark.parametrize("network", ["default", "none"])
def test_a_build_cannot_reach_the_hosts_loopback(
    docker_api: docker.APIClient, base_image: str, listener: Listener, tmp_path: Path, network: BuildNetwork
) -> None:
    lines = build_reaching(docker_api, network, base_image, listener.port, tmp_path)
    assert "outcome=unreachable" in lines
    assert "outcome=reached" not in lines
    assert listener.connections == 0


def test_with_host_networking_the_same_build_reaches_it(
    docker_api: docker.APIClient, base_image: str, listener: Listener, tmp_path: Path
) -> None:
    """The control: on the host network the RUN step gets through (so the test above means something)."""
    lines = build_reaching(docker_api, "host", base_image, listener.port, tmp_path)
    assert "outcome=reached" in lines
    assert listener.connections >= 1


@pytest.mark.parametrize("network", ["default", "none", "host"])
def test_the_worker_builds_on_the_network_its_settings_name(network: BuildNetwork) -> None:
    """``Settings.build_network`` reaches the builder the worker's runtime makes."""
    runtime = Runtime(settings=Settings(build_network=network), redis=redis.Redis(port=1))
    assert runtime.docker.network == network


def test_the_default_setting_is_not_the_host_network() -> None:
    assert Settings().build_network == "default"
