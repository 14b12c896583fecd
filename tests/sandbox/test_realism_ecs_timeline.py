"""The realism profile's ECS timeline: the circuit breaker's long rollback, failedTasks that resets,
ECS's relaunch back-off, and the awslogs log group a task needs to start (issue 9, sandbox 1, 2, 6).

Each sandbox test plays its profile at a small time scale on the session's sandbox (``playing``).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest

from ecs_sandbox import Sandbox, provision_service, wait_for_rollout
from ecs_sandbox.deployments import (
    decide_rolled_back_deployment_failed,
    plan_relaunch_delay,
    read_rollout_config,
)
from ecs_sandbox.log_groups import MISSING_GROUP, AwslogsTarget, plan_awslogs_targets
from ecs_sandbox.realism import REALISTIC
from tests.support import wait_until

from .realism_helpers import playing

pytestmark = pytest.mark.integration

CLUSTER, SERVICE = "real", "web"
NO_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/never-pulled:1"
# A 10-minute AWS timeline in 12 s; DescribeServices consistent, because these tests read the
# timeline right after each write (the consistency window is tested in test_consistency.py).
FAST = replace(REALISTIC.with_scale(0.02), consistency_window_seconds=0.0)


class TestPlanRelaunchDelay:
    @pytest.mark.parametrize(
        ("failures", "delay"),
        [(0, 0.0), (1, 0.0), (2, 10.0), (3, 30.0), (6, 300.0), (50, 300.0)],
        ids=[
            "no failure, no wait",
            "the first failure is relaunched at once",
            "the second waits the second delay",
            "the third waits the third",
            "the last delay is reached",
            "and then repeats",
        ],
    )
    def test_delay_grows_with_failures_in_a_row(self, failures: int, delay: float) -> None:
        """The profile's delays are taken in order, one per failure in a row, the last one repeating."""
        assert plan_relaunch_delay(REALISTIC.relaunch_backoff_seconds, failures) == delay

    def test_no_delays_means_no_back_off(self) -> None:
        """An empty back-off never waits."""
        assert plan_relaunch_delay((), 4) == 0.0


class TestDecideRolledBackDeploymentFailed:
    @pytest.mark.parametrize(
        ("left", "running", "desired", "failed"),
        [
            (1, 2, 2, False),
            (0, 1, 2, False),
            (0, 2, 2, True),
            (0, 0, 0, True),
        ],
        ids=[
            "a task of its own is still stopping",
            "the rollback runs fewer tasks than desired",
            "replaced: no task left and the rollback runs them all",
            "a service scaled to zero",
        ],
    )
    def test_table(self, left: int, running: int, desired: int, failed: bool) -> None:
        """The deployment rolled back from ends FAILED only once it has been replaced."""
        assert decide_rolled_back_deployment_failed(left, running, desired) is failed


class TestPlanAwslogsTargets:
    def test_only_awslogs_containers_with_a_group_need_one(self) -> None:
        """Each awslogs container names its group and region (default: the task's); others need none."""
        definitions = [
            {
                "name": "a",
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/a"}},
            },
            {
                "name": "b",
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": "/ecs/b",
                        "awslogs-region": "eu-west-1",
                        "awslogs-create-group": "True",
                    },
                },
            },
            {"name": "c", "logConfiguration": {"logDriver": "json-file"}},
            {"name": "d"},
        ]
        assert plan_awslogs_targets(definitions, "us-east-1") == [
            AwslogsTarget("/ecs/a", "us-east-1", create=False),
            AwslogsTarget("/ecs/b", "eu-west-1", create=True),
        ]

    def test_create_group_must_say_true(self) -> None:
        """awslogs-create-group "false" or anything but "true" does not create the group."""
        options = {"awslogs-group": "/g", "awslogs-create-group": "yes"}
        definitions = [{"logConfiguration": {"logDriver": "awslogs", "options": options}}]
        assert plan_awslogs_targets(definitions, "us-east-1")[0].create is False


class TestResetOnHealthyTaskSetting:
    @pytest.mark.parametrize(("setting", "reset"), [({}, True), ({"resetOnHealthyTask": False}, False)])
    def test_default_is_true(self, setting: dict[str, bool], reset: bool) -> None:
        """deploymentCircuitBreaker.resetOnHealthyTask defaults to true, as in AWS's API."""

        class Service:
            deployment_configuration = {
                "deploymentCircuitBreaker": {"enable": True, "rollback": True, **setting}
            }

        assert read_rollout_config(Service()).reset_on_healthy_task is reset


# --- on the real sandbox ----------------------------------------------------------------------------


@contextmanager
def _virtual(sandbox: Sandbox) -> Iterator[None]:
    """Tasks run no container for the block (nothing to run: the test is about ECS's bookkeeping)."""
    tasks = sandbox.scheduler.tasks
    with sandbox.scheduler.paused():
        saved, tasks.virtual = tasks.virtual, True
    try:
        yield
    finally:
        with sandbox.scheduler.paused():
            tasks.virtual = saved


def _service(sandbox: Sandbox) -> dict[str, Any]:
    return dict(sandbox.client("ecs").describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0])


def _deploy(
    sandbox: Sandbox, image: str, breaker: dict[str, bool], log_options: dict[str, str] | None = None
) -> str:
    """Register a revision (image, optional awslogs options), update the service to it; return its id."""
    ecs = sandbox.client("ecs")
    current = ecs.describe_task_definition(taskDefinition=SERVICE)["taskDefinition"]
    containers = [{**c, "image": image} for c in current["containerDefinitions"]]
    if log_options is not None:
        containers = [
            {**c, "logConfiguration": {"logDriver": "awslogs", "options": log_options}} for c in containers
        ]
    kept = ("family", "networkMode", "requiresCompatibilities", "cpu", "memory")
    arn = ecs.register_task_definition(**{k: current[k] for k in kept}, containerDefinitions=containers)[
        "taskDefinition"
    ]["taskDefinitionArn"]
    config = {"maximumPercent": 200, "minimumHealthyPercent": 100, "deploymentCircuitBreaker": breaker}
    reply = ecs.update_service(
        cluster=CLUSTER, service=SERVICE, taskDefinition=arn, deploymentConfiguration=config
    )
    return str(reply["service"]["deployments"][0]["id"])


def _tasks_of(sandbox: Sandbox, deployment_id: str, desired: str = "STOPPED") -> list[dict[str, Any]]:
    ecs = sandbox.client("ecs")
    arns = ecs.list_tasks(cluster=CLUSTER, serviceName=SERVICE, desiredStatus=desired)["taskArns"]
    tasks = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []
    return sorted((t for t in tasks if t["startedBy"] == deployment_id), key=lambda t: t["createdAt"])


def _deployment(sandbox: Sandbox, deployment_id: str) -> dict[str, Any] | None:
    return next((d for d in _service(sandbox)["deployments"] if d["id"] == deployment_id), None)


class TestSlowCircuitBreakerRollback:
    def test_rollback_is_a_deployment_of_its_own_while_ours_stays_listed(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """Trip: a PRIMARY "rolling back to deploymentId <good>" appears, ours ACTIVE/IN_PROGRESS; ours
        ends FAILED only once replaced, and is gone when the rollback completes."""
        with playing(sandbox, FAST):
            # provision_service turns the circuit breaker on, with rollback.
            provision_service(sandbox, CLUSTER, SERVICE, web_image("v1"), desired_count=2, timeout_seconds=60)
            good = _service(sandbox)["deployments"][0]
            snapshots: list[list[dict[str, Any]]] = []
            done = threading.Event()

            def watch() -> None:
                while not done.is_set():
                    snapshots.append(_service(sandbox)["deployments"])
                    time.sleep(0.03)

            bad_id = _deploy(sandbox, web_image("v2", "crash"), {"enable": True, "rollback": True})
            watcher = threading.Thread(target=watch)
            watcher.start()
            try:
                wait_until(
                    lambda: "FAILED" in _states(sandbox, bad_id), timeout=60, what="our deployment FAILED"
                )
                service = wait_for_rollout(sandbox, CLUSTER, SERVICE, timeout_seconds=60)
            finally:
                done.set()
                watcher.join()
        reason = f"ECS deployment circuit breaker: rolling back to deploymentId {good['id']}."
        rolling_back = [s for s in snapshots if s[0]["rolloutStateReason"] == reason]
        assert rolling_back, "the rollback deployment was never seen"
        rollback_id = rolling_back[0][0]["id"]
        ours_during = [d for s in rolling_back for d in s if d["id"] == bad_id]
        # The long window: ours listed as ACTIVE and still IN_PROGRESS under the rollback PRIMARY ...
        assert any((d["status"], d["rolloutState"]) == ("ACTIVE", "IN_PROGRESS") for d in ours_during)
        assert all(
            s[0]["status"] == "PRIMARY" and s[0]["taskDefinition"] == good["taskDefinition"]
            for s in rolling_back
        )
        # ... then FAILED with the breaker's reason, never back to IN_PROGRESS after that.
        states = [d["rolloutState"] for d in ours_during]
        assert "FAILED" in states
        assert "IN_PROGRESS" not in states[states.index("FAILED") :]
        failed = next(d for d in ours_during if d["rolloutState"] == "FAILED")
        assert failed["rolloutStateReason"] == "ECS deployment circuit breaker: tasks failed to start."
        # The rollback took as long as a deployment: its tasks had to start before ours ended.
        log = _transitions(sandbox)
        started = FAST.scaled(FAST.task_provisioning_seconds + FAST.task_pending_seconds)
        assert log[(bad_id, "FAILED")] - log[(rollback_id, "IN_PROGRESS")] >= started
        assert log[(rollback_id, "COMPLETED")] >= log[(bad_id, "FAILED")]
        # When the rollback completes ours is gone.
        assert [d["id"] for d in service["deployments"]] == [rollback_id]
        assert service["deployments"][0]["rolloutState"] == "COMPLETED"
        assert service["taskDefinition"] == good["taskDefinition"]

    def test_idealised_profile_fails_and_rolls_back_in_one_tick(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """Without slow rollback, ours is FAILED in the same tick the rollback deployment appears."""
        with playing(sandbox, replace(FAST, slow_circuit_breaker_rollback=False)):
            provision_service(sandbox, CLUSTER, SERVICE, web_image("v1"), desired_count=2, timeout_seconds=60)
            bad_id = _deploy(sandbox, web_image("v2", "crash"), {"enable": True, "rollback": True})
            wait_until(lambda: "FAILED" in _states(sandbox, bad_id), timeout=60, what="our deployment FAILED")
            wait_for_rollout(sandbox, CLUSTER, SERVICE, timeout_seconds=60)
        entries = [e for e in sandbox.scheduler.rollout_log() if e.service == SERVICE]
        failed_at = next(i for i, e in enumerate(entries) if (e.deployment_id, e.state) == (bad_id, "FAILED"))
        assert entries[failed_at + 1].state == "IN_PROGRESS"  # the rollback, created right after
        assert entries[failed_at + 1].at - entries[failed_at].at < 0.05


def _states(sandbox: Sandbox, deployment_id: str) -> list[str]:
    return [e.state for e in sandbox.scheduler.rollout_log() if e.deployment_id == deployment_id]


def _transitions(sandbox: Sandbox) -> dict[tuple[str, str], float]:
    return {(e.deployment_id, e.state): e.at for e in sandbox.scheduler.rollout_log()}


MISSING = {
    "awslogs-group": "/ecs/missing-group",
    "awslogs-region": "us-east-1",
    "awslogs-stream-prefix": "ecs",
}
NO_BREAKER = {"enable": False, "rollback": False}


class TestFailedTasksReset:
    @pytest.mark.parametrize("reset", [True, False], ids=["realistic", "cumulative"])
    def test_failed_tasks_resets_once_a_task_runs(self, sandbox: Sandbox, reset: bool) -> None:
        """Two tasks fail (no log group), then the group exists and a task runs: failedTasks goes to 0."""
        profile = replace(FAST, failed_tasks_reset=reset, relaunch_backoff_seconds=(0.0, 15.0))
        with playing(sandbox, profile), _virtual(sandbox):
            provision_service(sandbox, CLUSTER, SERVICE, NO_IMAGE, desired_count=1, timeout_seconds=60)
            new_id = _deploy(sandbox, NO_IMAGE.replace(":1", ":2"), NO_BREAKER, MISSING)
            wait_until(
                lambda: (_deployment(sandbox, new_id) or {}).get("failedTasks", 0) >= 2, what="2 failed tasks"
            )
            sandbox.client("logs").create_log_group(logGroupName=MISSING["awslogs-group"])
            service = wait_for_rollout(sandbox, CLUSTER, SERVICE, timeout_seconds=60)
        assert service["deployments"][0]["id"] == new_id
        failed_tasks = service["deployments"][0]["failedTasks"]
        assert failed_tasks == 0 if reset else failed_tasks >= 2
        stopped = _tasks_of(sandbox, new_id)
        assert len(stopped) >= 2
        assert {t["stoppedReason"] for t in stopped} == {MISSING_GROUP}


class TestRelaunchBackOff:
    def test_tasks_that_keep_failing_are_relaunched_ever_later(self, sandbox: Sandbox) -> None:
        """With delays 0, 10, 30 AWS s (0, 0.2, 0.6 s here) the gap between failed launches grows."""
        profile = replace(FAST, relaunch_backoff_seconds=(0.0, 10.0, 30.0))
        with playing(sandbox, profile), _virtual(sandbox):
            provision_service(sandbox, CLUSTER, SERVICE, NO_IMAGE, desired_count=1, timeout_seconds=60)
            new_id = _deploy(sandbox, NO_IMAGE.replace(":1", ":2"), NO_BREAKER, MISSING)
            wait_until(lambda: len(_tasks_of(sandbox, new_id)) >= 4, what="4 failed tasks")
        created = [t["createdAt"].timestamp() for t in _tasks_of(sandbox, new_id)[:4]]
        gaps = [b - a for a, b in itertools.pairwise(created)]
        # Each gap is the task's start time plus the back-off: 0, then 0.2 s, then 0.6 s more.
        assert gaps[1] - gaps[0] >= 0.15
        assert gaps[2] - gaps[0] >= 0.5
        events = [e["message"] for e in _service(sandbox)["events"]]
        assert any("is unable to consistently start tasks successfully" in m for m in events)


class TestAwslogsLogGroup:
    def test_missing_log_group_stops_the_task_before_it_runs(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """A real task whose awslogs group does not exist stops with ResourceInitializationError."""
        with playing(sandbox, FAST):
            provision_service(sandbox, CLUSTER, SERVICE, web_image("v1"), desired_count=1, timeout_seconds=60)
            new_id = _deploy(sandbox, web_image("v2"), NO_BREAKER, MISSING)
            stopped = wait_until(lambda: _tasks_of(sandbox, new_id), what="a stopped task")
        task = stopped[0]
        assert task["stoppedReason"] == MISSING_GROUP
        assert task["stopCode"] == "TaskFailedToStart"
        assert "startedAt" not in task  # it never ran
        assert _service(sandbox)["deployments"][0]["rolloutState"] == "IN_PROGRESS"

    def test_awslogs_create_group_creates_it_and_the_task_runs(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """With awslogs-create-group "true" the group is created in Logs and the deployment completes."""
        options = {**MISSING, "awslogs-group": "/ecs/created-by-ecs", "awslogs-create-group": "true"}
        with playing(sandbox, FAST):
            provision_service(sandbox, CLUSTER, SERVICE, web_image("v1"), desired_count=1, timeout_seconds=60)
            new_id = _deploy(sandbox, web_image("v2"), NO_BREAKER, options)
            service = wait_for_rollout(sandbox, CLUSTER, SERVICE, timeout_seconds=60)
        assert service["deployments"][0]["id"] == new_id
        assert _tasks_of(sandbox, new_id) == []  # none stopped
        groups = sandbox.client("logs").describe_log_groups(logGroupNamePrefix="/ecs/created-by-ecs")
        assert [g["logGroupName"] for g in groups["logGroups"]] == ["/ecs/created-by-ecs"]

    def test_rules_off_no_check(self, sandbox: Sandbox) -> None:
        """Without enforce_aws_rules (moto's own behaviour) a missing log group stops nothing."""
        with playing(sandbox, replace(FAST, enforce_aws_rules=False)), _virtual(sandbox):
            provision_service(sandbox, CLUSTER, SERVICE, NO_IMAGE, desired_count=1, timeout_seconds=60)
            new_id = _deploy(sandbox, NO_IMAGE.replace(":1", ":2"), NO_BREAKER, MISSING)
            service = wait_for_rollout(sandbox, CLUSTER, SERVICE, timeout_seconds=60)
        assert service["deployments"][0]["id"] == new_id
        assert _tasks_of(sandbox, new_id) == []
