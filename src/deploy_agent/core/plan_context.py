"""What the dry-run plan's texts read: the plan's context (the message as the model, the service's
current settings) and the steps it is made of."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deploy_agent.models.request import DeployToECSTask
from deploy_agent.models.strategy import LoadBalancerSpec, TrafficStrategyOptions


@dataclass(frozen=True)
class PlanContext:
    """What the step texts need to know about the deployment (all read-only, nothing secret)."""

    cluster: str
    service: str
    request: DeployToECSTask
    image: str
    family: str | None = None
    desired_count: int | None = None
    #: the service's deploymentConfiguration as DescribeServices returns it (rolling's defaults)
    service_config: Mapping[str, Any] = field(default_factory=dict)
    #: the temporary (green or canary) service's name, traffic strategies only
    temp_service: str | None = None
    log_groups_created: Sequence[str] = ()
    timeout_seconds: int | None = None
    #: the operator's approval rule that applies (``Policy.approval_for``), and its deadline
    approval_rule: str | None = None
    approval_timeout_seconds: int | None = None
    #: (weight, pause seconds) of each weighted step of the recipe, in order (canary, linear)
    weights: Sequence[tuple[int, int]] = ()


@dataclass(frozen=True)
class PlannedStep:
    """One line of the plan: a stage, optionally one step of its recipe, and what it would do."""

    stage: str
    step: str | None
    text: str
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "step": self.step, "text": self.text, "skipped": self.skipped}


def load_balancer_of(ctx: PlanContext) -> LoadBalancerSpec | None:
    options = ctx.request.strategy
    return options.load_balancer if isinstance(options, TrafficStrategyOptions) else None


def option_of(ctx: PlanContext, name: str) -> Any:
    """The strategy option ``name``, or None when this strategy has no such option."""
    return getattr(ctx.request.strategy, name, None)


def gates_text(ctx: PlanContext) -> str:
    health = ctx.request.health_check
    alarms = ctx.request.rollback.alarm_names
    gates = []
    if health is not None and health.url:
        latency = f", latency <= {health.max_latency_ms} ms" if health.max_latency_ms else ""
        gates.append(f"health {health.url} (status {health.expected_status}{latency})")
    if alarms:
        gates.append(f"alarms {', '.join(alarms)} not in ALARM")
    for gate in ctx.request.analysis:
        failing = f", failure {gate.failure_condition}" if gate.failure_condition else ""
        gates.append(
            f"analysis {gate.name} ({gate.query} at {gate.url}, every {gate.interval_seconds:g} s, "
            f"{gate.count} times, success {gate.success_condition}{failing})"
        )
    return "; ".join(gates) if gates else "no gates (no health_check.url, no rollback.alarm_names)"
