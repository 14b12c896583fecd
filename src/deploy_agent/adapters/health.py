"""HTTP health probes over real HTTP (requests). A probe never raises: failures are results."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests

from deploy_agent.core.health import Probe, assess_response

_MAX_ERROR_TEXT = 300


class HttpProber:
    """Sends one GET per probe through a ``requests.Session`` (made here when none is given)."""

    def __init__(
        self,
        session: requests.Session | None = None,
        *,
        timer: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session if session is not None else requests.Session()
        self._timer = timer
        self._wall_clock = wall_clock

    def probe(
        self,
        url: str,
        expected_status: int = 200,
        timeout_seconds: float = 5.0,
        max_latency_ms: int | None = None,
    ) -> Probe:
        """Return the probe's result; connection errors and timeouts give ``ok=False`` with the error text."""
        at = self._wall_clock()
        started = self._timer()
        try:
            with self._session.get(url, timeout=timeout_seconds, allow_redirects=False) as response:
                status = response.status_code
                _ = response.content  # the body is part of the answer's latency
        except requests.RequestException as exc:
            latency_ms = (self._timer() - started) * 1000.0
            text = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_TEXT]
            return Probe(ok=False, status=None, latency_ms=latency_ms, error=text, at=at)
        latency_ms = (self._timer() - started) * 1000.0
        problem = assess_response(status, latency_ms, expected_status, max_latency_ms)
        return Probe(ok=problem is None, status=status, latency_ms=latency_ms, error=problem, at=at)
