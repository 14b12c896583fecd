"""Promotion and undoing for the listener-driven strategies, and the weighted recipe canary and
linear share: a temporary service takes a growing share of the listener's traffic behind gates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from deploy_agent.core.outcome import Trigger
from deploy_agent.core.traffic import CanaryStepPlan, forward_weights_for
from deploy_agent.strategies.base import Progress, Run
from deploy_agent.strategies.registry import PIPELINE_ORDER
from deploy_agent.strategies.steps.approval import await_approval
from deploy_agent.strategies.steps.gates import hold_gates
from deploy_agent.strategies.steps.listener import restore_listener, shift_traffic
from deploy_agent.strategies.steps.memory import TrafficMemory
from deploy_agent.strategies.steps.recipe import Step, load_balancer, run_recipe
from deploy_agent.strategies.steps.service_update import RolloutSettings, revert_service, update_and_follow
from deploy_agent.strategies.steps.temp_service import (
    check_traffic_setup,
    create_temp_service,
    delete_temp_service,
    verify_temp_service,
    wait_temp_service,
)

if TYPE_CHECKING:
    from deploy_agent.models.request import DeployToECSTask


def update_original_service(run: Run[TrafficMemory]) -> Progress:
    """Roll the original service onto the new task definition and follow it (rolling's steps)."""
    run.memory.original_updated = True
    return update_and_follow(run, RolloutSettings())


def undo(run: Run[TrafficMemory]) -> Progress:
    """Return everything to the state before the deployment: listener, original service, temp service."""
    memory, state = run.memory, run.state
    if not (memory.temp_created or memory.listener_changed or memory.original_updated):
        return Progress.skip()
    if not memory.undo_started:
        memory.undo_started = True
        run.emit("rollback_started", trigger=str(state.failure.trigger) if state.failure else None)
    restored = restore_listener(run)
    if not restored.done:
        return restored
    enabled = run.request.rollback.enabled
    if memory.original_updated and enabled:
        progress = revert_service(run)
        if not progress.done:
            return progress
    delete_temp_service(run)
    reverted = not memory.original_updated or (enabled and state.rollback_done)
    if reverted and not state.rollback_failed:
        state.rollback_requested = True
        state.rollback_done = True
    run.emit("rollback_finished", reverted=reverted)
    return Progress.finished()


def weight_step(plan: CanaryStepPlan) -> Step:
    """Return the step that puts ``plan.weight`` percent on the new release and holds it behind gates."""
    label = f"step {plan.index + 1} ({plan.weight}%)"

    def step(run: Run[TrafficMemory]) -> Progress:
        memory = run.memory
        if memory.weight_step != plan.index:
            lb = load_balancer(run)
            weights = forward_weights_for(lb.blue_target_group_arn, lb.green_target_group_arn, plan.weight)
            shifted = shift_traffic(run, weights, label)
            if not shifted.done or run.state.failure is not None:
                return shifted
            memory.weight_step, memory.weight = plan.index, plan.weight
        return hold_gates(run, label, float(plan.pause_seconds))

    return f"weight_{plan.weight}", step


def weighted_recipe(kind: str, plans: Sequence[CanaryStepPlan]) -> list[Step]:
    """Return the recipe of a weighted strategy: fixed head, one step per weight, fixed tail.

    1. create the ``kind`` service in the green target group and wait for it;
    2. verify it (target health, the test listener when given); wait for a human's approval when
       the operator's policy asks for one, before any production traffic reaches it;
    3. per step: weight the listener (stable 100-w, new w), then hold the pause behind the gates;
    4. promote: update the original service to the new task definition and wait;
    5. restore the listener's original actions (all traffic to the original, now new, service);
    6. delete the temporary service.
    """
    return [
        (f"create_{kind}", create_temp_service(kind)),
        (f"wait_{kind}", wait_temp_service),
        (f"verify_{kind}", verify_temp_service),
        ("await_approval", await_approval),
        *[weight_step(plan) for plan in plans],
        ("promote", update_original_service),
        ("restore_listener", restore_listener),
        (f"delete_{kind}", delete_temp_service),
    ]


class ListenerDriven:
    """What blue-green, canary and linear share: their stages, memory, preflight and undoing.

    A subclass names itself, its options model and its ``steps`` for a message.
    """

    memory: ClassVar[type[TrafficMemory]] = TrafficMemory
    stages: ClassVar[tuple[str, ...]] = PIPELINE_ORDER
    triggers: ClassVar[tuple[Trigger, ...]] = (
        Trigger.HEALTH_CHECK,
        Trigger.ALARM,
        Trigger.ANALYSIS,
        Trigger.CIRCUIT_BREAKER,
        Trigger.DEADLINE,
        Trigger.ERROR,
    )

    def steps(self, request: DeployToECSTask) -> list[Step]:
        raise NotImplementedError

    def weights(self, request: DeployToECSTask) -> list[CanaryStepPlan]:
        return []

    def preflight(self, run: Run[TrafficMemory]) -> Progress:
        return check_traffic_setup(run)

    def deploy(self, run: Run[TrafficMemory]) -> Progress:
        return run_recipe(run, self.steps(run.request))

    def rollback(self, run: Run[TrafficMemory]) -> Progress:
        return undo(run)

    def recipe(self, request: DeployToECSTask) -> list[str]:
        return [name for name, _ in self.steps(request)]
