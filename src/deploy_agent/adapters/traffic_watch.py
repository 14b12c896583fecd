"""The zero-downtime watch of a listener change, across task runs (``core.ports.TrafficWatchPort``).

The task run that changes the listener starts a probe (a thread of this worker process) before the
change, asks it to stop ``seconds`` after, and returns. A timer thread then stops the probe and
stores its report in Redis, where the deployment's next look (in any process, on any host) reads it.
A process that dies meanwhile stores nothing: the look reports the change as unmeasured.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import cast

import redis

from deploy_agent.adapters.redis_store import PREFIX
from deploy_agent.adapters.traffic_probe import TrafficProbe
from deploy_agent.core.traffic import ZeroDowntimeReport

log = logging.getLogger("deploy_agent.pipeline")

#: reports are read within seconds; an hour covers any look that was delayed
REPORT_TTL_SECONDS = 3600


class TrafficWatch:
    """Probes of this process, keyed by change; their reports kept in Redis."""

    def __init__(
        self,
        client: redis.Redis,
        probe_for: Callable[[str], TrafficProbe],
        on_report: Callable[[ZeroDowntimeReport], None] = lambda _report: None,
    ) -> None:
        self._r = client
        self._probe_for = probe_for
        self._on_report = on_report
        self._running: dict[str, TrafficProbe] = {}
        self._lock = threading.Lock()

    def begin(self, key: str, url: str) -> None:
        with self._lock:
            probe = self._running.get(key)
            if probe is None:
                probe = self._running[key] = self._probe_for(url)
        probe.start()

    def end_after(self, key: str, seconds: float) -> None:
        timer = threading.Timer(max(0.0, seconds), self._finish, args=(key,))
        timer.daemon = True
        timer.name = f"traffic-watch {key}"
        timer.start()

    def report(self, key: str) -> ZeroDowntimeReport | None:
        raw = self._r.get(_key(key))
        if raw is None:
            return None
        data = json.loads(cast(bytes, raw))
        return ZeroDowntimeReport(
            requests=int(data["requests"]),
            failures=int(data["failures"]),
            longest_gap_ms=float(data["longest_gap_ms"]),
            statuses={str(k): int(v) for k, v in dict(data.get("statuses") or {}).items()},
        )

    def _finish(self, key: str) -> None:
        with self._lock:
            probe = self._running.pop(key, None)
        if probe is None:
            return
        report = probe.stop()
        try:
            self._r.set(_key(key), json.dumps(report.as_dict()), ex=REPORT_TTL_SECONDS)
        except redis.RedisError:
            log.warning("could not store the zero-downtime report of %s", key, exc_info=True)
            return
        self._on_report(report)


def _key(key: str) -> str:
    return f"{PREFIX}zero-downtime:{key}"
