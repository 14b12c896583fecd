"""End to end: a real worker serves its status page, API and metrics; headless Chromium renders the page.

The worker and the publisher here use Redis databases 3-5 (others: 0-2 default, 7-9 demo,
10-12 and 13-15 tests/integration).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from deploy_agent.settings import Settings
from deploy_agent.worker.app import create_app
from ecs_sandbox.environment import Sandbox, provision_service
from sandbox_harness.stack import StackConfig, WorkerProcess
from tests.integration.conftest import APPS, REDIS_URL, unique
from tests.support import free_port

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


def test_worker_serves_status_api_and_metrics(sandbox: Sandbox, push_app: Any, tmp_path: Path) -> None:
    """After one good and one crashing release, the worker's API, metrics and rendered page show both."""
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

        listed = requests.get(f"{base}/api/deployments", timeout=10).json()["deployments"]
        outcomes = {d["id"]: d["outcome"] for d in listed}
        assert outcomes == {ok_id: "succeeded", crash_id: "rolled_back"}
        stages = {d["id"]: [s["name"] for s in d["stages"]] for d in listed}
        assert stages[ok_id][:5] == ["preflight", "build", "push", "register", "deploy"]

        one = requests.get(f"{base}/api/deployments/{crash_id}", timeout=10).json()
        assert one["error"]["trigger"] == "circuit_breaker"
        assert one["events"][-1]["event"] == "finished"

        metrics = requests.get(f"{base}/metrics", timeout=10).text
        assert 'deploy_agent_deployments_total{outcome="succeeded",strategy="rolling"} 1.0' in metrics
        assert 'deploy_agent_deployments_total{outcome="rolled_back",strategy="rolling"} 1.0' in metrics

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
    assert dom.count('class="stage"') == len(stages[ok_id]) + len(stages[crash_id])

    png = screenshot.read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk follows the signature
    assert (width, height) == (1280, 900)
    assert len(png) > 20_000, len(png)  # a blank page compresses to a few kilobytes
    if os.environ.get("DEPLOY_AGENT_UPDATE_DOCS") == "1":  # refresh the README's picture on request only
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(screenshot, DOCS / "status-page.png")
