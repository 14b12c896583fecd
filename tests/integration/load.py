"""A steady request load through the sandbox's load balancer, recording every answer."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import requests


@dataclass
class Answer:
    at: float  # time.time() when the request was sent
    ok: bool
    body: str
    status: int | None


@dataclass
class Load:
    """GET ``url`` at ``rate`` requests per second from ``threads`` threads until stopped."""

    url: str
    rate: float = 50.0
    threads: int = 2
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(10)

    def _run(self) -> None:
        session = requests.Session()
        interval = self.threads / self.rate
        while not self._stop.is_set():
            sent = time.time()
            try:
                response = session.get(self.url, timeout=5)
                answer = Answer(
                    sent, response.status_code == 200, response.text.strip(), response.status_code
                )
            except requests.RequestException as exc:
                answer = Answer(sent, False, type(exc).__name__, None)
            self.answers.append(answer)
            self._stop.wait(max(0.0, interval - (time.time() - sent)))

    @property
    def failures(self) -> list[Answer]:
        return [a for a in self.answers if not a.ok]

    def share(self, body: str, start: float, end: float) -> tuple[float, int]:
        """Return the share of answers with ``body`` among those sent in [start, end), and their count."""
        window = [a for a in self.answers if start <= a.at < end and a.ok]
        if not window:
            return 0.0, 0
        return sum(a.body == body for a in window) / len(window), len(window)
