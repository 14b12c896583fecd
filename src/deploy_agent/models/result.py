"""What ``deploy_agent.deploy`` returns: the final ``DeploymentResult`` (DESIGN section 3).

Celery returns ``result.model_dump(mode="json")``: snake_case names, ISO 8601 times with offsets.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from deploy_agent.core.errors import RequestRejected
from deploy_agent.models.request import DEPLOYMENT_ID_PATTERN, new_deployment_id
from deploy_agent.strategies.registry import strategy_names


class Outcome(StrEnum):
    """How a deployment ended. A release that ECS or we rolled back is never ``succeeded``."""

    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    #: the message was invalid; nothing was touched
    REJECTED = "rejected"
    #: a newer deployment of the same service took over
    SUPERSEDED = "superseded"
    #: an approver said no (the operator's policy required an approval); nothing was left behind
    DENIED = "denied"


class ApprovalDecision(StrEnum):
    APPROVED = "approved"
    DENIED = "denied"
    #: nobody decided before the approval's deadline (the deployment ended ``timed_out``)
    TIMED_OUT = "timed_out"


class ResultModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StageRecord(ResultModel):
    name: str
    started_at: AwareDatetime
    finished_at: AwareDatetime | None = None
    outcome: str
    detail: str | None = None


class RollbackInfo(ResultModel):
    #: what started it: circuit_breaker, health_check, deadline, alarm, analysis, ecs_rollback, manual, error
    trigger: str
    reason: str
    to_task_definition_arn: str | None = None


class StoppedTask(ResultModel):
    task_arn: str
    stopped_reason: str
    stop_code: str | None = None
    #: container name -> exit code (None when the container never exited)
    exit_codes: dict[str, int | None] = Field(default_factory=dict)


class Diagnostics(ResultModel):
    """Why tasks failed, in ECS's words."""

    stopped_tasks: list[StoppedTask] = Field(default_factory=list)
    service_events: list[str] = Field(default_factory=list)
    target_health: list[dict[str, Any]] = Field(default_factory=list)


class ErrorInfo(ResultModel):
    #: ``DeployError.kind``, e.g. request_rejected, build_failed
    type: str
    message: str


class ZeroDowntime(ResultModel):
    """What a prober saw while the release rolled out."""

    requests: int = Field(ge=0)
    failures: int = Field(ge=0)
    longest_gap_ms: float = Field(ge=0)


class ApprovalInfo(ResultModel):
    """The human approval the operator's policy required before production was touched."""

    #: the name of the policy's approval rule that matched
    rule: str
    requested_at: AwareDatetime
    decided_at: AwareDatetime | None = None
    decision: ApprovalDecision
    #: who decided (None when the approval timed out)
    approver: str | None = None
    #: the denial's reason, or the approver's comment
    reason: str | None = None


class LifecycleStageRecord(ResultModel):
    stage: str
    #: when the worker first saw ECS's deployment in this stage
    at: AwareDatetime


class HookRecord(ResultModel):
    """A PAUSE lifecycle hook ECS held the deployment at, and the worker's answer."""

    #: which point of the deployment: "test traffic", "before production traffic", "step 2 (50%)", ...
    point: str
    hook_id: str
    #: CONTINUE, or ROLLBACK when a gate failed there
    action: str
    at: AwareDatetime
    traffic_percent: float | None = None
    reason: str | None = None


class ServiceDeploymentInfo(ResultModel):
    """ECS's own service deployment (native strategies): what it did and how it ended."""

    service_deployment_arn: str
    #: ECS's final ServiceDeployment status (SUCCESSFUL, ROLLBACK_SUCCESSFUL, ...)
    status: str | None = None
    status_reason: str | None = None
    lifecycle_stages: list[LifecycleStageRecord] = Field(default_factory=list)
    hooks: list[HookRecord] = Field(default_factory=list)
    #: the StopServiceDeployment stopType the worker sent (null: it stopped nothing)
    stopped_with: str | None = None
    rollback_reason: str | None = None
    rollback_started_at: AwareDatetime | None = None


class AnalysisMeasurement(ResultModel):
    """One measurement of an analysis gate (the message's ``analysis``) at a gated step."""

    #: the gate's name
    gate: str
    #: the hold it was taken in: ``bake``, ``step 2 (50%)`` ...
    step: str
    query: str
    #: the query's single value (null when it had none: empty, NaN, several series, an error)
    value: float | None = None
    verdict: Literal["successful", "failed", "inconclusive"]
    #: the value and the condition it met, or why it is inconclusive
    reason: str
    at: AwareDatetime


class DeploymentResult(ResultModel):
    deployment_id: str
    outcome: Outcome
    strategy: str
    cluster_name: str
    service_name: str
    #: pinned by digest: repo@sha256:...
    image_uri: str | None = None
    task_definition_arn: str | None = None
    previous_task_definition_arn: str | None = None
    started_at: AwareDatetime
    finished_at: AwareDatetime
    duration_seconds: float = Field(ge=0)
    stages: list[StageRecord] = Field(default_factory=list)
    rollback: RollbackInfo | None = None
    diagnostics: Diagnostics = Field(default_factory=Diagnostics)
    error: ErrorInfo | None = None
    #: one ``{"field", "problem"}`` per invalid field when ``outcome`` is rejected
    errors: list[dict[str, str]] = Field(default_factory=list)
    zero_downtime: ZeroDowntime | None = None
    #: the analysis gates' measurements, oldest first (the last 100)
    analysis: list[AnalysisMeasurement] = Field(default_factory=list)
    #: the approval this deployment needed, or null when the policy required none
    approval: ApprovalInfo | None = None
    #: ECS's service deployment, for the native strategies (ecs_blue_green, ecs_linear, ecs_canary)
    service_deployment: ServiceDeploymentInfo | None = None
    requested_by: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def rejected(cls, payload: object, exc: RequestRejected, now: datetime) -> DeploymentResult:
        """Return the result for a message that failed validation, naming what the raw message allows."""
        raw = _as_mapping(payload)
        deployment_id = _text(raw, "deployment_id", "deploymentId", 128)
        if deployment_id is None or not re.fullmatch(DEPLOYMENT_ID_PATTERN, deployment_id):
            deployment_id = new_deployment_id()
        return cls(
            deployment_id=deployment_id,
            outcome=Outcome.REJECTED,
            strategy=_strategy_type(raw),
            cluster_name=_text(raw, "cluster_name", "clusterName", 255) or "",
            service_name=_text(raw, "service_name", "serviceName", 255) or "",
            started_at=now,
            finished_at=now,
            duration_seconds=0.0,
            error=ErrorInfo(type=exc.kind, message=exc.message),
            errors=list(exc.errors),
            requested_by=_text(raw, "requested_by", "requestedBy", 256),
            labels=_labels(raw),
        )


def _as_mapping(payload: object) -> dict[str, Any]:
    if isinstance(payload, (str, bytes, bytearray)):
        try:
            payload = json.loads(payload)
        except (ValueError, RecursionError):
            return {}
    return payload if isinstance(payload, dict) else {}


def _text(raw: dict[str, Any], snake: str, camel: str, max_length: int) -> str | None:
    value = raw.get(snake, raw.get(camel))
    return value[:max_length] if isinstance(value, str) else None


def _strategy_type(raw: dict[str, Any]) -> str:
    strategy = raw.get("strategy")
    if strategy is None:
        return "rolling"
    kind = strategy.get("type") if isinstance(strategy, dict) else None
    return kind if isinstance(kind, str) and kind in strategy_names() else ""


def _labels(raw: dict[str, Any]) -> dict[str, str]:
    labels = raw.get("labels")
    if not isinstance(labels, dict) or len(labels) > 50:
        return {}
    if all(
        isinstance(k, str) and isinstance(v, str) and len(k) <= 128 and len(v) <= 256
        for k, v in labels.items()
    ):
        return labels
    return {}
