"""TrafficProbe against a real local HTTP server whose answers the test switches."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from deploy_agent.adapters.traffic_probe import TrafficProbe
from tests.support import free_port

pytestmark = pytest.mark.integration

RATE = 50  # requests per second: a 20 ms resolution for the gap
OUTAGE_SECONDS = 0.5


class _Switchable(ThreadingHTTPServer):
    daemon_threads = True
    status = 200
    delay_seconds = 0.0


class _App(BaseHTTPRequestHandler):
    server: _Switchable

    def do_GET(self) -> None:
        time.sleep(self.server.delay_seconds)
        body = b"ok\n"
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def app() -> Iterator[_Switchable]:
    server = _Switchable(("127.0.0.1", 0), _App)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def url_of(server: _Switchable) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/"


class TestTrafficProbe:
    def test_a_healthy_server_shows_no_failures(self, app: _Switchable) -> None:
        """All 200s: every request succeeds and the longest gap stays near one request interval."""
        with TrafficProbe(url_of(app), rate_per_second=RATE) as probe:
            time.sleep(0.5)
        report = probe.report
        assert report is not None
        assert report.failures == 0
        assert report.requests >= 10
        assert report.statuses == {"200": report.requests}
        assert report.longest_gap_ms < 200

    def test_an_outage_window_is_counted_and_measured(self, app: _Switchable) -> None:
        """503s for 0.5 s are failures, and the longest gap is about that window."""
        probe = TrafficProbe(url_of(app), rate_per_second=RATE)
        probe.start()
        time.sleep(0.3)
        app.status = 503
        time.sleep(OUTAGE_SECONDS)
        app.status = 200
        time.sleep(0.3)
        report = probe.stop()
        assert report.failures == report.statuses["503"] >= 10
        assert report.had_downtime
        assert OUTAGE_SECONDS * 1000 - 30 <= report.longest_gap_ms <= OUTAGE_SECONDS * 1000 + 200

    def test_a_4xx_answer_is_not_downtime(self, app: _Switchable) -> None:
        """Only connection errors, timeouts and 5xx are failures; a 404 is an answer."""
        app.status = 404
        with TrafficProbe(url_of(app), rate_per_second=RATE) as probe:
            time.sleep(0.2)
        assert probe.report is not None
        assert probe.report.failures == 0
        assert probe.report.statuses["404"] == probe.report.requests > 0

    def test_a_slow_answer_is_a_timeout_failure(self, app: _Switchable) -> None:
        """An answer slower than timeout_seconds counts as a ReadTimeout failure."""
        app.delay_seconds = 0.3
        with TrafficProbe(url_of(app), rate_per_second=RATE, timeout_seconds=0.05) as probe:
            time.sleep(0.3)
        assert probe.report is not None
        assert probe.report.failures == probe.report.requests > 0
        assert set(probe.report.statuses) == {"ReadTimeout"}

    def test_a_closed_port_fails_every_request_without_raising(self) -> None:
        """Nothing listening: all requests fail, and the gap is the whole run."""
        probe = TrafficProbe(f"http://127.0.0.1:{free_port()}/", rate_per_second=RATE)
        probe.start()
        time.sleep(0.3)
        report = probe.stop()
        assert report.requests > 0
        assert report.failures == report.requests
        assert set(report.statuses) == {"ConnectionError"}
        assert report.longest_gap_ms >= 300

    def test_stop_without_start_gives_an_empty_report(self) -> None:
        """A probe that never ran reports nothing and does not raise."""
        report = TrafficProbe("http://127.0.0.1:9/").stop()
        assert (report.requests, report.failures, report.longest_gap_ms) == (0, 0, 0.0)

    def test_a_late_answer_does_not_change_a_finished_report(self, app: _Switchable) -> None:
        """The report returned by stop() is final; a second stop() returns the same one."""
        probe = TrafficProbe(url_of(app), rate_per_second=RATE)
        probe.start()
        time.sleep(0.1)
        first = probe.stop()
        time.sleep(0.1)
        assert probe.stop() == first
