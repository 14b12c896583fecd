"""What the chaos tests share: a dedicated stack (its own Redis, its own workers), events, and checks.

A ``ChaosStack`` is a private ``redis-server`` (``LocalRedis``) plus the worker processes started on
it, and a publisher app configured exactly like them, so a test may kill workers, restart Redis or
flush databases without disturbing the session's shared worker or anyone else's Redis databases.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import redis
import requests
from celery import Celery
from celery.result import AsyncResult

from deploy_agent.settings import Settings
from deploy_agent.worker.app import create_app
from sandbox_harness.redis_server import LocalRedis
from sandbox_harness.stack import StackConfig, WorkerProcess
from tests.support import WaitTimedOut, free_port, wait_until

TERMINAL = {"succeeded", "rolled_back", "failed", "timed_out"}
#: the key kombu's Redis transport keeps unacknowledged deliveries in, scored by delivery time
UNACKED_INDEX = "unacked_index"


class WorkerDied(AssertionError):
    """A worker process of the stack exited while a deployment still needed it."""


def is_alive(worker: WorkerProcess) -> bool:
    """Return whether the worker's main process runs (a zombie counts as dead)."""
    if worker.pid is None:
        return False
    try:
        stat = Path(f"/proc/{worker.pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def closed_port() -> int:
    """Return a loopback port nothing listens on (bound, then released)."""
    return free_port()


def publisher_settings(config: StackConfig) -> Settings:
    """Return the Settings a worker on ``config`` reads from its environment."""
    env = config.env()
    values = {
        k.removeprefix("DEPLOY_AGENT_").lower(): v for k, v in env.items() if k.startswith("DEPLOY_AGENT_")
    }
    return Settings(**values)


@dataclass
class ChaosStack:
    """A private Redis, the workers started on it and a publisher configured like them."""

    config: StackConfig
    redis_server: LocalRedis
    log_dir: Path
    workers: list[WorkerProcess] = field(default_factory=list)
    _app: Celery | None = None

    @property
    def settings(self) -> Settings:
        return publisher_settings(self.config)

    @property
    def app(self) -> Celery:
        if self._app is None:
            self._app = create_app(self.settings, set_as_current=False)
            # This Redis is stopped at the end of the test: results collected later must not retry it.
            self._app.conf.result_backend_always_retry = False
            self._app.conf.result_backend_transport_options = {
                **self._app.conf.result_backend_transport_options,
                "retry_policy": {"max_retries": 0},
            }
        return self._app

    @property
    def state(self) -> redis.Redis:
        return self.redis_server.client(self.config.state_db)

    @property
    def broker(self) -> redis.Redis:
        return self.redis_server.client(self.config.broker_db)

    def flush(self) -> None:
        for db in (self.config.broker_db, self.config.result_db, self.config.state_db):
            self.redis_server.client(db).flushdb()

    def start_worker(self, name: str, concurrency: int = 1) -> WorkerProcess:
        worker = WorkerProcess(self.config, self.log_dir / f"{name}.log", concurrency=concurrency, name=name)
        self.workers.append(worker)
        return worker.start()

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()

    def publish(self, request: dict[str, Any]) -> AsyncResult:
        return self.app.send_task("deploy_agent.deploy", kwargs={"request": request})

    def check_workers(self) -> None:
        """Raise ``WorkerDied`` when a started (and not deliberately stopped) worker has exited."""
        for worker in self.workers:
            if worker.pid is not None and not is_alive(worker):
                raise WorkerDied(f"worker {worker.hostname} exited; see {worker.log_path}")

    def result(self, pending: AsyncResult, timeout: float = 150) -> dict[str, Any]:
        """Return the deployment's final result, failing fast if the workers die meanwhile."""

        def ready() -> bool:
            self.check_workers()
            return bool(pending.ready())

        wait_until(ready, what=f"a result for {pending.id}", timeout=timeout, interval=0.2)
        result: dict[str, Any] = pending.get(timeout=10)
        return result

    def events(self, deployment_id: str) -> list[dict[str, Any]]:
        raw = self.state.lrange(f"deploy-agent:events:{deployment_id}", 0, -1)
        return [json.loads(item) for item in raw]

    def wait_for_event(
        self, deployment_id: str, match: Callable[[dict[str, Any]], bool], timeout: float = 90
    ) -> dict[str, Any]:
        """Return the first progress event ``match`` accepts, polling every 0.1 s."""

        def arrived() -> dict[str, Any] | None:
            self.check_workers()
            for event in self.events(deployment_id):
                if match(event):
                    return event
                if event["event"] == "finished":
                    raise AssertionError(f"{deployment_id} finished before the awaited event: {event}")
            return None

        try:
            return wait_until(arrived, what=f"{deployment_id}'s awaited event", timeout=timeout, interval=0.1)
        except WaitTimedOut as timed_out:
            seen = [e["event"] for e in self.events(deployment_id)]
            raise WaitTimedOut(f"{timed_out}; saw {seen}") from None

    def lock_holder(self, cluster: str, service: str, region: str = "us-east-1") -> bytes | None:
        value: bytes | None = self.state.get(f"deploy-agent:lock:{region}:{cluster}/{service}")
        return value

    def wait_until_redeliverable(self, margin: float = 0.5, timeout: float = 60) -> float:
        """Wait until every unacked delivery is older than the visibility timeout; return the wait.

        A starting worker restores such deliveries at once; a running one only every
        ``unacked_restore_interval * unacked_restore_throttle`` seconds (100 s with kombu's defaults).
        """
        started = time.monotonic()
        visibility = self.settings.visibility_timeout_seconds

        def aged() -> bool:
            newest = self.broker.zrange(UNACKED_INDEX, -1, -1, withscores=True)
            return not newest or time.time() - float(newest[0][1]) > visibility + margin

        wait_until(
            aged, what="unacked deliveries to age past the visibility timeout", timeout=timeout, interval=0.1
        )
        return time.monotonic() - started


@contextmanager
def chaos_stack(
    base: StackConfig, root: Path, extra_env: dict[str, str] | None = None, persistent: bool = False
) -> Iterator[ChaosStack]:
    """Yield a stack on a private ``redis-server`` under ``root``; stop its workers and Redis after."""
    server = LocalRedis(root=root / "redis", persistent=persistent).start()
    config = replace(
        base,
        redis_url=server.url,
        broker_db=4,
        result_db=5,
        state_db=6,
        extra_env={**base.extra_env, **(extra_env or {})},
    )
    stack = ChaosStack(config, server, root)
    try:
        yield stack
    finally:
        stack.stop_workers()
        server.stop()


def kill_group(worker: WorkerProcess) -> None:
    """SIGKILL the worker's whole process group (main process and pool children) and reap it."""
    assert worker.pid is not None
    os.killpg(worker.pid, signal.SIGKILL)
    worker.stop(timeout=10)


def count_calls(sandbox: Any, action: str) -> int:
    """Return how many ``action`` calls the sandbox's moto server answered so far (any service)."""
    return sum(n for (_service, name), n in sandbox.moto.api_calls().items() if name == action)


def listener_actions(listener_arn: str) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = boto3.client("elbv2").describe_listeners(ListenerArns=[listener_arn])[
        "Listeners"
    ][0]["DefaultActions"]
    return actions


def service_task_definition(cluster: str, service: str) -> str:
    ecs = boto3.client("ecs")
    return str(ecs.describe_services(cluster=cluster, services=[service])["services"][0]["taskDefinition"])


def active_temporary_services(cluster: str, prefix: str = "") -> list[str]:
    """Return the names of ACTIVE green/canary services (named ``prefix...``) left in ``cluster``."""
    ecs = boto3.client("ecs")
    names = [a.rsplit("/", 1)[-1] for a in ecs.list_services(cluster=cluster)["serviceArns"]]
    temporary = [n for n in names if n.startswith(prefix) and ("-green-" in n or "-canary-" in n)]
    if not temporary:
        return []
    described = ecs.describe_services(cluster=cluster, services=temporary)["services"]
    return [s["serviceName"] for s in described if s["status"] == "ACTIVE"]


def http_status(url: str) -> int:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return 0
