"""The tasks of each service revision in a native deployment, and the monitors that can stop it.

In a native deployment both revisions run at full size at once ("plan for enough cluster capacity
to handle both service revisions", https://docs.aws.amazon.com/AmazonECS/latest/developerguide/
canary-deployment-implementation.html): each revision's tasks are real sandbox tasks, tagged with
their revision's ECS deployment id, and registered in that revision's side of each load balancer
(the primary or the alternate target group; https://docs.aws.amazon.com/AmazonECS/latest/
developerguide/alb-resources-for-blue-green.html, "Amazon ECS automatically registers tasks with the
appropriate target group based on the deployment stage"). ``ServiceView`` hands the task runner the
service with its load balancers pointing at one side, so the runner itself stays as it is.
"""

from __future__ import annotations

from typing import Any

from moto.backends import get_backend

from .containers import ContainerState
from .native_records import Revision, new_revision_arn
from .task_runner import TaskRunner
from .tasks import TaskRecord, is_gone


def side_load_balancers(service: Any, side: str) -> list[dict[str, Any]]:
    """Return the service's load balancers as a revision on ``side`` ("primary"/"alternate") sees them."""
    if side == "primary":
        return list(service.load_balancers)
    views = []
    for balancer in service.load_balancers:
        alternate = (balancer.get("advancedConfiguration") or {}).get("alternateTargetGroupArn")
        views.append({**balancer, "targetGroupArn": alternate or balancer.get("targetGroupArn")})
    return views


def resolved_load_balancers(service: Any, side: str) -> list[dict[str, Any]]:
    """Return resolvedConfiguration.loadBalancers: the group each load balancer serves this side from."""
    return [
        {
            "targetGroupArn": view.get("targetGroupArn"),
            "productionListenerRule": (view.get("advancedConfiguration") or {}).get("productionListenerRule"),
        }
        for view in side_load_balancers(service, side)
        if view.get("targetGroupArn")
    ]


def make_revision(
    backend: Any, region: str, account: str, service: Any, ecs: dict[str, Any], side: str
) -> Revision:
    """Return the ServiceRevision of one of the service's ``deployments[]`` entries, served from ``side``."""
    definition = backend.describe_task_definition(ecs["taskDefinition"])
    return Revision(
        arn=new_revision_arn(region, account, service.cluster_name, service.name),
        service_arn=service.arn,
        cluster_arn=backend.clusters[service.cluster_name].arn,
        task_definition=definition.arn,
        side=side,
        resolved=resolved_load_balancers(service, side),
        ecs_deployment_id=ecs["id"],
        service_fields={
            "launchType": service.launch_type,
            "platformVersion": service.platform_version,
            "platformFamily": ecs.get("platformFamily"),
            "loadBalancers": list(service.load_balancers),
            "networkConfiguration": service.network_configuration or None,
            "capacityProviderStrategy": getattr(service, "capacity_provider_strategy", None),
        },
        container_images=[
            {"containerName": c["name"], "image": c["image"]} for c in definition.container_definitions
        ],
    )


class ServiceView:
    """A moto service as one revision's tasks see it: its load balancers on that revision's side."""

    def __init__(self, service: Any, side: str) -> None:
        self._service = service
        self.load_balancers = side_load_balancers(service, side)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)


def live(records: list[TaskRecord], deployment_id: str) -> list[TaskRecord]:
    """Return the deployment's tasks that are neither stopping nor stopped."""
    return [r for r in records if r.deployment_id == deployment_id and not r.stopping and not is_gone(r)]


def present(records: list[TaskRecord], deployment_id: str) -> list[TaskRecord]:
    """Return the deployment's tasks that have not stopped yet (draining ones included)."""
    return [r for r in records if r.deployment_id == deployment_id and not is_gone(r)]


def counts(records: list[TaskRecord], deployment_id: str) -> tuple[int, int, int]:
    """Return (requested, running, pending) task counts of one deployment."""
    mine = present(records, deployment_id)
    running = sum(r.task.last_status == "RUNNING" for r in mine)
    pending = sum(r.task.last_status in ("PROVISIONING", "PENDING") for r in mine)
    return sum(not r.stopping for r in mine), running, pending


def all_healthy(records: list[TaskRecord], deployment_id: str, desired: int) -> bool:
    """Return whether the deployment runs ``desired`` healthy tasks and nothing else of it is left."""
    mine = live(records, deployment_id)
    return len(mine) == desired and all(r.healthy for r in mine)


class Fleet:
    """Starts and stops one revision's tasks through the task runner."""

    def __init__(self, tasks: TaskRunner) -> None:
        self.tasks = tasks

    def maintain(
        self,
        backend: Any,
        region: str,
        service: Any,
        deployment_id: str,
        task_definition: str,
        count: int,
        records: list[TaskRecord],
        states: dict[str, ContainerState],
    ) -> list[TaskRecord]:
        """Start or stop the deployment's tasks until ``count`` are live; return those started."""
        mine = sorted(
            live(records, deployment_id), key=lambda r: (r.healthy, r.task.last_status == "RUNNING")
        )
        for record in mine[: max(0, len(mine) - count)]:
            reason = f"Scaling activity initiated by (deployment {deployment_id})"
            self.tasks.stop(record, reason, "ServiceSchedulerInitiated", states)
        missing = count - len(mine)
        if missing <= 0:
            return []
        definition = backend.describe_task_definition(task_definition)
        return [self.tasks.start(backend, region, service, definition, deployment_id) for _ in range(missing)]

    def keep(
        self,
        backend: Any,
        region: str,
        service: Any,
        revision: Revision,
        records: list[TaskRecord],
        states: dict[str, ContainerState],
    ) -> list[TaskRecord]:
        """Keep a revision at the service's desired count (failed tasks replaced, scaling followed)."""
        return self.maintain(
            backend,
            region,
            service,
            revision.ecs_deployment_id,
            revision.task_definition,
            service.desired_count,
            records,
            states,
        )

    def stop_all(
        self, records: list[TaskRecord], deployment_id: str, reason: str, states: dict[str, ContainerState]
    ) -> list[TaskRecord]:
        """Stop every live task of the deployment (each deregisters and drains first); return them."""
        stopping = live(records, deployment_id)
        for record in stopping:
            self.tasks.stop(record, reason, "ServiceSchedulerInitiated", states)
        return stopping


def alarms_in_alarm(account: str, region: str, names: tuple[str, ...]) -> list[str]:
    """Return which of the named CloudWatch alarms are in ALARM (``set_alarm_state`` makes one fire)."""
    if not names:
        return []
    alarms = get_backend("cloudwatch")[account][region].alarms
    return [n for n in names if n in alarms and alarms[n].state_value == "ALARM"]
