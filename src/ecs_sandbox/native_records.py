"""ServiceDeployments and ServiceRevisions as the native controller keeps them, in botocore's shapes.

moto has neither (it implements none of the service-deployment APIs), so the sandbox keeps them
here and ``native_api`` answers ListServiceDeployments / DescribeServiceDeployments /
DescribeServiceRevisions from them. ``to_api`` returns plain dicts keyed by botocore's member names
(ecs 2014-11-13: ServiceDeployment, ServiceDeploymentBrief, ServiceRevision,
DeploymentLifecycleHookDetail); moto's serializer writes their datetimes as epoch seconds. ARNs have
ECS's shapes: ``service-deployment/<cluster>/<service>/<id>`` and
``service-revision/<cluster>/<service>/<id>`` (https://docs.aws.amazon.com/AmazonECS/latest/
APIReference/API_ServiceDeployment.html, API_ServiceRevision.html).
"""

from __future__ import annotations

import base64
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from moto.core.utils import utcnow

from .native_config import NativeConfig

#: per revision: (requested, running, pending) task counts
Counts = Callable[["Revision"], tuple[int, int, int]]


def new_deployment_arn(region: str, account: str, cluster: str, service: str) -> str:
    """Return a ServiceDeployment ARN with an id like ECS's (22 URL-safe characters)."""
    token = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")[:22]
    return f"arn:aws:ecs:{region}:{account}:service-deployment/{cluster}/{service}/{token}"


def new_revision_arn(region: str, account: str, cluster: str, service: str) -> str:
    """Return a ServiceRevision ARN with a numeric id like ECS's."""
    number = random.randint(10**18, 10**19 - 1)  # noqa: S311 - an id, not a secret
    return f"arn:aws:ecs:{region}:{account}:service-revision/{cluster}/{service}/{number}"


def new_hook_id() -> str:
    """Return a pause hook id in the shape the pause-lifecycle-hooks page shows (``ecs-pause-...``)."""
    return "ecs-pause-" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


@dataclass
class Revision:
    """One ServiceRevision: the configuration a deployment runs, and the target group it serves from."""

    arn: str
    service_arn: str
    cluster_arn: str
    task_definition: str
    #: which target group of each load balancer its tasks are registered in: "primary" (the load
    #: balancer's targetGroupArn) or "alternate" (advancedConfiguration.alternateTargetGroupArn)
    side: str
    #: resolvedConfiguration.loadBalancers: [{targetGroupArn, productionListenerRule}] per load balancer
    resolved: list[dict[str, Any]]
    ecs_deployment_id: str  # the service's ``deployments[]`` entry whose tasks run this revision
    service_fields: dict[str, Any]  # launchType, platformVersion, loadBalancers, networkConfiguration, ...
    container_images: list[dict[str, Any]]
    created_at: datetime = field(default_factory=utcnow)

    def to_api(self) -> dict[str, Any]:
        """Return the ServiceRevision shape."""
        return {
            "serviceRevisionArn": self.arn,
            "serviceArn": self.service_arn,
            "clusterArn": self.cluster_arn,
            "taskDefinition": self.task_definition,
            **{k: v for k, v in self.service_fields.items() if v not in (None, [], {})},
            "containerImages": self.container_images,
            "createdAt": self.created_at,
            "resolvedConfiguration": {"loadBalancers": self.resolved} if self.resolved else {},
        }


@dataclass
class HookRun:
    """One lifecycle hook at one stage of one deployment (DeploymentLifecycleHookDetail)."""

    hook_id: str
    target_type: str
    status: str  # AWAITING_ACTION, IN_PROGRESS, SUCCEEDED, FAILED, TIMED_OUT
    expires_at: datetime
    deadline: float  # time.monotonic() at which the timeout action applies
    timeout_action: str
    target_arn: str | None = None

    def to_api(self) -> dict[str, Any]:
        """Return the DeploymentLifecycleHookDetail shape (targetArn only for Lambda hooks)."""
        detail: dict[str, Any] = {
            "hookId": self.hook_id,
            "targetType": self.target_type,
            "status": self.status,
            "expiresAt": self.expires_at,
            "timeoutAction": self.timeout_action,
        }
        if self.target_arn:
            detail["targetArn"] = self.target_arn
        return detail


@dataclass
class ServiceDeployment:
    """One ServiceDeployment and where the controller is in its lifecycle."""

    arn: str
    service_arn: str
    cluster_arn: str
    ecs_deployment_id: str  # the service's ``deployments[]`` entry it drives
    target: Revision
    sources: list[Revision]
    configuration: dict[str, Any]
    config: NativeConfig
    breaker_threshold: int
    status: str = "PENDING"
    status_reason: str = ""
    lifecycle_stage: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    stopped_at: datetime | None = None
    hooks: list[HookRun] = field(default_factory=list)
    rollback: dict[str, Any] | None = None
    failure_count: int = 0
    breaker_status: str = "MONITORING"
    alarm_status: str = "MONITORING"
    triggered_alarms: list[str] = field(default_factory=list)
    # --- the controller's progress -------------------------------------------------------------
    step: int = 0
    phase: str = "hooks"  # hooks -> act -> wait, per step
    wait_until: float = 0.0
    green_percent: float = 0.0  # production share on the target revision
    test_percent: float = 0.0  # test share on the target revision
    hooks_step: int = -1  # the step whose hooks ``hooks`` are

    @property
    def finished(self) -> bool:
        """Return whether the deployment has ended (nothing more will happen to it)."""
        return self.status in ("SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED")

    def touch(self, **changes: Any) -> None:
        """Set fields and stamp updatedAt."""
        for name, value in changes.items():
            setattr(self, name, value)
        self.updated_at = utcnow()

    def brief(self) -> dict[str, Any]:
        """Return the ServiceDeploymentBrief shape."""
        brief = {
            "serviceDeploymentArn": self.arn,
            "serviceArn": self.service_arn,
            "clusterArn": self.cluster_arn,
            "createdAt": self.created_at,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "targetServiceRevisionArn": self.target.arn,
            "status": self.status,
            "statusReason": self.status_reason or None,
        }
        return {k: v for k, v in brief.items() if v is not None}

    def to_api(self, counts: Counts) -> dict[str, Any]:
        """Return the ServiceDeployment shape; ``counts`` gives each revision's task counts."""

        def summary(revision: Revision, production: float, test: float) -> dict[str, Any]:
            requested, running, pending = counts(revision)
            return {
                "arn": revision.arn,
                "requestedTaskCount": requested,
                "runningTaskCount": running,
                "pendingTaskCount": pending,
                "requestedProductionTrafficWeight": production,
                "requestedTestTrafficWeight": test,
            }

        answer: dict[str, Any] = {
            **self.brief(),
            "updatedAt": self.updated_at,
            "stoppedAt": self.stopped_at,
            "sourceServiceRevisions": [
                summary(s, 100.0 - self.green_percent, 100.0 - self.test_percent) for s in self.sources
            ],
            "targetServiceRevision": summary(self.target, self.green_percent, self.test_percent),
            "lifecycleStage": self.lifecycle_stage,
            "lifecycleHookDetails": [h.to_api() for h in self.hooks],
            "deploymentConfiguration": self.configuration,
            "rollback": self.rollback,
            "deploymentCircuitBreaker": {
                "status": self.breaker_status,
                "failureCount": self.failure_count,
                "threshold": self.breaker_threshold,
            },
            "alarms": {
                "status": self.alarm_status,
                "alarmNames": list(self.config.alarm_names),
                "triggeredAlarmNames": list(self.triggered_alarms),
            },
        }
        return {k: v for k, v in answer.items() if v is not None}
