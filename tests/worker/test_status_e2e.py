"""End to end: a real worker serves its status page, API and metrics; headless Chromium renders the page.

Three deployments through the sandbox: a rolling one that succeeds, a rolling one that crashes and is
rolled back, and a canary whose Prometheus analysis gate fails at step 2 (the gate queries a stub
answering as Prometheus's ``/api/v1/query`` does, with a value the test raises once step 2 began).
The worker and the publisher here use Redis databases 3-5 (others: 0-2 default, 7-9 demo,
10-12 and 13-15 tests/integration).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from deploy_agent.adapters.redis_store import DeploymentStore
from deploy_agent.settings import Settings
from deploy_agent.worker.app import create_app
from ecs_sandbox.blue_green import BlueGreenSetup, provision_blue_green
from ecs_sandbox.environment import Sandbox, provision_service
from sandbox_harness.stack import StackConfig, WorkerProcess
from tests.integration.conftest import APPS, REDIS_URL, unique
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

DBS = {"broker_db": 3, "result_db": 4, "state_db": 5}
DOCS = Path(__file__).resolve().parents[2] / "docs"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium(profile: Path, *args: str) -> str:
    """Run headless Chromium once and return its stdout; fail (never skip) when it is missing."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary is not None, "chromium is not installed: scripts/bootstrap.sh installs it"
    done = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


class PrometheusStub:
    """Answers ``/api/v1/query`` as Prometheus does, with one sample whose value the test sets."""

    def __init__(self) -> None:
        self.value = 0.01
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = {"resultType": "vector", "result": [{"metric": {}, "value": [0, str(stub.value)]}]}
                body = json.dumps({"status": "success", "data": data}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> PrometheusStub:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def prometheus() -> Iterator[PrometheusStub]:
    with PrometheusStub() as stub:
        yield stub


def canary_request(
    setup: BlueGreenSetup, cluster: str, service: str, image: str, prometheus_url: str
) -> dict[str, Any]:
    """A canary 10 -> 50 -> 100 whose error-rate gate is measured every second, 4 times per step."""
    return {
        "deployment_id": unique("canary"),
        "cluster_name": cluster,
        "service_name": service,
        "image": {"uri": image},
        "strategy": {
            "type": "canary",
            "load_balancer": {
                "listener_arn": setup.listener_arn,
                "blue_target_group_arn": setup.target_group_arn,
                "green_target_group_arn": setup.green_target_group_arn,
                "test_listener_arn": setup.test_listener_arn,
                "test_url": setup.test_url,
                "production_url": f"{setup.url}/version",
            },
            "steps": [
                {"weight": 10, "pause_seconds": 2},
                {"weight": 50, "pause_seconds": 60},
                {"weight": 100},
            ],
        },
        "analysis": [
            {
                "name": "error-rate",
                "url": prometheus_url,
                "query": 'sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))',  # noqa: E501
                "success_condition": "result < 0.05",
                "failure_condition": "result >= 0.1",
                "interval_seconds": 1,
                "count": 4,
                "failure_limit": 1,
            }
        ],
        "health_check": {"url": f"{setup.url}/health", "healthy_threshold": 2, "unhealthy_threshold": 2},
        "timeout_seconds": 120,
    }


def request_for(svc: Any, cluster: str, service: str, version: str, mode: str) -> dict[str, Any]:
    return {
        "deployment_id": unique(mode),
        "cluster_name": cluster,
        "service_name": service,
        "build": {"context": "web", "build_args": {"VERSION": version, "MODE": mode}, "target": "app"},
        "image": {"repository": "web", "tag": f"{version}-{mode}"},
        "health_check": {"url": f"{svc.url}/health", "healthy_threshold": 2},
        "timeout_seconds": 180,
    }


def test_worker_serves_status_api_and_metrics(
    sandbox: Sandbox, push_app: Any, prometheus: PrometheusStub, tmp_path: Path
) -> None:
    """After a good release, a crashing one and a canary failing its gate, API, metrics and page show all."""
    for db in DBS.values():
        redis.Redis.from_url(f"{REDIS_URL}/{db}").flushdb()
    port = free_port()
    config = StackConfig(
        aws_endpoint_url=sandbox.aws_endpoint_url,
        registry_host=sandbox.registry_host,
        build_root=APPS,
        redis_url=REDIS_URL,
        poll_interval_seconds=0.1,
        extra_env={
            "AWS_MAX_ATTEMPTS": "2",
            "DEPLOY_AGENT_HEALTH_INTERVAL_DEFAULT_SECONDS": "0.1",
            "DEPLOY_AGENT_METRICS_PORT": str(port),
        },
        **DBS,
    )
    publisher = create_app(
        Settings(
            broker_url=f"{REDIS_URL}/{DBS['broker_db']}", result_backend=f"{REDIS_URL}/{DBS['result_db']}"
        ),
        set_as_current=False,
    )
    cluster = "status"
    good, bad = unique("good"), unique("bad")
    requests_ = [
        request_for(
            provision_service(sandbox, cluster, good, image=push_app("v1"), desired_count=1),
            cluster,
            good,
            "v2",
            "ok",
        ),
        request_for(
            provision_service(sandbox, cluster, bad, image=push_app("v1"), desired_count=1),
            cluster,
            bad,
            "v3",
            "crash",
        ),
    ]
    base = f"http://127.0.0.1:{port}"
    with WorkerProcess(config, tmp_path / "worker.log", concurrency=2, name="status").start():
        pending = [publisher.send_task("deploy_agent.deploy", kwargs={"request": r}) for r in requests_]
        results = [p.get(timeout=240) for p in pending]
        assert [r["outcome"] for r in results] == ["succeeded", "rolled_back"], results
        ok_id, crash_id = (r["deployment_id"] for r in requests_)
        canary_id = run_failing_canary(sandbox, publisher, push_app, prometheus)

        listed = requests.get(f"{base}/api/deployments", timeout=10).json()["deployments"]
        outcomes = {d["id"]: d["outcome"] for d in listed}
        assert outcomes == {ok_id: "succeeded", crash_id: "rolled_back", canary_id: "rolled_back"}
        stages = {d["id"]: [s["name"] for s in d["stages"]] for d in listed}
        assert stages[ok_id][:5] == ["preflight", "build", "push", "register", "deploy"]

        one = requests.get(f"{base}/api/deployments/{crash_id}", timeout=10).json()
        assert one["error"]["trigger"] == "circuit_breaker"
        assert one["events"][-1]["event"] == "finished"
        assert one["ended_because"]["trigger"] == "circuit_breaker"

        ended = requests.get(f"{base}/api/deployments/{canary_id}", timeout=10).json()["ended_because"]
        assert (ended["trigger"], ended["gate"], ended["gate_name"], ended["step"]) == (
            "analysis",
            "analysis",
            "error-rate",
            "step 2 (50%)",
        ), ended

        metrics = requests.get(f"{base}/metrics", timeout=10).text
        assert 'deploy_agent_deployments_total{outcome="succeeded",strategy="rolling"} 1.0' in metrics
        assert 'deploy_agent_deployments_total{outcome="rolled_back",strategy="rolling"} 1.0' in metrics
        assert 'deploy_agent_deployments_total{outcome="rolled_back",strategy="canary"} 1.0' in metrics

        dom = chromium(tmp_path / "profile-dom", "--dump-dom", f"{base}/status")
        screenshot = tmp_path / "status.png"
        chromium(
            tmp_path / "profile-shot",
            f"--screenshot={screenshot}",
            "--window-size=1280,900",
            "--hide-scrollbars",
            f"{base}/status",
        )

    assert f'data-id="{ok_id}"' in dom
    assert f'data-id="{crash_id}"' in dom
    assert '<span class="badge o-succeeded">succeeded</span>' in dom
    assert '<span class="badge o-rolled_back">rolled_back</span>' in dom
    assert dom.count('class="stage"') == sum(len(names) for names in stages.values())
    canary = dom[dom.index(f'data-id="{canary_id}"') :].split("</article>", 1)[0]
    assert (
        "Why it ended:</span> rolled back (trigger analysis): the analysis gate error-rate failed at "
        "step 2 (50%) \u2014 analysis error-rate failed: 2 of "
    ) in canary
    steps = re.findall(r'<tr class="step" data-label="([^"]+)"', canary)
    assert steps == ["step 1 (10%)", "step 2 (50%)", "restored"], steps
    verdicts = re.findall(r'<span class="verdict v-([a-z]+)">', canary)
    assert verdicts[:4] == ["successful"] * 4, verdicts  # step 1: every measurement passed
    assert verdicts[-2:] == ["failed"] * 2, verdicts  # step 2: failure_limit 1 exceeded

    png = screenshot.read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk follows the signature
    assert (width, height) == (1280, 900)
    assert len(png) > 20_000, len(png)  # a blank page compresses to a few kilobytes
    if os.environ.get("DEPLOY_AGENT_UPDATE_DOCS") == "1":  # refresh the README's picture on request only
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(screenshot, DOCS / "status-page.png")


def run_failing_canary(sandbox: Sandbox, publisher: Any, push_app: Any, prometheus: PrometheusStub) -> str:
    """Run a canary whose error rate rises once step 2 began; return its id after it rolled back."""
    cluster, service = "status", unique("canary")
    setup = provision_blue_green(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
    request = canary_request(setup, cluster, service, push_app("v2"), prometheus.url)
    store = DeploymentStore(redis.Redis.from_url(f"{REDIS_URL}/{DBS['state_db']}"), ttl_seconds=3600)

    def step_two_began() -> bool:
        return any(
            e.get("event") == "traffic_shifted" and str(e.get("label")).startswith("step 2")
            for e in store.events(str(request["deployment_id"]))
        )

    def raise_error_rate() -> None:
        wait_until(step_two_began, what="step 2", timeout=200, interval=0.1)
        prometheus.value = 0.3

    rising = threading.Thread(target=raise_error_rate, daemon=True)
    rising.start()
    result = publisher.send_task("deploy_agent.deploy", kwargs={"request": request}).get(timeout=240)
    rising.join(5)
    assert result["outcome"] == "rolled_back", result
    assert result["rollback"]["trigger"] == "analysis", result
    return str(request["deployment_id"])
