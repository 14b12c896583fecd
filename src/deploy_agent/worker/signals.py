"""Celery signal handlers (our logging, the policy check at start, the host's HTTP server,
multiprocess metric files) and the worker's consumer (a message it cannot decode ends ``rejected``)."""

from __future__ import annotations

import gc
import logging
import os
from typing import TYPE_CHECKING, Any

from celery import states
from celery.signals import (
    after_task_publish,
    setup_logging,
    worker_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from celery.worker.consumer import Consumer

from deploy_agent.worker.logging import configure_logging

if TYPE_CHECKING:
    from collections.abc import Sequence

    from deploy_agent.adapters.agenda import News, Wake, WakeHolders
    from deploy_agent.tasks.runtime import Runtime
    from deploy_agent.worker.cluster_watch import ClusterWatcher
    from deploy_agent.worker.dispatcher import Dispatcher
    from deploy_agent.worker.event_consumer import EventConsumer
    from deploy_agent.worker.http import StatusServer

log = logging.getLogger("deploy_agent.worker")

#: the host's HTTP server, once the worker is ready (main process only)
_http: StatusServer | None = None
_dispatcher: Dispatcher | None = None
_watcher: ClusterWatcher | None = None
_event_consumer: EventConsumer | None = None


@setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(
        os.environ.get("DEPLOY_AGENT_LOG_FORMAT", "auto"), os.environ.get("DEPLOY_AGENT_LOG_LEVEL", "INFO")
    )


@worker_init.connect
def _zero_metrics(**_: Any) -> None:
    """Before the pool forks: every label combination exists at 0 from the first scrape."""
    from deploy_agent.tasks import metrics

    metrics.initialize_labels()


@worker_init.connect
def _check_policy(**_: Any) -> None:
    """Before the pool forks: refuse to start with a policy file that cannot be read or is invalid."""
    from deploy_agent.models.policy import PolicyError, load_policy
    from deploy_agent.settings import Settings

    path = Settings().policy
    if path is None:
        return
    try:
        load_policy(path)
    except PolicyError as exc:
        log.critical("the worker does not start: %s", exc)
        # SystemExit, not an Exception: Celery logs and ignores a signal handler's exceptions.
        raise SystemExit(f"deploy-agent: {exc}") from None


@worker_init.connect
def _freeze_for_fork(**_: Any) -> None:
    """Last before the pool forks: move every object the main process holds out of the garbage
    collector's reach, so a prefork child's collections do not write to (and copy) the pages it
    shares with the main process (Python's ``gc.freeze``, meant for this)."""
    gc.freeze()


@worker_ready.connect
def _log_policy(**_: Any) -> None:
    """Say once, at start (logging is set up by now), which policy the worker enforces, if any."""
    from deploy_agent.models.policy import load_policy
    from deploy_agent.settings import Settings

    path = Settings().policy
    if path is None:
        log.warning("no policy set (DEPLOY_AGENT_POLICY): publishers may deploy anything")
        return
    policy = load_policy(path)
    log.info(
        "enforcing the policy %s (%d approval rule(s), cluster limits: %s)",
        path,
        len(policy.approvals),
        "yes" if policy.cluster_limits or policy.max_concurrent_deployments_per_cluster else "none",
    )


@worker_ready.connect
def _serve_http(**_: Any) -> None:
    """Start the host's HTTP server (metrics, status page, JSON API) in this, the main, process."""
    port = int(os.environ.get("DEPLOY_AGENT_METRICS_PORT", "0") or 0)
    if port <= 0:
        return
    from deploy_agent.tasks.runtime import get_runtime
    from deploy_agent.worker.http import StatusServer

    global _http
    host = os.environ.get("DEPLOY_AGENT_METRICS_HOST", "127.0.0.1")
    options = StatusServer.options(get_runtime().settings)  # Host check, token, thread bound
    _http = StatusServer(host, port, store=lambda: get_runtime().store, **options).start()
    log.info("metrics on %s/metrics, status page on %s/status", _http.url, _http.url)


@worker_ready.connect
def _start_dispatcher(**_: Any) -> None:
    """Publish the agenda's due stages from this host (every host does: any one alive keeps it going)."""
    from celery import current_app

    from deploy_agent.tasks.runtime import get_runtime
    from deploy_agent.worker.dispatcher import Dispatcher, publish_due

    global _dispatcher
    rt = get_runtime()
    app = current_app._get_current_object()
    _dispatcher = Dispatcher(
        rt.agenda, lambda due: publish_due(app, due), rt.settings.dispatch_interval_seconds
    ).start()


@worker_ready.connect
def _start_event_consumer(**_: Any) -> None:
    """With ``events_queue_url``: read ECS's events and wake the deployments they concern (every host)."""
    from deploy_agent.tasks.runtime import get_runtime

    rt = get_runtime()
    url = rt.settings.events_queue_url
    if not url:
        return
    from deploy_agent.adapters.ecs_events import EventQueue
    from deploy_agent.core.ecs_events import queue_region
    from deploy_agent.tasks import metrics
    from deploy_agent.worker.event_consumer import EventConsumer

    global _event_consumer
    queue = EventQueue(rt.aws(queue_region(url, rt.settings.aws_region)), url)
    _event_consumer = EventConsumer(
        queue,
        wake_holders=_wake_holders(rt),
        count=lambda detail_type, result: metrics.ECS_EVENTS.labels(detail_type, result).inc(),
    ).start()
    log.info("waking deployments on ECS events from %s", url)


def _wake_holders(rt: Runtime) -> WakeHolders:
    """Return what wakes the deployments holding services: the agenda, behind each service's lock."""
    from deploy_agent.adapters.agenda import WakeRequest
    from deploy_agent.adapters.service_reader import fingerprints_key
    from deploy_agent.core.watch import updated_mark

    def wake(news: Sequence[News]) -> list[Wake | None]:
        requests = [
            WakeRequest(
                rt.lock(n.cluster, n.service, n.region).key,
                n.about_tasks,
                (fingerprints_key(n.region, n.cluster), n.service, updated_mark(n.started))
                if n.started
                else None,
                n.deployment,
                n.stopped_task,
            )
            for n in news
        ]
        woken = rt.agenda.wake_holders(requests)
        if "woken" in woken and _dispatcher is not None:
            _dispatcher.poke()  # publish the stages now, not at the dispatcher's next look
        return woken

    return wake


@worker_shutdown.connect
def _stop_event_consumer(**_: Any) -> None:
    global _event_consumer
    if _event_consumer is not None:
        _event_consumer.stop()
        _event_consumer = None


@worker_ready.connect
def _start_watcher(**_: Any) -> None:
    """Run the cluster watcher's loop on this host (one host at a time watches: a Redis lease)."""
    from deploy_agent.tasks import metrics
    from deploy_agent.tasks.runtime import get_runtime
    from deploy_agent.worker.cluster_watch import ClusterWatcher

    global _watcher
    rt = get_runtime()
    if rt.settings.watch_interval_seconds <= 0 or rt.settings.events_queue_url:
        return  # off, or ECS's own events wake the deployments
    _watcher = ClusterWatcher(
        rt.redis,
        rt.services,
        _wake_holders(rt),
        rt.settings.watch_interval_seconds,
        observe=lambda seconds, _services: metrics.WATCHER_LOOK_SECONDS.observe(seconds),
    ).start()


@worker_shutdown.connect
def _stop_dispatcher(**_: Any) -> None:
    global _dispatcher, _watcher
    if _dispatcher is not None:
        _dispatcher.stop()
        _dispatcher = None
    if _watcher is not None:
        _watcher.stop()
        _watcher = None


@worker_shutdown.connect
def _stop_http(**_: Any) -> None:
    global _http
    if _http is not None:
        _http.stop()
        _http = None


@after_task_publish.connect
def _next_stage_sent(headers: dict[str, Any] | None = None, **_: Any) -> None:
    from deploy_agent.tasks.stages import next_stage_sent

    next_stage_sent((headers or {}).get("parent_id"))


@worker_process_shutdown.connect
def _mark_dead(pid: int | None = None, **_: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())  # type: ignore[no-untyped-call]


#: the tasks whose publishers wait for a DeploymentResult
_RESULT_TASKS = frozenset({"deploy_agent.deploy", "deploy_agent.rollback"})


class RejectingConsumer(Consumer):  # type: ignore[misc]
    """The worker's consumer (``worker_consumer``): a message it cannot decode ends ``rejected``.

    Celery's own consumer logs a message its JSON decoder refuses (nested about 1000 deep, or not
    JSON at all), with the start of its body, and drops it: no result is ever stored and the
    publisher's ``get()`` waits forever. Here the message's task id gets a ``rejected``
    DeploymentResult, the rejection is counted, and the body is never logged (it may hold secrets).
    """

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        headers = message.headers if isinstance(getattr(message, "headers", None), dict) else {}
        task_id, task = headers.get("id"), headers.get("task")
        log.error(
            "rejected a message that cannot be decoded (%s, content type %s): %s",
            task if isinstance(task, str) else "no task name",
            message.content_type,
            _decode_problem(exc),
        )
        if isinstance(task_id, str) and task in _RESULT_TASKS:
            try:
                _store_undecodable(self.app, task_id, _decode_problem(exc))
            except Exception:  # the backend is down: the message is dropped as Celery would
                log.exception("could not store the rejected result of task %s", task_id)
        message.ack()


def _decode_problem(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, RecursionError):
            return "the message is nested too deeply to decode"
        cause = cause.__cause__ or cause.__context__
    return "the message body is not valid JSON"


def _store_undecodable(app: Any, task_id: str, problem: str) -> None:
    from deploy_agent.core.errors import RequestRejected
    from deploy_agent.core.state import utcnow
    from deploy_agent.models import DeploymentResult
    from deploy_agent.tasks import metrics

    exc = RequestRejected(
        f"invalid DeployToECSTask: 1 problem: (message): {problem}", [{"field": "", "problem": problem}]
    )
    result = DeploymentResult.rejected(None, exc, utcnow())
    app.backend.store_result(task_id, result.model_dump(mode="json"), states.SUCCESS)
    metrics.DEPLOYMENTS.labels("unknown", "rejected").inc()
