"""A small Python client for agents: publish a deployment, follow its events, wait for its result.

    from deploy_agent.client import submit

    handle = submit({"cluster_name": "prod", "service_name": "web", "image": {"uri": "..."}})
    for event in handle.events():          # follows until the deployment finishes
        print(event["event"], event.get("stage"))
    result = handle.wait(timeout=1800)     # a DeploymentResult
    assert result.outcome == "succeeded"

Publishers in other languages: see README, "Publishing from another language".
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from deploy_agent.adapters.redis_client import redis_client
from deploy_agent.adapters.redis_store import DeploymentStore
from deploy_agent.models import DeploymentResult
from deploy_agent.settings import Settings

TERMINAL_EVENT = "finished"


@dataclass
class DeploymentHandle:
    """A published deployment: its id, the Celery task carrying it, and where to read its progress."""

    deployment_id: str
    task_id: str
    _async_result: Any
    _store: DeploymentStore

    def wait(self, timeout: float | None = None) -> DeploymentResult:
        """Block until the deployment ends and return its result (``TimeoutError`` after ``timeout``)."""
        try:
            raw = self._async_result.get(timeout=timeout)
        except Exception as exc:  # celery.exceptions.TimeoutError and broker errors alike
            if type(exc).__name__ == "TimeoutError":
                raise TimeoutError(
                    f"deployment {self.deployment_id} still running after {timeout} s"
                ) from None
            raise
        return DeploymentResult.model_validate(raw)

    def events(
        self, follow: bool = True, poll_seconds: float = 0.5, timeout: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield progress events as they happen; with ``follow``, until the deployment finishes."""
        seen = 0
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            batch = self._store.events(self.deployment_id, seen)
            seen += len(batch)
            yield from batch
            if any(e.get("event") == TERMINAL_EVENT for e in batch) or not follow:
                return
            if self._async_result.ready() and not batch and self._store.result(self.deployment_id) is None:
                return  # ended without events (a rejected message)
            if deadline is not None and time.monotonic() > deadline:
                return
            time.sleep(poll_seconds)

    def result(self) -> DeploymentResult | None:
        """Return the result if the deployment has ended, else None (never blocks)."""
        raw = self._store.result(self.deployment_id)
        return None if raw is None else DeploymentResult.model_validate(raw)


def submit(request: Mapping[str, Any], settings: Settings | None = None) -> DeploymentHandle:
    """Publish a ``DeployToECSTask`` message (a dict; a ``deployment_id`` is added when missing)."""
    from deploy_agent.worker.app import create_app

    settings = settings or Settings()
    message = dict(request)
    if not (message.get("deployment_id") or message.get("deploymentId")):
        message["deployment_id"] = uuid.uuid4().hex
    deployment_id = str(message.get("deployment_id") or message.get("deploymentId"))
    app = create_app(settings, set_as_current=False)
    async_result = app.send_task("deploy_agent.deploy", kwargs={"request": message})
    state = redis_client(
        settings.state_redis_url,
        settings.redis_ssl_ca_certs,
        sentinel_master=settings.redis_sentinel_master,
        sentinel_password=settings.redis_sentinel_password,
    )
    store = DeploymentStore(state, settings.result_ttl_seconds)
    return DeploymentHandle(deployment_id, async_result.id, async_result, store)


def approve(
    deployment_id: str,
    approver: str,
    comment: str | None = None,
    settings: Settings | None = None,
    timeout: float = 30,
) -> dict[str, Any]:
    """Let a deployment awaiting approval go on; return ``{"deployment_id", "decision", "approver",
    "decided_at"}``, or ``{"error": {...}}`` when it is not awaiting approval or the input is invalid."""
    request: dict[str, Any] = {"deployment_id": deployment_id, "approver": approver}
    if comment is not None:
        request["comment"] = comment
    return _decide("deploy_agent.approve", request, settings, timeout)


def deny(
    deployment_id: str, approver: str, reason: str, settings: Settings | None = None, timeout: float = 30
) -> dict[str, Any]:
    """End a deployment awaiting approval ``denied`` (nothing left behind); answers like :func:`approve`."""
    return _decide(
        "deploy_agent.deny",
        {"deployment_id": deployment_id, "approver": approver, "reason": reason},
        settings,
        timeout,
    )


def _decide(task: str, request: dict[str, Any], settings: Settings | None, timeout: float) -> dict[str, Any]:
    from deploy_agent.worker.app import create_app

    app = create_app(settings or Settings(), set_as_current=False)
    answer: dict[str, Any] = app.send_task(task, kwargs={"request": request}).get(timeout=timeout)
    return answer
