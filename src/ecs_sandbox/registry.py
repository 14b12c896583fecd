"""A local Docker registry (CNCF distribution) standing in for ECR's registry host.

With the realism profile's ``enforce_aws_rules`` (the default), ``host`` is a ``RegistryProxy`` in
front of it that refuses overwriting IMMUTABLE tags and records pushed images in moto's ECR, as ECR
does; ``upstream_host`` is the registry itself.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import requests

from .realism import REALISTIC, Realism
from .registry_proxy import RegistryProxy

_CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers_v2(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200
    except requests.RequestException:
        return False


class LocalRegistry:
    """`docker-registry serve` on 127.0.0.1:port with filesystem storage under ``root``.

    If something already answers ``/v2/`` on that port, it is reused and left running on stop().
    Port 0 means a free port.
    """

    def __init__(
        self,
        port: int = 5000,
        root: Path = Path(".sandbox/registry"),
        realism: Realism = REALISTIC,
        account: str = "123456789012",
        region: str = "us-east-1",
    ) -> None:
        self.port = port or _free_port()
        self.root = root
        self.realism = realism
        self.account = account
        self.region = region
        self.proxy: RegistryProxy | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def host(self) -> str:
        """Return the host:port image references use: the ECR-rules proxy when it runs, else the registry."""
        return self.proxy.host if self.proxy is not None else self.upstream_host

    @property
    def upstream_host(self) -> str:
        """Return the registry's own host:port (no ECR rules)."""
        return f"127.0.0.1:{self.port}"

    def _with_proxy(self) -> LocalRegistry:
        if self.realism.enforce_aws_rules and self.proxy is None:
            self.proxy = RegistryProxy(self.port, self.account, self.region).start()
        return self

    def start(self, timeout_seconds: float = 20.0) -> LocalRegistry:
        """Start the registry (or adopt a running one) and return self once ``/v2/`` answers 200."""
        if _answers_v2(self.port):
            return self._with_proxy()
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(_CONFIG.format(root=self.root.resolve() / "data", port=self.port))
        self._log = self.root / "registry.log"
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                ["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if _answers_v2(self.port):
                return self._with_proxy()
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"registry on {self.upstream_host} did not start; see {self._log}")

    def stop(self) -> None:
        """Stop the proxy and the registry this object started (an adopted registry keeps running)."""
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
