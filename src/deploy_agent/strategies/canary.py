"""Canary: the new release takes a growing share of traffic, step by step, behind gates.

Recipe:

1. preflight (own stage), then create the canary service in the green target group and wait for it;
2. verify it through the test listener (when given); then, when the operator's policy asks for it,
   wait for a human's approval before any production traffic reaches it (``strategies.approval``);
3. for each step: weight the listener (stable 100-w, canary w), then hold ``pause_seconds`` while the
   gates pass: the HTTP health check (status, latency) and the CloudWatch alarms of ``rollback``;
4. promote: update the original service to the new task definition and wait;
5. restore the listener to its original actions (all traffic to the original, now new, service);
6. delete the canary service.

A failed gate restores the listener (canary weight 0), deletes the canary and reports the step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from deploy_agent.core.traffic import forward_weights_for, plan_canary_weights
from deploy_agent.strategies import traffic
from deploy_agent.strategies.approval import await_approval
from deploy_agent.strategies.base import Progress, Run, register_strategy

STAGES = ["preflight", "build", "push", "register", "deploy", "healthcheck", "rollback", "finalize"]


def _weight_step(index: int, weight: int, pause: int) -> Callable[[Run], Progress]:
    label = f"step {index + 1} ({weight}%)"

    def step(run: Run) -> Progress:
        ss = run.state.strategy_state
        if ss.get("weight_set") != index:
            lb = traffic.load_balancer(run)
            weights = forward_weights_for(lb["blue_target_group_arn"], lb["green_target_group_arn"], weight)
            traffic.shift_traffic(run, weights, label)
            ss["weight_set"] = index
            ss["canary_weight"] = weight
        return traffic.gate_pause(run, float(pause), label)

    return step


def steps_for(request: dict[str, Any]) -> list[traffic.Step]:
    """Return the canary recipe for a message: fixed head, one step per weight, fixed tail."""
    strategy = request.get("strategy") or {}
    plans = plan_canary_weights(
        [(int(s["weight"]), int(s.get("pause_seconds", 0))) for s in strategy["steps"]]
    )
    weights: list[traffic.Step] = [
        (f"weight_{p.weight}", _weight_step(p.index, p.weight, p.pause_seconds)) for p in plans
    ]
    return [
        ("create_canary", traffic.create_temp_service("canary")),
        ("wait_canary", traffic.wait_temp_service),
        ("verify_canary", traffic.verify_temp_service),
        ("await_approval", await_approval),
        *weights,
        ("promote", traffic.update_original_service),
        ("restore_listener", traffic.restore_listener),
        ("delete_canary", traffic.delete_temp_service),
    ]


@register_strategy
class CanaryStrategy:
    name: ClassVar[str] = "canary"

    def stages(self) -> list[str]:
        return list(STAGES)

    def deploy(self, run: Run) -> Progress:
        return traffic.run_recipe(run, steps_for(run.request))

    def rollback(self, run: Run) -> Progress:
        return traffic.undo(run)
