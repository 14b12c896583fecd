"""What agents and operators touch: the Python client, a raw publisher, the CLI, webhooks and logs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from deploy_agent.client import submit
from ecs_sandbox import Sandbox, provision_service
from sandbox_harness.stack import StackConfig, WorkerProcess
from tests.integration.conftest import DBS, REDIS_URL, unique
from tests.integration.test_rolling import served_version
from tests.support import wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def release(svc: Any, cluster: str, service: str, image: str, **extra: Any) -> dict[str, Any]:
    return {
        "deployment_id": unique("cli"),
        "cluster_name": cluster,
        "service_name": service,
        "image": {"uri": image},
        "health_check": {"url": f"{svc.url}/version", "healthy_threshold": 1},
        **extra,
    }


class Receiver:
    """A local webhook receiver; answers ``status`` and keeps every JSON body it got."""

    def __init__(self, status: int = 200) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class TestClient:
    def test_submit_follow_and_wait(self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any) -> None:
        """submit() publishes; events() follows the stages to the end; wait() returns the DeploymentResult."""
        cluster, service = "cli", unique("client")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        message = release(svc, cluster, service, push_app("v2"))
        del message["deployment_id"]  # the client makes one up so that it can follow the events
        handle = submit(message)
        kinds = [e["event"] for e in handle.events(timeout=120)]
        result = handle.wait(timeout=60)
        assert result.outcome == "succeeded"
        assert result.deployment_id == handle.deployment_id
        assert kinds[0] == "accepted"
        assert kinds[-1] == "finished"
        assert "stage_finished" in kinds
        assert handle.result() == result

    def test_raw_redis_cli_publisher(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any, tmp_path: Path
    ) -> None:
        """A publisher with nothing but redis-cli (examples/publishers/publish.sh) gets a deployment done."""
        cluster, service = "cli", unique("raw")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        message_file = tmp_path / "message.json"
        message_file.write_text(json.dumps(release(svc, cluster, service, push_app("v3"))))
        port = REDIS_URL.rsplit(":", 1)[-1]
        task_id = subprocess.run(
            [
                "sh",
                str(ROOT / "examples/publishers/publish.sh"),
                str(message_file),
                "127.0.0.1",
                port,
                str(DBS["broker_db"]),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        results = redis.Redis.from_url(f"{REDIS_URL}/{DBS['result_db']}")

        def finished() -> dict[str, Any] | None:
            raw = results.get(f"celery-task-meta-{task_id}")
            meta = json.loads(raw) if raw else None
            return meta if meta and meta["status"] in ("SUCCESS", "FAILURE") else None

        meta = wait_until(finished, what=f"task {task_id} to finish", timeout=120, interval=0.2)
        assert meta["status"] == "SUCCESS", meta
        assert meta["result"]["outcome"] == "succeeded"
        assert served_version(svc) == "v3"


def cli(
    config: StackConfig, *args: str, stdin: str | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    env = {
        **config.env(),
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "DEPLOY_AGENT_LOG_FORMAT": "json",
    }
    return subprocess.run(
        [sys.executable, "-m", "deploy_agent.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class TestCli:
    def test_submit_wait_shows_stages_and_exits_by_outcome(
        self,
        sandbox: Sandbox,
        worker: WorkerProcess,
        push_app: Any,
        stack_config: StackConfig,
        tmp_path: Path,
    ) -> None:
        """`submit --wait` prints each stage as it happens and exits 0 on success, 1 on a rollback."""
        cluster, service = "cli", unique("submit")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        good, bad = tmp_path / "good.json", tmp_path / "bad.json"
        good.write_text(json.dumps(release(svc, cluster, service, push_app("v2"))))
        bad.write_text(json.dumps(release(svc, cluster, service, push_app("v3", "crash"))))
        ok = cli(stack_config, "submit", str(good), "--wait", "--timeout", "120")
        assert ok.returncode == 0, ok.stderr[-2000:]
        for stage in ("register", "deploy", "healthcheck", "finalize"):
            assert f"{stage}" in ok.stderr
        assert "rollout_progress" in ok.stderr
        failed = cli(stack_config, "submit", str(bad), "--wait", "--timeout", "120")
        assert failed.returncode == 1
        assert '"outcome": "rolled_back"' in failed.stdout
        status = cli(stack_config, "status", json.loads(bad.read_text())["deployment_id"], "--json")
        assert json.loads(status.stdout)["result"]["outcome"] == "rolled_back"

    def test_run_deploys_in_process_without_a_worker(
        self, sandbox: Sandbox, push_app: Any, stack_config: StackConfig, tmp_path: Path
    ) -> None:
        """`deploy-agent run FILE` runs the whole pipeline in its own process (no broker) and exits 0."""
        cluster, service = "cli", unique("run")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        message = tmp_path / "run.json"
        message.write_text(json.dumps(release(svc, cluster, service, push_app("v4"))))
        done = cli(stack_config, "run", str(message))
        assert done.returncode == 0, done.stderr[-3000:]
        assert json.loads(done.stdout)["outcome"] == "succeeded"
        assert "stage_finished" in done.stderr
        assert served_version(svc) == "v4"

    def test_help_is_useful(self, stack_config: StackConfig) -> None:
        """Every command has a --help that says what it does."""
        for command in ("worker", "submit", "status", "rollback", "run", "schema", "sandbox"):
            shown = cli(stack_config, command, "--help", timeout=60)
            assert shown.returncode == 0, (command, shown.stderr)
            assert "usage: deploy-agent" in shown.stdout


class TestWebhooks:
    def test_webhooks_hear_start_stages_and_result(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any, receiver: Receiver
    ) -> None:
        """A message's webhook receives the start, each stage's end and the final result."""
        cluster, service = "cli", unique("hook")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        message = release(svc, cluster, service, push_app("v3", "crash"), notify={"webhooks": [receiver.url]})
        from tests.integration.test_rolling import publish

        result = publish(message)
        wait_until(
            lambda: any(e["event"] == "finished" for e in receiver.received),
            what="the finished webhook",
            timeout=20,
            interval=0.1,
        )
        kinds = [e["event"] for e in receiver.received]
        assert "started" in kinds
        assert "rollback_started" in kinds
        assert {e["stage"] for e in receiver.received if e["event"] == "stage_finished"} >= {
            "register",
            "deploy",
            "rollback",
            "finalize",
        }
        final = next(e for e in receiver.received if e["event"] == "finished")
        assert final["result"] == result
        assert all(e["deployment_id"] == message["deployment_id"] for e in receiver.received)

    def test_worker_log_records_are_json_with_deployment_and_stage(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """The worker's log records are JSON lines; the pipeline's carry the deployment id and the stage."""
        cluster, service = "cli", unique("logs")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        from tests.integration.test_rolling import publish

        message = release(svc, cluster, service, push_app("v2"))
        assert publish(message)["outcome"] == "succeeded"
        records = [
            json.loads(line) for line in worker.log_path.read_text().splitlines() if line.startswith("{")
        ]
        ours = [r for r in records if r.get("deployment_id") == message["deployment_id"]]
        assert {r["stage"] for r in ours if "stage" in r} >= {"register", "deploy", "healthcheck", "finalize"}
        assert all(r["level"] in ("info", "warning", "error", "debug") and "ts" in r for r in records)

    def test_a_failing_webhook_never_fails_the_deployment(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """A webhook that answers 500 (or is not there at all) leaves the deployment's outcome alone."""
        cluster, service = "cli", unique("deaf")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        broken = Receiver(status=500)
        try:
            message = release(
                svc,
                cluster,
                service,
                push_app("v2"),
                notify={"webhooks": [broken.url, "http://127.0.0.1:9/nobody"]},
            )
            from tests.integration.test_rolling import publish

            assert publish(message)["outcome"] == "succeeded"
        finally:
            broken.close()
