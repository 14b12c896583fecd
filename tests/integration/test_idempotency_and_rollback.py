"""The same deployment id never deploys twice; one deployment per service; rollback by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from deploy_agent.worker.app import app
from ecs_sandbox import Sandbox, provision_service
from sandbox_harness.stack import StackConfig, WorkerProcess
from tests.integration.conftest import unique
from tests.integration.test_rolling import publish, served_version, service_td

pytestmark = pytest.mark.integration


def calls(sandbox: Sandbox, action: str) -> int:
    return sum(n for (service, name), n in sandbox.moto.api_calls().items() if name == action)


def release(
    svc: Any, cluster: str, service: str, image: str, deployment_id: str | None = None
) -> dict[str, Any]:
    return {
        "deployment_id": deployment_id or unique("rel"),
        "cluster_name": cluster,
        "service_name": service,
        "image": {"uri": image},
        "health_check": {"url": f"{svc.url}/version", "healthy_threshold": 1},
    }


class TestIdempotency:
    def test_duplicates_deploy_once_and_share_the_first_result(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """Four deliveries of one deployment id (three while it runs, one after) deploy it once."""
        cluster, service = "rel", unique("dup")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        message = release(svc, cluster, service, push_app("v2"))
        updates, registers = calls(sandbox, "UpdateService"), calls(sandbox, "RegisterTaskDefinition")
        running = [app.send_task("deploy_agent.deploy", kwargs={"request": message}) for _ in range(3)]
        results = [r.get(timeout=120) for r in running]
        late = publish(message)
        assert {r["outcome"] for r in [*results, late]} == {"succeeded"}
        assert {json.dumps(r, sort_keys=True) for r in [*results, late]} == {json.dumps(late, sort_keys=True)}
        assert calls(sandbox, "UpdateService") - updates == 1
        assert calls(sandbox, "RegisterTaskDefinition") - registers == 1


class TestOnePerService:
    def test_concurrent_requests_never_overlap_and_only_the_newest_waiter_runs(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """Five requests for one service at once: one runs, the newest waiter next, the rest superseded."""
        cluster, service = "rel", unique("race")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        images = [push_app(f"r{i}") for i in range(5)]
        pending = [
            app.send_task("deploy_agent.deploy", kwargs={"request": release(svc, cluster, service, image)})
            for image in images
        ]
        results = [p.get(timeout=180) for p in pending]
        outcomes = sorted(r["outcome"] for r in results)
        assert outcomes == ["succeeded", "succeeded", "superseded", "superseded", "superseded"], outcomes
        superseded = [r for r in results if r["outcome"] == "superseded"]
        assert all(r["task_definition_arn"] is None for r in superseded)  # nothing was touched for them
        ran = sorted((r for r in results if r["outcome"] == "succeeded"), key=lambda r: r["started_at"])
        # The deploy stages of the two that ran did not overlap.
        first_deploy = next(s for s in ran[0]["stages"] if s["name"] == "deploy")
        second_deploy = next(s for s in ran[1]["stages"] if s["name"] == "deploy")
        assert first_deploy["finished_at"] <= second_deploy["started_at"]
        # The newest of the waiters is the one that ran last, and the service runs its release.
        assert service_td(cluster, service) == ran[1]["task_definition_arn"]
        assert ran[1]["started_at"] == max(r["started_at"] for r in results if r is not ran[0])


class TestManualRollback:
    def test_rollback_goes_back_to_the_previous_good_release(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """After v2 and v3, a rollback puts v2 back; --to a deployment id picks that release."""
        cluster, service = "rel", unique("back")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        v2 = publish(release(svc, cluster, service, push_app("v2")))
        v3 = publish(release(svc, cluster, service, push_app("v3")))
        assert served_version(svc) == "v3"

        back = app.send_task(
            "deploy_agent.rollback",
            kwargs={"request": {"cluster_name": cluster, "service_name": service, "requested_by": "ops"}},
        ).get(timeout=120)
        assert back["outcome"] == "succeeded", back
        assert back["rollback"]["trigger"] == "manual"
        assert back["task_definition_arn"] == v2["task_definition_arn"]
        assert service_td(cluster, service) == v2["task_definition_arn"]
        assert served_version(svc) == "v2"

        again = app.send_task(
            "deploy_agent.rollback",
            kwargs={"request": {"cluster_name": cluster, "service_name": service, "to": v3["deployment_id"]}},
        ).get(timeout=120)
        assert again["outcome"] == "succeeded", again
        assert served_version(svc) == "v3"

    def test_cli_rollback_to_a_revision(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any, stack_config: StackConfig
    ) -> None:
        """`deploy-agent rollback CLUSTER SERVICE --to REVISION --wait` succeeds and exits 0."""
        cluster, service = "rel", unique("cli")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        publish(release(svc, cluster, service, push_app("v2")))
        revision = svc.task_definition_arn.rsplit(":", 1)[-1]
        env = {**stack_config.env(), "PATH": str(Path(sys.executable).parent)}
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "deploy_agent.cli",
                "rollback",
                cluster,
                service,
                "--to",
                revision,
                "--wait",
                "--timeout",
                "120",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout[done.stdout.index("\n") + 1 :])["outcome"] == "succeeded"
        assert service_td(cluster, service) == svc.task_definition_arn
        assert served_version(svc) == "v1"

    def test_rollback_without_history_is_rejected(
        self, sandbox: Sandbox, worker: WorkerProcess, push_app: Any
    ) -> None:
        """A service with no recorded good release is not rolled back blindly: rejected, untouched."""
        cluster, service = "rel", unique("none")
        provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        updates = calls(sandbox, "UpdateService")
        result = app.send_task(
            "deploy_agent.rollback", kwargs={"request": {"cluster_name": cluster, "service_name": service}}
        ).get(timeout=60)
        assert result["outcome"] == "rejected"
        assert result["errors"][0]["field"] == "to"
        assert calls(sandbox, "UpdateService") == updates


def test_ledger_keeps_needed_revisions_and_cleans_older_ones(
    sandbox: Sandbox, push_app: Any, stack_config: StackConfig, tmp_path: Path
) -> None:
    """With a ledger of 2, revisions of older releases we registered are deregistered; needed ones stay."""
    cluster, service = "rel", unique("led")
    svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
    config = StackConfig(
        **{
            **stack_config.__dict__,
            "broker_db": 10,
            "result_db": 11,
            "state_db": 12,
            "extra_env": {**stack_config.extra_env, "DEPLOY_AGENT_KEEP_RELEASES": "2"},
        }
    )
    from deploy_agent.settings import Settings
    from deploy_agent.worker.app import create_app

    own = create_app(
        Settings(
            broker_url=config.env()["DEPLOY_AGENT_BROKER_URL"],
            result_backend=config.env()["DEPLOY_AGENT_RESULT_BACKEND"],
        ),
        set_as_current=False,
    )
    with WorkerProcess(config, tmp_path / "worker.log", concurrency=1, name="ledger").start():
        results = [
            own.send_task(
                "deploy_agent.deploy", kwargs={"request": release(svc, cluster, service, push_app(f"l{i}"))}
            ).get(timeout=120)
            for i in range(4)
        ]
    assert [r["outcome"] for r in results] == ["succeeded"] * 4
    ecs = boto3.client("ecs")
    status = {
        r["task_definition_arn"]: ecs.describe_task_definition(taskDefinition=r["task_definition_arn"])[
            "taskDefinition"
        ]["status"]
        for r in results
    }
    assert [status[r["task_definition_arn"]] for r in results] == ["INACTIVE", "INACTIVE", "ACTIVE", "ACTIVE"]
    # The revision we did not register (the provisioned one) is never touched.
    assert (
        ecs.describe_task_definition(taskDefinition=svc.task_definition_arn)["taskDefinition"]["status"]
        == "ACTIVE"
    )
