"""The Docker side of a task: pull the image, run its containers on the host network, watch them."""

from __future__ import annotations

import random
import re
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

LABEL = "deploy-agent.sandbox"
_ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/")
_EXITED = re.compile(r"Exited \((-?\d+)\)")


class ImagePullError(Exception):
    """The image could not be pulled; the message is what ECS would report after the colon."""


def map_image(image: str, registry_host: str) -> str:
    """Return the image reference with an ECR registry host replaced by the local registry's."""
    return _ECR_HOST.sub(f"{registry_host}/", image, count=1)


@dataclass(frozen=True)
class ContainerState:
    """What Docker says about one container: running or not, exit code, healthcheck verdict."""

    running: bool
    exit_code: int | None
    health: str  # "none", "starting", "healthy" or "unhealthy"


def _state_of(summary: dict[str, Any]) -> ContainerState:
    status = str(summary.get("Status", ""))
    exited = _EXITED.search(status)
    health = "none"
    for word in ("unhealthy", "healthy", "health: starting"):
        if f"({word})" in status:
            health = word.removeprefix("health: ")
            break
    return ContainerState(
        running=summary.get("State") in ("running", "restarting"),
        exit_code=int(exited.group(1)) if exited else None,
        health=health,
    )


def _ephemeral_range() -> tuple[int, int]:
    """Return the kernel's range for the local ports of outgoing connections."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def task_port_range() -> range:
    """Return the ports task containers listen on: below the kernel's ephemeral range.

    A port bound to 0 comes from the ephemeral range, which every outgoing connection (load, health
    checks, boto3) also draws from; on Linux a listener cannot bind a port an outgoing connection holds,
    even with SO_REUSEADDR, so a task handed such a port would exit at start under load.
    """
    low, high = _ephemeral_range()
    if low > 11024:
        return range(low - 10000, low)
    return range(high + 1, min(65536, high + 10001))


class PortAllocator:
    """Hands out free loopback ports outside the ephemeral range, never one twice while it is held."""

    def __init__(self, ports: range | None = None) -> None:
        self._ports = ports if ports is not None else task_port_range()
        self._held: set[int] = set()
        self._lock = threading.Lock()
        self._next = random.randrange(len(self._ports))  # noqa: S311 (sandboxes side by side start apart)

    def take(self) -> int:
        """Return a loopback port that nothing listens on and that this allocator has not handed out."""
        with self._lock:
            for _ in range(len(self._ports)):
                port = self._ports[self._next]
                self._next = (self._next + 1) % len(self._ports)
                if port in self._held or not _bindable(port):
                    continue
                self._held.add(port)
                return port
        raise RuntimeError(f"no free task port in {self._ports.start}-{self._ports.stop - 1}")

    def release(self, port: int) -> None:
        """Make a port available again."""
        with self._lock:
            self._held.discard(port)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class ContainerRunner:
    """Runs task containers for one scheduler; every container carries its instance label."""

    def __init__(self, client: docker.DockerClient, registry_host: str) -> None:
        self.client = client
        self.registry_host = registry_host
        self.instance = uuid.uuid4().hex[:12]

    def ensure_image(self, image: str) -> str:
        """Return the local reference of the image, pulled from its registry; raise ImagePullError."""
        ref = map_image(image, self.registry_host)
        if "@sha256:" in ref or ref == image:
            try:
                self.client.images.get(ref)
                return ref  # a digest is immutable; an image that is not ECR's may be a local build
            except docker.errors.ImageNotFound:
                pass
        try:
            self.client.images.pull(ref)
        except docker.errors.APIError as error:
            raise ImagePullError(
                f"pull image manifest has been retried 1 time(s): failed to resolve ref {image}: "
                f"{error.explanation or error}"
            ) from error
        return ref

    def run(
        self,
        image: str,
        name: str,
        environment: dict[str, str],
        labels: dict[str, str],
        command: list[str] | None = None,
        healthcheck: dict[str, Any] | None = None,
    ) -> str:
        """Start a detached host-network container and return its id."""
        container = self.client.containers.run(
            image,
            command=command,
            name=name,
            detach=True,
            network_mode="host",
            environment=environment,
            labels={**labels, LABEL: self.instance},
            healthcheck=healthcheck,
        )
        return str(container.id)

    def states(self) -> dict[str, ContainerState]:
        """Return the state of every container of this runner, by container id."""
        summaries = self.client.api.containers(all=True, filters={"label": f"{LABEL}={self.instance}"})
        # A container listed between its create and its start is "created": not started yet, not exited
        # (a loaded host widens that window; counting it as exited failed healthy tasks at start).
        return {str(s["Id"]): _state_of(s) for s in summaries if s.get("State") != "created"}

    def remove(self, container_id: str) -> None:
        """Kill and remove one container (gone already is fine)."""
        try:
            self.client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as error:
            if "already in progress" not in str(error):
                raise

    def remove_all(self) -> None:
        """Kill and remove every container this runner started."""
        for summary in self.client.api.containers(all=True, filters={"label": f"{LABEL}={self.instance}"}):
            self.remove(str(summary["Id"]))
