"""ECS's own BLUE_GREEN / LINEAR / CANARY deployments, as pure decisions over botocore's shapes.

The worker drives them with PAUSE lifecycle hooks (botocore 1.43.10+): ECS holds the service
deployment at each hooked stage until ``ContinueServiceDeployment`` or ``StopServiceDeployment``.
Our one PAUSE hook has three stages
(docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-lifecycle-hooks.html):

- ``POST_TEST_TRAFFIC_SHIFT``: the new revision serves the test listener rule only; it is checked
  there, and a human approves here when the operator's policy asks for it;
- ``PRE_PRODUCTION_TRAFFIC_SHIFT``: fires before *every* production shift (each linear or canary
  step), so the gates judge the step before it, with its traffic; it never shows as
  ``lifecycleStage``, so which step a firing belongs to is counted, not read;
- ``POST_PRODUCTION_TRAFFIC_SHIFT``: all traffic on the new revision, before ECS's bake time.

The hook's timeout action is ROLLBACK: a worker that dies leaves no deployment paused forever.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from deploy_agent.core.outcome import Trigger

HOOK_STAGES = ("POST_TEST_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT")
TEST_POINT = "test traffic"
BEFORE_PRODUCTION = "before production traffic"

#: ServiceDeployment.status values (botocore ECS ``ServiceDeploymentStatus``) and what they mean to us
RUNNING = frozenset({"PENDING", "IN_PROGRESS"})
ROLLING_BACK = frozenset({"ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "STOP_REQUESTED"})


@dataclass(frozen=True)
class NativeShape:
    """What a message asks of ECS: the strategy, its step sizes and bakes, the hooks' timeout."""

    strategy: str  # BLUE_GREEN | LINEAR | CANARY
    bake_minutes: int
    hook_timeout_minutes: int
    step_percent: float | None = None
    step_bake_minutes: int | None = None
    canary_percent: float | None = None
    canary_bake_minutes: int | None = None


def plan_production_weights(shape: NativeShape) -> list[float]:
    """Return the production share of the new revision after each of ECS's traffic shifts.

    BLUE_GREEN moves everything at once; CANARY moves ``canary_percent`` then the rest; LINEAR adds
    ``step_percent`` per step, the last step capped at 100 (docs: linear-deployment-implementation,
    canary-deployment-implementation).
    """
    if shape.strategy == "CANARY":
        return [float(shape.canary_percent or 5.0), 100.0]
    if shape.strategy == "LINEAR":
        step = float(shape.step_percent or 10.0)
        count = math.ceil(round(100.0 / step, 6))
        return [min(100.0, round(step * (i + 1), 1)) for i in range(count)]
    return [100.0]


def plan_hook_points(shape: NativeShape) -> list[str]:
    """Return the names of the points where ECS will wait for us, in the order they fire.

    The first firing is after test traffic; the second is before any production traffic; every
    later one (the next step's PRE_PRODUCTION_TRAFFIC_SHIFT, then POST_PRODUCTION_TRAFFIC_SHIFT)
    judges the step just taken, so it is named after that step.
    """
    steps = [f"step {i + 1} ({w:g}%)" for i, w in enumerate(plan_production_weights(shape))]
    return [TEST_POINT, BEFORE_PRODUCTION, *steps]


#: the recipe's step names: ``native_update``, ``native_hook_<i>`` (one per hook point), ``native_wait``
PREFIX = "native_"


def native_step_names(shape: NativeShape) -> list[str]:
    """Return the deploy recipe of a native strategy, as step names (``deploy-agent plan``)."""
    hooks = [f"{PREFIX}hook_{i}" for i, _ in enumerate(plan_hook_points(shape))]
    return [f"{PREFIX}update", *hooks, f"{PREFIX}wait"]


def plan_deployment_configuration(
    shape: NativeShape, current: Mapping[str, Any], alarm_names: Sequence[str]
) -> dict[str, Any]:
    """Return UpdateService's ``deploymentConfiguration`` for ``shape``.

    The service's own settings are kept (percents, circuit breaker, Lambda hooks); earlier PAUSE
    hooks are replaced by ours, since ``lifecycleHooks`` is replaced as a whole by UpdateService.
    CloudWatch alarms of the message's rollback are handed to ECS too, which rolls back on them.
    """
    config: dict[str, Any] = {
        key: value
        for key, value in current.items()
        if key in ("maximumPercent", "minimumHealthyPercent", "deploymentCircuitBreaker", "alarms")
    }
    hooks = [h for h in current.get("lifecycleHooks") or [] if h.get("targetType") != "PAUSE"]
    hooks.append(
        {
            "targetType": "PAUSE",
            "lifecycleStages": list(HOOK_STAGES),
            "timeoutConfiguration": {"timeoutInMinutes": shape.hook_timeout_minutes, "action": "ROLLBACK"},
        }
    )
    config.update(strategy=shape.strategy, bakeTimeInMinutes=shape.bake_minutes, lifecycleHooks=hooks)
    if shape.strategy == "LINEAR":
        config["linearConfiguration"] = {
            "stepPercent": float(shape.step_percent or 10.0),
            "stepBakeTimeInMinutes": int(shape.step_bake_minutes or 0),
        }
    if shape.strategy == "CANARY":
        config["canaryConfiguration"] = {
            "canaryPercent": float(shape.canary_percent or 5.0),
            "canaryBakeTimeInMinutes": int(shape.canary_bake_minutes or 0),
        }
    if alarm_names:
        config["alarms"] = {"alarmNames": list(alarm_names), "enable": True, "rollback": True}
    return config


def plan_hooks_released(current: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the service's deploymentConfiguration without PAUSE hooks, or None when it has none.

    Left on the service, our hooks would hold every later deployment, made by anyone, until their
    timeout rolled it back; the next deployment of ours puts them back.
    """
    hooks = list(current.get("lifecycleHooks") or [])
    kept = [h for h in hooks if h.get("targetType") != "PAUSE"]
    if len(kept) == len(hooks):
        return None
    return {**current, "lifecycleHooks": kept}


def plan_hook_timeout(minutes: int, approval_timeout_seconds: float | None) -> int:
    """Return the hook timeout in minutes: the message's, stretched to outlast a human's approval."""
    if approval_timeout_seconds is None:
        return minutes
    return max(minutes, min(20_160, math.ceil(approval_timeout_seconds / 60) + 1))


def awaiting_hook(deployment: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the PAUSE hook ECS waits on now, or None."""
    for hook in deployment.get("lifecycleHookDetails") or []:
        if hook.get("targetType") == "PAUSE" and hook.get("status") == "AWAITING_ACTION":
            return dict(hook)
    return None


def hook_key(hook: Mapping[str, Any]) -> str:
    """Return a key for one firing of a hook (a recurring hook may keep its id; its expiry differs)."""
    expires = hook.get("expiresAt")
    when = expires.isoformat() if isinstance(expires, datetime) else str(expires)
    return f"{hook.get('hookId')}@{when}"


def decide_hook_point(lifecycle_stage: str | None, answered: int, points: Sequence[str]) -> str:
    """Return which point a firing is: the final one by its stage, the others by how many came before."""
    if lifecycle_stage == "POST_PRODUCTION_TRAFFIC_SHIFT":
        return points[-1]
    return points[min(answered, len(points) - 2)]


@dataclass(frozen=True)
class NativeEnd:
    """How ECS ended a service deployment that we did not stop ourselves."""

    trigger: Trigger
    reason: str


def assess_rollback_cause(deployment: Mapping[str, Any]) -> NativeEnd:
    """Return why ECS rolled back (circuit breaker, alarm, a hook's timeout, or its own reason)."""
    reason = str(
        (deployment.get("rollback") or {}).get("reason")
        or deployment.get("statusReason")
        or "no reason given"
    )
    breaker = deployment.get("deploymentCircuitBreaker") or {}
    if breaker.get("status") == "TRIGGERED":
        return NativeEnd(
            Trigger.CIRCUIT_BREAKER,
            f"ECS's circuit breaker rolled back after {breaker.get('failureCount', '?')} failed tasks "
            f"(threshold {breaker.get('threshold', '?')}): {reason}",
        )
    alarms = deployment.get("alarms") or {}
    if alarms.get("status") == "TRIGGERED":
        names = ", ".join(alarms.get("triggeredAlarmNames") or []) or "an alarm"
        return NativeEnd(Trigger.ALARM, f"ECS rolled back on {names}: {reason}")
    timed_out = [h for h in deployment.get("lifecycleHookDetails") or [] if h.get("status") == "TIMED_OUT"]
    if timed_out:
        return NativeEnd(
            Trigger.DEADLINE,
            f"lifecycle hook {timed_out[0].get('hookId')} timed out, its action ROLLBACK: {reason}",
        )
    return NativeEnd(Trigger.ECS_ROLLBACK, f"ECS rolled the deployment back: {reason}")


def has_advanced_configuration(service: Mapping[str, Any]) -> bool:
    """Does the service have a load balancer set up for ECS's native blue/green?"""
    return any(lb.get("advancedConfiguration") for lb in service.get("loadBalancers") or [])


def rule_listener_arn(rule_arn: str) -> str:
    """Return the listener ARN a listener-rule ARN belongs to (``listener-rule/app/lb/id/lid/rid``)."""
    head, _, _ = rule_arn.rpartition("/")
    return head.replace(":listener-rule/", ":listener/", 1)


def check_advanced_configuration(
    service: Mapping[str, Any],
    rules: Mapping[str, Mapping[str, Any] | None],
    target_groups: Mapping[str, Mapping[str, Any] | None],
) -> list[dict[str, str]]:
    """Return what ECS would refuse about the service's load balancer for a native deployment.

    ``rules`` and ``target_groups`` are the described rules and groups the configuration names
    (None: not found). ECS needs, per load balancer, an alternate target group other than the
    primary, a production listener rule that forwards to them, and a role for ECS to call ELB with
    (docs.aws.amazon.com/AmazonECS/latest/developerguide/blue-green-deployment-implementation.html).
    """
    name = str(service.get("serviceName") or "the service")
    balancers = [lb for lb in service.get("loadBalancers") or [] if lb.get("targetGroupArn")]
    if not any(lb.get("advancedConfiguration") for lb in balancers):
        return [
            _problem(
                f"{name} has no load balancer with advancedConfiguration (alternate target group, listener "
                "rules, role): ECS's native strategies need it; use blue_green, canary or linear instead"
            )
        ]
    problems: list[dict[str, str]] = []
    for lb in balancers:
        advanced = lb.get("advancedConfiguration") or {}
        primary, alternate = str(lb["targetGroupArn"]), advanced.get("alternateTargetGroupArn")
        if not alternate:
            problems.append(_problem("advancedConfiguration.alternateTargetGroupArn is missing"))
        elif alternate == primary:
            problems.append(_problem("the alternate target group is the service's own target group"))
        elif target_groups.get(str(alternate)) is None:
            problems.append(_problem(f"alternate target group {alternate} does not exist"))
        if not advanced.get("roleArn"):
            problems.append(
                _problem("advancedConfiguration.roleArn is missing: ECS cannot move the listener rules")
            )
        production = advanced.get("productionListenerRule")
        if not production:
            problems.append(_problem("advancedConfiguration.productionListenerRule is missing"))
        else:
            problems.extend(_rule_problems("production", str(production), rules, {primary, str(alternate)}))
        test = advanced.get("testListenerRule")
        if test:
            problems.extend(_rule_problems("test", str(test), rules, {primary, str(alternate)}))
    return problems


def _rule_problems(
    kind: str, arn: str, rules: Mapping[str, Mapping[str, Any] | None], groups: set[str]
) -> list[dict[str, str]]:
    rule = rules.get(arn)
    if rule is None:
        return [_problem(f"the {kind} listener rule {arn} does not exist")]
    forwarded = {
        str(tg.get("TargetGroupArn"))
        for action in rule.get("Actions") or []
        if action.get("Type") == "forward"
        for tg in (action.get("ForwardConfig") or {}).get("TargetGroups")
        or [{"TargetGroupArn": action.get("TargetGroupArn")}]
    }
    if not forwarded & groups:
        return [
            _problem(f"the {kind} listener rule {arn} forwards to neither of the service's target groups")
        ]
    return []


def _problem(text: str) -> dict[str, str]:
    return {"field": "strategy", "problem": text}
