"""The preflight of ECS's native strategies: refuse, with nothing touched, what ECS would refuse later."""

from __future__ import annotations

from typing import Any

from deploy_agent.core.ecs_native import check_advanced_configuration, rule_listener_arn
from deploy_agent.core.errors import AwsNotFound
from deploy_agent.core.outcome import Trigger
from deploy_agent.strategies.base import Progress, Run
from deploy_agent.strategies.steps.gates import alarm_names


def check_native_setup(run: Run[Any]) -> Progress:
    """Read the service's advanced configuration and what it names; fail the deployment on a problem."""
    state, elb = run.state, run.ports.elb
    service = run.ports.ecs.describe_service(state.cluster, state.service)
    rules: dict[str, dict[str, Any] | None] = {}
    groups: dict[str, dict[str, Any] | None] = {}
    for lb in service.get("loadBalancers") or []:
        advanced = lb.get("advancedConfiguration") or {}
        for key in ("productionListenerRule", "testListenerRule"):
            arn = advanced.get(key)
            if arn and arn not in rules:
                rules[arn] = _rule(run, str(arn))
        alternate = advanced.get("alternateTargetGroupArn")
        if alternate and alternate not in groups:
            try:
                groups[alternate] = elb.describe_target_group(str(alternate))
            except AwsNotFound:
                groups[alternate] = None
    problems = check_advanced_configuration(service, rules, groups)
    names = alarm_names(run)
    problems += [
        {"field": "rollback.alarm_names", "problem": f"alarm {name!r} does not exist"}
        for name in (run.ports.alarms.missing_alarms(names) if names else [])
    ]
    if problems:
        state.rejections = problems
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        return run.fail(
            "preflight_failed", f"ECS's native deployment cannot be used: {summary}", Trigger.ERROR
        )
    return Progress.finished()


def _rule(run: Run[Any], arn: str) -> dict[str, Any] | None:
    """Return the listener rule (or, for an NLB, the listener as its one rule), or None when missing."""
    elb = run.ports.elb
    try:
        if ":listener-rule/" not in arn:
            listener = elb.describe_listener(arn)
            return {"RuleArn": arn, "Actions": listener.get("DefaultActions") or []}
        for rule in elb.describe_rules(rule_listener_arn(arn)):
            if rule.get("RuleArn") == arn:
                return rule
    except AwsNotFound:
        return None
    return None
