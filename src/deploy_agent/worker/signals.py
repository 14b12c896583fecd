"""Celery signal handlers: our logging, the metrics endpoint, multiprocess metric files."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from celery.signals import setup_logging, worker_process_shutdown, worker_ready

from deploy_agent.worker.logging import configure_logging

log = logging.getLogger("deploy_agent.worker")


@setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(
        os.environ.get("DEPLOY_AGENT_LOG_FORMAT", "auto"), os.environ.get("DEPLOY_AGENT_LOG_LEVEL", "INFO")
    )


@worker_ready.connect
def _serve_metrics(**_: Any) -> None:
    port = int(os.environ.get("DEPLOY_AGENT_METRICS_PORT", "0") or 0)
    if port <= 0:
        return
    from prometheus_client import CollectorRegistry, start_http_server

    registry: CollectorRegistry | None = None
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    host = os.environ.get("DEPLOY_AGENT_METRICS_HOST", "127.0.0.1")
    if registry is None:
        start_http_server(port, addr=host)
    else:
        start_http_server(port, addr=host, registry=registry)
    log.info("metrics on http://%s:%d/metrics", host, port)


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
