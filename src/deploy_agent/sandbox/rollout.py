"""One service, one tick: deployments, task replacement, counts, circuit breaker, steady state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .containers import ContainerState
from .deployments import (
    RolloutLog,
    add_events,
    circuit_breaker_threshold,
    new_deployment,
    plan_task_bounds,
    push_deployment,
    read_rollout_config,
    set_counts,
    set_rollout,
    task_list,
)
from .task_runner import TaskRunner
from .tasks import TaskRecord


@dataclass
class ServiceMemory:
    """What the scheduler remembers about a service between ticks."""

    primary_id: str | None = None
    last_completed: tuple[str, str] | None = None  # (deployment id, task definition ARN)
    steady: bool = False


def _readiness(record: TaskRecord) -> tuple[bool, bool]:
    """Sort key: tasks that serve nothing yet come first, so they are the first to go."""
    return (record.healthy, record.task.last_status == "RUNNING")


def _is_gone(record: TaskRecord) -> bool:
    return bool(record.task.last_status == "STOPPED")


class Rollout:
    """Plays the ECS service scheduler for one service at a time."""

    def __init__(self, tasks: TaskRunner, breaker_minimum: int = 3, log: RolloutLog | None = None) -> None:
        self.tasks = tasks
        self.breaker_minimum = breaker_minimum
        self.log = log or RolloutLog()

    def _push(self, service: Any, deployment: dict[str, Any]) -> None:
        push_deployment(service, deployment)
        self.log.record(service, deployment)

    def _set_rollout(self, service: Any, deployment: dict[str, Any], state: str, reason: str) -> None:
        set_rollout(deployment, state, reason)
        self.log.record(service, deployment)

    def sync_deployments(self, backend: Any, service: Any, memory: ServiceMemory) -> None:
        """Add a PRIMARY deployment when the service's task definition changed (or a new one was forced)."""
        if not service.task_definition:
            return
        target = backend.describe_task_definition(service.task_definition).arn
        service.task_definition = target  # ECS answers with the ARN, moto with what it was given
        deployments = service.deployments
        if not deployments:
            self._push(service, new_deployment(service, target))
        else:
            primary = deployments[0]
            if backend.describe_task_definition(primary["taskDefinition"]).arn != target:
                self._push(service, new_deployment(service, target))
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
                self.log.record(service, primary)  # CreateService's own deployment, first seen now
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
        self._count_failures(service, records)
        self._trip_circuit_breaker(service, memory, events)
        self._stop_surplus(service, records, states)
        started = self._start_missing(backend, region, service, records)
        stopped = [r for r in records if r.stopping and r.task_arn not in was_stopping]
        name = f"(service {service.name})"
        if stopped:
            events.append(task_list(f"{name} has stopped", [r.task_id for r in stopped], "running tasks"))
        draining = [r for r in stopped if r.targets and not r.failed]
        if draining:
            events.append(f"{name} has begun draining connections on {len(draining)} tasks.")
        if started:
            events.append(task_list(f"{name} has started", [r.task_id for r in started]))
        self.recount(service, records + started)
        self._settle(service, records + started, memory, events)
        add_events(service, events)
        return started

    def _count_failures(self, service: Any, records: list[TaskRecord]) -> None:
        by_id = {d["id"]: d for d in service.deployments}
        for record in records:
            if record.failed and not record.failure_counted:
                record.failure_counted = True
                deployment = by_id.get(record.deployment_id)
                if deployment is not None and deployment["rolloutState"] == "IN_PROGRESS":
                    deployment["failedTasks"] = int(deployment.get("failedTasks") or 0) + 1

    def _trip_circuit_breaker(self, service: Any, memory: ServiceMemory, events: list[str]) -> None:
        config = read_rollout_config(service)
        primary = service.deployments[0]
        threshold = circuit_breaker_threshold(service.desired_count, self.breaker_minimum)
        if not config.circuit_breaker or primary["rolloutState"] != "IN_PROGRESS":
            return
        if int(primary.get("failedTasks") or 0) < threshold:
            return
        reason = "ECS deployment circuit breaker: tasks failed to start."
        self._set_rollout(service, primary, "FAILED", reason)
        events.append(
            f"(service {service.name}) (deployment {primary['id']}) deployment failed: tasks failed to start."
        )
        last = memory.last_completed
        if not config.rollback or last is None or last[1] == primary["taskDefinition"]:
            return
        service.task_definition = last[1]
        reason = f"ECS deployment circuit breaker: rolling back to deploymentId {last[0]}."
        self._push(service, new_deployment(service, last[1], reason))
        memory.primary_id = service.deployments[0]["id"]
        events.append(f"(service {service.name}) rolling back to deployment {last[0]}.")

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
        self, backend: Any, region: str, service: Any, records: list[TaskRecord]
    ) -> list[TaskRecord]:
        primary = service.deployments[0]
        if primary["rolloutState"] == "FAILED":
            return []  # the circuit breaker stopped this deployment from launching more tasks
        most, _ = plan_task_bounds(service.desired_count, read_rollout_config(service))
        present = [r for r in records if not _is_gone(r)]
        mine = [r for r in present if r.deployment_id == primary["id"] and not r.stopping]
        count = min(service.desired_count - len(mine), most - len(present))
        if count <= 0:
            return []
        definition = backend.describe_task_definition(primary["taskDefinition"])
        return [self.tasks.start(backend, region, service, definition, primary["id"]) for _ in range(count)]

    def recount(self, service: Any, records: list[TaskRecord]) -> None:
        """Write true running/pending counts on the service and its deployments; drop finished ones."""
        present = [r for r in records if not _is_gone(r)]
        primary_id = service.deployments[0]["id"] if service.deployments else None
        kept = []
        for deployment in service.deployments:
            mine = [r for r in present if r.deployment_id == deployment["id"]]
            if deployment["id"] != primary_id and not mine:
                continue
            running = sum(r.task.last_status == "RUNNING" for r in mine)
            pending = sum(r.task.last_status in ("PROVISIONING", "PENDING") for r in mine)
            desired = (
                service.desired_count if deployment["id"] == primary_id else sum(not r.stopping for r in mine)
            )
            set_counts(deployment, desired, running, pending)
            kept.append(deployment)
        if len(kept) != len(service.deployments):
            service.deployments = kept
        service.running_count = sum(r.task.last_status == "RUNNING" for r in present)
        service.pending_count = sum(r.task.last_status in ("PROVISIONING", "PENDING") for r in present)

    def _settle(
        self, service: Any, records: list[TaskRecord], memory: ServiceMemory, events: list[str]
    ) -> None:
        primary = service.deployments[0]
        present = [r for r in records if not _is_gone(r)]
        serving = [r for r in present if r.deployment_id == primary["id"] and r.healthy and not r.stopping]
        alone = len(service.deployments) == 1 and len(present) == len(serving)
        ready = alone and len(serving) == service.desired_count
        if ready and primary["rolloutState"] == "IN_PROGRESS":
            self._set_rollout(service, primary, "COMPLETED", f"ECS deployment {primary['id']} completed.")
        if ready and primary["rolloutState"] == "COMPLETED":
            memory.last_completed = (primary["id"], primary["taskDefinition"])
        steady = ready and primary["rolloutState"] == "COMPLETED"
        if steady and not memory.steady:
            events.append(f"(service {service.name}) has reached a steady state.")
        memory.steady = steady
