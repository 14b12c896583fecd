"""The host's HTTP server on real sockets, reading a real Redis (database 6, flushed per test)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
import requests
from prometheus_client import CollectorRegistry, Counter

from deploy_agent.adapters.redis_store import DeploymentStore
from deploy_agent.core.outcome import Phase
from deploy_agent.core.state import PipelineState, StageState
from deploy_agent.settings import Settings
from deploy_agent.worker.http import StatusServer
from tests.support import wait_until

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:" + os.environ.get("DEPLOY_AGENT_REDIS_PORT", "6379") + "/6"
T0 = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
SECRET = "hunter2-build-arg"


@pytest.fixture
def store() -> DeploymentStore:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    return DeploymentStore(client, ttl_seconds=600)


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("deploy_agent_deployments", "Deployments finished.", ["outcome"], registry=registry).labels(
        "succeeded"
    ).inc()
    return registry


@pytest.fixture
def server(store: DeploymentStore, registry: CollectorRegistry) -> Iterator[StatusServer]:
    http = StatusServer(
        "127.0.0.1", 0, store=lambda: store, registry=lambda: registry, now=lambda: T0 + timedelta(seconds=9)
    ).start()
    yield http
    http.stop()


def record(store: DeploymentStore, deployment_id: str, outcome: str | None) -> None:
    state = PipelineState(
        deployment_id=deployment_id,
        request={"build": {"build_args": {"TOKEN": SECRET}}},
        strategy="rolling",
        cluster="prod",
        service="web",
        region="us-east-1",
        started_at=T0,
        deadline=T0 + timedelta(minutes=20),
        stages=[StageState(name="build", started_at=T0, finished_at=T0 + timedelta(seconds=3))],
        phase=Phase.DONE if outcome else Phase.UPDATING,
        outcome=outcome,
        finished_at=T0 + timedelta(seconds=8) if outcome else None,
    )
    assert store.create(deployment_id, state.model_dump(mode="json"))
    store.append_event(deployment_id, {"at": T0.isoformat(), "event": "build_step", "line": f"ARG {SECRET}"})
    store.append_event(
        deployment_id,
        {"at": T0.isoformat(), "event": "stage_finished", "stage": "build", "outcome": "succeeded"},
    )


class TestRoutes:
    def test_healthz(self, server: StatusServer) -> None:
        """/healthz answers 200 "ok"."""
        response = requests.get(f"{server.url}/healthz", timeout=5)
        assert (response.status_code, response.text) == (200, "ok")

    def test_metrics_use_the_given_registry(self, server: StatusServer) -> None:
        """/metrics is the Prometheus exposition of the registry the server was given."""
        response = requests.get(f"{server.url}/metrics", timeout=5)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        assert 'deploy_agent_deployments_total{outcome="succeeded"} 1.0' in response.text

    def test_lists_recent_deployments_newest_first(
        self, server: StatusServer, store: DeploymentStore
    ) -> None:
        """/api/deployments lists stored deployments newest first, with outcome and stages."""
        record(store, "dep-old", "succeeded")
        record(store, "dep-new", None)
        body = requests.get(f"{server.url}/api/deployments", timeout=5).json()
        assert [(d["id"], d["outcome"]) for d in body["deployments"]] == [
            ("dep-new", "running"),
            ("dep-old", "succeeded"),
        ]
        assert body["deployments"][0]["duration_seconds"] == 9.0
        assert body["deployments"][1]["stages"][0]["name"] == "build"

    def test_one_deployment_with_safe_events(self, server: StatusServer, store: DeploymentStore) -> None:
        """/api/deployments/<id> gives the summary and events, without build output lines."""
        record(store, "dep-1", "rolled_back")
        body = requests.get(f"{server.url}/api/deployments/dep-1", timeout=5).json()
        assert (body["id"], body["outcome"], body["error"]) == ("dep-1", "rolled_back", None)
        assert body["events"] == [
            {"at": T0.isoformat(), "event": "build_step"},
            {"at": T0.isoformat(), "event": "stage_finished", "stage": "build", "outcome": "succeeded"},
        ]

    def test_no_response_shows_the_request(self, server: StatusServer, store: DeploymentStore) -> None:
        """Nothing from the request payload (here a build arg) appears on any route."""
        record(store, "dep-1", "succeeded")
        for path in ("/status", "/api/deployments", "/api/deployments/dep-1"):
            response = requests.get(f"{server.url}{path}", timeout=5)
            assert response.status_code == 200, path
            assert SECRET not in response.text, path
            assert "build_args" not in response.text, path

    def test_status_page_is_html_with_a_strict_policy(
        self, server: StatusServer, store: DeploymentStore
    ) -> None:
        """/status is the HTML page, served with a policy that forbids anything not inline and hashed."""
        record(store, "dep-1", "succeeded")
        response = requests.get(f"{server.url}/status", timeout=5)
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        assert 'data-id="dep-1"' in response.text

    @pytest.mark.parametrize(
        "path", ["/api/deployments/nope", "/api/deployments/", "/api/deployments/a/b", "/x"]
    )
    def test_unknown_paths_are_not_found(self, server: StatusServer, path: str) -> None:
        """Unknown deployments and paths answer 404 with a JSON error."""
        response = requests.get(f"{server.url}{path}", timeout=5)
        assert response.status_code == 404
        assert "error" in response.json()


def test_redis_down_is_service_unavailable() -> None:
    """When the state Redis cannot be reached, reads answer 503 and the server keeps serving."""
    unreachable = DeploymentStore(redis.Redis(port=1, socket_connect_timeout=1), ttl_seconds=60)
    http = StatusServer("127.0.0.1", 0, store=lambda: unreachable).start()
    try:
        assert requests.get(f"{http.url}/api/deployments", timeout=10).status_code == 503
        assert requests.get(f"{http.url}/healthz", timeout=5).status_code == 200
    finally:
        http.stop()


def raw_get(url: str, request: bytes, timeout: float = 5.0) -> bytes:
    """Send ``request`` as is on a fresh connection and return everything the server answers."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


class TestHostHeader:
    @pytest.mark.parametrize(
        "host", ["127.0.0.1", "localhost:9", "LOCALHOST", "[::1]:8080", "10.0.0.5:9100", "[fd00::5]"]
    )
    def test_allowed_hosts_are_served(self, server: StatusServer, host: str) -> None:
        """The default names answer, whatever the port and case; so does any IP address (a scraper's)."""
        response = requests.get(f"{server.url}/api/deployments", headers={"Host": host}, timeout=5)
        assert response.status_code == 200

    @pytest.mark.parametrize(
        "host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "2130706433", "localhost.evil"]
    )
    def test_other_hosts_are_misdirected(self, server: StatusServer, host: str) -> None:
        """A DNS-rebinding page (Host: its own name) gets 421 and nothing of the data."""
        response = requests.get(f"{server.url}/api/deployments", headers={"Host": host}, timeout=5)
        assert response.status_code == 421
        assert "deployments" not in response.json()

    def test_missing_or_malformed_host_is_a_bad_request(self, server: StatusServer) -> None:
        assert raw_get(server.url, b"GET /status HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 400")
        bad = b"GET /status HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n"
        assert raw_get(server.url, bad).startswith(b"HTTP/1.0 400")
        two = b"GET /status HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        assert raw_get(server.url, two).startswith(b"HTTP/1.0 400")

    def test_configured_hosts_replace_the_defaults(self, store: DeploymentStore) -> None:
        settings = Settings(status_allowed_hosts=["status.internal"])
        http = StatusServer("127.0.0.1", 0, store=lambda: store, **StatusServer.options(settings)).start()
        try:
            ok = requests.get(f"{http.url}/healthz", headers={"Host": "status.internal:9100"}, timeout=5)
            assert ok.status_code == 200
            other = requests.get(f"{http.url}/healthz", headers={"Host": "localhost"}, timeout=5)
            assert other.status_code == 421
        finally:
            http.stop()


class TestToken:
    TOKEN = "status-t0ken-planted"

    @pytest.fixture
    def guarded(self, store: DeploymentStore, registry: CollectorRegistry) -> Iterator[StatusServer]:
        settings = Settings(status_token=self.TOKEN)
        http = StatusServer(
            "127.0.0.1", 0, store=lambda: store, registry=lambda: registry, **StatusServer.options(settings)
        ).start()
        yield http
        http.stop()

    @pytest.mark.parametrize("path", ["/status", "/api/deployments", "/api/deployments/dep-1", "/metrics"])
    def test_every_route_needs_the_token(
        self, guarded: StatusServer, store: DeploymentStore, path: str
    ) -> None:
        """No header, another scheme or a wrong token: 401; the right bearer token: 200."""
        record(store, "dep-1", "succeeded")
        for header in (None, f"Basic {self.TOKEN}", "Bearer wrong", f"Bearer {self.TOKEN}x", "Bearer "):
            headers = {"Authorization": header} if header else {}
            response = requests.get(f"{guarded.url}{path}", headers=headers, timeout=5)
            assert response.status_code == 401, (path, header)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert "dep-1" not in response.text
        good = requests.get(
            f"{guarded.url}{path}", headers={"Authorization": f"Bearer {self.TOKEN}"}, timeout=5
        )
        assert good.status_code == 200

    def test_healthz_stays_open(self, guarded: StatusServer) -> None:
        assert requests.get(f"{guarded.url}/healthz", timeout=5).status_code == 200

    def test_host_is_checked_before_the_token(self, guarded: StatusServer) -> None:
        headers = {"Authorization": f"Bearer {self.TOKEN}", "Host": "evil.example"}
        assert requests.get(f"{guarded.url}/status", headers=headers, timeout=5).status_code == 421


class TestThreadBound:
    def test_excess_connections_get_503_at_once(self, store: DeploymentStore) -> None:
        """Two idle clients hold both slots: a third is answered 503 quickly, no thread started for it."""
        http = StatusServer("127.0.0.1", 0, store=lambda: store, max_threads=2).start()
        idle = []
        try:
            before = threading.active_count()
            for _ in range(2):
                idle.append(socket.create_connection(("127.0.0.1", http.port), timeout=5))
            deadline = time.monotonic() + 5
            while threading.active_count() < before + 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            started = time.monotonic()
            answers = [
                raw_get(http.url, b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n") for _ in range(20)
            ]
            elapsed = time.monotonic() - started
            assert all(a.startswith(b"HTTP/1.1 503") for a in answers), answers[0]
            assert elapsed < 5, elapsed
            assert threading.active_count() <= before + 2
            for conn in idle:
                conn.close()
            wait_until(  # the freed slots serve again
                lambda: requests.get(f"{http.url}/healthz", timeout=5).status_code == 200,
                what="/healthz to answer 200 again",
                timeout=5,
            )
        finally:
            for conn in idle:
                conn.close()
            http.stop()

    def test_max_threads_must_be_positive(self, store: DeploymentStore) -> None:
        with pytest.raises(ValueError, match="max_threads"):
            StatusServer("127.0.0.1", 0, store=lambda: store, max_threads=0)
