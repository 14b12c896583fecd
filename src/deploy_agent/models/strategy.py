"""What every strategy's options share: the ``type`` that tells them apart, and the load-balancer
setup and step shapes of the traffic strategies.

Each strategy module defines its own options model (``strategies.rolling.RollingStrategy``, ...);
the message's ``strategy`` field is the union of those the registry found (``models.request``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from deploy_agent.core.ecs_native import NativeShape
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


class StrategyOptions(MessageModel):
    """The message's ``strategy`` object: ``type`` names the strategy, the rest are its options."""

    type: str


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


class TrafficStrategyOptions(StrategyOptions):
    """The options of a strategy that moves traffic with the listener (blue-green, canary, linear)."""

    load_balancer: LoadBalancerSpec


class CanaryStep(MessageModel):
    weight: int = Field(ge=0, le=100, description="percent of traffic on the new release")
    pause_seconds: int = Field(default=0, ge=0, le=86_400)


class NativeStrategyOptions(StrategyOptions):
    """The options of ECS's own blue/green, linear and canary deployments, driven by the worker.

    The service's load balancer must already have ECS's ``advancedConfiguration`` (alternate target
    group, production and test listener rules, role); names follow ECS's (``bakeTimeInMinutes``, ...).
    """

    bake_time_in_minutes: int = Field(
        default=0,
        ge=0,
        le=1440,
        description="deploymentConfiguration.bakeTimeInMinutes: both revisions kept after all traffic moved",
    )
    hook_timeout_minutes: int = Field(
        default=60,
        ge=1,
        le=20_160,
        description="how long ECS waits at a PAUSE hook for the worker before it rolls back by itself",
    )
    test_url: HttpUrlText | None = Field(
        default=None,
        description="URL served by the test listener rule: the new revision is checked there first",
    )
    production_url: HttpUrlText | None = Field(
        default=None,
        description="URL served by the production listener rule: health-checked at every step",
    )

    def native_shape(self) -> NativeShape:
        """Return what these options ask of ECS (a subclass adds its step sizes)."""
        return NativeShape("BLUE_GREEN", self.bake_time_in_minutes, self.hook_timeout_minutes)
