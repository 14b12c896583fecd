"""The durable facts the shared steps keep, as typed models (``Run.memory``).

Each fact is written before the AWS call it describes, so a redelivered step knows what was done:
a strategy's own memory model subclasses the one of the steps it uses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from deploy_agent.strategies.base import Memory


class ProbeRecord(BaseModel):
    ok: bool
    status: int | None = None
    error: str | None = None


class MeasurementRecord(BaseModel):
    """One analysis measurement as ``core.analysis.Measurement`` judged it."""

    value: float | None = None
    verdict: Literal["successful", "failed", "inconclusive"]
    reason: str


class AnalysisRecord(BaseModel):
    """One analysis gate in the hold in progress: its measurements so far and when it last measured."""

    measurements: list[MeasurementRecord] = Field(default_factory=list)
    last_at: datetime | None = None
    phase: Literal["running", "successful", "failed"] = "running"


class GateMemory(Memory):
    """What a gated hold (``steps.gates.hold_gates``) keeps: any strategy that holds gates subclasses it."""

    #: when each gated hold began, by its label
    pause_started: dict[str, datetime] = Field(default_factory=dict)
    #: the health gate's probes in the hold in progress
    gate_probes: list[ProbeRecord] = Field(default_factory=list)
    #: the analysis gates of the hold in progress, by gate name (each hold starts them afresh)
    analysis: dict[str, AnalysisRecord] = Field(default_factory=dict)


class ServiceUpdateMemory(Memory):
    """What ``update_and_follow`` and ``revert_service`` keep about their UpdateService calls."""

    #: UpdateService's reply was recorded (its hint may still be None)
    update_replied: bool = False
    #: our ECS deployment's id as UpdateService's reply named it (its new PRIMARY)
    ecs_deployment_hint: str | None = None
    #: the ids of the deployments that reply listed beside ours
    ecs_earlier_deployments: list[str] = Field(default_factory=list)
    #: the revision the rollback puts back (possibly a re-registered copy)
    rollback_target: str | None = None
    rollback_update_sent: bool = False


class RecipeMemory(ServiceUpdateMemory):
    """Where an ordered recipe (``steps.recipe``) stands."""

    step: int = 0
    failed_step: str | None = None


class ListenerChange(BaseModel):
    """A listener change being watched for dropped requests (``steps.listener``)."""

    label: str
    key: str
    until: datetime


class TrafficMemory(RecipeMemory, GateMemory):
    """The temporary service, the listener's recorded actions and the gates' probes."""

    #: tasks the temporary service runs (the message's desired count, else the service's)
    desired: int = 1
    #: the listener's DefaultActions before we touched it (restored exactly)
    original_actions: list[dict[str, Any]] | None = None
    #: {rule ARN: Actions} of the rules forwarding to blue, shifted with the default action
    original_rules: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    temp_service: str | None = None
    #: CreateService was (about to be) sent: the name above may exist on ECS
    temp_created: bool = False
    temp_created_at: datetime | None = None
    temp_delete_sent: bool = False
    listener_changed: bool = False
    listener_restored: bool = False
    #: the label of the listener change sent last (a redelivered step checks whether it took effect)
    shifting: str | None = None
    #: labels of the listener changes that took effect
    shifted: list[str] = Field(default_factory=list)
    #: the change being watched now, if any
    watching: ListenerChange | None = None
    test_probes: list[ProbeRecord] = Field(default_factory=list)
    #: the original service was sent the new revision (promotion): undoing reverts it
    original_updated: bool = False
    undo_started: bool = False
    #: index of the last weighted step whose weight is set, and that weight
    weight_step: int | None = None
    weight: int | None = None
