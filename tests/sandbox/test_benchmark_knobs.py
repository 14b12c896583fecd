"""The scheduler knobs benchmarks turn: a task start delay, virtual tasks, the rollout transition log."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import docker
import pytest
import requests

from ecs_sandbox import EcsScheduler, Sandbox, provision_service, wait_for_rollout
from ecs_sandbox.containers import LABEL
from ecs_sandbox.deployments import RolloutLog
from ecs_sandbox.realism import IDEALISED, REALISTIC, Realism
from tests.support import wait_until

from .realism_helpers import playing

pytestmark = pytest.mark.integration

CLUSTER, SERVICE = "knobs", "web"
NO_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/never-pulled:1"


@contextmanager
def _knobs(sandbox: Sandbox, start_delay: float, virtual: bool = False) -> Iterator[None]:
    """Turn the running scheduler's knobs for one test (there is one sandbox per session)."""
    tasks = sandbox.scheduler.tasks
    saved = (tasks.timing, tasks.virtual)
    with sandbox.scheduler.paused():
        tasks.timing = dataclasses.replace(tasks.timing, start_delay_seconds=start_delay)
        tasks.virtual = virtual
    try:
        yield
    finally:
        with sandbox.scheduler.paused():
            tasks.timing, tasks.virtual = saved


def _deploy_revision(sandbox: Sandbox, image: str) -> str:
    """Register a revision of the task definition with ``image``, update to it; return its ECS id."""
    ecs = sandbox.client("ecs")
    current = ecs.describe_task_definition(taskDefinition=SERVICE)["taskDefinition"]
    kept = ("family", "networkMode", "requiresCompatibilities", "cpu", "memory")
    arn = ecs.register_task_definition(
        **{k: current[k] for k in kept},
        containerDefinitions=[{**c, "image": image} for c in current["containerDefinitions"]],
    )["taskDefinition"]["taskDefinitionArn"]
    reply = ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=arn)["service"]
    return str(reply["deployments"][0]["id"])


def _transitions(sandbox: Sandbox, deployment_id: str) -> dict[str, float]:
    return {e.state: e.at for e in sandbox.scheduler.rollout_log() if e.deployment_id == deployment_id}


def _tasks(sandbox: Sandbox, desired: str = "RUNNING") -> list[dict[str, Any]]:
    ecs = sandbox.client("ecs")
    arns = ecs.list_tasks(cluster=CLUSTER, serviceName=SERVICE, desiredStatus=desired)["taskArns"]
    return list(ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"]) if arns else []


class TestKnobWiring:
    def test_scheduler_takes_the_knobs_sandbox_start_passes(self, docker_client: docker.DockerClient) -> None:
        """EcsScheduler(task_start_delay_seconds=, virtual_tasks=) hands both to its task runner."""
        scheduler = EcsScheduler(
            docker_client, "127.0.0.1:5000", task_start_delay_seconds=2.5, virtual_tasks=True
        )
        try:
            assert scheduler.tasks.timing.start_delay_seconds == 2.5
            assert scheduler.tasks.virtual is True
            assert scheduler.rollout_log() == []
        finally:
            scheduler.tasks.shutdown()

    def test_profile_sets_task_start_and_rules_explicit_knobs_win(
        self, docker_client: docker.DockerClient
    ) -> None:
        """profile= and time_scale= give the scaled Fargate start and the rules; explicit knobs win."""
        scheduler = EcsScheduler(docker_client, "127.0.0.1:5000", profile=REALISTIC, time_scale=0.1)
        explicit = EcsScheduler(
            docker_client, "127.0.0.1:5000", profile=REALISTIC, task_start_delay_seconds=2.5, tick_seconds=0.2
        )
        idealised = EcsScheduler(docker_client, "127.0.0.1:5000", profile=IDEALISED)
        try:
            timing = scheduler.tasks.timing
            assert (timing.start_delay_seconds, timing.pending_seconds) == pytest.approx((2.0, 1.0))
            assert scheduler.tick_seconds == REALISTIC.tick_seconds
            assert scheduler.rollout.realism == REALISTIC.with_scale(0.1)
            assert scheduler.tasks.check_log_groups is True
            timing = explicit.tasks.timing
            assert (timing.start_delay_seconds, timing.pending_seconds, explicit.tick_seconds) == (
                2.5,
                0.0,
                0.2,
            )
            assert (idealised.tasks.timing.start_delay_seconds, idealised.tasks.timing.pending_seconds) == (
                0,
                0,
            )
            assert idealised.tasks.check_log_groups is False
            assert idealised.rollout.realism.slow_circuit_breaker_rollback is False
            # Target health: each group's own settings under the profile, unless a health knob is given.
            assert (scheduler.health.as_configured, idealised.health.as_configured) == (True, False)
            fixed = EcsScheduler(docker_client, "127.0.0.1:5000", health_check_interval_seconds=0.1)
            assert fixed.health.as_configured is False
            fixed.tasks.shutdown()
        finally:
            for each in (scheduler, explicit, idealised):
                each.tasks.shutdown()


class TestTaskStartDelay:
    def test_a_two_task_deployment_takes_at_least_the_start_delay(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """With a 1.5 s start delay, UpdateService -> COMPLETED of 2 real tasks takes >= 1.5 s."""
        provision_service(sandbox, CLUSTER, SERVICE, web_image("v1"), desired_count=2, timeout_seconds=30)
        with _knobs(sandbox, start_delay=1.5):
            sent = time.time()
            deployment_id = _deploy_revision(sandbox, web_image("v2"))
            wait_for_rollout(sandbox, CLUSTER, SERVICE, timeout_seconds=30)
        log = _transitions(sandbox, deployment_id)
        assert log["COMPLETED"] - sent >= 1.5
        assert log["COMPLETED"] - log["IN_PROGRESS"] >= 1.5
        new = [t for t in _tasks(sandbox) if t["startedBy"] == deployment_id]
        assert len(new) == 2
        assert all((t["startedAt"] - t["createdAt"]).total_seconds() >= 1.5 for t in new)


class TestVirtualTasks:
    def test_virtual_service_is_running_and_healthy_without_containers(
        self, sandbox: Sandbox, docker_client: docker.DockerClient
    ) -> None:
        """Virtual tasks of an unpullable image are RUNNING, HEALTHY, healthy targets; no container runs."""
        with _knobs(sandbox, start_delay=0.3, virtual=True):
            provisioned = provision_service(
                sandbox, CLUSTER, SERVICE, NO_IMAGE, desired_count=3, timeout_seconds=30
            )
        service = sandbox.client("ecs").describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
        assert [d["rolloutState"] for d in service["deployments"]] == ["COMPLETED"]
        assert (service["runningCount"], service["pendingCount"]) == (3, 0)
        tasks = _tasks(sandbox)
        assert [(t["lastStatus"], t["healthStatus"]) for t in tasks] == [("RUNNING", "HEALTHY")] * 3
        health = sandbox.client("elbv2").describe_target_health(TargetGroupArn=provisioned.target_group_arn)
        assert [t["TargetHealth"]["State"] for t in health["TargetHealthDescriptions"]] == ["healthy"] * 3
        mine = {"label": [f"{LABEL}={sandbox.scheduler.containers.instance}"]}
        assert docker_client.containers.list(all=True, filters=mine, ignore_removed=True) == []
        # Nothing listens for a virtual task: the load balancer has no target to send to.
        assert requests.get(f"{provisioned.url}/health", timeout=5).status_code == 503

    def test_virtual_task_is_pending_until_the_start_delay_is_over(self, sandbox: Sandbox) -> None:
        """A virtual task is PENDING first and RUNNING only after task_start_delay_seconds."""
        with _knobs(sandbox, start_delay=0.3, virtual=True):
            provision_service(sandbox, CLUSTER, SERVICE, NO_IMAGE, desired_count=1, timeout_seconds=30)
            with _knobs(sandbox, start_delay=2.0, virtual=True):
                sent = time.time()
                deployment_id = _deploy_revision(sandbox, NO_IMAGE.replace(":1", ":2"))
                time.sleep(0.5)
                pending = [t for t in _tasks(sandbox) if t["startedBy"] == deployment_id]
                assert [t["lastStatus"] for t in pending] == ["PENDING"]
                wait_for_rollout(sandbox, CLUSTER, SERVICE, timeout_seconds=30)
        assert _transitions(sandbox, deployment_id)["COMPLETED"] - sent >= 2.0

    def test_virtual_rollout_replaces_old_tasks_which_drain_and_stop(self, sandbox: Sandbox) -> None:
        """A new revision completes on virtual tasks; the old ones are stopped by the scheduler (exit 137)."""
        with _knobs(sandbox, start_delay=0.2, virtual=True):
            provision_service(sandbox, CLUSTER, SERVICE, NO_IMAGE, desired_count=2, timeout_seconds=30)
            old_id = sandbox.client("ecs").describe_services(cluster=CLUSTER, services=[SERVICE])["services"][
                0
            ]["deployments"][0]["id"]
            new_id = _deploy_revision(sandbox, NO_IMAGE.replace(":1", ":2"))
            service = wait_for_rollout(sandbox, CLUSTER, SERVICE, timeout_seconds=30)

            def old_tasks_stopped() -> list[dict[str, Any]]:
                stopped = [t for t in _tasks(sandbox, "STOPPED") if t["startedBy"] == old_id]
                done = len(stopped) == 2 and all(t["lastStatus"] == "STOPPED" for t in stopped)
                return stopped if done else []

            stopped = wait_until(old_tasks_stopped, what="the two old tasks to stop", timeout=10)
        assert [d["id"] for d in service["deployments"]] == [new_id]
        assert (service["runningCount"], service["desiredCount"]) == (2, 2)
        assert {t["stopCode"] for t in stopped} == {"ServiceSchedulerInitiated"}
        assert {t["containers"][0]["exitCode"] for t in stopped} == {137}


class TestRolloutLog:
    def test_log_records_creation_and_completion_of_each_deployment(self, sandbox: Sandbox) -> None:
        """The log has IN_PROGRESS then COMPLETED for the service's first deployment and for an update."""
        with _knobs(sandbox, start_delay=0.1, virtual=True):
            provision_service(sandbox, CLUSTER, SERVICE, NO_IMAGE, desired_count=1, timeout_seconds=30)
            new_id = _deploy_revision(sandbox, NO_IMAGE.replace(":1", ":2"))
            wait_for_rollout(sandbox, CLUSTER, SERVICE, timeout_seconds=30)
        log = [e for e in sandbox.scheduler.rollout_log() if e.service == SERVICE]
        assert [e.state for e in log] == ["IN_PROGRESS", "COMPLETED", "IN_PROGRESS", "COMPLETED"]
        assert {e.cluster for e in log} == {CLUSTER}
        assert [e.deployment_id for e in log[2:]] == [new_id, new_id]
        assert [e.at for e in log] == sorted(e.at for e in log)

    @pytest.mark.parametrize(
        ("profile", "order"),
        [
            # One tick: FAILED, then the rollback deployment is created.
            (IDEALISED, [(True, "IN_PROGRESS"), (True, "FAILED"), (False, "IN_PROGRESS")]),
            # ECS: the rollback deployment is created first; ours ends FAILED once it was replaced.
            (REALISTIC, [(True, "IN_PROGRESS"), (False, "IN_PROGRESS"), (True, "FAILED")]),
        ],
        ids=["idealised", "realistic"],
    )
    def test_circuit_breaker_failure_is_logged_as_failed(
        self,
        sandbox: Sandbox,
        web_image: Callable[..., str],
        profile: Realism,
        order: list[tuple[bool, str]],
    ) -> None:
        """A crashing release is logged FAILED, in the order the profile's ECS puts it and the rollback."""
        with playing(sandbox, profile):
            # provision_service turns the circuit breaker on, with rollback.
            provision_service(sandbox, CLUSTER, SERVICE, web_image("v1"), desired_count=2, timeout_seconds=30)
            bad_id = _deploy_revision(sandbox, web_image("v2", "crash"))
            deadline = time.monotonic() + 30
            while "FAILED" not in _transitions(sandbox, bad_id) and time.monotonic() < deadline:
                time.sleep(0.05)
        log = [e for e in sandbox.scheduler.rollout_log() if e.service == SERVICE]
        states = [(e.deployment_id == bad_id, e.state) for e in log]
        assert states[-3:] == order

    def test_entries_are_a_copy(self) -> None:
        """rollout_log() hands out a copy: changing it changes nothing in the log."""
        log = RolloutLog()
        entries = log.entries()
        entries.append(None)  # type: ignore[arg-type]
        assert log.entries() == []
