"""Progress events: appended to the deployment's list in Redis, and sent to its webhooks.

Webhooks hear the deployment's start, each stage's end, traffic shifts, rollbacks with their trigger,
and the final result. Delivery goes through the ``deploy_agent.notify`` task (retried with backoff,
never able to fail the deployment); the in-process runner delivers directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from celery import Task, current_app, shared_task

from deploy_agent.adapters.webhook import NotificationFailed
from deploy_agent.core.state import PipelineState
from deploy_agent.models.request import DeployToECSTask
from deploy_agent.tasks.messages import request_of
from deploy_agent.tasks.runtime import Runtime, get_runtime

log = logging.getLogger("deploy_agent.notify")

#: events webhooks hear about; a deployment that waits for a human says so (a chat hook can ask)
NOTIFIED = frozenset(
    {
        "started",
        "stage_finished",
        "traffic_shifted",
        "rollback_started",
        "rollback_finished",
        "finished",
        "awaiting_approval",
        "approved",
        "denied",
    }
)
NOTIFY_ATTEMPTS = 4

Notifier = Callable[[Iterable[str], Mapping[str, Any]], None]


def record_event(
    rt: Runtime,
    state: PipelineState,
    kind: str,
    notify_extra: Mapping[str, Any] | None = None,
    /,
    **fields: Any,
) -> dict[str, Any]:
    """Append an event to the deployment's history; tell its webhooks when it is one they hear.

    The parameters are positional-only so that any field name (``state``, ``kind`` ...) can be an event field.
    """
    event = event_of(rt, state, kind, **fields)
    rt.store.append_event(state.deployment_id, event)
    notify_event(rt, state, event, notify_extra)
    return event


def notify_event(
    rt: Runtime, state: PipelineState, event: Mapping[str, Any], notify_extra: Mapping[str, Any] | None = None
) -> None:
    """Tell the deployment's webhooks about ``event`` (already in its history) when it is one they hear."""
    if event["event"] not in NOTIFIED:
        return
    urls = webhook_urls(rt, request_of(state))
    if not urls:
        return
    payload = {**event, "cluster_name": state.cluster, "service_name": state.service, **(notify_extra or {})}
    try:
        (rt.notifier or publish_notifications)(urls, payload)
    except Exception:  # telling others must never end a deployment
        log.warning("could not queue notifications", exc_info=True)


def event_of(rt: Runtime, state: PipelineState, kind: str, /, **fields: Any) -> dict[str, Any]:
    """Return a progress event of ``kind`` as the deployment's history keeps it (not appended)."""
    return {"at": rt.now().isoformat(), "deployment_id": state.deployment_id, "event": kind, **fields}


def webhook_urls(rt: Runtime, request: DeployToECSTask) -> list[str]:
    """The worker's webhooks followed by the message's own, each once."""
    own = list(request.notify.webhooks)
    return list(dict.fromkeys([*rt.settings.webhook_urls, *own]))


def publish_notifications(urls: Iterable[str], payload: Mapping[str, Any]) -> None:
    for url in urls:
        current_app.send_task("deploy_agent.notify", args=[url, dict(payload)])


def deliver_now(urls: Iterable[str], payload: Mapping[str, Any]) -> None:
    """Deliver synchronously, once each, logging failures (the in-process runner's notifier).

    Through the runtime's sender, so a message's webhooks obey the policy's outbound rules here too.
    """
    sender = get_runtime().webhooks
    for url in urls:
        try:
            sender.post(url, payload)
        except NotificationFailed as exc:
            log.warning("%s", exc.message)


@shared_task(bind=True, name="deploy_agent.notify", max_retries=NOTIFY_ATTEMPTS - 1, acks_late=True)
def notify(self: Task, url: str, payload: dict[str, Any]) -> bool:
    """POST one event to one webhook; retried with backoff; False when it finally failed."""
    try:
        get_runtime().webhooks.post(url, payload)
    except NotificationFailed as exc:
        if self.request.retries < NOTIFY_ATTEMPTS - 1:
            raise self.retry(countdown=min(30, 2**self.request.retries)) from None
        log.warning("giving up: %s", exc.message, extra={"deployment_id": payload.get("deployment_id")})
        return False
    return True
