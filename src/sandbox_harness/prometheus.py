"""A real Prometheus server (the Debian ``prometheus`` binary) on a loopback port, for analysis gates.

It scrapes the given ``host:port`` targets every second (evaluation every second too) and keeps its
data in a directory of the caller's; ``query`` asks its instant-query API the way the worker does.
Nothing here imports deploy_agent.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import requests


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusServer:
    """``prometheus --web.listen-address=127.0.0.1:PORT`` scraping ``targets`` every ``scrape_interval``."""

    def __init__(
        self, directory: Path, targets: Sequence[str], scrape_interval: str = "1s", port: int | None = None
    ) -> None:
        self.directory = directory
        self.targets = list(targets)
        self.scrape_interval = scrape_interval
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        """Write the config, start the server and wait until it is ready."""
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("the prometheus binary is missing (Debian package prometheus)")
        self.directory.mkdir(parents=True, exist_ok=True)
        config = {  # JSON is YAML: no YAML library needed
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "scrape_configs": [{"job_name": "app", "static_configs": [{"targets": self.targets}]}],
        }
        config_file = self.directory / "prometheus.yml"
        config_file.write_text(json.dumps(config))
        self._log = (self.directory / "prometheus.log").open("wb")
        self._proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--storage.tsdb.path={self.directory / 'data'}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self._proc.returncode}; see {self.directory}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prometheus not ready within {timeout:g} s; see {self.directory}")
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Return the instant vector ``promql`` has now (``RuntimeError`` on a query error)."""
        body = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10).json()
        if body.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it lingers)."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()
