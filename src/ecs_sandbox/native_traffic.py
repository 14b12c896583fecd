"""The listener rules ECS's native controller owns: what they forward to, and their weights.

ECS shifts traffic by rewriting the forward action of the production (and test) listener rule to a
weighted ForwardConfig over the two target groups (https://docs.aws.amazon.com/AmazonECS/latest/
developerguide/deployment-type-blue-green.html; seen live: go-to-k/cdk-real-drift#1730, "green=100/
blue=0 after the initial deployment"). The sandbox writes the same through moto's ELBv2 backend, so
DescribeRules shows it and the local load balancer, which reads rules per request, moves real traffic.
An NLB names a listener instead of a rule: then its default action is rewritten.
"""

from __future__ import annotations

from typing import Any

from moto.backends import get_backend
from moto.elbv2.models import FakeAction

from .aws_rules import forwarded_target_groups


def _find(account: str, region: str, arn: str) -> tuple[Any, Any] | None:
    """Return (listener, rule or None) for a listener rule or listener ARN, or None if neither exists."""
    elbv2 = get_backend("elbv2")[account][region]
    for balancer in list(elbv2.load_balancers.values()):
        for listener in list(balancer.listeners.values()):
            if listener.arn == arn:
                return listener, None
            rule = listener._non_default_rules.get(arn)
            if rule is not None:
                return listener, rule
    return None


def forwards_to(account: str, region: str, arn: str) -> set[str] | None:
    """Return the target groups a listener rule (or listener) forwards to; None when it does not exist."""
    found = _find(account, region, arn)
    if found is None:
        return None
    listener, rule = found
    return forwarded_target_groups(rule.actions if rule is not None else listener.default_actions)


def weights_of(account: str, region: str, arn: str) -> dict[str, int]:
    """Return the forward weights of a rule (or listener) by target group (a single group: 100)."""
    found = _find(account, region, arn)
    if found is None:
        return {}
    listener, rule = found
    actions = rule.actions if rule is not None else listener.default_actions
    for action in actions:
        data = action.data
        if data.get("Type") != "forward":
            continue
        groups = (data.get("ForwardConfig") or {}).get("TargetGroups")
        if groups:
            return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
        if data.get("TargetGroupArn"):
            return {data["TargetGroupArn"]: 100}
    return {}


def plan_weights(green_percent: float) -> tuple[int, int]:
    """Return (blue, green) ELB weights (integers 0-999) that split traffic green_percent to green.

    Weights out of 1000 keep a linear step of 0.1% exact (ELB weights are integers up to 999, so 100%
    is written as 1 to the one group and 0 to the other).
    """
    if green_percent >= 100.0:
        return 0, 1
    if green_percent <= 0.0:
        return 1, 0
    green = round(green_percent * 10)
    return 1000 - green, green


def set_weights(account: str, region: str, arn: str, blue: str, green: str, green_percent: float) -> None:
    """Point the rule's (or listener's) forward action at blue and green, green_percent to green."""
    found = _find(account, region, arn)
    if found is None:
        return  # the user deleted the rule: ECS would fail the deployment; the sandbox shifts nothing
    listener, rule = found
    blue_weight, green_weight = plan_weights(green_percent)
    groups = [
        {"TargetGroupArn": blue, "Weight": blue_weight},
        {"TargetGroupArn": green, "Weight": green_weight},
    ]
    action = {"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}
    others = [a.data for a in (rule.actions if rule is not None else listener.default_actions)]
    actions = [action, *(a for a in others if a.get("Type") != "forward")]
    if rule is not None:
        elbv2 = get_backend("elbv2")[account][region]
        elbv2.modify_rule(arn, [], actions)  # ELB's own path, as ECS calls ModifyRule
    else:
        listener.default_actions = [FakeAction(a) for a in actions]
        for default in listener._default_rule.values():
            default.actions = listener.default_actions  # DescribeRules' default rule shows the same


def green_share(account: str, region: str, arn: str, green: str) -> float:
    """Return the percentage of the rule's (or listener's) traffic its weights send to ``green``."""
    weights = weights_of(account, region, arn)
    total = sum(weights.values())
    return 100.0 * weights.get(green, 0) / total if total else 0.0
