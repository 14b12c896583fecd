"""ECS's native BLUE_GREEN / LINEAR / CANARY settings: read with ECS's defaults, refused as ECS refuses.

Pure functions over the request's plain data, so the refusals are testable without a server. What
a listener rule forwards to is asked of a callable (``native_api`` reads moto's ELBv2 for it).

Defaults and ranges are botocore's (ecs 2014-11-13, 1.44.18) and the API reference's:
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_LinearConfiguration.html (stepPercent
3.0-100.0 in 0.1 steps, default 10.0; stepBakeTimeInMinutes 0-1440, default 6, not applied after
100%), API_CanaryConfiguration.html (canaryPercent 0.1-100.0, default 5.0; canaryBakeTimeInMinutes
0-1440, default 10), API_DeploymentLifecycleHook.html (targetType AWS_LAMBDA by default; PAUSE not at
TEST_TRAFFIC_SHIFT or PRODUCTION_TRAFFIC_SHIFT; timeoutInMinutes 1-20160, default 1440, action
ROLLBACK by default). The refusal wordings are the sandbox's own: I found none of ECS's verbatim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NATIVE_STRATEGIES = ("BLUE_GREEN", "LINEAR", "CANARY")
STRATEGIES = ("ROLLING", *NATIVE_STRATEGIES)
HOOK_STAGES = (
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
)
#: https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentLifecycleHook.html
PAUSE_BARRED = ("TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT")
MAX_MINUTES = 1440
MAX_HOOK_MINUTES = 20160

#: what a listener rule (or NLB listener) ARN forwards to; None when it does not exist
ForwardLookup = Callable[[str], "set[str] | None"]


@dataclass(frozen=True)
class Hook:
    """One lifecycle hook as configured, with ECS's defaults."""

    target_type: str  # PAUSE or AWS_LAMBDA
    stages: tuple[str, ...]
    timeout_minutes: int = 1440
    timeout_action: str = "ROLLBACK"
    target_arn: str | None = None


@dataclass(frozen=True)
class NativeConfig:
    """A service's deploymentConfiguration as the native controller plays it."""

    strategy: str
    bake_minutes: float = 0.0
    hooks: tuple[Hook, ...] = ()
    #: production shifts: (green percent after the step, bake minutes after it)
    steps: tuple[tuple[float, float], ...] = ((100.0, 0.0),)
    circuit_breaker: bool = False
    breaker_rollback: bool = False
    alarm_names: tuple[str, ...] = ()
    alarms_enabled: bool = False
    alarm_rollback: bool = False


def strategy_of(config: dict[str, Any] | None) -> str:
    """Return the configuration's strategy (ROLLING when unset, as ECS defaults it)."""
    return str((config or {}).get("strategy") or "ROLLING")


def is_native(config: dict[str, Any] | None) -> bool:
    """Return whether the configuration asks for one of ECS's native traffic-shifting strategies."""
    return strategy_of(config) in NATIVE_STRATEGIES


def plan_steps(config: dict[str, Any]) -> tuple[tuple[float, float], ...]:
    """Return the production traffic shifts: (green percent, bake minutes after the step).

    BLUE_GREEN shifts everything at once; LINEAR adds stepPercent per step and waits
    stepBakeTimeInMinutes after each step but the last (https://docs.aws.amazon.com/AmazonECS/latest/
    developerguide/deployment-type-linear.html); CANARY shifts canaryPercent, waits
    canaryBakeTimeInMinutes, then the rest (.../canary-deployment-implementation.html).
    """
    strategy = strategy_of(config)
    if strategy == "LINEAR":
        linear = config.get("linearConfiguration") or {}
        step = float(linear.get("stepPercent", 10.0))
        bake = float(linear.get("stepBakeTimeInMinutes", 6))
        steps: list[tuple[float, float]] = []
        percent = step
        while percent < 100.0 - 1e-9:
            steps.append((round(percent, 1), bake))
            percent += step
        return (*steps, (100.0, 0.0))
    if strategy == "CANARY":
        canary = config.get("canaryConfiguration") or {}
        percent = float(canary.get("canaryPercent", 5.0))
        if percent >= 100.0:
            return ((100.0, 0.0),)
        return ((percent, float(canary.get("canaryBakeTimeInMinutes", 10))), (100.0, 0.0))
    return ((100.0, 0.0),)


def read_native_config(config: dict[str, Any] | None) -> NativeConfig:
    """Return the configuration with ECS's defaults filled in."""
    config = config or {}
    hooks = tuple(
        Hook(
            target_type=str(h.get("targetType") or "AWS_LAMBDA"),
            stages=tuple(h.get("lifecycleStages") or ()),
            timeout_minutes=int((h.get("timeoutConfiguration") or {}).get("timeoutInMinutes", 1440)),
            timeout_action=str((h.get("timeoutConfiguration") or {}).get("action") or "ROLLBACK"),
            target_arn=h.get("hookTargetArn"),
        )
        for h in config.get("lifecycleHooks") or []
    )
    breaker = config.get("deploymentCircuitBreaker") or {}
    alarms = config.get("alarms") or {}
    return NativeConfig(
        strategy=strategy_of(config),
        bake_minutes=float(config.get("bakeTimeInMinutes") or 0),
        hooks=hooks,
        steps=plan_steps(config),
        circuit_breaker=bool(breaker.get("enable", False)),
        breaker_rollback=bool(breaker.get("rollback", False)),
        alarm_names=tuple(alarms.get("alarmNames") or ()),
        alarms_enabled=bool(alarms.get("enable", False)),
        alarm_rollback=bool(alarms.get("rollback", False)),
    )


def _tenths(value: float) -> bool:
    return abs(value * 10 - round(value * 10)) < 1e-6


def _minutes(name: str, value: Any) -> str | None:
    if value is not None and not 0 <= int(value) <= MAX_MINUTES:
        return f"{name} must be between 0 and {MAX_MINUTES} minutes."
    return None


def shape_refusal(config: dict[str, Any]) -> str | None:
    """Return ECS's refusal of the deploymentConfiguration's own values, or None."""
    strategy = strategy_of(config)
    if strategy not in STRATEGIES:
        return f"Invalid deployment strategy {strategy}. Valid values: {', '.join(STRATEGIES)}."
    linear, canary = config.get("linearConfiguration"), config.get("canaryConfiguration")
    if linear is not None and strategy != "LINEAR":
        return "linearConfiguration is only valid when the deployment strategy is LINEAR."
    if canary is not None and strategy != "CANARY":
        return "canaryConfiguration is only valid when the deployment strategy is CANARY."
    if strategy == "BLUE_GREEN" and config.get("bakeTimeInMinutes") is None:
        # botocore DeploymentConfiguration.bakeTimeInMinutes: "You must provide this parameter when
        # you use the BLUE_GREEN deployment strategy."
        return "bakeTimeInMinutes is required for the BLUE_GREEN deployment strategy."
    found = _minutes("bakeTimeInMinutes", config.get("bakeTimeInMinutes"))
    if linear:
        step = float(linear.get("stepPercent", 10.0))
        if not 3.0 <= step <= 100.0 or not _tenths(step):
            return "stepPercent must be a multiple of 0.1 from 3.0 to 100.0."
        found = found or _minutes("stepBakeTimeInMinutes", linear.get("stepBakeTimeInMinutes"))
    if canary:
        percent = float(canary.get("canaryPercent", 5.0))
        if not 0.1 <= percent <= 100.0 or not _tenths(percent):
            return "canaryPercent must be a multiple of 0.1 from 0.1 to 100.0."
        found = found or _minutes("canaryBakeTimeInMinutes", canary.get("canaryBakeTimeInMinutes"))
    return found or _hooks_refusal(strategy, config.get("lifecycleHooks") or [])


def _hooks_refusal(strategy: str, hooks: list[dict[str, Any]]) -> str | None:
    if hooks and strategy not in NATIVE_STRATEGIES:
        return "lifecycleHooks are only supported with the BLUE_GREEN, LINEAR and CANARY strategies."
    for hook in hooks:
        kind = hook.get("targetType") or "AWS_LAMBDA"
        stages = hook.get("lifecycleStages") or []
        if kind not in ("AWS_LAMBDA", "PAUSE"):
            return f"Invalid lifecycle hook targetType {kind}."
        if not stages:
            return "lifecycleStages must be provided for a deployment lifecycle hook."
        unknown = [s for s in stages if s not in HOOK_STAGES]
        if unknown:
            return f"Invalid lifecycle stage {unknown[0]}."
        barred = [s for s in stages if s in PAUSE_BARRED]
        if kind == "PAUSE" and barred:
            return f"PAUSE hooks cannot be configured at the {barred[0]} lifecycle stage."
        if kind == "AWS_LAMBDA" and not hook.get("hookTargetArn"):
            return "hookTargetArn must be provided for an AWS_LAMBDA lifecycle hook."
        minutes = (hook.get("timeoutConfiguration") or {}).get("timeoutInMinutes")
        if minutes is not None and not 1 <= int(minutes) <= MAX_HOOK_MINUTES:
            return f"timeoutInMinutes must be between 1 and {MAX_HOOK_MINUTES}."
    return None


def load_balancer_refusal(load_balancers: list[dict[str, Any]], forwards: ForwardLookup) -> str | None:
    """Return ECS's refusal of a native strategy's load balancers, or None.

    Each needs ``advancedConfiguration`` with an alternate target group other than its own, a
    production listener rule forwarding to both groups, a test listener rule (optional) forwarding to
    one of them, and the role ECS uses to change them (https://docs.aws.amazon.com/AmazonECS/latest/
    developerguide/alb-resources-for-blue-green.html; API_AdvancedConfiguration.html).
    """
    for balancer in load_balancers:
        advanced = balancer.get("advancedConfiguration")
        primary = balancer.get("targetGroupArn")
        if not advanced:
            return (
                "advancedConfiguration is required for each load balancer of a service using "
                "a native deployment strategy."
            )
        alternate = advanced.get("alternateTargetGroupArn")
        if not alternate:
            return "alternateTargetGroupArn is required in advancedConfiguration."
        if alternate == primary:
            return "The alternateTargetGroupArn must be different from the targetGroupArn."
        if not advanced.get("roleArn"):
            return "roleArn is required in advancedConfiguration."
        production = advanced.get("productionListenerRule")
        if not production:
            return "productionListenerRule is required in advancedConfiguration."
        groups = forwards(str(production))
        if groups is None:
            return f"The listener rule {production} does not exist."
        if not {primary, alternate} <= groups:
            return (
                f"The production listener rule {production} must forward to both target groups "
                f"{primary} and {alternate}."
            )
        test = advanced.get("testListenerRule")
        if test:
            test_groups = forwards(str(test))
            if test_groups is None:
                return f"The listener rule {test} does not exist."
            if not test_groups & {primary, alternate}:
                return f"The test listener rule {test} must forward to {primary} or {alternate}."
    return None
