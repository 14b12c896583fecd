"""A test app whose error rate the test sets: it answers ``/`` with 500 for that share of requests,
counts its answers by status code (``app_requests_total{code}`` on ``/metrics``), and keeps itself
busy with a steady trickle of requests so the rate is always defined."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: the analysis query of the tests: the share of 5xx answers over the last 4 s
ERROR_RATE_QUERY = 'sum(rate(app_requests_total{code=~"5.."}[4s])) / sum(rate(app_requests_total[4s]))'


class ErrorRateApp:
    """Serves on a loopback port; ``error_rate`` (0-1) is the share of requests answered 500."""

    def __init__(self, requests_per_second: float = 20.0) -> None:
        self.error_rate = 0.0
        self.counts = {"200": 0, "500": 0}
        self._served = 0
        self._lock = threading.Lock()
        self._interval = 1.0 / requests_per_second
        self._stopping = threading.Event()
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = app.exposition() if self.path == "/metrics" else app.answer()
                status = 200 if self.path == "/metrics" or body == b"ok\n" else 500
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.target = f"127.0.0.1:{self._server.server_address[1]}"
        self._threads = [
            threading.Thread(target=self._server.serve_forever, daemon=True),
            threading.Thread(target=self._trickle, daemon=True),
        ]

    def answer(self) -> bytes:
        """Count one request, failing ``error_rate`` of them."""
        with self._lock:
            # spread evenly: request n fails when n * error_rate crosses a whole number
            n = self._served = self._served + 1
            failing = int(n * self.error_rate) > int((n - 1) * self.error_rate)
            self.counts["500" if failing else "200"] += 1
        return b"boom\n" if failing else b"ok\n"

    def exposition(self) -> bytes:
        with self._lock:
            lines = [f'app_requests_total{{code="{code}"}} {n}' for code, n in self.counts.items()]
        return ("# TYPE app_requests_total counter\n" + "\n".join(lines) + "\n").encode()

    def _trickle(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                urllib.request.urlopen(f"http://{self.target}/", timeout=2).close()
            except urllib.error.HTTPError:
                pass  # the 500s the test asked for
            except OSError:
                time.sleep(0.1)

    def __enter__(self) -> ErrorRateApp:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
