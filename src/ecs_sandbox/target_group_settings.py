"""A target group's own health-check settings, and whether a load balancer uses it, read from moto.

ELB's documented defaults for an HTTP/HTTPS target group (what moto stores when a field is unset):
HealthCheckIntervalSeconds 30, HealthyThresholdCount 5, UnhealthyThresholdCount 2, matcher 200,
path "/", deregistration_delay.timeout_seconds 300
(https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html,
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-target-group-attributes.html).
Every duration is in AWS seconds and is scaled by the realism profile.

A target group is "in use" when a listener's default action or one of its rules forwards to it;
ELB reports the targets of any other group ``unused`` / ``Target.NotInUse`` and checks none of them
("Target health status": "The target group is not used by any load balancer or the target is in an
Availability Zone that is not enabled for its load balancer").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from moto.backends import get_backend

from .realism import Realism

AWS_DEFAULT_INTERVAL = 30.0
AWS_DEFAULT_TIMEOUT = 5.0
AWS_DEFAULT_HEALTHY = 5
AWS_DEFAULT_UNHEALTHY = 2
AWS_DEFAULT_DRAIN_SECONDS = 300.0
DELAY_ATTRIBUTE = "deregistration_delay.timeout_seconds"
#: a probe's timeout is never shorter than this many sandbox seconds
MIN_PROBE_TIMEOUT = 0.5


@dataclass(frozen=True)
class CheckSettings:
    """How one target group checks its targets, in sandbox seconds."""

    interval: float
    timeout: float
    healthy_threshold: int
    unhealthy_threshold: int
    path: str
    matcher: str
    drain_seconds: float


def _number(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def decide_settings(group: Any, profile: Realism) -> CheckSettings:
    """Return the group's own check settings (ELB's defaults where unset), scaled by the profile."""
    interval = _number(getattr(group, "health_check_interval_seconds", None), AWS_DEFAULT_INTERVAL)
    timeout = _number(getattr(group, "health_check_timeout_seconds", None), AWS_DEFAULT_TIMEOUT)
    healthy = _number(getattr(group, "healthy_threshold_count", None), AWS_DEFAULT_HEALTHY)
    unhealthy = _number(getattr(group, "unhealthy_threshold_count", None), AWS_DEFAULT_UNHEALTHY)
    attributes = getattr(group, "attributes", None) or {}
    drain = _number(attributes.get(DELAY_ATTRIBUTE), AWS_DEFAULT_DRAIN_SECONDS)
    matcher = (getattr(group, "matcher", None) or {}).get("HttpCode", "200")
    return CheckSettings(
        interval=profile.scaled(interval),
        # Not scaled: the target answers in real time (a scaled 5 s would be 0.05 s, one scheduling
        # hiccup of a busy host, read as Target.Timeout). A probe in flight delays the next one.
        timeout=max(MIN_PROBE_TIMEOUT, timeout),
        healthy_threshold=max(1, int(healthy)),
        unhealthy_threshold=max(1, int(unhealthy)),
        path=str(getattr(group, "health_check_path", None) or "/"),
        matcher=str(matcher),
        drain_seconds=max(0.0, profile.scaled(drain)),
    )


def forwarded_groups(actions: list[dict[str, Any]]) -> set[str]:
    """Return the ARNs of the target groups a list of listener actions forwards to (any weight)."""
    found: set[str] = set()
    for action in actions:
        if action.get("TargetGroupArn"):
            found.add(str(action["TargetGroupArn"]))
        for group in (action.get("ForwardConfig") or {}).get("TargetGroups") or []:
            found.add(str(group["TargetGroupArn"]))
    return found


def where_is(target_group_arn: str) -> tuple[str, str]:
    """Return (account, region) of a target group ARN (``arn:aws:elasticloadbalancing:REGION:ACCOUNT:``)."""
    parts = target_group_arn.split(":")
    return (parts[4], parts[3]) if len(parts) > 5 else ("123456789012", "us-east-1")


def elbv2_backend_of(target_group_arn: str) -> Any:
    """Return moto's ELBv2 backend that holds the target group."""
    account, region = where_is(target_group_arn)
    return get_backend("elbv2")[account][region]


def find_group(target_group_arn: str) -> Any | None:
    """Return moto's target group object, or None when it is gone."""
    return elbv2_backend_of(target_group_arn).target_groups.get(target_group_arn)


def groups_in_use(backend: Any) -> set[str]:
    """Return the ARNs of every target group some listener of some load balancer forwards to."""
    used: set[str] = set()
    for balancer in list(backend.load_balancers.values()):
        for listener in list(balancer.listeners.values()):
            actions = [dict(a.data) for a in listener.default_actions]
            for rule in list(listener._non_default_rules.values()):
                actions.extend(dict(a.data) for a in rule.actions)
            used |= forwarded_groups(actions)
    return used


def is_in_use(target_group_arn: str) -> bool:
    """Return whether a load balancer's listener or rule forwards to the target group."""
    return target_group_arn in groups_in_use(elbv2_backend_of(target_group_arn))


def in_use_by_arn(target_group_arns: Iterable[str]) -> dict[str, bool]:
    """Return, for each target group ARN, whether a load balancer's listener or rule forwards to it."""
    # One walk over the load balancers per backend, not one per target group: the health checker
    # asks every 10 ms, and hundreds of groups made this quadratic.
    used: dict[int, set[str]] = {}
    in_use: dict[str, bool] = {}
    for arn in target_group_arns:
        backend = elbv2_backend_of(arn)
        if id(backend) not in used:
            used[id(backend)] = groups_in_use(backend)
        in_use[arn] = arn in used[id(backend)]
    return in_use
