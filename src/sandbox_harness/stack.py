"""Real worker processes wired to a running sandbox: what the demo and the integration tests share."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any


@dataclass
class StackConfig:
    """Where a worker finds Redis, the emulated AWS and the registry, and how fast it polls.

    ``redis_url`` is a full URL without a database (``rediss://:PASSWORD@127.0.0.1:PORT`` works:
    ``LocalRedis.url``); the database numbers are appended to it. A Redis Sentinel list
    (``sentinel://H:P;sentinel://H2:P2``: ``RedisSentinelGroup.url()``) gets the database on every
    entry and ``sentinel_master`` names the primary the sentinels watch.
    """

    aws_endpoint_url: str
    registry_host: str
    build_root: Path
    redis_url: str = "redis://127.0.0.1:6379"
    broker_db: int = 0
    result_db: int = 1
    state_db: int = 2
    poll_interval_seconds: float = 1.0
    region: str = "us-east-1"
    extra_env: dict[str, str] = field(default_factory=dict)
    #: CA certificate to verify a ``rediss://`` ``redis_url`` with (e.g. ``LocalRedis.ca_file``).
    redis_ssl_ca: str | None = None
    #: with a ``sentinel://`` ``redis_url``: the name of the primary the sentinels watch
    sentinel_master: str | None = None

    def url_of(self, db: int) -> str:
        """Return ``redis_url`` with database ``db`` (on each entry of a ``;``-separated sentinel list)."""
        return ";".join(f"{entry}/{db}" for entry in self.redis_url.split(";"))

    def env(self) -> dict[str, str]:
        """Return the environment a worker (or a publisher) needs for this stack."""
        redis_options: dict[str, str] = {}
        if self.redis_ssl_ca:
            redis_options["DEPLOY_AGENT_REDIS_SSL_CA_CERTS"] = self.redis_ssl_ca
        if self.sentinel_master:
            redis_options["DEPLOY_AGENT_REDIS_SENTINEL_MASTER"] = self.sentinel_master
        return {
            "DEPLOY_AGENT_BROKER_URL": self.url_of(self.broker_db),
            "DEPLOY_AGENT_RESULT_BACKEND": self.url_of(self.result_db),
            "DEPLOY_AGENT_STATE_REDIS_URL": self.url_of(self.state_db),
            "DEPLOY_AGENT_REGISTRY_OVERRIDE": self.registry_host,
            "DEPLOY_AGENT_BUILD_ROOT": str(self.build_root),
            "DEPLOY_AGENT_POLL_INTERVAL_SECONDS": str(self.poll_interval_seconds),
            "DEPLOY_AGENT_AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.aws_endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # moto accepts any credentials
            "AWS_DEFAULT_REGION": self.region,
            **redis_options,
            **self.extra_env,
        }


class WorkerProcess:
    """A ``deploy-agent worker`` subprocess (a real Celery prefork worker)."""

    def __init__(self, config: StackConfig, log_path: Path, concurrency: int = 2, name: str = "w1") -> None:
        self.config = config
        self.log_path = log_path
        self.concurrency = concurrency
        self.hostname = f"{name}@deploy-agent"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 60.0) -> WorkerProcess:
        env = {**os.environ, **self.config.env(), "DEPLOY_AGENT_LOG_FORMAT": "json"}
        metrics_dir = self.log_path.parent / f"metrics-{self.hostname.split('@')[0]}"
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deploy_agent.cli",
                "worker",
                "-c",
                str(self.concurrency),
                "--hostname",
                self.hostname,
                "--metrics-dir",
                str(metrics_dir),
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self._proc.returncode}; see {self.log_path}")
            if b"ready." in self.log_path.read_bytes()[-200_000:]:
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready within {timeout:.0f} s; see {self.log_path}")

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def stop(self, timeout: float = 20.0) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL the whole process group if it lingers."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(5)
        if self._log is not None:
            self._log.close()
        self._proc = None

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()
