"""Canary: the new release takes a growing share of traffic, step by step, behind gates.

The recipe is ``steps.traffic.weighted_recipe`` with one step per message weight: weight the
listener (stable 100-w, canary w), then hold ``pause_seconds`` while the gates pass (the HTTP health
check's status and latency, the CloudWatch alarms of ``rollback``). A failed gate restores the
listener (canary weight 0), deletes the canary and reports the step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, model_validator

from deploy_agent.core.traffic import CanaryStepPlan, plan_canary_weights
from deploy_agent.models._base import FieldProblem
from deploy_agent.models.strategy import CanaryStep, TrafficStrategyOptions
from deploy_agent.strategies.registry import register
from deploy_agent.strategies.steps.recipe import Step
from deploy_agent.strategies.steps.traffic import ListenerDriven, weighted_recipe

if TYPE_CHECKING:
    from deploy_agent.models.request import DeployToECSTask


class CanaryStrategy(TrafficStrategyOptions):
    """Move traffic to the new tasks step by step, checking health at each step."""

    type: Literal["canary"] = "canary"
    steps: list[CanaryStep] = Field(min_length=1, max_length=20)
    bake_seconds: int = Field(default=0, ge=0, le=86_400)

    @model_validator(mode="after")
    def _weights_never_fall(self) -> CanaryStrategy:
        for i in range(1, len(self.steps)):
            if self.steps[i].weight < self.steps[i - 1].weight:
                raise FieldProblem(f"steps.{i}.weight", "weights must not decrease from one step to the next")
        return self


class Canary(ListenerDriven):
    name: ClassVar[str] = "canary"
    options: ClassVar[type[CanaryStrategy]] = CanaryStrategy

    def weights(self, request: DeployToECSTask) -> list[CanaryStepPlan]:
        options = request.strategy
        assert isinstance(options, CanaryStrategy)
        return plan_canary_weights([(s.weight, s.pause_seconds) for s in options.steps])

    def steps(self, request: DeployToECSTask) -> list[Step]:
        return weighted_recipe("canary", self.weights(request))


register(Canary)
