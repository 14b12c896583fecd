"""The pipeline's durable state: one JSON document per deployment, kept in Redis.

Every stage loads it, advances it and saves it back. Anything that must be undone after a crash
(the phase, the previous task definition, the ECS deployment we started) is written here before
the AWS call that creates it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from deploy_agent.core.outcome import Failure, Phase, Trigger


class StageState(BaseModel):
    name: str
    started_at: datetime
    finished_at: datetime | None = None
    outcome: str = "running"  # running | succeeded | failed | skipped
    detail: str | None = None


class ProbeState(BaseModel):
    ok: bool
    status: int | None = None
    latency_ms: float = 0.0
    error: str | None = None


class FailureState(BaseModel):
    type: str
    message: str
    trigger: Trigger

    def as_failure(self) -> Failure:
        return Failure(self.type, self.message, self.trigger)


class ApprovalState(BaseModel):
    """A human's approval this deployment waits for (or got); the decision itself lands in Redis first.

    ``decision`` is None while it waits (the deployment is ``awaiting_approval``), then ``approved``,
    ``denied`` or ``timed_out``. ``reason`` is the denial's reason or the approver's comment.
    """

    rule: str
    requested_at: datetime
    deadline: datetime
    decision: str | None = None
    approver: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None


class LifecycleVisit(BaseModel):
    """A lifecycle stage of ECS's service deployment, and when we first saw it."""

    stage: str
    at: datetime


class HookAnswer(BaseModel):
    """One PAUSE hook firing and how we answered it (``core.ecs_native``)."""

    point: str
    hook_id: str
    #: CONTINUE, or ROLLBACK (a gate failed: StopServiceDeployment followed)
    action: str
    at: datetime
    #: the new revision's production traffic share when the hook fired
    traffic_percent: float | None = None
    reason: str | None = None


class ServiceDeploymentState(BaseModel):
    """ECS's own service deployment that a native strategy drives, as far as we followed it."""

    arn: str
    status: str | None = None
    status_reason: str | None = None
    lifecycle_stages: list[LifecycleVisit] = Field(default_factory=list)
    hooks: list[HookAnswer] = Field(default_factory=list)
    #: the StopServiceDeployment type we sent (None: we stopped nothing)
    stopped_with: str | None = None
    rollback_reason: str | None = None
    rollback_started_at: datetime | None = None


class PipelineState(BaseModel):
    """Where one deployment stands. Only the holder of the service lock writes it."""

    deployment_id: str
    request: dict[str, Any]
    strategy: str
    cluster: str
    service: str
    region: str
    phase: Phase = Phase.ACCEPTED
    started_at: datetime
    deadline: datetime
    stages: list[StageState] = Field(default_factory=list)
    # build and push
    local_image: str | None = None
    image_uri: str | None = None
    # register and deploy
    task_definition_arn: str | None = None
    previous_task_definition_arn: str | None = None
    #: the registered revision as RegisterTaskDefinition kwargs, from the registration's reply (the
    #: release ledger keeps it, so finalising needs no DescribeTaskDefinition)
    registered_definition: dict[str, Any] | None = None
    ecs_deployment_id: str | None = None
    update_requested_at: datetime | None = None
    last_progress: str | None = None
    # adaptive polling (see core.polling)
    polls: int = 0
    quiet_polls: int = 0
    last_change_at: datetime | None = None
    #: when the last look's wait ends (a look before it was woken)
    next_look_at: datetime | None = None
    expected_rollout_seconds: float | None = None
    rollout_completed_at: datetime | None = None
    #: ECS's own time for the rollout (its deployment's createdAt to COMPLETED), for later aims
    ecs_rollout_seconds: float | None = None
    # health
    probes: list[ProbeState] = Field(default_factory=list)
    # failure and rollback
    failure: FailureState | None = None
    ecs_rolled_back: bool = False
    rollback_requested: bool = False
    rollback_done: bool = False
    rollback_failed: bool = False
    rollback_started_at: datetime | None = None
    #: why the rollback did not settle, when it did not
    rollback_failure: str | None = None
    #: transient AWS failures of the current step in a row, and in all (``tasks.retries``)
    aws_retries: int = 0
    aws_retries_total: int = 0
    diagnostics: dict[str, Any] = Field(default_factory=dict)
    #: strategy-owned durable facts (temporary service, recorded listener actions, step index ...)
    strategy_state: dict[str, Any] = Field(default_factory=dict)
    #: per-field problems when a pre-flight check refused the deployment
    rejections: list[dict[str, str]] = Field(default_factory=list)
    zero_downtime: dict[str, Any] | None = None
    #: the analysis gates' measurements, oldest first (the last ``ANALYSIS_KEPT``; ``steps.analysis``)
    analysis: list[dict[str, Any]] = Field(default_factory=list)
    #: ECS's service deployment of a native strategy (None for the others)
    service_deployment: ServiceDeploymentState | None = None
    #: the approval the operator's policy requires before production is touched (None: none needed)
    approval: ApprovalState | None = None
    #: a rollback an operator asked for (``deploy_agent.rollback``), not a deployment of new code
    manual_rollback: bool = False
    #: the entry task that replaced itself with this deployment's chain (redeliveries of it are ignored)
    entry_task_id: str | None = None
    chain_started: bool = False
    outcome: str | None = None
    finished_at: datetime | None = None

    def fail(self, type_: str, message: str, trigger: Trigger) -> None:
        """Record the first failure; later ones do not overwrite the cause."""
        if self.failure is None:
            self.failure = FailureState(type=type_, message=message, trigger=trigger)

    def stage(self, name: str) -> StageState | None:
        for stage in self.stages:
            if stage.name == name:
                return stage
        return None

    def begin_stage(self, name: str, now: datetime) -> tuple[StageState, bool]:
        """Return the stage record, creating it; the flag says whether it was just created."""
        existing = self.stage(name)
        if existing is not None:
            return existing, False
        record = StageState(name=name, started_at=now)
        self.stages.append(record)
        return record, True

    @property
    def awaiting_approval(self) -> bool:
        """Whether the deployment waits for a human's decision now (shown as ``awaiting_approval``)."""
        return self.approval is not None and self.approval.decision is None and self.outcome is None

    def past_deadline(self, now: datetime) -> bool:
        return now >= self.deadline


def utcnow() -> datetime:
    """The wall clock, timezone-aware. Stages receive time through their runtime's clock."""
    return datetime.now(UTC)
