"""An ordered recipe of named steps, resumed from the step its memory names.

Argo Rollouts' reading order: each step returns early while it is not finished or when it failed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from deploy_agent.core.outcome import Trigger
from deploy_agent.models.strategy import LoadBalancerSpec, TrafficStrategyOptions
from deploy_agent.strategies.base import Progress, Run
from deploy_agent.strategies.steps.memory import RecipeMemory
from deploy_agent.strategies.steps.service_update import deadline_message

Step = tuple[str, Callable[[Run[Any]], Progress]]


def run_recipe(run: Run[RecipeMemory], steps: Sequence[Step]) -> Progress:
    """Advance the recipe from its saved step; stop at the first step that waits or fails."""
    memory = run.memory
    while memory.step < len(steps):
        name, step = steps[memory.step]
        if run.state.past_deadline(run.now()):
            return run.fail("deadline_exceeded", deadline_message(run.state), Trigger.DEADLINE)
        progress = step(run)
        if run.state.failure is not None:
            memory.failed_step = name
            return Progress.finished()
        if not progress.done:
            return progress
        memory.step += 1
        run.emit("step_finished", step=name)
    return Progress.finished()


def traffic_options(run: Run[Any]) -> TrafficStrategyOptions:
    """Return the message's options of a traffic strategy (they carry the load balancer)."""
    options = run.request.strategy
    if not isinstance(options, TrafficStrategyOptions):
        raise TypeError(f"strategy {options.type!r} moves no traffic with a listener")
    return options


def load_balancer(run: Run[Any]) -> LoadBalancerSpec:
    return traffic_options(run).load_balancer
