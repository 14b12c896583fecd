"""The dry-run plan's step texts: what each stage and step of the strategy would do. Pure.

``deploy-agent plan`` (``tasks/plan.py``) reads the service and its task definition, then asks this
module (and ``core.taskdef_diff`` for the revision's diff) what each stage and step would do. The
step *names* come from the strategies themselves (their stage lists and recipes), so a plan cannot
drift from what a deployment does; a step this module has no text for is shown by its name and
fails ``tests/core/test_plan.py``. The message is read as the validated model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from deploy_agent.core.ecs_native import NativeShape
from deploy_agent.core.plan_context import PlanContext, PlannedStep, gates_text, load_balancer_of, option_of
from deploy_agent.core.plan_native import native_step_text
from deploy_agent.models.strategy import NativeStrategyOptions


def _count(ctx: PlanContext) -> str:
    return (
        f"{ctx.desired_count} task{'s' if ctx.desired_count != 1 else ''}" if ctx.desired_count else "tasks"
    )


def _setting(value: Any, current: Any, what: str) -> str:
    if value is not None:
        return f"{what} {value}"
    return f"{what} kept ({'service default' if current is None else current})"


def _update_service(ctx: PlanContext) -> str:
    cfg = ctx.service_config
    breaker_now: Mapping[str, Any] = cfg.get("deploymentCircuitBreaker") or {}
    enable = option_of(ctx, "circuit_breaker")
    rollback = option_of(ctx, "circuit_breaker_rollback")
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
        _setting(ctx.request.desired_count, ctx.desired_count, "desired count"),
        _setting(option_of(ctx, "maximum_percent"), cfg.get("maximumPercent"), "maximumPercent"),
        _setting(
            option_of(ctx, "minimum_healthy_percent"),
            cfg.get("minimumHealthyPercent"),
            "minimumHealthyPercent",
        ),
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
            f"in target group {_green(ctx)}"
        )

    return text


def _wait_temp(ctx: PlanContext) -> str:
    return f"wait until {ctx.temp_service}'s deployment is COMPLETED (its circuit breaker fails it)"


def _green(ctx: PlanContext) -> str | None:
    lb = load_balancer_of(ctx)
    return lb.green_target_group_arn if lb is not None else None


def _verify_temp(ctx: PlanContext) -> str:
    lb = load_balancer_of(ctx)
    n = ctx.desired_count
    healthy = f"{n} target{' is' if n == 1 else 's are'}" if n else "its targets are"
    text = f"wait until {healthy} healthy in target group {_green(ctx)}"
    if lb is not None and lb.test_url:
        text += f", then probe the test URL {lb.test_url} until healthy"
    return text


def _to_green(ctx: PlanContext) -> str:
    lb = load_balancer_of(ctx)
    assert lb is not None
    return (
        f"move listener {lb.listener_arn} to green: {lb.blue_target_group_arn} 0%, "
        f"{lb.green_target_group_arn} 100% (rules forwarding to blue move too)"
    )


def _bake(ctx: PlanContext) -> str:
    seconds = int(option_of(ctx, "bake_seconds") or 0)
    return f"bake {seconds} s while the gates pass: {gates_text(ctx)}"


def _update_original(ctx: PlanContext) -> str:
    return f"update {ctx.service} to the new revision and wait until its deployment is COMPLETED"


def _restore(ctx: PlanContext) -> str:
    lb = load_balancer_of(ctx)
    listener = lb.listener_arn if lb is not None else None
    return f"move listener {listener} back to {ctx.service} (its original actions)"


def _delete_temp(ctx: PlanContext) -> str:
    return f"delete {ctx.temp_service}, which no longer receives traffic"


#: what each recipe step does, by the step name the strategies use (rolling's two halves of
#: ``update_and_follow`` are named here: ``update_service`` and ``wait_rollout``)
STEP_TEXTS: dict[str, Any] = {
    "await_approval": _await_approval,
    "update_service": _update_service,
    "wait_rollout": _wait_rollout,
    "shift_to_green": _to_green,
    "bake": _bake,
    "update_blue": _update_original,
    "shift_to_blue": _restore,
    "promote": _update_original,
    "restore_listener": _restore,
}


def _weight_texts(ctx: PlanContext) -> list[str]:
    lb = load_balancer_of(ctx)
    listener = lb.listener_arn if lb is not None else None
    return [
        f"weight listener {listener}: {ctx.service} {100 - weight}%, new release {weight}%; "
        f"hold {pause} s while the gates pass: {gates_text(ctx)}"
        for weight, pause in ctx.weights
    ]


#: the temporary service's steps, by prefix: ``create_green``, ``wait_canary``, ``delete_linear`` ...
TEMP_STEP_TEXTS: dict[str, Any] = {
    "create_": lambda kind: _create_temp(kind),
    "wait_": lambda _kind: _wait_temp,
    "verify_": lambda _kind: _verify_temp,
    "delete_": lambda _kind: _delete_temp,
}


def native_shape_of(ctx: PlanContext) -> NativeShape | None:
    """ECS's native deployment the message asks for, or None for our own strategies."""
    options = ctx.request.strategy
    return options.native_shape() if isinstance(options, NativeStrategyOptions) else None


def step_text(name: str, ctx: PlanContext) -> str | None:
    """Return what recipe step ``name`` would do, or None when this module does not know it."""
    native = native_shape_of(ctx)
    if native is not None:
        return native_step_text(name, ctx, native)
    text = STEP_TEXTS.get(name)
    if text is None:
        prefix = next((p for p in TEMP_STEP_TEXTS if name.startswith(p) and name != "wait_rollout"), None)
        if prefix is None:
            return None
        text = TEMP_STEP_TEXTS[prefix](name.removeprefix(prefix))
    return str(text(ctx))


def _stage_text(stage: str, ctx: PlanContext) -> str:
    request, lb = ctx.request, load_balancer_of(ctx)
    if stage == "preflight" and native_shape_of(ctx) is not None:
        return (
            f"check that {ctx.service}'s load balancer has ECS's advancedConfiguration (alternate target "
            "group, production listener rule, role) and that what it names exists"
        )
    if stage == "rollback" and native_shape_of(ctx) is not None:
        return "only on failure: StopServiceDeployment ROLLBACK and wait until ROLLBACK_SUCCESSFUL"
    if stage == "preflight":
        text = f"check that {ctx.service} is ours to deploy (ECS rolling controller)"
        if lb is not None:
            text += (
                f"; check listener {lb.listener_arn}, target groups "
                f"{lb.blue_target_group_arn} (blue) and {lb.green_target_group_arn} (green)"
            )
        return text
    if stage == "build":
        build = request.build
        assert build is not None
        return f"build {build.context}/{build.dockerfile} as {ctx.image}"
    if stage == "push":
        create = request.ecr.create_repository
        return f"push to ECR repository {request.image.repository}" + (
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
        h = request.health_check
        assert h is not None
        return (
            f"probe {h.url} until {h.healthy_threshold} in a row answer "
            f"{h.expected_status}; {h.unhealthy_threshold} failures in a row fail it"
        )
    if stage == "rollback":
        if not request.rollback.enabled and lb is None:
            return "only on failure: nothing (rollback.enabled is false)"
        if lb is not None:
            return (
                "only on failure: restore the listener, put the original service back if it was updated, "
                "delete the temporary service"
            )
        return "only on failure: put the previous revision back (UpdateService) and wait until settled"
    if stage == "finalize":
        return "after a failure collect diagnostics; write the result, release the service's lock"
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
