"""Scripted ECS native deployments (the service-deployment calls of ``EcsPort``) for strategy tests.

UpdateService with a native ``deploymentConfiguration.strategy`` creates a service deployment
IN_PROGRESS; the test moves it (:meth:`FakeServiceDeployments.pause_at`, :meth:`finish`) and reads
what the worker answered (``answers``, ``stops``). Shapes follow botocore's ServiceDeployment.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from deploy_agent.core.errors import AwsError, AwsNotFound

ACCOUNT_PREFIX = "arn:aws:ecs:us-east-1:123456789012"


@dataclass(kw_only=True)
class FakeServiceDeployments:
    """ECS's service deployments of the fake service, newest last."""

    service_deployments: list[dict[str, Any]] = field(default_factory=list)
    revisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (deployment ARN, hook id, action) of every ContinueServiceDeployment
    answers: list[tuple[str, str, str]] = field(default_factory=list)
    #: (deployment ARN, stop type) of every StopServiceDeployment
    stops: list[tuple[str, str]] = field(default_factory=list)
    #: the deploymentConfiguration each native UpdateService sent
    native_configs: list[dict[str, Any]] = field(default_factory=list)
    #: when False, UpdateService's reply does not name the deployment (older APIs): the worker lists
    names_current_deployment: bool = True
    hooks_fired: int = 0
    #: the service's deploymentConfiguration as UpdateService last set it
    deployment_configuration: dict[str, Any] = field(default_factory=dict)
    #: each deploymentConfiguration-only UpdateService (the worker taking its PAUSE hooks off)
    configuration_updates: list[dict[str, Any]] = field(default_factory=list)

    def start_native(self, cluster: str, service: str, task_definition: str, config: dict[str, Any]) -> str:
        """Record a native UpdateService; return the new service deployment's ARN."""
        number = len(self.service_deployments) + 1
        arn = f"{ACCOUNT_PREFIX}:service-deployment/{cluster}/{service}/sd{number}"
        revision = f"{ACCOUNT_PREFIX}:service-revision/{cluster}/{service}/{number}"
        self.native_configs.append(copy.deepcopy(config))
        self.revisions[revision] = {"serviceRevisionArn": revision, "taskDefinition": task_definition}
        now = datetime.now(UTC)
        self.service_deployments.append(
            {
                "serviceDeploymentArn": arn,
                "createdAt": now,
                "startedAt": now,
                "status": "IN_PROGRESS",
                "lifecycleStage": "RECONCILE_SERVICE",
                "lifecycleHookDetails": [],
                "targetServiceRevision": {"arn": revision, "requestedProductionTrafficWeight": 0.0},
                "deploymentConfiguration": copy.deepcopy(config),
            }
        )
        return arn

    @property
    def native(self) -> dict[str, Any]:
        """The newest service deployment."""
        return self.service_deployments[-1]

    # --- scripting -------------------------------------------------------------------------------
    def pause_at(self, stage: str, weight: float | None = None, hook_id: str = "hook-1") -> None:
        """Hold the newest deployment at ``stage`` on a PAUSE hook awaiting action."""
        self.hooks_fired += 1
        dep = self.native
        dep["lifecycleStage"] = stage
        if weight is not None:
            dep["targetServiceRevision"]["requestedProductionTrafficWeight"] = weight
        expires = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(minutes=self.hooks_fired)
        dep["lifecycleHookDetails"] = [
            {
                "hookId": hook_id,
                "targetType": "PAUSE",
                "status": "AWAITING_ACTION",
                "expiresAt": expires,
                "timeoutAction": "ROLLBACK",
            }
        ]

    def finish(self, status: str, reason: str = "", **extra: Any) -> None:
        """End the newest deployment with ``status`` (SUCCESSFUL, ROLLBACK_SUCCESSFUL, ...)."""
        dep = self.native
        dep["status"], dep["statusReason"] = status, reason
        dep["lifecycleHookDetails"] = [
            {**h, "status": "SUCCEEDED" if h["status"] == "AWAITING_ACTION" else h["status"]}
            for h in dep["lifecycleHookDetails"]
        ]
        if status.startswith("ROLLBACK"):
            dep["rollback"] = {"reason": reason, "startedAt": datetime.now(UTC)}
        dep.update(extra)

    # --- the port --------------------------------------------------------------------------------
    def list_service_deployments(
        self, cluster: str, service: str, created_after: datetime | None = None
    ) -> list[dict[str, Any]]:
        return [
            {
                "serviceDeploymentArn": d["serviceDeploymentArn"],
                "targetServiceRevisionArn": d["targetServiceRevision"]["arn"],
                "status": d["status"],
                "createdAt": d["createdAt"],
            }
            for d in reversed(self.service_deployments)
            if created_after is None or d["createdAt"] >= created_after
        ]

    def describe_service_deployment(self, arn: str) -> dict[str, Any]:
        for dep in self.service_deployments:
            if dep["serviceDeploymentArn"] == arn:
                return copy.deepcopy(dep)
        raise AwsNotFound(f"ECS service deployment {arn} not found (MISSING)", service="ecs")

    def describe_service_revision(self, arn: str) -> dict[str, Any]:
        if arn not in self.revisions:
            raise AwsNotFound(f"ECS service revision {arn} not found", service="ecs")
        return copy.deepcopy(self.revisions[arn])

    def continue_service_deployment(self, arn: str, hook_id: str, action: str) -> None:
        dep = self._deployment(arn)
        hooks = [h for h in dep["lifecycleHookDetails"] if h["hookId"] == hook_id]
        if not hooks or hooks[0]["status"] != "AWAITING_ACTION":
            raise AwsError(
                f"hook {hook_id} is not awaiting action", service="ecs", code="InvalidParameterException"
            )
        self.answers.append((arn, hook_id, action))
        hooks[0]["status"] = "SUCCEEDED"
        if action == "ROLLBACK":
            dep["status"] = "ROLLBACK_REQUESTED"

    def update_deployment_configuration(
        self, cluster: str, service: str, deployment_configuration: Mapping[str, Any]
    ) -> None:
        self.configuration_updates.append(copy.deepcopy(dict(deployment_configuration)))
        self.deployment_configuration = copy.deepcopy(dict(deployment_configuration))

    def stop_service_deployment(self, arn: str, stop_type: str) -> None:
        dep = self._deployment(arn)
        if dep["status"] not in ("PENDING", "IN_PROGRESS"):
            raise AwsError(f"deployment {arn} is {dep['status']}", service="ecs", code="ConflictException")
        self.stops.append((arn, stop_type))
        dep["status"] = "ROLLBACK_REQUESTED" if stop_type == "ROLLBACK" else "STOP_REQUESTED"

    def _deployment(self, arn: str) -> dict[str, Any]:
        for dep in self.service_deployments:
            if dep["serviceDeploymentArn"] == arn:
                return dep
        raise AwsNotFound(f"ECS service deployment {arn} not found", service="ecs")
