"""Steady HTTP load through the sandbox's load balancer, and what it saw."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

import requests

from ecs_sandbox.load_balancer import TARGET_HEADER


@dataclass(frozen=True)
class Outcome:
    """One request: when it was sent, its status (0: no answer), the target group that served it, body."""

    sent_at: float
    status: int
    target_group: str
    body: str


@dataclass
class Load:
    """Sends ``rate`` requests/s to ``url`` from ``threads`` threads (half keep-alive, half not)."""

    url: str
    rate: float = 50.0
    threads: int = 2
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Load:
        for index in range(self.threads):
            worker = threading.Thread(target=self._send, args=(index % 2 == 0,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=15)

    def _send(self, keep_alive: bool) -> None:
        session = requests.Session() if keep_alive else None
        pause = self.threads / self.rate
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                getter = session.get if session is not None else requests.get
                response = getter(self.url, timeout=5)
                served = response.headers.get(TARGET_HEADER, "").rsplit("/", 1)[0]
                outcome = Outcome(sent, response.status_code, served, response.text.strip())
            except requests.RequestException as error:
                outcome = Outcome(sent, 0, "", str(error))
            with self._lock:
                self.outcomes.append(outcome)
            self._stop.wait(max(0.0, pause - (time.monotonic() - sent)))

    def failures(self) -> list[Outcome]:
        """Return every request that did not get a 200."""
        with self._lock:
            return [o for o in self.outcomes if o.status != 200]

    def statuses(self) -> Counter[int]:
        """Return how many requests got each status."""
        with self._lock:
            return Counter(o.status for o in self.outcomes)

    def bodies(self) -> Counter[str]:
        """Return how many 200 responses had each body."""
        with self._lock:
            return Counter(o.body for o in self.outcomes if o.status == 200)
