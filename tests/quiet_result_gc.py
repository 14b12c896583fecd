"""Test clients' ``AsyncResult`` objects forget themselves without a network call when collected.

Celery's ``AsyncResult.__del__`` unsubscribes from the result's pub/sub channel. Once the test's
private Redis is gone (a chaos stack, the Sentinel group), that unsubscribe reconnects, 60 times a
second apart, in whatever thread the garbage collector happens to run: in the fresh-clone CI of
2026-12-07 (and of 2026-12-06) the sandbox's scheduler thread spent two minutes there, right after
``test_sentinel_failover.py`` stopped its Redis, and ``test_seed_order_loses_requests`` saw no task
start ("Connection to Redis lost: Retry (0/60)" ... in its captured log). Here a collected result
only leaves its backend's pending lists; its channel stays subscribed until the client goes, which
costs nothing. Worker processes keep Celery's own behaviour: this runs in the test process only.
"""

from __future__ import annotations

from celery.result import AsyncResult


def _forget_locally(self: AsyncResult) -> None:
    backend = self.backend
    remove = getattr(backend, "_remove_pending_result", None)
    if remove is not None:
        remove(self.id)


AsyncResult.__del__ = _forget_locally  # type: ignore[method-assign]
