"""Scripted ELBv2 (``ElbPort``): listeners, rules, target groups and target health, every change journaled."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deploy_agent.core.errors import AwsNotFound
from deploy_agent.core.traffic import listener_forward_weights, with_forward_weights
from deploy_agent.testing.ecs import AwsCall


# --- ELBv2 ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ListenerChange:
    """One ModifyListener the fake received: which listener, by which call, and the actions it set."""

    listener_arn: str
    call: str  # set_forward_weights | restore_default_actions
    actions: list[dict[str, Any]]

    @property
    def weights(self) -> dict[str, int]:
        """Return the forward weights these actions give (``{}`` when they do not forward)."""
        return listener_forward_weights({"DefaultActions": self.actions})


@dataclass
class FakeElb:
    """Listeners, target groups and scriptable target health; every listener change is recorded.

    ``set_forward_weights`` replaces only the default forward action (keeping ``Order``), like
    ``adapters.elb.ElbApi``; unknown ARNs raise ``AwsNotFound``.
    """

    listeners: dict[str, dict[str, Any]] = field(default_factory=dict)
    target_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    target_health: dict[str, list[str]] = field(default_factory=dict)
    changes: list[ListenerChange] = field(default_factory=list)
    journal: list[AwsCall] = field(default_factory=list)
    #: listener ARN -> its non-default rules (``RuleArn``, ``Priority``, ``Actions``), as DescribeRules gives
    rules: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def blue_green(
        cls,
        listener_arn: str,
        blue_arn: str,
        green_arn: str,
        *,
        load_balancer_arn: str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/1",
        journal: list[AwsCall] | None = None,
    ) -> FakeElb:
        """Return an ALB whose HTTP listener forwards everything to blue, green attached and idle."""
        elb = cls(journal=journal if journal is not None else [])
        elb.add_listener(listener_arn, forward_action(blue_arn), load_balancer_arn=load_balancer_arn)
        for arn in (blue_arn, green_arn):
            elb.add_target_group(arn, load_balancer_arn=load_balancer_arn)
        return elb

    def add_listener(
        self,
        arn: str,
        *actions: dict[str, Any],
        load_balancer_arn: str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/1",
        protocol: str = "HTTP",
        port: int = 80,
    ) -> None:
        self.listeners[arn] = {
            "ListenerArn": arn,
            "LoadBalancerArn": load_balancer_arn,
            "Protocol": protocol,
            "Port": port,
            "DefaultActions": [copy.deepcopy(a) for a in actions],
        }

    def add_target_group(
        self,
        arn: str,
        *,
        load_balancer_arn: str | None = None,
        protocol: str = "HTTP",
        target_type: str = "ip",
        vpc_id: str = "vpc-1",
    ) -> None:
        self.target_groups[arn] = {
            "TargetGroupArn": arn,
            "Protocol": protocol,
            "Port": 80,
            "TargetType": target_type,
            "VpcId": vpc_id,
            "LoadBalancerArns": [load_balancer_arn] if load_balancer_arn else [],
        }

    def set_target_health(self, tg_arn: str, *states: str) -> None:
        """Script the target group's targets: one state each (``healthy``, ``unhealthy``, ``initial``...)."""
        self.target_health[tg_arn] = list(states)

    def describe_listener(self, arn: str) -> dict[str, Any]:
        if arn not in self.listeners:
            raise AwsNotFound(f"listener {arn} not found", service="elbv2", code="ListenerNotFound")
        return copy.deepcopy(self.listeners[arn])

    def describe_target_group(self, arn: str) -> dict[str, Any]:
        if arn not in self.target_groups:
            raise AwsNotFound(f"target group {arn} not found", service="elbv2", code="TargetGroupNotFound")
        return copy.deepcopy(self.target_groups[arn])

    def describe_target_health(self, tg_arn: str) -> list[dict[str, Any]]:
        return [
            {"Target": {"Id": f"10.0.0.{i + 1}", "Port": 8080}, "TargetHealth": {"State": state}}
            for i, state in enumerate(self.target_health.get(tg_arn, []))
        ]

    def set_forward_weights(self, listener_arn: str, weights: Mapping[str, int]) -> dict[str, Any]:
        """Return the listener after its default forward action sends to ``weights``."""
        if not weights or not any(weights.values()) or any(not 0 <= w <= 999 for w in weights.values()):
            raise ValueError(f"weights {dict(weights)} are not a valid forward action")
        actions = self.describe_listener(listener_arn)["DefaultActions"]
        index = next(i for i, a in enumerate(actions) if a.get("Type") == "forward")
        new: dict[str, Any] = {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [{"TargetGroupArn": arn, "Weight": w} for arn, w in weights.items()]
            },
        }
        if "Order" in actions[index]:
            new["Order"] = actions[index]["Order"]
        actions[index] = new
        return self._modify(listener_arn, actions, "set_forward_weights")

    def restore_default_actions(
        self, listener_arn: str, actions: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Return the listener after setting its ``DefaultActions`` to exactly ``actions``."""
        self.describe_listener(listener_arn)
        return self._modify(listener_arn, [dict(a) for a in actions], "restore_default_actions")

    def add_rule(
        self, listener_arn: str, rule_arn: str, *actions: dict[str, Any], priority: int = 10
    ) -> None:
        """Add a non-default rule (path condition elided) with ``actions``."""
        rule = {"RuleArn": rule_arn, "Priority": str(priority), "IsDefault": False, "Actions": list(actions)}
        self.rules.setdefault(listener_arn, []).append(copy.deepcopy(rule))

    def describe_rules(self, listener_arn: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.rules.get(listener_arn, []))

    def rule_actions(self, rule_arn: str) -> list[dict[str, Any]]:
        """Return a rule's actions now."""
        rule = next(r for rules in self.rules.values() for r in rules if r["RuleArn"] == rule_arn)
        return copy.deepcopy(rule["Actions"])

    def set_rule_forward_weights(
        self, rule_arn: str, actions: Sequence[Mapping[str, Any]], weights: Mapping[str, int]
    ) -> None:
        self.restore_rule_actions(rule_arn, with_forward_weights(actions, weights))

    def restore_rule_actions(self, rule_arn: str, actions: Sequence[Mapping[str, Any]]) -> None:
        rule = next(r for rules in self.rules.values() for r in rules if r["RuleArn"] == rule_arn)
        rule["Actions"] = copy.deepcopy([dict(a) for a in actions])
        self.journal.append(
            AwsCall("modify_rule", rule_arn, listener_forward_weights({"DefaultActions": actions}))
        )

    def forward_weights(self, listener_arn: str) -> dict[str, int]:
        """Return the listener's forward weights now."""
        return listener_forward_weights(self.listeners[listener_arn])

    def _modify(self, listener_arn: str, actions: list[dict[str, Any]], call: str) -> dict[str, Any]:
        self.listeners[listener_arn]["DefaultActions"] = copy.deepcopy(actions)
        change = ListenerChange(listener_arn, call, copy.deepcopy(actions))
        self.changes.append(change)
        self.journal.append(AwsCall(call, listener_arn, change.weights))
        return self.describe_listener(listener_arn)


def forward_action(target_group_arn: str) -> dict[str, Any]:
    """Return a plain forward action the way DescribeListeners shows it (ForwardConfig included)."""
    return {
        "Type": "forward",
        "TargetGroupArn": target_group_arn,
        "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": target_group_arn, "Weight": 1}],
            "TargetGroupStickinessConfig": {"Enabled": False},
        },
    }
