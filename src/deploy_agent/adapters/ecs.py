"""ECS: one method per AWS call, each returning plain dicts (boto3's shapes, metadata removed)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from deploy_agent.adapters.aws import AwsClients, call
from deploy_agent.adapters.ecs_deployments import ServiceDeploymentCalls
from deploy_agent.core.errors import AwsNotFound
from deploy_agent.core.rollout import started_since, stopped_order
from deploy_agent.core.service_clone import plan_clone

#: DescribeServices takes at most 10 names per call, DescribeTasks at most 100 ARNs.
_SERVICES_PER_CALL = 10
_TASKS_PER_CALL = 100


def _batches(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class EcsApi(ServiceDeploymentCalls):
    """The ECS calls of the pipeline. Task definitions are always named by full ARN when deploying."""

    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    def describe_service(self, cluster: str, service: str) -> dict[str, Any]:
        """Return the service; raise ``AwsNotFound`` when it is missing or INACTIVE (deleted)."""
        response = call(self._clients.ecs.describe_services, cluster=cluster, services=[service])
        services = response.get("services", [])
        if not services:
            reasons = ", ".join(str(f.get("reason", "?")) for f in response.get("failures", [])) or "MISSING"
            raise AwsNotFound(
                f"ECS service {service} not found in cluster {cluster} ({reasons})",
                service="ecs",
                operation="DescribeServices",
                code=reasons,
            )
        found: dict[str, Any] = dict(services[0])
        if found.get("status") == "INACTIVE":
            raise AwsNotFound(
                f"ECS service {service} in cluster {cluster} is INACTIVE (deleted)",
                service="ecs",
                operation="DescribeServices",
                code="INACTIVE",
            )
        return found

    def describe_services(self, cluster: str, names: list[str]) -> dict[str, dict[str, Any]]:
        """Return ``{serviceName: service}`` for the names that exist, in batches of 10 per call.

        Missing names are absent from the result; INACTIVE services are present (check ``status``).
        """
        found: dict[str, dict[str, Any]] = {}
        for batch in _batches(names, _SERVICES_PER_CALL):
            response = call(self._clients.ecs.describe_services, cluster=cluster, services=batch)
            for service in response.get("services", []):
                found[service["serviceName"]] = dict(service)
        return found

    def describe_task_definition(self, task_definition: str) -> dict[str, Any]:
        """Return the ``taskDefinition`` for a family, ``family:revision`` or ARN, with its ``tags`` added.

        ``tags`` is a register field, so ``plan_task_definition`` carries them into the next revision.
        """
        response = call(
            self._clients.ecs.describe_task_definition, taskDefinition=task_definition, include=["TAGS"]
        )
        described: dict[str, Any] = dict(response["taskDefinition"])
        described["tags"] = list(response.get("tags", []))
        return described

    def register_task_definition(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Return the new revision's ``taskDefinition`` (its ``taskDefinitionArn`` names it)."""
        response = call(self._clients.ecs.register_task_definition, **kwargs)
        return dict(response["taskDefinition"])

    def update_service(
        self,
        cluster: str,
        service: str,
        task_definition_arn: str,
        desired_count: int | None = None,
        maximum_percent: int | None = None,
        minimum_healthy_percent: int | None = None,
        circuit_breaker: bool | None = None,
        circuit_breaker_rollback: bool | None = None,
        deployment_configuration: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Return the service after pointing it at ``task_definition_arn``; None settings are left out.

        UpdateService keeps every setting it is not given (aws/copilot-cli#4565), so a service's own
        percents and circuit breaker survive a deployment that names none. The breaker's two flags
        are sent together or not at all (``DeploymentCircuitBreaker`` requires both); a missing one
        is False. ``deployment_configuration`` (ECS's native strategies: ``strategy``, hooks, bake
        time) is sent as given, the other settings over it.
        ``desired_count=None`` keeps the service's count. A full ARN is required: moto
        stores the string verbatim, and an ARN is the only name that cannot drift to another revision.
        """
        if not task_definition_arn.startswith("arn:"):
            raise ValueError(f"update_service needs a task definition ARN, got {task_definition_arn!r}")
        config: dict[str, Any] = dict(deployment_configuration or {})
        if circuit_breaker is not None or circuit_breaker_rollback is not None:
            config["deploymentCircuitBreaker"] = {
                "enable": bool(circuit_breaker),
                "rollback": bool(circuit_breaker_rollback),
            }
        if maximum_percent is not None:
            config["maximumPercent"] = maximum_percent
        if minimum_healthy_percent is not None:
            config["minimumHealthyPercent"] = minimum_healthy_percent
        kwargs: dict[str, Any] = {
            "cluster": cluster,
            "service": service,
            "taskDefinition": task_definition_arn,
        }
        if config:
            kwargs["deploymentConfiguration"] = config
        if desired_count is not None:
            kwargs["desiredCount"] = desired_count
        response = call(self._clients.ecs.update_service, **kwargs)
        return dict(response["service"])

    def deregister_task_definition(self, task_definition_arn: str) -> None:
        """Mark a revision INACTIVE (it stays describable; running tasks keep running)."""
        call(self._clients.ecs.deregister_task_definition, taskDefinition=task_definition_arn)

    def create_service(
        self,
        cluster: str,
        template: dict[str, Any],
        name: str,
        task_definition_arn: str,
        target_group_arn: str,
        desired_count: int,
    ) -> dict[str, Any]:
        """Return a new service that is a copy of ``template`` (a described service) on another target group.

        Used for the temporary green/canary service, which must run the way the original will once
        promoted (issue 9, worker point 6); see :func:`plan_clone` for what is copied and why.
        Every ``loadBalancers`` entry of the template is pointed at ``target_group_arn``: the
        caller passes only the entries that use the blue target group.
        """
        tags = template.get("tags")
        if tags is None and template.get("serviceArn"):
            # DescribeServices gives tags only with include=["TAGS"]; ask for them here
            tags = call(
                self._clients.ecs.list_tags_for_resource, resourceArn=str(template["serviceArn"])
            ).get("tags", [])
        kwargs = plan_clone(
            {**template, "tags": tags or []}, name, task_definition_arn, target_group_arn, desired_count
        )
        response = call(self._clients.ecs.create_service, cluster=cluster, **kwargs)
        return dict(response["service"])

    def delete_service(self, cluster: str, service: str) -> None:
        """Delete a service and stop its tasks (ECS drains its targets first); a missing one is fine."""
        try:
            call(self._clients.ecs.delete_service, cluster=cluster, service=service, force=True)
        except AwsNotFound:
            return

    def describe_tasks(self, cluster: str, arns: Sequence[str]) -> list[dict[str, Any]]:
        """Return the tasks, in batches of 100 ARNs per call (none for no ARNs)."""
        tasks: list[dict[str, Any]] = []
        for batch in _batches(arns, _TASKS_PER_CALL):
            response = call(self._clients.ecs.describe_tasks, cluster=cluster, tasks=batch)
            tasks.extend(dict(task) for task in response.get("tasks", []))
        return tasks

    def list_stopped_tasks(
        self, cluster: str, service: str, started_after: datetime | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        """Return up to ``limit`` described STOPPED tasks of the service, most recently stopped first.

        Tasks are matched on ``group == "service:<name>"`` as well as the ``serviceName`` filter,
        because moto ignores that filter. With ``started_after``, tasks that started (or, lacking
        ``startedAt``, were created) before it are left out; tasks with neither time are kept.
        """
        group = f"service:{service}"
        ecs = self._clients.ecs
        matched: list[dict[str, Any]] = []
        token: str | None = None
        while len(matched) < limit:
            kwargs: dict[str, Any] = {"cluster": cluster, "serviceName": service, "desiredStatus": "STOPPED"}
            if token:
                kwargs["nextToken"] = token
            page = call(ecs.list_tasks, **kwargs)
            for task in self.describe_tasks(cluster, page.get("taskArns", [])):
                if task.get("group") == group and started_since(task, started_after):
                    matched.append(task)
            token = page.get("nextToken")
            if not token:
                break
        matched.sort(key=stopped_order, reverse=True)
        return matched[:limit]
