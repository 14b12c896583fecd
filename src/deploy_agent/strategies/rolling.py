"""Rolling: UpdateService with min/max percent and the circuit breaker, follow our deployment.

Recipe (each step returns early while it is not finished):

0. (preflight) the service is ours to deploy: no other controller owns it;
1. when the operator's policy asks for it, wait for a human's approval (``steps.approval``);
2. send UpdateService with the new task definition (phase ``updating`` is saved first);
3. find our deployment and follow it to COMPLETED or FAILED, or the deadline;
4. (healthcheck stage, shared) verify the release over HTTP;
5. on any failure put the previous task definition back and wait until the service is settled on it,
   unless ECS's circuit breaker already rolled back, in which case only wait.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, model_validator

from deploy_agent.core.outcome import Phase, Trigger, needs_rollback
from deploy_agent.core.traffic import CanaryStepPlan
from deploy_agent.models._base import FieldProblem
from deploy_agent.models.strategy import StrategyOptions
from deploy_agent.strategies.base import Progress, Run
from deploy_agent.strategies.registry import PIPELINE_ORDER, register
from deploy_agent.strategies.steps.approval import await_approval
from deploy_agent.strategies.steps.memory import ServiceUpdateMemory
from deploy_agent.strategies.steps.service_update import RolloutSettings, revert_service, update_and_follow

if TYPE_CHECKING:
    from deploy_agent.models.request import DeployToECSTask


class RollingStrategy(StrategyOptions):
    """ECS's own rolling update, with its deployment circuit breaker."""

    type: Literal["rolling"] = "rolling"
    # Each setting left out (None) keeps the service's own: UpdateService changes only what it is
    # given (aws/copilot-cli#4565), so a service tuned to 150/50 with rollback off stays so.
    maximum_percent: int | None = Field(
        default=None,
        ge=100,
        le=400,
        description="deploymentConfiguration.maximumPercent; default: the service's",
    )
    minimum_healthy_percent: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="deploymentConfiguration.minimumHealthyPercent; default: the service's",
    )
    circuit_breaker: bool | None = Field(
        default=None, description="deploymentCircuitBreaker.enable; default: the service's"
    )
    circuit_breaker_rollback: bool | None = Field(
        default=None, description="deploymentCircuitBreaker.rollback; default: the service's"
    )

    @model_validator(mode="after")
    def _can_make_progress(self) -> RollingStrategy:
        if self.maximum_percent == 100 and self.minimum_healthy_percent == 100:
            raise FieldProblem("maximum_percent", "must exceed 100 when minimum_healthy_percent is 100")
        return self

    def rollout_settings(self) -> RolloutSettings:
        return RolloutSettings(
            self.maximum_percent,
            self.minimum_healthy_percent,
            self.circuit_breaker,
            self.circuit_breaker_rollback,
        )


class Rolling:
    name: ClassVar[str] = "rolling"
    options: ClassVar[type[RollingStrategy]] = RollingStrategy
    memory: ClassVar[type[ServiceUpdateMemory]] = ServiceUpdateMemory
    stages: ClassVar[tuple[str, ...]] = PIPELINE_ORDER
    triggers: ClassVar[tuple[Trigger, ...]] = (
        Trigger.CIRCUIT_BREAKER,
        Trigger.ECS_ROLLBACK,
        Trigger.HEALTH_CHECK,
        Trigger.DEADLINE,
        Trigger.ERROR,
    )

    def preflight(self, run: Run[ServiceUpdateMemory]) -> Progress:
        return Progress.finished()  # the shared controller check is all rolling needs

    def deploy(self, run: Run[ServiceUpdateMemory]) -> Progress:
        if run.state.phase is Phase.REGISTERED:  # nothing sent to the service yet
            gate = await_approval(run)
            if not gate.done or run.state.failure is not None:
                return gate
        return update_and_follow(run, _settings(run.request))

    def rollback(self, run: Run[ServiceUpdateMemory]) -> Progress:
        state = run.state
        if not (
            state.rollback_requested
            or state.ecs_rolled_back
            or needs_rollback(state.phase, run.request.rollback.enabled, False)
        ):
            return Progress.skip()
        return revert_service(run)

    def recipe(self, request: DeployToECSTask) -> list[str]:
        return ["await_approval", "update_service", "wait_rollout"]

    def weights(self, request: DeployToECSTask) -> list[CanaryStepPlan]:
        return []


def _settings(request: DeployToECSTask) -> RolloutSettings:
    options = request.strategy
    return options.rollout_settings() if isinstance(options, RollingStrategy) else RolloutSettings()


register(Rolling)
