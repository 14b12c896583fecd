"""The worker's runtime hands the policy's ``outbound`` rules to every outgoing request it makes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from deploy_agent.adapters.webhook import NotificationFailed
from deploy_agent.settings import Settings
from deploy_agent.tasks.runtime import Runtime


class _Ok(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def app() -> Iterator[str]:
    _Ok.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def runtime(tmp_path: Path, policy: dict[str, Any] | None, **settings: Any) -> Runtime:
    if policy is not None:
        path = tmp_path / "policy.json"
        path.write_text(json.dumps(policy))
        settings["policy"] = path
    return Runtime(settings=Settings(**settings), redis=redis.Redis(port=1))  # never connected here


def test_with_no_policy_loopback_is_reached_and_link_local_is_not(app: str, tmp_path: Path) -> None:
    rt = runtime(tmp_path, None)
    assert rt.prober.probe(f"{app}/health").ok is True
    refused = rt.prober.probe("http://169.254.169.254/latest/meta-data/")
    assert refused.ok is False
    assert refused.error is not None
    assert "link-local" in refused.error
    assert _Ok.hits == ["/health"]


def test_a_policy_without_loopback_refuses_every_kind_of_request(app: str, tmp_path: Path) -> None:
    rt = runtime(tmp_path, {"outbound": {"allow_loopback": False}})
    probe = rt.prober.probe(f"{app}/health")
    assert probe.ok is False
    assert probe.error is not None
    assert "loopback address, which the policy does not allow (outbound.allow_loopback)" in probe.error
    with pytest.raises(NotificationFailed, match="loopback"):
        rt.webhooks.post(f"{app}/hook", {"event": "x"})
    with rt.traffic_probe(f"{app}/") as traffic:
        time.sleep(0.2)
    assert traffic.report is not None
    assert traffic.report.requests > 0
    assert set(traffic.report.statuses) == {"OutboundRefused"}
    assert _Ok.hits == []


def test_the_operators_own_webhooks_are_not_held_to_the_policy(app: str, tmp_path: Path) -> None:
    rt = runtime(tmp_path, {"outbound": {"allow_loopback": False}}, webhook_urls=[f"{app}/ops-hook"])
    rt.webhooks.post(f"{app}/ops-hook", {"event": "x"})
    assert _Ok.hits == ["/ops-hook"]
