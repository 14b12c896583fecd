"""HTTP health probes. A probe never raises: failures are results.

The probe's request obeys the operator's ``outbound`` policy (address classes and ``url_hosts``), is
never redirected, reads at most ``MAX_BODY_BYTES`` of the body and ends at ``timeout_seconds`` as a
whole (a server trickling bytes is cut there, not waited on read after read).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from deploy_agent.adapters.outbound import Outbound
from deploy_agent.adapters.outbound_rules import OutboundFailed, OutboundRefused
from deploy_agent.core.health import Probe, assess_response

_MAX_ERROR_TEXT = 300


class HttpProber:
    """Sends one GET per probe through ``outbound`` (no policy's rules when none is given)."""

    def __init__(
        self,
        outbound: Outbound | None = None,
        *,
        timer: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbound = outbound if outbound is not None else Outbound()
        self._timer = timer
        self._wall_clock = wall_clock

    def probe(
        self,
        url: str,
        expected_status: int = 200,
        timeout_seconds: float = 5.0,
        max_latency_ms: int | None = None,
    ) -> Probe:
        """Return the probe's result; refusals, connection errors and timeouts give ``ok=False``."""
        at = self._wall_clock()
        started = self._timer()
        try:
            response = self.outbound.request("GET", url, timeout_seconds=timeout_seconds)
        except OutboundRefused as exc:
            latency_ms = (self._timer() - started) * 1000.0
            return Probe(
                ok=False, status=None, latency_ms=latency_ms, error=exc.message[:_MAX_ERROR_TEXT], at=at
            )
        except OutboundFailed as exc:
            latency_ms = (self._timer() - started) * 1000.0
            text = f"{exc.reason}: {exc.message}"[:_MAX_ERROR_TEXT]
            return Probe(ok=False, status=None, latency_ms=latency_ms, error=text, at=at)
        latency_ms = (self._timer() - started) * 1000.0  # the body is part of the answer's latency
        problem = assess_response(response.status, latency_ms, expected_status, max_latency_ms)
        return Probe(ok=problem is None, status=response.status, latency_ms=latency_ms, error=problem, at=at)
