"""One service, one tick: deployments, task replacement, counts, circuit breaker, steady state.

What the realism profile changes here (``Realism``, the ECS timeline's fields):

- ``slow_circuit_breaker_rollback``: when the breaker trips with rollback on, the rollback is a
  PRIMARY deployment of its own ("ECS deployment circuit breaker: rolling back to deploymentId
  <id>."), which starts its tasks, waits for their health and drains the old ones like any
  deployment; the failed deployment stays listed as ACTIVE / IN_PROGRESS while it is being replaced,
  then ends FAILED, and is listed FAILED until the rollback completes. Without it: FAILED and the
  rollback pushed in one tick (the sandbox's earlier, idealised ECS).
- ``failed_tasks_reset``: a task of the deployment that is RUNNING and healthy resets its
  ``failedTasks`` to 0 (botocore's Deployment.failedTasks: "Once a service deployment has one or
  more successfully running tasks, the failed task count resets to zero"; switched off per service
  by ``deploymentCircuitBreaker.resetOnHealthyTask=false``).
- ``relaunch_backoff_seconds``: tasks that keep failing are relaunched after a growing delay
  (``plan_relaunch_delay``), scaled by the profile's ``time_scale``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from moto.core.utils import utcnow

from . import ecs_events
from .containers import ContainerState
from .deployments import (
    RolloutLog,
    add_events,
    circuit_breaker_threshold,
    decide_rolled_back_deployment_failed,
    new_deployment,
    plan_relaunch_delay,
    plan_task_bounds,
    push_deployment,
    read_rollout_config,
    recount,
    set_rollout,
    task_list,
)
from .realism import REALISTIC, Realism
from .task_runner import TaskRunner
from .tasks import TaskRecord, is_gone


@dataclass
class ServiceMemory:
    """What the scheduler remembers about a service between ticks."""

    primary_id: str | None = None
    last_completed: tuple[str, str] | None = None  # (deployment id, task definition ARN)
    steady: bool = False
    #: the deployment the circuit breaker rolled back from, listed until the rollback completes
    rolled_back_from: str | None = None
    consecutive_failures: int = 0  # failed tasks in a row, for ECS's relaunch back-off
    relaunch_at: float = 0.0  # time.monotonic() before which no task is launched
    throttled: bool = False  # the "unable to consistently start tasks" event was sent


def _readiness(record: TaskRecord) -> tuple[bool, bool]:
    """Sort key: tasks that serve nothing yet come first, so they are the first to go."""
    return (record.healthy, record.task.last_status == "RUNNING")


_BREAKER_FAILED = "ECS deployment circuit breaker: tasks failed to start."


def _is_ended_rollback_source(deployment: dict[str, Any], memory: ServiceMemory) -> bool:
    """Return whether the deployment is the FAILED one a rollback replaced (listed, with no task left)."""
    return bool(deployment["id"] == memory.rolled_back_from and deployment["rolloutState"] == "FAILED")


class Rollout:
    """Plays the ECS service scheduler for one service at a time."""

    def __init__(
        self,
        tasks: TaskRunner,
        breaker_minimum: int = 3,
        log: RolloutLog | None = None,
        realism: Realism = REALISTIC,
    ) -> None:
        self.tasks = tasks
        self.breaker_minimum = breaker_minimum
        self.log = log or RolloutLog()
        self.realism = realism
        #: sends the tasks' state changes before the deployment events they lead to (as ECS orders them)
        self.task_events: ecs_events.TaskEventWatch | None = None

    def _push_new(self, service: Any, deployment: dict[str, Any], memory: ServiceMemory) -> None:
        # A new deployment starts with a clean launch record: the back-off was the old one's.
        memory.consecutive_failures, memory.relaunch_at, memory.throttled = 0, 0.0, False
        self._push(service, deployment)

    def _push(self, service: Any, deployment: dict[str, Any]) -> None:
        push_deployment(service, deployment)
        self._record(service, deployment)

    def _set_rollout(self, service: Any, deployment: dict[str, Any], state: str, reason: str) -> None:
        set_rollout(deployment, state, reason)
        self._record(service, deployment)

    def _record(self, service: Any, deployment: dict[str, Any]) -> None:
        """Log the deployment's rolloutState and send ECS's "ECS Deployment State Change" for it."""
        self.log.record(service, deployment)
        ecs_events.publish_for(service, [ecs_events.deployment_entry(service, deployment)])

    def sync_deployments(self, backend: Any, service: Any, memory: ServiceMemory) -> None:
        """Add a PRIMARY deployment when the service's task definition changed (or a new one was forced)."""
        if not service.task_definition:
            return
        target = backend.describe_task_definition(service.task_definition).arn
        service.task_definition = target  # ECS answers with the ARN, moto with what it was given
        deployments = service.deployments
        if not deployments:
            self._push_new(service, new_deployment(service, target), memory)
        else:
            primary = deployments[0]
            if backend.describe_task_definition(primary["taskDefinition"]).arn != target:
                self._push_new(service, new_deployment(service, target), memory)
            elif (
                memory.primary_id
                and primary["id"] != memory.primary_id
                and all(d["id"] != memory.primary_id for d in deployments)
            ):
                # moto's forceNewDeployment renamed the PRIMARY in place: give the old one back as ACTIVE.
                old = {**primary, "id": memory.primary_id, "status": "ACTIVE"}
                self._set_rollout(
                    service, primary, "IN_PROGRESS", f"ECS deployment {primary['id']} in progress."
                )
                service.deployments = [primary, old, *deployments[1:]]
            elif memory.primary_id is None and primary["rolloutState"] == "IN_PROGRESS":
                self._record(service, primary)  # CreateService's own deployment, first seen now
        memory.primary_id = service.deployments[0]["id"]

    def reconcile(
        self,
        backend: Any,
        region: str,
        service: Any,
        records: list[TaskRecord],
        memory: ServiceMemory,
        states: dict[str, ContainerState],
    ) -> list[TaskRecord]:
        """Advance the service one step and return the tasks started in it."""
        events: list[str] = []
        self.sync_deployments(backend, service, memory)
        was_stopping = {r.task_arn for r in records if r.stopping}
        for record in records:
            self.tasks.advance(record, states, service, events)
        if self.task_events is not None:
            self.task_events.observe(records)
        self._count_failures(service, records, memory, events)
        self._trip_circuit_breaker(service, memory, events)
        self._end_rolled_back(service, records, memory)
        self._stop_surplus(service, records, states)
        started = self._start_missing(backend, region, service, records, memory)
        stopped = [r for r in records if r.stopping and r.task_arn not in was_stopping]
        name = f"(service {service.name})"
        if stopped:
            events.append(task_list(f"{name} has stopped", [r.task_id for r in stopped], "running tasks"))
        draining = [r for r in stopped if r.targets and not r.failed]
        if draining:
            events.append(f"{name} has begun draining connections on {len(draining)} tasks.")
        if started:
            events.append(task_list(f"{name} has started", [r.task_id for r in started]))
        recount(service, records + started, memory.rolled_back_from)
        self._settle(service, records + started, memory, events)
        add_events(service, events)
        return started

    def _count_failures(
        self, service: Any, records: list[TaskRecord], memory: ServiceMemory, events: list[str]
    ) -> None:
        by_id = {d["id"]: d for d in service.deployments}
        reset = self.realism.failed_tasks_reset and read_rollout_config(service).reset_on_healthy_task
        for record in records:
            deployment = by_id.get(record.deployment_id)
            if record.healthy and not record.stopping and not record.success_counted:
                record.success_counted = True
                memory.consecutive_failures, memory.relaunch_at, memory.throttled = 0, 0.0, False
                if reset and deployment is not None and deployment.get("failedTasks"):
                    deployment["failedTasks"] = 0
            if record.failed and not record.failure_counted:
                record.failure_counted = True
                if deployment is not None and deployment["rolloutState"] == "IN_PROGRESS":
                    deployment["failedTasks"] = int(deployment.get("failedTasks") or 0) + 1
                self._back_off(service, memory, events)

    def _back_off(self, service: Any, memory: ServiceMemory, events: list[str]) -> None:
        """Space out the next launch after one more failed task, as ECS's service throttle logic does."""
        memory.consecutive_failures += 1
        delay = plan_relaunch_delay(self.realism.relaunch_backoff_seconds, memory.consecutive_failures)
        memory.relaunch_at = max(memory.relaunch_at, time.monotonic() + self.realism.scaled(delay))
        if delay > 0 and not memory.throttled:
            memory.throttled = True
            impaired = ecs_events.service_action_entry(service, "SERVICE_TASK_START_IMPAIRED", utcnow())
            ecs_events.publish_for(service, [impaired])
            events.append(
                f"(service {service.name}) is unable to consistently start tasks successfully. For more "
                "information, see the Troubleshooting section of the Amazon ECS Developer Guide."
            )

    def _trip_circuit_breaker(self, service: Any, memory: ServiceMemory, events: list[str]) -> None:
        config = read_rollout_config(service)
        primary = service.deployments[0]
        threshold = circuit_breaker_threshold(service.desired_count, self.breaker_minimum)
        if not config.circuit_breaker or primary["rolloutState"] != "IN_PROGRESS":
            return
        if int(primary.get("failedTasks") or 0) < threshold:
            return
        events.append(
            f"(service {service.name}) (deployment {primary['id']}) deployment failed: tasks failed to start."
        )
        last = memory.last_completed
        rollback = config.rollback and last is not None and last[1] != primary["taskDefinition"]
        if not rollback or not self.realism.slow_circuit_breaker_rollback:
            self._set_rollout(service, primary, "FAILED", _BREAKER_FAILED)
        if not rollback or last is None:
            return
        service.task_definition = last[1]
        reason = f"ECS deployment circuit breaker: rolling back to deploymentId {last[0]}."
        if self.realism.slow_circuit_breaker_rollback:
            memory.rolled_back_from = primary["id"]  # still IN_PROGRESS: it ends once replaced
        self._push_new(service, new_deployment(service, last[1], reason), memory)
        memory.primary_id = service.deployments[0]["id"]
        events.append(f"(service {service.name}) rolling back to deployment {last[0]}.")

    def _end_rolled_back(self, service: Any, records: list[TaskRecord], memory: ServiceMemory) -> None:
        """End the deployment rolled back from as FAILED once it has been replaced."""
        failed = next((d for d in service.deployments if d["id"] == memory.rolled_back_from), None)
        if failed is None:
            memory.rolled_back_from = None
            return
        if failed["rolloutState"] != "IN_PROGRESS":
            return
        primary_id = service.deployments[0]["id"]
        left = sum(r.deployment_id == failed["id"] and not is_gone(r) for r in records)
        running = sum(
            r.deployment_id == primary_id and r.task.last_status == "RUNNING" and not r.stopping
            for r in records
        )
        if decide_rolled_back_deployment_failed(left, running, service.desired_count):
            self._set_rollout(service, failed, "FAILED", _BREAKER_FAILED)

    def _stop_surplus(
        self, service: Any, records: list[TaskRecord], states: dict[str, ContainerState]
    ) -> None:
        primary_id = service.deployments[0]["id"]
        desired = service.desired_count
        _, fewest = plan_task_bounds(desired, read_rollout_config(service))
        live = [r for r in records if not r.stopping]
        reason = f"Scaling activity initiated by (deployment {primary_id})"
        primary = sorted((r for r in live if r.deployment_id == primary_id), key=_readiness)
        for record in primary[: max(0, len(primary) - desired)]:
            self.tasks.stop(record, reason, "ServiceSchedulerInitiated", states)
        healthy = sum(r.healthy for r in live if not r.stopping)
        for record in sorted((r for r in live if r.deployment_id != primary_id), key=_readiness):
            if record.healthy:
                if healthy - 1 < fewest:
                    continue
                healthy -= 1
            self.tasks.stop(record, reason, "ServiceSchedulerInitiated", states)

    def _start_missing(
        self, backend: Any, region: str, service: Any, records: list[TaskRecord], memory: ServiceMemory
    ) -> list[TaskRecord]:
        primary = service.deployments[0]
        if primary["rolloutState"] == "FAILED":
            return []  # the circuit breaker stopped this deployment from launching more tasks
        if time.monotonic() < memory.relaunch_at:
            return []  # ECS's back-off after tasks that failed in a row
        most, _ = plan_task_bounds(service.desired_count, read_rollout_config(service))
        present = [r for r in records if not is_gone(r)]
        mine = [r for r in present if r.deployment_id == primary["id"] and not r.stopping]
        count = min(service.desired_count - len(mine), most - len(present))
        if count <= 0:
            return []
        definition = backend.describe_task_definition(primary["taskDefinition"])
        return [self.tasks.start(backend, region, service, definition, primary["id"]) for _ in range(count)]

    def _settle(
        self, service: Any, records: list[TaskRecord], memory: ServiceMemory, events: list[str]
    ) -> None:
        primary = service.deployments[0]
        present = [r for r in records if not is_gone(r)]
        serving = [r for r in present if r.deployment_id == primary["id"] and r.healthy and not r.stopping]
        ended = [d for d in service.deployments[1:] if _is_ended_rollback_source(d, memory)]
        alone = len(service.deployments) - len(ended) == 1 and len(present) == len(serving)
        ready = alone and len(serving) == service.desired_count
        if ready and primary["rolloutState"] == "IN_PROGRESS":
            self._set_rollout(service, primary, "COMPLETED", f"ECS deployment {primary['id']} completed.")
        if ready and ended:
            service.deployments = [primary]  # the rollback completed: the failed deployment is gone
            memory.rolled_back_from = None
        if ready and primary["rolloutState"] == "COMPLETED":
            memory.last_completed = (primary["id"], primary["taskDefinition"])
        steady = ready and primary["rolloutState"] == "COMPLETED"
        if steady and not memory.steady:
            events.append(f"(service {service.name}) has reached a steady state.")
            steady_event = ecs_events.service_action_entry(service, "SERVICE_STEADY_STATE", utcnow())
            ecs_events.publish_for(service, [steady_event])
        memory.steady = steady
