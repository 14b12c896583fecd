"""How the new release replaces the old one: rolling, blue/green or canary, told apart by ``type``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from deploy_agent.models._base import FieldProblem, HttpUrlText, MessageModel

_ELB_PREFIX = r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:"
ListenerArn = Annotated[
    str,
    StringConstraints(
        max_length=2048, pattern=_ELB_PREFIX + r"listener/(?:app|net)/[^/]+/[0-9A-Za-z]+/[0-9A-Za-z]+$"
    ),
]
TargetGroupArn = Annotated[
    str, StringConstraints(max_length=2048, pattern=_ELB_PREFIX + r"targetgroup/[^/]+/[0-9A-Za-z]+$")
]


class RollingStrategy(MessageModel):
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


class LoadBalancerSpec(MessageModel):
    """The ALB/NLB listeners and the two target groups traffic moves between."""

    listener_arn: ListenerArn
    blue_target_group_arn: TargetGroupArn
    green_target_group_arn: TargetGroupArn
    test_listener_arn: ListenerArn | None = None
    production_url: HttpUrlText | None = Field(
        default=None,
        description="URL served by listener_arn; probed for dropped requests while traffic moves",
    )
    test_url: HttpUrlText | None = Field(
        default=None,
        description="URL served by test_listener_arn; the new release is health-checked there first",
    )

    @model_validator(mode="after")
    def _distinct(self) -> LoadBalancerSpec:
        if self.blue_target_group_arn == self.green_target_group_arn:
            raise FieldProblem("green_target_group_arn", "must differ from blue_target_group_arn")
        if self.test_listener_arn == self.listener_arn:
            raise FieldProblem("test_listener_arn", "must differ from listener_arn")
        return self


class BlueGreenStrategy(MessageModel):
    """Start the new tasks beside the old, then move all traffic at once and bake."""

    type: Literal["blue_green"] = "blue_green"
    load_balancer: LoadBalancerSpec
    bake_seconds: int = Field(default=0, ge=0, le=86_400)


class CanaryStep(MessageModel):
    weight: int = Field(ge=0, le=100, description="percent of traffic on the new release")
    pause_seconds: int = Field(default=0, ge=0, le=86_400)


class CanaryStrategy(MessageModel):
    """Move traffic to the new tasks step by step, checking health at each step."""

    type: Literal["canary"] = "canary"
    load_balancer: LoadBalancerSpec
    steps: list[CanaryStep] = Field(min_length=1, max_length=20)
    bake_seconds: int = Field(default=0, ge=0, le=86_400)

    @model_validator(mode="after")
    def _weights_never_fall(self) -> CanaryStrategy:
        for i in range(1, len(self.steps)):
            if self.steps[i].weight < self.steps[i - 1].weight:
                raise FieldProblem(f"steps.{i}.weight", "weights must not decrease from one step to the next")
        return self


Strategy = Annotated[RollingStrategy | BlueGreenStrategy | CanaryStrategy, Field(discriminator="type")]
STRATEGY_TYPES = ("rolling", "blue_green", "canary")
