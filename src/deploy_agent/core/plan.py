"""The dry-run plan's pure parts: a path-level task definition diff and the text of each step.

``deploy-agent plan`` (``tasks/plan.py``) reads the service and its task definition, then asks this
module what would change and what each stage and step of the strategy would do. The step *names*
come from the strategies themselves (their stage lists and recipes), so a plan cannot drift from
what a deployment does; a step this module has no text for is shown by its name and fails
``tests/core/test_plan.py``.

Values of ``environment`` and ``secrets`` are never shown: only their names, and ``(value changed)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deploy_agent.core.taskdef import REGISTER_FIELDS

#: name-keyed lists whose values may be sensitive: their entries are shown by name only
HIDDEN_LISTS = frozenset({"environment", "secrets"})
#: fields left out of the diff: tags are metadata of the registration, not of what runs
NOT_DIFFED = frozenset({"tags"})
#: longest rendering of one value in the diff
MAX_VALUE_CHARS = 120


def _redact(value: Any) -> Any:
    """Return ``value`` with the values of every environment and secrets entry replaced."""
    if isinstance(value, dict):
        return {k: (_names_only(v) if k in HIDDEN_LISTS else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _names_only(entries: Any) -> Any:
    if not isinstance(entries, list):
        return "(hidden)"
    return [
        {"name": e["name"], "value": "(hidden)"} if isinstance(e, dict) and "name" in e else "(hidden)"
        for e in entries
    ]


def _render(value: Any) -> str:
    value = _redact(value)
    if value is None:
        return "(none)"
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def _empty(value: Any) -> bool:
    # an absent field and an empty one mean the same to ECS
    return value is None or value == [] or value == {}


def _by_name(items: Any) -> dict[str, Any] | None:
    """Return a name-keyed view of a list of named dicts, or None when it is not one."""
    if not isinstance(items, list) or not items:
        return None
    if not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items):
        return None
    named = {str(i["name"]): i for i in items}
    return named if len(named) == len(items) else None


def _diff(path: str, old: Any, new: Any, hidden: bool, out: list[str]) -> None:
    if old == new or (_empty(old) and _empty(new)):
        return
    hidden = hidden or path.rsplit(".", 1)[-1] in HIDDEN_LISTS
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            _diff(f"{path}.{key}" if path else key, old.get(key), new.get(key), hidden, out)
        return
    if isinstance(old, list) or isinstance(new, list):
        before, after = _by_name(old or []), _by_name(new or [])
        if (before is not None or _empty(old)) and (after is not None or _empty(new)):
            before, after = before or {}, after or {}
            for name in after:
                if name not in before:
                    out.append(f"{path}[{name}] added" + ("" if hidden else f": {_render(after[name])}"))
            for name in before:
                if name not in after:
                    out.append(f"{path}[{name}] removed")
            for name in before:
                if name in after and before[name] != after[name]:
                    if hidden:
                        out.append(f"{path}[{name}]: (value changed)")
                    else:
                        entry_old = {k: v for k, v in before[name].items() if k != "name"}
                        entry_new = {k: v for k, v in after[name].items() if k != "name"}
                        _diff(f"{path}[{name}]", entry_old, entry_new, False, out)
            return
    if hidden:
        out.append(f"{path}: (value changed)")
    elif _empty(old):
        out.append(f"{path}: added {_render(new)}")
    elif _empty(new):
        out.append(f"{path}: removed (was {_render(old)})")
    else:
        out.append(f"{path}: {_render(old)} -> {_render(new)}")


def diff_task_definition(current: Mapping[str, Any] | None, planned: Mapping[str, Any]) -> list[str]:
    """Return the changes from ``current`` to ``planned``, one ``path: old -> new`` line each.

    Only ``RegisterTaskDefinition`` fields are compared (not ``tags``); containers and other
    name-keyed lists are matched by name, e.g. ``containerDefinitions[web].image: repo:1 -> repo:2``,
    ``cpu: 256 -> 512``, ``containerDefinitions[web].environment[MODE]: (value changed)``. With no
    ``current`` (a service without one is not deployable; tests only) every planned field is added.
    """
    out: list[str] = []
    before = current or {}
    for key in REGISTER_FIELDS:
        if key in NOT_DIFFED:
            continue
        _diff(key, before.get(key), planned.get(key), False, out)
    return out


# --- steps ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanContext:
    """What the step texts need to know about the deployment (all read-only, nothing secret)."""

    cluster: str
    service: str
    strategy: Mapping[str, Any]
    request: Mapping[str, Any]
    image: str
    family: str | None = None
    desired_count: int | None = None
    #: the service's deploymentConfiguration as DescribeServices returns it (rolling's defaults)
    service_config: Mapping[str, Any] = field(default_factory=dict)
    #: the temporary (green or canary) service's name, traffic strategies only
    temp_service: str | None = None
    log_groups_created: Sequence[str] = ()
    timeout_seconds: int | None = None
    #: the operator's approval rule that applies (``Policy.approval_for``), and its deadline
    approval_rule: str | None = None
    approval_timeout_seconds: int | None = None
    #: (weight, pause seconds) of each weighted step of the recipe, in order (canary, linear)
    weights: Sequence[tuple[int, int]] = ()


@dataclass(frozen=True)
class PlannedStep:
    """One line of the plan: a stage, optionally one step of its recipe, and what it would do."""

    stage: str
    step: str | None
    text: str
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "step": self.step, "text": self.text, "skipped": self.skipped}


def _lb(ctx: PlanContext) -> Mapping[str, Any]:
    lb: Mapping[str, Any] = ctx.strategy.get("load_balancer") or {}
    return lb


def _gates(ctx: PlanContext) -> str:
    health: Mapping[str, Any] = ctx.request.get("health_check") or {}
    alarms = list((ctx.request.get("rollback") or {}).get("alarm_names") or [])
    gates = []
    if health.get("url"):
        latency = f", latency <= {health['max_latency_ms']} ms" if health.get("max_latency_ms") else ""
        gates.append(f"health {health['url']} (status {health.get('expected_status', 200)}{latency})")
    if alarms:
        gates.append(f"alarms {', '.join(alarms)} not in ALARM")
    return "; ".join(gates) if gates else "no gates (no health_check.url, no rollback.alarm_names)"


def _count(ctx: PlanContext) -> str:
    return (
        f"{ctx.desired_count} task{'s' if ctx.desired_count != 1 else ''}" if ctx.desired_count else "tasks"
    )


def _setting(value: Any, current: Any, what: str) -> str:
    if value is not None:
        return f"{what} {value}"
    return f"{what} kept ({'service default' if current is None else current})"


def _update_service(ctx: PlanContext) -> str:
    s, cfg = ctx.strategy, ctx.service_config
    breaker_now: Mapping[str, Any] = cfg.get("deploymentCircuitBreaker") or {}
    enable = s.get("circuit_breaker")
    rollback = s.get("circuit_breaker_rollback")
    if enable is None and rollback is None:
        breaker = (
            f"circuit breaker kept ({'on' if breaker_now.get('enable') else 'off'}, rollback "
            f"{'on' if breaker_now.get('rollback') else 'off'})"
        )
    else:
        enable = bool(breaker_now.get("enable")) if enable is None else enable
        rollback = bool(breaker_now.get("rollback")) if rollback is None else rollback
        breaker = f"circuit breaker {'on' if enable else 'off'}, rollback {'on' if rollback else 'off'}"
    settings = [
        _setting(ctx.request.get("desired_count"), ctx.desired_count, "desired count"),
        _setting(s.get("maximum_percent"), cfg.get("maximumPercent"), "maximumPercent"),
        _setting(s.get("minimum_healthy_percent"), cfg.get("minimumHealthyPercent"), "minimumHealthyPercent"),
        breaker,
    ]
    return f"UpdateService {ctx.cluster}/{ctx.service} to the new revision: {', '.join(settings)}"


def _await_approval(ctx: PlanContext) -> str:
    return (
        f"wait in awaiting_approval for a human (rule {ctx.approval_rule}, up to "
        f"{ctx.approval_timeout_seconds} s): deploy-agent approve ID goes on, deny ID ends it"
    )


def _wait_rollout(ctx: PlanContext) -> str:
    deadline = f" or the deadline ({ctx.timeout_seconds} s)" if ctx.timeout_seconds else " or the deadline"
    return f"follow the ECS deployment of {ctx.service} until COMPLETED, FAILED (circuit breaker){deadline}"


def _create_temp(kind: str) -> Any:
    def text(ctx: PlanContext) -> str:
        return (
            f"create {kind} service {ctx.temp_service} on the new revision with {_count(ctx)} "
            f"in target group {_lb(ctx).get('green_target_group_arn')}"
        )

    return text


def _wait_temp(ctx: PlanContext) -> str:
    return f"wait until {ctx.temp_service}'s deployment is COMPLETED (its circuit breaker fails it)"


def _verify_temp(ctx: PlanContext) -> str:
    lb = _lb(ctx)
    n = ctx.desired_count
    healthy = f"{n} target{' is' if n == 1 else 's are'}" if n else "its targets are"
    text = f"wait until {healthy} healthy in target group {lb.get('green_target_group_arn')}"
    if lb.get("test_url"):
        text += f", then probe the test URL {lb['test_url']} until healthy"
    return text


def _to_green(ctx: PlanContext) -> str:
    lb = _lb(ctx)
    return (
        f"move listener {lb.get('listener_arn')} to green: {lb.get('blue_target_group_arn')} 0%, "
        f"{lb.get('green_target_group_arn')} 100% (rules forwarding to blue move too)"
    )


def _bake(ctx: PlanContext) -> str:
    seconds = int(ctx.strategy.get("bake_seconds") or 0)
    return f"bake {seconds} s while the gates pass: {_gates(ctx)}"


def _update_original(ctx: PlanContext) -> str:
    return f"update {ctx.service} to the new revision and wait until its deployment is COMPLETED"


def _restore(ctx: PlanContext) -> str:
    return f"move listener {_lb(ctx).get('listener_arn')} back to {ctx.service} (its original actions)"


def _delete_temp(ctx: PlanContext) -> str:
    return f"delete {ctx.temp_service}, which no longer receives traffic"


#: what each recipe step does, by the step name the strategies use (rolling's two halves of
#: ``update_and_follow`` are named here: ``update_service`` and ``wait_rollout``)
STEP_TEXTS: dict[str, Any] = {
    "await_approval": _await_approval,
    "update_service": _update_service,
    "wait_rollout": _wait_rollout,
    "create_green": _create_temp("green"),
    "wait_green": _wait_temp,
    "verify_green": _verify_temp,
    "shift_to_green": _to_green,
    "bake": _bake,
    "update_blue": _update_original,
    "shift_to_blue": _restore,
    "delete_green": _delete_temp,
    "create_canary": _create_temp("canary"),
    "wait_canary": _wait_temp,
    "verify_canary": _verify_temp,
    "promote": _update_original,
    "restore_listener": _restore,
    "delete_canary": _delete_temp,
}


def _weight_texts(ctx: PlanContext) -> list[str]:
    lb = _lb(ctx)
    return [
        f"weight listener {lb.get('listener_arn')}: {ctx.service} {100 - weight}%, new release {weight}%; "
        f"hold {pause} s while the gates pass: {_gates(ctx)}"
        for weight, pause in ctx.weights
    ]


#: the temporary service's steps, by prefix: ``create_green``, ``wait_canary``, ``delete_linear`` ...
TEMP_STEP_TEXTS: dict[str, Any] = {
    "create_": lambda kind: _create_temp(kind),
    "wait_": lambda _kind: _wait_temp,
    "verify_": lambda _kind: _verify_temp,
    "delete_": lambda _kind: _delete_temp,
}


def step_text(name: str, ctx: PlanContext) -> str | None:
    """Return what recipe step ``name`` would do, or None when this module does not know it."""
    text = STEP_TEXTS.get(name)
    if text is None:
        prefix = next((p for p in TEMP_STEP_TEXTS if name.startswith(p) and name != "wait_rollout"), None)
        if prefix is None:
            return None
        text = TEMP_STEP_TEXTS[prefix](name.removeprefix(prefix))
    return str(text(ctx))


def _stage_text(stage: str, ctx: PlanContext) -> str:
    request = ctx.request
    if stage == "preflight":
        lb = _lb(ctx)
        text = f"check that {ctx.service} is ours to deploy (ECS rolling controller)"
        if lb:
            text += (
                f"; check listener {lb.get('listener_arn')}, target groups "
                f"{lb.get('blue_target_group_arn')} (blue) and {lb.get('green_target_group_arn')} (green)"
            )
        return text
    if stage == "build":
        build: Mapping[str, Any] = request.get("build") or {}
        return f"build {build.get('context')}/{build.get('dockerfile', 'Dockerfile')} as {ctx.image}"
    if stage == "push":
        image: Mapping[str, Any] = request.get("image") or {}
        create = (request.get("ecr") or {}).get("create_repository", True)
        return f"push to ECR repository {image.get('repository')}" + (
            " (created when missing)" if create else " (must exist)"
        )
    if stage == "register":
        text = (
            f"register a new revision of {ctx.family} (the diff above)"
            if ctx.family
            else "register a new revision of the task definition"
        )
        if ctx.log_groups_created:
            text += f"; create log group {', '.join(ctx.log_groups_created)}"
        return text
    if stage == "healthcheck":
        h: Mapping[str, Any] = request.get("health_check") or {}
        return (
            f"probe {h.get('url')} until {h.get('healthy_threshold', 3)} in a row answer "
            f"{h.get('expected_status', 200)}; {h.get('unhealthy_threshold', 3)} failures in a row fail it"
        )
    if stage == "rollback":
        if not (request.get("rollback") or {}).get("enabled", True) and not _lb(ctx):
            return "only on failure: nothing (rollback.enabled is false)"
        if _lb(ctx):
            return (
                "only on failure: restore the listener, put the original service back if it was updated, "
                "delete the temporary service"
            )
        return "only on failure: put the previous revision back (UpdateService) and wait until settled"
    if stage == "finalize":
        return "collect diagnostics, write the result, release the service's lock"
    return stage


def _skip_text(stage: str) -> str:
    return {
        "build": "skipped: no build in the message",
        "push": "skipped: image.uri is deployed as given",
        "healthcheck": "skipped: no health_check.url",
    }.get(stage, "skipped")


def plan_steps(
    stages: Sequence[str], idle: Sequence[str], recipe: Sequence[str], ctx: PlanContext
) -> list[PlannedStep]:
    """Return the plan's steps: each stage in order, the ``deploy`` stage expanded into ``recipe``.

    ``stages`` is the strategy's whole stage list, ``idle`` those of them ``plan_stages`` finds
    nothing to do for; ``recipe`` the step names of the strategy's deploy recipe (a canary's
    ``weight_<w>`` steps in order).
    """
    idle_set = set(idle)
    weights = iter(_weight_texts(ctx))
    out: list[PlannedStep] = []
    for stage in stages:
        if stage in idle_set:
            out.append(PlannedStep(stage, None, _skip_text(stage), skipped=True))
        elif stage != "deploy":
            out.append(PlannedStep(stage, None, _stage_text(stage, ctx)))
        else:
            for name in recipe:
                if name == "await_approval" and ctx.approval_rule is None:
                    out.append(PlannedStep(stage, name, "skipped: no approval rule applies", skipped=True))
                    continue
                text = next(weights, name) if name.startswith("weight_") else step_text(name, ctx) or name
                out.append(PlannedStep(stage, name, text))
    return out
