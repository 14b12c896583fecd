"""Traffic arithmetic for blue/green and canary: listener weights, canary steps, gate verdicts. Pure.

Weights are written as ``{target_group_arn: weight}``. A listener's forward action reads the same
way whether it is weighted or not: a plain forward to X (``TargetGroupArn`` only) is ``{X: 1}``,
which is what AWS means by it (one group, the default weight). A group with weight 0 is listed
with 0; it is attached but receives nothing. Only the *relative* weights decide traffic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

#: The range ELBv2 accepts for one target group's weight in a forward action.
MAX_ALB_WEIGHT = 999

#: A forward action names its groups through ForwardConfig; a group without a Weight gets this one.
DEFAULT_WEIGHT = 1

GateName = Literal["health", "alarm", "latency"]


@dataclass(frozen=True)
class CanaryStepPlan:
    """One step of a canary: send ``weight`` percent to the canary, then wait ``pause_seconds``."""

    index: int  # 0-based position in the plan
    weight: int  # percent of traffic on the canary, 0-100
    pause_seconds: int


@dataclass(frozen=True)
class GateVerdict:
    """Whether a canary step may go on; ``gate`` names the first gate that stopped it."""

    passed: bool
    reason: str
    gate: GateName | None = None


@dataclass(frozen=True)
class ZeroDowntimeReport:
    """What a traffic probe saw while traffic moved (see ``adapters.traffic_probe`` for the terms)."""

    requests: int
    failures: int
    longest_gap_ms: float
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def had_downtime(self) -> bool:
        """True when any request failed (connection error, timeout or 5xx)."""
        return self.failures > 0

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON shape of the report."""
        return {
            "requests": self.requests,
            "failures": self.failures,
            "longest_gap_ms": round(self.longest_gap_ms, 1),
            "statuses": dict(self.statuses),
        }


def plan_canary_weights(steps: Sequence[tuple[int, int]]) -> list[CanaryStepPlan]:
    """Return the canary's steps as ``(weight, pause_seconds)`` plans, ending at 100 percent.

    Weights are percents 0-100 that never decrease; pauses are seconds >= 0. When the last step
    stops short of 100, a final ``(100, 0)`` step is appended: a canary that passed every gate is
    promoted, and any bake after promotion is the strategy's ``bake_seconds``, not a step pause.
    Raises ``ValueError`` for no steps, a weight outside 0-100, a negative pause or a falling weight.
    """
    if not steps:
        raise ValueError("a canary needs at least one step")
    plans: list[CanaryStepPlan] = []
    previous = 0
    for index, (weight, pause_seconds) in enumerate(steps):
        if not 0 <= weight <= 100:
            raise ValueError(f"step {index}: weight {weight} is outside 0-100")
        if pause_seconds < 0:
            raise ValueError(f"step {index}: pause_seconds {pause_seconds} is negative")
        if weight < previous:
            raise ValueError(f"step {index}: weight {weight} falls below the previous step's {previous}")
        plans.append(CanaryStepPlan(index=index, weight=weight, pause_seconds=pause_seconds))
        previous = weight
    if previous < 100:
        plans.append(CanaryStepPlan(index=len(plans), weight=100, pause_seconds=0))
    return plans


def forward_weights_for(stable_tg: str, canary_tg: str, canary_percent: int) -> dict[str, int]:
    """Return the listener weights that send ``canary_percent`` percent to the canary group.

    The percent is used as the weight itself (stable ``100 - p``, canary ``p``), well inside
    ELBv2's 0-999, so the weights read back from the listener are the percents.
    """
    if stable_tg == canary_tg:
        raise ValueError("the stable and canary target groups must differ")
    if not 0 <= canary_percent <= 100:
        raise ValueError(f"canary_percent {canary_percent} is outside 0-100")
    return {stable_tg: 100 - canary_percent, canary_tg: canary_percent}


def listener_forward_action(listener: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Return the listener's default forward action, or None when its default does not forward."""
    for action in listener.get("DefaultActions") or []:
        if action.get("Type") == "forward":
            found: Mapping[str, Any] = action
            return found
    return None


def listener_forward_weights(listener: Mapping[str, Any]) -> dict[str, int]:
    """Return ``{target_group_arn: weight}`` of the listener's default forward action.

    A plain forward to X is ``{X: 1}``; a weighted forward gives each group its weight (a missing
    weight is 1). No forward action (redirect, fixed response) gives ``{}``.
    """
    action = listener_forward_action(listener)
    if action is None:
        return {}
    groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or []
    if groups:
        return {str(g["TargetGroupArn"]): int(g.get("Weight", DEFAULT_WEIGHT)) for g in groups}
    arn = action.get("TargetGroupArn")
    return {str(arn): DEFAULT_WEIGHT} if arn else {}


def share_of_weight(weights: Mapping[str, int], tg: str) -> float:
    """Return the fraction (0.0-1.0) of the listener's traffic that ``tg`` receives by weight."""
    total = sum(max(w, 0) for w in weights.values())
    return max(weights.get(tg, 0), 0) / total if total else 0.0


def observed_share(counts: Mapping[str, int], tg: str) -> float:
    """Return the fraction (0.0-1.0) of counted requests that reached ``tg``; 0.0 when none were counted."""
    total = sum(counts.values())
    return counts.get(tg, 0) / total if total else 0.0


def gate_verdict(
    health_ok: bool | None,
    alarms_in_alarm: Sequence[str],
    latency_ms: float | None,
    max_latency_ms: int | None,
) -> GateVerdict:
    """Return whether a canary step passes its gates, checked in the order health, alarm, latency.

    ``health_ok=None`` means no health check ran for this step, and ``latency_ms=None`` means
    nothing was measured: a gate without an input passes (there is nothing to hold against the
    release), and so does the latency gate when no ``max_latency_ms`` is set.
    """
    if health_ok is False:
        return GateVerdict(passed=False, reason="the canary failed its health check", gate="health")
    if alarms_in_alarm:
        names = ", ".join(sorted(alarms_in_alarm))
        return GateVerdict(passed=False, reason=f"alarm in ALARM state: {names}", gate="alarm")
    if latency_ms is not None and max_latency_ms is not None and latency_ms > max_latency_ms:
        return GateVerdict(
            passed=False,
            reason=f"latency {latency_ms:.0f} ms above {max_latency_ms} ms",
            gate="latency",
        )
    return GateVerdict(passed=True, reason="all gates passed")


def with_forward_weights(
    actions: Sequence[Mapping[str, Any]], weights: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Return ``actions`` with their forward action sending to ``weights``; every other action unchanged.

    The forward keeps its ``Order`` and stickiness. Raises ``ValueError`` when no action forwards.
    """
    written = [dict(a) for a in actions]
    index = next((i for i, a in enumerate(written) if a.get("Type") == "forward"), None)
    if index is None:
        raise ValueError("the actions have no forward action to weight")
    old = written[index]
    forward: dict[str, Any] = {
        "TargetGroups": [{"TargetGroupArn": arn, "Weight": weight} for arn, weight in weights.items()]
    }
    stickiness = (old.get("ForwardConfig") or {}).get("TargetGroupStickinessConfig")
    if stickiness:
        forward["TargetGroupStickinessConfig"] = stickiness
    new: dict[str, Any] = {"Type": "forward", "ForwardConfig": forward}
    if "Order" in old:
        new["Order"] = old["Order"]
    written[index] = new
    return written


def writable_actions(actions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return described listener/rule actions in the form ModifyListener/ModifyRule accept back.

    DescribeListeners and DescribeRules never return an authenticate-oidc action's ``ClientSecret``;
    writing the action back without it is refused unless ``UseExistingClientSecret`` is true
    (ELBv2 API reference, AuthenticateOidcActionConfig), which keeps the stored secret.
    """
    written: list[dict[str, Any]] = []
    for action in actions:
        copy_ = dict(action)
        config = copy_.get("AuthenticateOidcConfig")
        if (
            copy_.get("Type") == "authenticate-oidc"
            and isinstance(config, Mapping)
            and not config.get("ClientSecret")
        ):
            copy_["AuthenticateOidcConfig"] = {**config, "UseExistingClientSecret": True}
        written.append(copy_)
    return written


@dataclass(frozen=True)
class RulePlan:
    """The listener rules a deployment moves with the default action, and the ones it refuses."""

    shifted: dict[str, list[dict[str, Any]]]  # rule ARN -> its actions before the change
    refusals: list[str]


def plan_rule_shifts(rules: Sequence[Mapping[str, Any]], blue_arn: str, green_arn: str) -> RulePlan:
    """Return which non-default listener rules move with the default action, and why others cannot.

    A rule that forwards only to blue carries production traffic to the old release: it is shifted
    with the same weights as the default action and restored exactly (its actions are recorded
    here, before any change). A rule that forwards to blue *and* another group has a split of its
    own we cannot scale faithfully, and a rule that already sends to green would send traffic to an
    unverified release: both are refused. Rules that never reach blue (fixed responses, redirects,
    forwards to other groups) carry none of our traffic and are left alone.
    """
    shifted: dict[str, list[dict[str, Any]]] = {}
    refusals: list[str] = []
    for rule in rules:
        if rule.get("IsDefault"):
            continue  # the default rule is the listener's default action, handled on its own
        arn = str(rule.get("RuleArn"))
        weights = listener_forward_weights({"DefaultActions": rule.get("Actions") or []})
        live = {tg for tg, weight in weights.items() if weight > 0}
        if weights.get(green_arn, 0) > 0:
            refusals.append(f"listener rule {arn} already forwards to the green target group")
        elif blue_arn in live and live != {blue_arn}:
            others = ", ".join(sorted(live - {blue_arn}))
            refusals.append(
                f"listener rule {arn} splits traffic between the blue target group and {others}; "
                "shifting it cannot keep that split"
            )
        elif blue_arn in live:
            shifted[arn] = [dict(a) for a in rule.get("Actions") or []]
    return RulePlan(shifted=shifted, refusals=refusals)
