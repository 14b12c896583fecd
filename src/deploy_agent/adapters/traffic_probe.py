"""A background stream of GET requests that measures downtime while traffic moves between groups.

Terms of the :class:`~deploy_agent.core.traffic.ZeroDowntimeReport` it returns:

* ``requests``: requests that finished (answered, failed or timed out) between ``start`` and ``stop``.
* ``failures``: requests that ended in a connection error, a timeout or a 5xx status. Any other
  status (2xx, 3xx, 4xx) is an answer from the release and counts as a success.
* ``statuses``: how many requests ended each way, keyed by status code (``"200"``, ``"503"``) or
  by the failure's name (``"ConnectionError"``, ``"ConnectTimeout"``, ``"ReadTimeout"``, and
  ``"OutboundRefused"`` when the policy does not allow the URL's host or address).
* ``longest_gap_ms``: the longest stretch without a successful response. With ``t0`` the moment
  ``start()`` was called, ``s1 < s2 < ... < sn`` the moments successful responses *completed* and
  ``t_end`` the moment ``stop()`` was called, it is the largest difference between neighbours in
  ``t0, s1, ..., sn, t_end``; with no success at all it is ``t_end - t0``. Even a flawless run
  shows about one request interval (``1000 / rate_per_second`` ms) plus one response time.

Requests are sent one at a time from a single thread, one every ``1 / rate_per_second`` seconds;
a request slower than the interval delays the next (missed slots are skipped, never bursted), so
the rate is an upper bound. Nothing here raises once constructed: failures are counted.
Requests go through :mod:`deploy_agent.adapters.outbound` (policy, no redirects, byte cap, and
``timeout_seconds`` as a whole-request deadline).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

from deploy_agent.adapters.outbound import Outbound
from deploy_agent.adapters.outbound_rules import OutboundFailed, OutboundRefused, url_host
from deploy_agent.core.traffic import ZeroDowntimeReport

__all__ = ["TrafficProbe", "ZeroDowntimeReport"]


class _Run:
    """The counters of one start/stop run; closed once reported, so a late answer changes nothing."""

    def __init__(self, started: float) -> None:
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.closed = False
        self.requests = 0
        self.failures = 0
        self.statuses: dict[str, int] = {}
        self.last_success = started
        self.longest_gap = 0.0

    def record(self, outcome: str, ok: bool, now: float) -> None:
        with self.lock:
            if self.closed:
                return
            self.requests += 1
            self.statuses[outcome] = self.statuses.get(outcome, 0) + 1
            if ok:
                self.longest_gap = max(self.longest_gap, now - self.last_success)
                self.last_success = now
            else:
                self.failures += 1

    def close(self, now: float) -> ZeroDowntimeReport:
        with self.lock:
            self.closed = True
            gap = max(self.longest_gap, now - self.last_success)
            return ZeroDowntimeReport(
                requests=self.requests,
                failures=self.failures,
                longest_gap_ms=gap * 1000.0,
                statuses=dict(self.statuses),
            )


class TrafficProbe:
    """Sends GET requests to ``url`` from a background thread between :meth:`start` and :meth:`stop`."""

    def __init__(
        self,
        url: str,
        rate_per_second: float = 20,
        timeout_seconds: float = 2.0,
        outbound: Outbound | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be above 0")
        self.url = url
        self.interval = 1.0 / rate_per_second
        self.timeout_seconds = timeout_seconds
        self.outbound = outbound if outbound is not None else Outbound()
        self._clock = clock
        self._run: _Run | None = None
        self._thread: threading.Thread | None = None
        self._report: ZeroDowntimeReport | None = None

    @property
    def report(self) -> ZeroDowntimeReport | None:
        """The report of the last finished run (None before the first ``stop``)."""
        return self._report

    def start(self) -> None:
        """Start sending; a probe that is already running keeps running."""
        if self._run is not None:
            return
        run = _Run(started=self._clock())
        self._run, self._report = run, None
        self._thread = threading.Thread(
            target=self._send_until_stopped,
            args=(run,),
            name=f"traffic-probe {url_host(self.url)}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> ZeroDowntimeReport:
        """Stop sending and return what was seen; a probe never started gives an empty report."""
        run, thread = self._run, self._thread
        self._run = self._thread = None
        if run is None or thread is None:
            return self._report or ZeroDowntimeReport(requests=0, failures=0, longest_gap_ms=0.0)
        run.stopping.set()
        thread.join(timeout=self.timeout_seconds + 1.0)  # the request in flight ends within its timeout
        self._report = run.close(self._clock())
        return self._report

    def __enter__(self) -> TrafficProbe:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _send_until_stopped(self, run: _Run) -> None:
        next_at = self._clock()
        while not run.stopping.is_set():
            outcome, ok = self._send()
            run.record(outcome, ok, self._clock())
            next_at += self.interval
            now = self._clock()
            if next_at < now:  # fell behind: skip the missed slots
                next_at = now
            run.stopping.wait(next_at - now)

    def _send(self) -> tuple[str, bool]:
        try:
            response = self.outbound.request("GET", self.url, timeout_seconds=self.timeout_seconds)
        except OutboundRefused:
            return "OutboundRefused", False
        except OutboundFailed as exc:
            return exc.reason, False
        except Exception as exc:  # any failure to get an answer is downtime, never an error of ours
            return type(exc).__name__, False
        return str(response.status), response.status < 500
