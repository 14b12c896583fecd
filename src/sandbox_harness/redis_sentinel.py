"""A Redis that fails over: a private primary, one replica and three sentinels on loopback.

Tests point the broker, the result backend and the state Redis at ``url(db)`` (Celery's
``sentinel://HOST:PORT/DB;...`` form), SIGKILL the primary with ``kill_primary()`` and get back once
the sentinels have promoted the replica. The sentinels run ``redis-sentinel`` when it is installed,
else ``redis-server CONFIG --sentinel`` (the same program in sentinel mode).

Replication is asynchronous: a write the primary acknowledged and had not yet sent to the replica
is lost by a failover. On loopback the primary sends the replication stream in the same event-loop
turn as the reply, so the window is microseconds; ``min-replicas-to-write`` would close it but with
one replica it also stops every write once the replica has become the primary (it has none).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import redis

from sandbox_harness.redis_server import LocalRedis, _free_port


class _Node(LocalRedis):
    """A ``LocalRedis`` (no AOF, no snapshots) with extra ``redis-server`` arguments."""

    def __init__(self, *, root: Path, password: str | None, extra_args: list[str]) -> None:
        super().__init__(root=root, password=password, persistent=False)
        self.extra_args = extra_args

    def _command(self) -> list[str]:
        return [*super()._command(), *self.extra_args]


class _Sentinel:
    """One ``redis-sentinel`` watching ``master_name``; its config file is its own (it rewrites it)."""

    def __init__(self, root: Path, master_name: str, primary_port: int, quorum: int, timing: tuple[int, int]):
        self.port = _free_port()
        self.root = root
        self.config = root / "sentinel.conf"
        self.log_path = root / "sentinel.log"
        self.master_name = master_name
        self._lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            "daemonize no",
            f'dir "{root.resolve()}"',
            f'logfile "{self.log_path.resolve()}"',
            f"sentinel monitor {master_name} 127.0.0.1 {primary_port} {quorum}",
            f"sentinel down-after-milliseconds {master_name} {timing[0]}",
            f"sentinel failover-timeout {master_name} {timing[1]}",
            f"sentinel parallel-syncs {master_name} 1",
        ]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, password: str | None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        lines = [*self._lines, *([f"sentinel auth-pass {self.master_name} {password}"] if password else [])]
        self.config.write_text("\n".join(lines) + "\n")
        program = shutil.which("redis-sentinel")
        command = [program, str(self.config)] if program else ["redis-server", str(self.config), "--sentinel"]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1, socket_connect_timeout=1)

    def master(self) -> dict[str, Any]:
        """Return what this sentinel knows of the primary (``SENTINEL MASTER``), decoded."""
        with self.client() as client:
            info: dict[str, Any] = client.sentinel_master(self.master_name)
        return info

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


class RedisSentinelGroup:
    """A primary, a replica and ``sentinels`` sentinels (quorum: a majority), all on 127.0.0.1.

    Use as a context manager, or ``start()`` / ``stop()``. ``down_after_ms`` is how long the primary
    may be silent before a sentinel deems it down; ``failover_timeout_ms`` bounds one failover try.
    """

    def __init__(
        self,
        root: Path,
        *,
        master_name: str = "mymaster",
        password: str | None = None,
        sentinels: int = 3,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
    ) -> None:
        self.root = root
        self.master_name = master_name
        self.password = password
        auth = ["--masterauth", password] if password else []
        self.nodes = [_Node(root=root / "node-a", password=password, extra_args=auth)]
        self.nodes.append(
            _Node(
                root=root / "node-b",
                password=password,
                extra_args=[*auth, "--replicaof", "127.0.0.1", str(self.nodes[0].port)],
            )
        )
        quorum = sentinels // 2 + 1
        timing = (down_after_ms, failover_timeout_ms)
        self.sentinels = [
            _Sentinel(root / f"sentinel-{i}", master_name, self.nodes[0].port, quorum, timing)
            for i in range(sentinels)
        ]

    def url(self, db: int | None = None) -> str:
        """Return ``sentinel://[:PASSWORD@]127.0.0.1:PORT[/DB];...``, one entry per sentinel
        (without ``db``: the form ``StackConfig.redis_url`` takes)."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        path = "" if db is None else f"/{db}"
        return ";".join(f"sentinel://{auth}127.0.0.1:{s.port}{path}" for s in self.sentinels)

    def start(self, timeout_seconds: float = 30.0) -> RedisSentinelGroup:
        """Start both nodes and the sentinels; return once every sentinel sees the replica and its peers."""
        for node in self.nodes:
            node.start()
        deadline = time.monotonic() + timeout_seconds
        self._wait(deadline, "the replica to sync", lambda: self._replica_synced(self.nodes[1]))
        for sentinel in self.sentinels:
            sentinel.start(self.password)
        self._wait(deadline, "the sentinels to see the replica and each other", self._sentinels_agree)
        return self

    def primary(self) -> LocalRedis:
        """Return the node the sentinels currently name the primary."""
        with self.sentinels[0].client() as client:
            _host, port = client.sentinel_get_master_addr_by_name(self.master_name)
        return next(node for node in self.nodes if node.port == int(port))

    def client(self, db: int = 0) -> redis.Redis:
        """Return a plain client of the current primary (no retries: for checks from a test)."""
        return self.primary().client(db)

    def kill_primary(self, timeout_seconds: float = 30.0) -> float:
        """SIGKILL the primary; return the seconds until every sentinel names the promoted replica
        and it answers as a primary."""
        old = self.primary()
        new = next(node for node in self.nodes if node is not old)
        old.kill()
        killed = time.monotonic()

        def promoted() -> bool:
            for sentinel in self.sentinels:
                with sentinel.client() as client:
                    _host, port = client.sentinel_get_master_addr_by_name(self.master_name)
                if int(port) != new.port:
                    return False
            with new.client() as client:
                role: list[Any] = client.execute_command("ROLE")
            return bool(role[0] in (b"master", "master"))

        self._wait(killed + timeout_seconds, "the sentinels to promote the replica", promoted)
        return time.monotonic() - killed

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for node in self.nodes:
            node.stop()

    def _replica_synced(self, node: LocalRedis) -> bool:
        with node.client() as client:
            info = client.info("replication")
        return bool(info.get("role") == "slave" and info.get("master_link_status") == "up")

    def _sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            master = sentinel.master()
            if int(master["num-slaves"]) < 1 or int(master["num-other-sentinels"]) < len(self.sentinels) - 1:
                return False
        return True

    def _wait(self, deadline: float, what: str, ready: Callable[[], bool]) -> None:
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except (redis.RedisError, OSError):
                pass  # a process still starting, or a sentinel mid-failover
            time.sleep(0.05)
        logs = ", ".join(str(s.log_path) for s in self.sentinels)
        raise RuntimeError(f"timed out waiting for {what}; see {logs} and {self.root}/node-*/redis.log")

    def __enter__(self) -> RedisSentinelGroup:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
