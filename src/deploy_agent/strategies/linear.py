"""Linear: like canary, in equal steps: ``step_percent`` more of the traffic every ``step_pause_seconds``.

The listener-driven counterpart of ECS's LINEAR deployments, for services without ECS's advanced
configuration and with our gates at every step: weight the listener (stable 100-w, new w) and hold
the pause while the HTTP health check and the CloudWatch alarms pass. A failed gate restores the
listener, deletes the temporary service and reports the step. The last step is always 100 percent,
then the original service is promoted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from deploy_agent.core.traffic import CanaryStepPlan
from deploy_agent.models.strategy import TrafficStrategyOptions
from deploy_agent.strategies.registry import register
from deploy_agent.strategies.steps.recipe import Step
from deploy_agent.strategies.steps.traffic import ListenerDriven, weighted_recipe

if TYPE_CHECKING:
    from deploy_agent.models.request import DeployToECSTask


class LinearStrategy(TrafficStrategyOptions):
    """Move traffic to the new tasks in equal steps, checking health at each step."""

    type: Literal["linear"] = "linear"
    step_percent: int = Field(ge=1, le=100, description="percent of traffic added at each step")
    step_pause_seconds: int = Field(default=0, ge=0, le=86_400, description="hold after each step")
    bake_seconds: int = Field(default=0, ge=0, le=86_400)


def plan_linear_weights(step_percent: int, pause_seconds: int) -> list[CanaryStepPlan]:
    """Return the steps ``step_percent``, twice that, ... up to 100 percent, each held ``pause_seconds``.

    The step that reaches 100 holds no pause: all traffic on the new release is the promotion's
    start, and a bake after it is ``bake_seconds``.
    """
    if not 1 <= step_percent <= 100:
        raise ValueError(f"step_percent {step_percent} is outside 1-100")
    if pause_seconds < 0:
        raise ValueError("pause_seconds must not be negative")
    weights = [*range(step_percent, 100, step_percent), 100]
    return [
        CanaryStepPlan(index=i, weight=w, pause_seconds=0 if w == 100 else pause_seconds)
        for i, w in enumerate(weights)
    ]


class Linear(ListenerDriven):
    name: ClassVar[str] = "linear"
    options: ClassVar[type[LinearStrategy]] = LinearStrategy

    def weights(self, request: DeployToECSTask) -> list[CanaryStepPlan]:
        options = request.strategy
        assert isinstance(options, LinearStrategy)
        return plan_linear_weights(options.step_percent, options.step_pause_seconds)

    def steps(self, request: DeployToECSTask) -> list[Step]:
        return weighted_recipe("linear", self.weights(request))


register(Linear)
