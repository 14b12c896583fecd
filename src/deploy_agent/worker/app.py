"""The Celery application: JSON only, late acks, prefetch 1, requeue when a worker dies.

Publishers in any language send ``deploy_agent.deploy`` with one keyword argument ``request`` to
the ``deploy`` queue; see README "Publishing from another language".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celery import Celery
from kombu.utils.scheduling import priority_cycle

from deploy_agent.settings import STAGE_QUEUE_SUFFIX, Settings

TASK_MODULES = [
    "deploy_agent.tasks.entry",
    "deploy_agent.tasks.stages",
    "deploy_agent.tasks.events",
    "deploy_agent.tasks.approval",
    "deploy_agent.tasks.plan",
]


class StagesFirst(priority_cycle):  # type: ignore[misc]
    """The order a worker's BRPOP names its queues in: the stage queues first, then the rest.

    kombu's Redis transport keeps a channel's queues in a set, so its "priority" strategy (queues
    in the order given) follows the hash order of their names, which changes with each process's
    hash seed: half the workers asked ``deploy`` first. "sorted" puts ``deploy`` before
    ``deploy.stages``; its default, "round_robin", alternates.
    """

    def update(self, it: Iterable[str]) -> None:
        self.items[:] = sorted(it, key=lambda queue: (not queue.endswith(STAGE_QUEUE_SUFFIX), queue))


#: ``broker_transport_options["queue_order_strategy"]``: kombu imports the class by this name
STAGES_FIRST = f"{__name__}:StagesFirst"


def celery_config(settings: Settings) -> dict[str, Any]:
    """Return the Celery configuration every worker and publisher must share."""
    visibility = {"visibility_timeout": settings.visibility_timeout_seconds}
    if settings.visibility_timeout_seconds <= settings.task_time_limit_seconds:
        raise ValueError("visibility_timeout_seconds must be above task_time_limit_seconds")
    broker_sentinel = _sentinel_options(settings, settings.broker_url)
    backend_sentinel = _sentinel_options(settings, settings.result_backend)
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        # JSON only: a pickled or yaml message is refused, never executed.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # A stage is acknowledged when it has run; a worker that dies mid-stage gets it redelivered.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Redis redelivers unacked messages after the visibility timeout: keep it above any task's run.
        # A worker asks the stage queue before the queue, always (``StagesFirst``).
        "broker_transport_options": {**visibility, **broker_sentinel, "queue_order_strategy": STAGES_FIRST},
        # Give up on a lost result backend after a few seconds (celery's default is about 20 s per call);
        # behind sentinels, only once a failover has had about a minute.
        "result_backend_transport_options": {
            **visibility,
            **backend_sentinel,
            "retry_policy": {
                "max_retries": 60 if backend_sentinel else 5,
                "interval_start": 0,
                "interval_step": 0.5,
                "interval_max": 1,
            },
        },
        "visibility_timeout": settings.visibility_timeout_seconds,
        "task_time_limit": settings.task_time_limit_seconds,
        # The soft limit leaves a stage time to clean up: 10% of the hard limit, at most 60 s.
        "task_soft_time_limit": settings.task_time_limit_seconds
        - min(60.0, settings.task_time_limit_seconds * 0.1),
        "task_default_queue": settings.queue,
        # What the workers publish for deployments already under way goes to the stage queue, which
        # they take from first: at 500 deployments at once, a stage woken by ECS's news waited behind
        # every entry still queued (a minute), adding it to a started deployment's time, while
        # starting another deployment sooner helps no one whose deployment is already running.
        "task_routes": {
            "deploy_agent.stage.*": {"queue": settings.stage_queue},
            "deploy_agent.notify": {"queue": settings.stage_queue},
            "deploy_agent.*": {"queue": settings.queue},
        },
        # No STARTED result while a deployment runs (a GET and a MULTI of SETEX and PUBLISH, five
        # commands per deployment): its progress is in its events (``deploy-agent status``).
        "task_track_started": False,
        "result_expires": settings.result_ttl_seconds,
        # Nothing of the message is kept in Redis by Celery: results hold no task arguments, and no
        # task events are sent (their ``kwargsrepr`` is the message, set by the publisher, and goes to
        # every subscriber). Progress is in the state Redis, metrics and the status server instead.
        "result_extended": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        # Shutdown, revoke and rate-limit commands over the broker: off unless the operator turns it on.
        "worker_enable_remote_control": settings.remote_control,
        "worker_hijack_root_logger": False,
        # A message the consumer cannot decode ends rejected instead of being dropped without a result.
        "worker_consumer": "deploy_agent.worker.signals:RejectingConsumer",
        # SIGTERM: stop taking messages, give running stages this long to finish, then requeue them.
        "worker_soft_shutdown_timeout": settings.soft_shutdown_seconds,
        "worker_enable_soft_shutdown_on_idle": True,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "redis_backend_health_check_interval": 30,
        # Ride out a Redis restart when storing a result, but give up within about ten seconds
        # (about a minute behind sentinels: a failover takes down-after-milliseconds and an election).
        "result_backend_always_retry": True,
        "result_backend_max_retries": 60 if backend_sentinel else 10,
        "result_backend_max_sleep_between_retries_ms": 1000,
        **_publish_retry(bool(broker_sentinel)),
        **_tls(settings),
    }


def _sentinel_options(settings: Settings, url: str) -> dict[str, Any]:
    """Return the transport options a ``sentinel://`` URL needs (none for ``redis[s]://``)."""
    if not url.strip().lower().startswith("sentinel://"):
        return {}
    # The sentinels' own connections: a dead sentinel is skipped after a second.
    sentinel_kwargs: dict[str, Any] = {"socket_connect_timeout": 1, "socket_timeout": 1}
    if settings.redis_sentinel_password:
        sentinel_kwargs["password"] = settings.redis_sentinel_password
    return {"master_name": settings.redis_sentinel_master, "sentinel_kwargs": sentinel_kwargs}


def _publish_retry(sentinel: bool) -> dict[str, Any]:
    """Behind sentinels, keep retrying a publish (the next stage, a notification) through a failover.

    Celery's default gives up after three tries within a second, less than an election takes: the
    publishing stage would fail and its deployment end there.
    """
    if not sentinel:
        return {}
    return {
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 60,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        },
    }


def _tls(settings: Settings) -> dict[str, Any]:
    """TLS options for rediss:// URLs: verify the server against the configured CA and its host name."""
    import ssl

    options: dict[str, Any] = {}
    ca = {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": settings.redis_ssl_ca_certs,
        # redis-py 5 does not check the certificate's host name unless told to
        "ssl_check_hostname": True,
    }
    if settings.broker_url.startswith("rediss://"):
        options["broker_use_ssl"] = ca
    if settings.result_backend.startswith("rediss://"):
        options["redis_backend_use_ssl"] = ca
    return options


def create_app(settings: Settings | None = None, set_as_current: bool = True) -> Celery:
    """Return a configured Celery app. Creating it opens no connection."""
    settings = settings or Settings()
    app = Celery("deploy_agent", include=TASK_MODULES, set_as_current=set_as_current)
    app.conf.update(celery_config(settings))
    return app


app = create_app()

from deploy_agent.worker import signals as _signals  # noqa: E402, F401  (connects the handlers)
