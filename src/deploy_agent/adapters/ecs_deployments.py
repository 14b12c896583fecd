"""ECS's service-deployment APIs (botocore 1.43.10+): follow, continue and stop a native deployment.

One method per AWS call, plain dicts in boto3's shapes. ``EcsApi`` inherits them, so the pipeline's
ECS port has one adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from deploy_agent.adapters.aws import AwsClients, call
from deploy_agent.core.errors import AwsNotFound


class ServiceDeploymentCalls:
    """ListServiceDeployments, DescribeServiceDeployments/-Revisions, Continue/StopServiceDeployment."""

    _clients: AwsClients

    def list_service_deployments(
        self, cluster: str, service: str, created_after: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Return the service's deployments (``ServiceDeploymentBrief``), newest first, all pages."""
        kwargs: dict[str, Any] = {"cluster": cluster, "service": service}
        if created_after is not None:
            kwargs["createdAt"] = {"after": created_after}
        found: list[dict[str, Any]] = []
        while True:
            page = call(self._clients.ecs.list_service_deployments, **kwargs)
            found.extend(dict(brief) for brief in page.get("serviceDeployments", []))
            token = page.get("nextToken")
            if not token:
                break
            kwargs["nextToken"] = token
        found.sort(key=lambda b: _epoch(b.get("createdAt")), reverse=True)
        return found

    def describe_service_deployment(self, arn: str) -> dict[str, Any]:
        """Return the ``ServiceDeployment``; raise ``AwsNotFound`` when ECS lists it as a failure."""
        response = call(self._clients.ecs.describe_service_deployments, serviceDeploymentArns=[arn])
        found = response.get("serviceDeployments", [])
        if not found:
            reasons = ", ".join(str(f.get("reason", "?")) for f in response.get("failures", [])) or "MISSING"
            raise AwsNotFound(
                f"ECS service deployment {arn} not found ({reasons})",
                service="ecs",
                operation="DescribeServiceDeployments",
                code=reasons,
            )
        return dict(found[0])

    def describe_service_revision(self, arn: str) -> dict[str, Any]:
        """Return the ``ServiceRevision`` (its task definition, load balancers, resolved configuration)."""
        response = call(self._clients.ecs.describe_service_revisions, serviceRevisionArns=[arn])
        found = response.get("serviceRevisions", [])
        if not found:
            raise AwsNotFound(
                f"ECS service revision {arn} not found",
                service="ecs",
                operation="DescribeServiceRevisions",
                code="MISSING",
            )
        return dict(found[0])

    def continue_service_deployment(self, arn: str, hook_id: str, action: str) -> None:
        """Answer a PAUSE hook: ``CONTINUE`` lets the deployment go on, ``ROLLBACK`` rolls it back."""
        call(
            self._clients.ecs.continue_service_deployment,
            serviceDeploymentArn=arn,
            hookId=hook_id,
            action=action,
        )

    def update_deployment_configuration(
        self, cluster: str, service: str, deployment_configuration: Mapping[str, Any]
    ) -> None:
        """Change only the service's deploymentConfiguration: without a new task definition or
        forceNewDeployment, ECS starts no deployment; the change applies to the next one."""
        call(
            self._clients.ecs.update_service,
            cluster=cluster,
            service=service,
            deploymentConfiguration=dict(deployment_configuration),
        )

    def stop_service_deployment(self, arn: str, stop_type: str) -> None:
        """Stop a service deployment: ``ROLLBACK`` to the source revision, or ``ABORT`` where it stands."""
        call(
            self._clients.ecs.stop_service_deployment,
            serviceDeploymentArn=arn,
            stopType=stop_type,
        )


def _epoch(value: object) -> float:
    return value.timestamp() if isinstance(value, datetime) else 0.0
