"""A collected ``AsyncResult`` whose Redis is gone costs no reconnect loop (``tests.quiet_result_gc``)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from celery import Celery
from celery.result import AsyncResult

from sandbox_harness.redis_server import LocalRedis

pytestmark = pytest.mark.integration


def test_collecting_subscribed_results_after_their_redis_stopped_returns_at_once(tmp_path: Path) -> None:
    server = LocalRedis(root=tmp_path / "redis").start()
    app = Celery("gc", broker="memory://", backend=f"{server.url}/1", set_as_current=False)
    try:
        results = [AsyncResult(f"t-{i}", app=app) for i in range(3)]
        for result in results:
            app.backend.add_pending_result(result, weak=True)  # subscribes to its channel, as a get does
        server.stop()
        time.sleep(0.2)
        started = time.monotonic()
        for result in results:
            result.__del__()  # what the garbage collector runs, in whichever thread it runs
        # Celery's own finaliser: the second one reconnects for ~19 s here (60 tries through Sentinel).
        assert time.monotonic() - started < 2.0
        assert not app.backend._pending_results.weak
    finally:
        server.stop()
        app.close()
