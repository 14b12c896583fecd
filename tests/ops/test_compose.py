"""docker-compose.yml: valid for Compose, scalable workers, a healthy Redis first, a graceful stop."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.ops.tools import COMPOSE_FILE, PROMETHEUS_DIR, require_tool

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def compose_command() -> list[str]:
    """Return the Compose CLI: the docker CLI's v2 plugin when it has one, else docker-compose (v1 or v2)."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode == 0
    ):
        return [docker, "compose"]
    return [require_tool("docker-compose")]


def seconds(duration: str) -> float:
    """Return a Compose/Go duration (``60s``, ``1m0s``, ``1m30s``) in seconds."""
    assert re.fullmatch(rf"(?:{_DURATION.pattern})+", duration), f"not a duration: {duration!r}"
    return sum(float(n) * _SECONDS[unit] for n, unit in _DURATION.findall(duration))


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The file as Compose itself resolves it (`compose config`), which fails on an invalid file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DOCKER_GID", "GF_"))}
    run = subprocess.run(
        [*compose_command(), "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=COMPOSE_FILE.parent,
    )
    assert run.returncode == 0, run.stderr
    loaded: dict[str, Any] = yaml.safe_load(run.stdout)
    return loaded


class TestCompose:
    def test_declares_the_five_services(self, resolved: dict[str, Any]) -> None:
        """Compose validates the file and finds redis, worker, prometheus, grafana and flower."""
        assert set(resolved["services"]) == {"redis", "worker", "prometheus", "grafana", "flower"}

    def test_redis_is_health_checked_durable_and_never_evicts(self, resolved: dict[str, Any]) -> None:
        """Redis has a redis-cli ping healthcheck, an append-only file and the noeviction policy."""
        redis = resolved["services"]["redis"]
        assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
        command = " ".join(redis["command"])
        assert "--maxmemory-policy noeviction" in command
        assert "--appendonly yes" in command

    def test_worker_can_be_scaled(self, resolved: dict[str, Any]) -> None:
        """The worker has no container_name and publishes no host port, so --scale worker=N works."""
        worker = resolved["services"]["worker"]
        assert "container_name" not in worker
        assert "ports" not in worker
        assert [str(port) for port in worker["expose"]] == ["9100"]

    def test_worker_stops_gracefully(self, resolved: dict[str, Any]) -> None:
        """SIGTERM (warm shutdown) with a grace period of at least 60 s, above the 30 s soft shutdown."""
        worker = resolved["services"]["worker"]
        assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
        assert seconds(worker["stop_grace_period"]) >= 60

    def test_worker_waits_for_a_healthy_redis_and_uses_it(self, resolved: dict[str, Any]) -> None:
        """The worker starts after Redis is healthy and its broker, results and state are on that Redis."""
        worker = resolved["services"]["worker"]
        assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
        env = worker["environment"]
        assert env["DEPLOY_AGENT_BROKER_URL"].startswith("redis://redis:6379/")
        assert env["DEPLOY_AGENT_RESULT_BACKEND"].startswith("redis://redis:6379/")
        assert env["DEPLOY_AGENT_STATE_REDIS_URL"].startswith("redis://redis:6379/")
        assert env["DEPLOY_AGENT_METRICS_HOST"] == "0.0.0.0"

    def test_prometheus_scrapes_the_worker_service_by_dns(self, resolved: dict[str, Any]) -> None:
        """prometheus.yml finds the worker replicas by the compose service name on the exposed port."""
        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        job = next(j for j in config["scrape_configs"] if j["job_name"] == "deploy-agent")
        assert job["dns_sd_configs"] == [
            {"names": ["worker"], "type": "A", "port": 9100, "refresh_interval": "15s"}
        ]
        assert "worker" in resolved["services"]
        volumes = resolved["services"]["prometheus"]["volumes"]
        assert any(
            str(v.get("source", v) if isinstance(v, dict) else v).startswith(str(PROMETHEUS_DIR))
            for v in volumes
        )
