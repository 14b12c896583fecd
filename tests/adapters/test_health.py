"""HttpProber against a real local HTTP server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from deploy_agent.adapters.health import HttpProber
from deploy_agent.core.health import Probe
from tests.support import free_port

pytestmark = pytest.mark.integration

SLOW_SECONDS = 0.3


class _App(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(SLOW_SECONDS)
        status = 500 if self.path == "/broken" else 200
        body = b"ok\n" if status == 200 else b"boom\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def app() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def prober() -> HttpProber:
    return HttpProber()


class TestProbe:
    def test_expected_status_is_ok(self, prober: HttpProber, app: str) -> None:
        """A 200 when 200 is expected is ok, with its status, latency and time."""
        before = time.time()
        probe = prober.probe(f"{app}/health", expected_status=200, timeout_seconds=2)
        assert isinstance(probe, Probe)
        assert probe.ok is True
        assert probe.status == 200
        assert probe.error is None
        assert 0 < probe.latency_ms < 2000
        assert before <= probe.at <= time.time()

    def test_server_error_is_not_ok(self, prober: HttpProber, app: str) -> None:
        """A 500 fails the probe and says which status came back."""
        probe = prober.probe(f"{app}/broken", expected_status=200, timeout_seconds=2)
        assert (probe.ok, probe.status) == (False, 500)
        assert probe.error == "status 500, expected 200"

    def test_a_non_200_status_can_be_the_expected_one(self, prober: HttpProber, app: str) -> None:
        """expected_status=500 makes a 500 pass."""
        assert prober.probe(f"{app}/broken", expected_status=500, timeout_seconds=2).ok is True

    def test_slow_answer_fails_max_latency(self, prober: HttpProber, app: str) -> None:
        """An answer slower than max_latency_ms fails even with the right status."""
        probe = prober.probe(f"{app}/slow", expected_status=200, timeout_seconds=5, max_latency_ms=100)
        assert probe.ok is False
        assert probe.status == 200
        assert probe.latency_ms >= SLOW_SECONDS * 1000
        assert probe.error is not None
        assert "above 100 ms" in probe.error

    def test_slow_answer_within_max_latency_passes(self, prober: HttpProber, app: str) -> None:
        """The same slow answer passes when the latency budget allows it."""
        assert prober.probe(f"{app}/slow", timeout_seconds=5, max_latency_ms=5000).ok is True

    def test_timeout_is_a_failed_probe_not_an_exception(self, prober: HttpProber, app: str) -> None:
        """A read timeout gives ok False, no status, and the error's name."""
        probe = prober.probe(f"{app}/slow", timeout_seconds=0.05)
        assert (probe.ok, probe.status) == (False, None)
        assert probe.error is not None
        assert "Timeout" in probe.error

    def test_closed_port_is_a_failed_probe_not_an_exception(self, prober: HttpProber) -> None:
        """Nothing listening gives ok False with the connection error text."""
        probe = prober.probe(f"http://127.0.0.1:{free_port()}/health", timeout_seconds=2)
        assert (probe.ok, probe.status) == (False, None)
        assert probe.error is not None
        assert probe.error.startswith("ConnectionError")

    def test_invalid_url_is_a_failed_probe(self, prober: HttpProber) -> None:
        """A URL requests cannot use is a failed probe too."""
        probe = prober.probe("notaurl", timeout_seconds=1)
        assert probe.ok is False
        assert probe.error is not None
