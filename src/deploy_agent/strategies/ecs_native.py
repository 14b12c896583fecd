"""ECS's own blue/green, linear and canary deployments, held at PAUSE hooks while our gates run.

ECS shifts the traffic (the production and test listener rules of the service's
``advancedConfiguration``, on ECS's own ELB API budget), bakes and rolls back by a weight flip; the
worker adds what ECS lacks: HTTP health and latency, CloudWatch alarms, Prometheus analysis and a
human's approval at each hook, and a verdict with the evidence. Recipe:

0. (preflight) the service's load balancer has the advanced configuration ECS needs, and it fits;
1. UpdateService with ``strategy``, bake time, linear/canary configuration and one PAUSE hook at
   POST_TEST_TRAFFIC_SHIFT, PRE_PRODUCTION_TRAFFIC_SHIFT (before every production step) and
   POST_PRODUCTION_TRAFFIC_SHIFT, its timeout action ROLLBACK;
2. follow the service deployment; at each hook run the gates of that point, then
   ContinueServiceDeployment, or fail (the rollback stage sends StopServiceDeployment ROLLBACK);
3. SUCCESSFUL is success; ECS's own rollback (circuit breaker, alarm, a hook's timeout) is
   ``rolled_back`` with its cause.

There is no separate health-check stage: the gates at the last hook run with all traffic on the new
revision while ECS can still undo it with a weight flip.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, model_validator

from deploy_agent.core.ecs_native import (
    NativeShape,
    native_step_names,
    plan_hook_points,
)
from deploy_agent.core.outcome import Trigger
from deploy_agent.core.traffic import CanaryStepPlan
from deploy_agent.models._base import FieldProblem
from deploy_agent.models.strategy import NativeStrategyOptions
from deploy_agent.strategies.base import Progress, Run
from deploy_agent.strategies.registry import PIPELINE_ORDER, register
from deploy_agent.strategies.steps.native import (
    NativeMemory,
    find_deployment,
    follow_deployment,
    release_hooks,
    start_deployment,
    stop_deployment,
)
from deploy_agent.strategies.steps.native_gates import judge_point
from deploy_agent.strategies.steps.native_preflight import check_native_setup

if TYPE_CHECKING:
    from deploy_agent.models.request import DeployToECSTask


class EcsBlueGreenStrategy(NativeStrategyOptions):
    """ECS's BLUE_GREEN: all production traffic moves at once after the test traffic checks."""

    type: Literal["ecs_blue_green"] = "ecs_blue_green"


class EcsLinearStrategy(NativeStrategyOptions):
    """ECS's LINEAR: production traffic moves in equal steps, our gates before each one."""

    type: Literal["ecs_linear"] = "ecs_linear"
    step_percent: float = Field(
        default=10.0, ge=3.0, le=100.0, description="linearConfiguration.stepPercent (3.0-100.0, 0.1 steps)"
    )
    step_bake_time_in_minutes: int = Field(
        default=6, ge=0, le=1440, description="linearConfiguration.stepBakeTimeInMinutes"
    )

    @model_validator(mode="after")
    def _tenths(self) -> EcsLinearStrategy:
        if round(self.step_percent * 10) != self.step_percent * 10:
            raise FieldProblem("step_percent", "must be a multiple of 0.1 (ECS's stepPercent)")
        return self

    def native_shape(self) -> NativeShape:
        base = super().native_shape()
        return replace(
            base,
            strategy="LINEAR",
            step_percent=self.step_percent,
            step_bake_minutes=self.step_bake_time_in_minutes,
        )


class EcsCanaryStrategy(NativeStrategyOptions):
    """ECS's CANARY: a share of production traffic first, then the rest, our gates before each."""

    type: Literal["ecs_canary"] = "ecs_canary"
    canary_percent: float = Field(
        default=5.0, ge=0.1, le=100.0, description="canaryConfiguration.canaryPercent (0.1-100.0)"
    )
    canary_bake_time_in_minutes: int = Field(
        default=10, ge=0, le=1440, description="canaryConfiguration.canaryBakeTimeInMinutes"
    )

    def native_shape(self) -> NativeShape:
        base = super().native_shape()
        return replace(
            base,
            strategy="CANARY",
            canary_percent=self.canary_percent,
            canary_bake_minutes=self.canary_bake_time_in_minutes,
        )


def shape_of(options: NativeStrategyOptions) -> NativeShape:
    """Return what the message's options ask of ECS."""
    return options.native_shape()


def _options(request: DeployToECSTask) -> NativeStrategyOptions:
    options = request.strategy
    if not isinstance(options, NativeStrategyOptions):
        raise TypeError(f"strategy {options.type!r} is not one of ECS's native strategies")
    return options


class EcsNative:
    """What ECS's three native strategies share; a subclass names itself and its options."""

    memory: ClassVar[type[NativeMemory]] = NativeMemory
    stages: ClassVar[tuple[str, ...]] = tuple(s for s in PIPELINE_ORDER if s != "healthcheck")
    triggers: ClassVar[tuple[Trigger, ...]] = (
        Trigger.HEALTH_CHECK,
        Trigger.ALARM,
        Trigger.CIRCUIT_BREAKER,
        Trigger.ECS_ROLLBACK,
        Trigger.DEADLINE,
        Trigger.ERROR,
    )

    def preflight(self, run: Run[NativeMemory]) -> Progress:
        return check_native_setup(run)

    def deploy(self, run: Run[NativeMemory]) -> Progress:
        memory = run.memory
        if not memory.update_sent:
            return start_deployment(run, shape_of(_options(run.request)))
        if run.state.service_deployment is None:
            found = find_deployment(run)
            if not found.done or run.state.failure is not None:
                return found
        followed = follow_deployment(run, plan_hook_points(shape_of(_options(run.request))), judge_point)
        if followed.done and run.state.failure is None:
            release_hooks(run)
        return followed

    def rollback(self, run: Run[NativeMemory]) -> Progress:
        if run.state.service_deployment is None and run.memory.update_sent:
            found = find_deployment(run)  # a crash right after UpdateService: find what ECS started
            if not found.done:
                return found
        stopped = stop_deployment(run)
        if stopped.done:
            release_hooks(run)
        return stopped

    def recipe(self, request: DeployToECSTask) -> list[str]:
        return native_step_names(shape_of(_options(request)))

    def weights(self, request: DeployToECSTask) -> list[CanaryStepPlan]:
        return []  # ECS sets the weights, not a step of ours: the hook points name each share


class EcsBlueGreen(EcsNative):
    name: ClassVar[str] = "ecs_blue_green"
    options: ClassVar[type[EcsBlueGreenStrategy]] = EcsBlueGreenStrategy


class EcsLinear(EcsNative):
    name: ClassVar[str] = "ecs_linear"
    options: ClassVar[type[EcsLinearStrategy]] = EcsLinearStrategy


class EcsCanary(EcsNative):
    name: ClassVar[str] = "ecs_canary"
    options: ClassVar[type[EcsCanaryStrategy]] = EcsCanaryStrategy


register(EcsBlueGreen)
register(EcsLinear)
register(EcsCanary)
