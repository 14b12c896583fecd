"""PrometheusApi against a local HTTP server answering as Prometheus's /api/v1/query does."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from deploy_agent.adapters.outbound import Outbound
from deploy_agent.adapters.prometheus import PrometheusApi, read_data
from deploy_agent.core.analysis import QueryResult
from deploy_agent.models.policy import OutboundPolicy

pytestmark = pytest.mark.integration


def vector(*values: str) -> dict[str, Any]:
    return {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, v]} for v in values]}


#: query -> (status, body): what the server answers
ANSWERS: dict[str, tuple[int, Any]] = {
    "one": (200, {"status": "success", "data": vector("0.25")}),
    "two": (200, {"status": "success", "data": vector("0.1", "0.2")}),
    "none": (200, {"status": "success", "data": vector()}),
    "scalar": (200, {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}}),
    "nan": (200, {"status": "success", "data": vector("NaN")}),
    "bad": (
        400,
        {"status": "error", "errorType": "bad_data", "error": 'parse error at char 4: unexpected "}"'},
    ),
    "matrix": (200, {"status": "success", "data": {"resultType": "matrix", "result": []}}),
    "html": (502, "<html>bad gateway</html>"),
}


class _Prometheus(BaseHTTPRequestHandler):
    seen: list[dict[str, list[str]]] = []

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        params = parse_qs(parts.query)
        _Prometheus.seen.append({"path": [parts.path], **params})
        query = params.get("query", [""])[0]
        if query == "slow":
            time.sleep(1.0)
        status, body = ANSWERS.get(query, (404, "no"))
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Prometheus)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


CASES: dict[str, tuple[str, tuple[float, ...], str | None]] = {
    "a one-series vector gives its value": ("one", (0.25,), None),
    "a two-series vector gives both values": ("two", (0.1, 0.2), None),
    "an empty vector gives no value": ("none", (), None),
    "a scalar gives its value": ("scalar", (3.0,), None),
    "a 400 names Prometheus's error type and text": ("bad", (), "HTTP 400: bad_data: parse error"),
    "a range vector is refused": ("matrix", (), "gives a matrix"),
    "a non-JSON answer says so": ("html", (), "HTTP 502: the answer is not JSON"),
}


@pytest.mark.parametrize(("query", "values", "error"), CASES.values(), ids=CASES.keys())
def test_answers_become_query_results(
    server: str, query: str, values: tuple[float, ...], error: str | None
) -> None:
    """Each answer shape becomes values or an error of our own; nothing raises."""
    result = PrometheusApi().query(server, query, timeout_seconds=2)
    assert result.values == values
    assert (result.error is None) if error is None else (error in (result.error or ""))


def test_nan_is_kept_as_nan(server: str) -> None:
    """A "NaN" sample (0/0) comes back as NaN, for the verdict to call inconclusive."""
    (value,) = PrometheusApi().query(server, "nan", timeout_seconds=2).values
    assert math.isnan(value)


def test_query_goes_to_the_api_path_with_its_timeout(server: str) -> None:
    """The request is GET <base>/api/v1/query with the query and the timeout as parameters."""
    PrometheusApi().query(server + "/", "one", timeout_seconds=2)
    assert _Prometheus.seen[-1] == {"path": ["/api/v1/query"], "query": ["one"], "timeout": ["2s"]}


def test_a_slow_server_times_out_as_an_error(server: str) -> None:
    """A server slower than the timeout gives an error result within about the timeout."""
    started = time.monotonic()
    result = PrometheusApi().query(server, "slow", timeout_seconds=0.3)
    assert result.values == ()
    assert result.error is not None
    assert time.monotonic() - started < 0.9


def test_the_outbound_policy_refuses_before_sending(server: str) -> None:
    """A host outside the policy's url_hosts is refused with nothing sent."""
    sent = len(_Prometheus.seen)
    api = PrometheusApi(Outbound(OutboundPolicy(url_hosts=["prometheus.internal"])))
    result = api.query(server, "one", timeout_seconds=2)
    assert result.error is not None
    assert "outbound.url_hosts" in result.error
    assert len(_Prometheus.seen) == sent


def test_malformed_data_is_an_error() -> None:
    """A vector whose sample lacks a value is reported, not raised."""
    result = read_data({"resultType": "vector", "result": [{"metric": {}}]})
    assert result == QueryResult(error="the vector in the answer is malformed")
