"""What ``deploy-agent plan`` says of ECS's native strategies' steps (``strategies.ecs_native``)."""

from __future__ import annotations

from deploy_agent.core.ecs_native import HOOK_STAGES, PREFIX, TEST_POINT, NativeShape, plan_hook_points
from deploy_agent.core.plan_context import PlanContext, gates_text
from deploy_agent.models.strategy import NativeStrategyOptions


def native_step_text(name: str, ctx: PlanContext, shape: NativeShape) -> str | None:
    """Return what native step ``name`` does, or None when it is not one."""
    options = ctx.request.strategy
    if not isinstance(options, NativeStrategyOptions) or not name.startswith(PREFIX):
        return None
    step = name.removeprefix(PREFIX)
    if step == "update":
        return (
            f"UpdateService {ctx.service} with ECS's {shape.strategy}{_sizes(shape)}, bake "
            f"{shape.bake_minutes} min, one PAUSE hook at {', '.join(HOOK_STAGES)} (timeout "
            f"{shape.hook_timeout_minutes} min, then ECS rolls back by itself)"
        )
    if step == "wait":
        return "wait until ECS's service deployment is SUCCESSFUL (its bake time included)"
    points = plan_hook_points(shape)
    index = int(step.removeprefix("hook_"))
    point = points[index]
    if point == TEST_POINT:
        url = options.test_url or "no test_url: nothing to probe"
        checks = f"probe {url} through the test listener rule; wait for an approval when the policy asks"
    else:
        checks = gates_text(ctx)
    return (
        f"at the hook for {point}: {checks}; then ContinueServiceDeployment "
        "(a failed gate: StopServiceDeployment ROLLBACK)"
    )


def _sizes(shape: NativeShape) -> str:
    if shape.strategy == "LINEAR":
        return f" ({shape.step_percent:g}% steps, {shape.step_bake_minutes} min each)"
    if shape.strategy == "CANARY":
        return f" ({shape.canary_percent:g}% canary for {shape.canary_bake_minutes} min)"
    return ""
