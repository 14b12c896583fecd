"""Celery signal handlers: our logging, the host's HTTP server, multiprocess metric files."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery.signals import setup_logging, worker_init, worker_process_shutdown, worker_ready, worker_shutdown

from deploy_agent.worker.logging import configure_logging

if TYPE_CHECKING:
    from deploy_agent.worker.http import StatusServer

log = logging.getLogger("deploy_agent.worker")

#: the host's HTTP server, once the worker is ready (main process only)
_http: StatusServer | None = None


@setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(
        os.environ.get("DEPLOY_AGENT_LOG_FORMAT", "auto"), os.environ.get("DEPLOY_AGENT_LOG_LEVEL", "INFO")
    )


@worker_init.connect
def _zero_metrics(**_: Any) -> None:
    """Before the pool forks: every label combination exists at 0 from the first scrape."""
    from deploy_agent.strategies import strategy_names
    from deploy_agent.tasks import metrics

    metrics.initialize_labels(tuple(strategy_names()))


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
    _http = StatusServer(host, port, store=lambda: get_runtime().store).start()
    log.info("metrics on %s/metrics, status page on %s/status", _http.url, _http.url)


@worker_shutdown.connect
def _stop_http(**_: Any) -> None:
    global _http
    if _http is not None:
        _http.stop()
        _http = None


@worker_process_shutdown.connect
def _mark_dead(pid: int | None = None, **_: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())  # type: ignore[no-untyped-call]


def prepare_multiprocess_dir(path: Path) -> None:
    """Create the metrics directory and remove files left by earlier runs (stale pids)."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
