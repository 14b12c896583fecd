"""ELBv2: one method per AWS call, each returning plain dicts (boto3's shapes, metadata removed).

Listener weights are ``{target_group_arn: weight}`` (see :mod:`deploy_agent.core.traffic`): a plain
forward to X reads as ``{X: 1}``. Before moving traffic, a caller records the listener's
``DefaultActions`` (JSON-safe dicts); :meth:`ElbApi.restore_default_actions` puts exactly those back.
Listener rules that forward to blue move with the default action (``set_rule_forward_weights``)
and are put back the same way (``restore_rule_actions``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from deploy_agent.adapters.aws import AwsClients, call
from deploy_agent.core.errors import AwsNotFound, PreflightFailed
from deploy_agent.core.traffic import (
    MAX_ALB_WEIGHT,
    listener_forward_weights,
    with_forward_weights,
    writable_actions,
)


class ElbApi:
    """The ELBv2 calls of the blue/green and canary strategies."""

    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    def describe_listener(self, arn: str) -> dict[str, Any]:
        """Return the listener; raise ``AwsNotFound`` when it does not exist."""
        response = call(self._clients.elbv2.describe_listeners, ListenerArns=[arn])
        listeners = response.get("Listeners", [])
        if not listeners:  # AWS answers ListenerNotFound; this covers an empty answer too
            raise AwsNotFound(
                f"listener {arn} not found",
                service="elbv2",
                operation="DescribeListeners",
                code="ListenerNotFound",
            )
        return dict(listeners[0])

    def describe_rules(self, listener_arn: str) -> list[dict[str, Any]]:
        """Return the listener's rules, the default rule included, following every page."""
        rules: list[dict[str, Any]] = []
        marker: str | None = None
        while True:
            kwargs: dict[str, Any] = {"ListenerArn": listener_arn}
            if marker:
                kwargs["Marker"] = marker
            response = call(self._clients.elbv2.describe_rules, **kwargs)
            rules.extend(dict(rule) for rule in response.get("Rules", []))
            marker = response.get("NextMarker")
            if not marker:
                return rules

    def describe_target_group(self, arn: str) -> dict[str, Any]:
        """Return the target group; raise ``AwsNotFound`` when it does not exist."""
        response = call(self._clients.elbv2.describe_target_groups, TargetGroupArns=[arn])
        groups = response.get("TargetGroups", [])
        if not groups:
            raise AwsNotFound(
                f"target group {arn} not found",
                service="elbv2",
                operation="DescribeTargetGroups",
                code="TargetGroupNotFound",
            )
        return dict(groups[0])

    def target_group_attributes(self, arn: str) -> dict[str, str]:
        """Return the target group's attributes as ``{key: value}`` (string values, as AWS gives them)."""
        response = call(self._clients.elbv2.describe_target_group_attributes, TargetGroupArn=arn)
        return {str(a["Key"]): str(a.get("Value", "")) for a in response.get("Attributes", [])}

    def describe_target_health(self, tg_arn: str) -> list[dict[str, Any]]:
        """Return one ``TargetHealthDescription`` per registered target of the group."""
        response = call(self._clients.elbv2.describe_target_health, TargetGroupArn=tg_arn)
        return [dict(d) for d in response.get("TargetHealthDescriptions", [])]

    def set_forward_weights(self, listener_arn: str, weights: Mapping[str, int]) -> dict[str, Any]:
        """Return the listener after its default forward action sends to ``weights``.

        Only the forward action is replaced (keeping its ``Order`` and stickiness settings); any
        other default action, such as an authenticate step before it, and every other listener
        property (port, protocol, certificates) stay as they are. Weights must be 0-999 each and
        not all 0; moto does not check this, AWS does. A listener whose default does not forward
        raises ``PreflightFailed``: there is no traffic of ours to shift on it.
        """
        _check_weights(weights)
        listener = self.describe_listener(listener_arn)
        actions = listener.get("DefaultActions") or []
        try:
            changed = with_forward_weights(actions, weights)
        except ValueError:
            raise PreflightFailed(
                f"listener {listener_arn} has no default forward action to weight"
            ) from None
        return self.restore_default_actions(listener_arn, changed)

    @staticmethod
    def forward_weights(listener: Mapping[str, Any]) -> dict[str, int]:
        """Return ``{target_group_arn: weight}`` of the listener's default forward action.

        A plain forward to X is ``{X: 1}``; a listener that does not forward gives ``{}``.
        """
        return listener_forward_weights(listener)

    def restore_default_actions(
        self, listener_arn: str, actions: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Return the listener after setting its ``DefaultActions`` to exactly ``actions``.

        Described authenticate-oidc actions carry no client secret; they are written back with
        ``UseExistingClientSecret`` (see ``writable_actions``), which keeps the stored one.
        """
        response = call(
            self._clients.elbv2.modify_listener,
            ListenerArn=listener_arn,
            DefaultActions=writable_actions(actions),
        )
        listeners = response.get("Listeners", [])
        return dict(listeners[0]) if listeners else self.describe_listener(listener_arn)

    def set_rule_forward_weights(
        self, rule_arn: str, actions: Sequence[Mapping[str, Any]], weights: Mapping[str, int]
    ) -> None:
        """Make the rule's forward action (of its recorded ``actions``) send to ``weights``."""
        _check_weights(weights)
        self.restore_rule_actions(rule_arn, with_forward_weights(actions, weights))

    def restore_rule_actions(self, rule_arn: str, actions: Sequence[Mapping[str, Any]]) -> None:
        """Set a listener rule's ``Actions`` to exactly ``actions`` (its conditions stay as they are)."""
        call(self._clients.elbv2.modify_rule, RuleArn=rule_arn, Actions=writable_actions(actions))


def _check_weights(weights: Mapping[str, int]) -> None:
    if not weights:
        raise ValueError("a forward action needs at least one target group")
    for arn, weight in weights.items():
        if not 0 <= weight <= MAX_ALB_WEIGHT:
            raise ValueError(f"weight {weight} for {arn} is outside 0-{MAX_ALB_WEIGHT}")
    if not any(weights.values()):
        raise ValueError("at least one target group needs a weight above 0")
