"""Blue-green: the new release starts beside the old one, takes all traffic at once, then settles home.

Recipe (the seed's flow with its gap closed; each step returns early while it is not finished):

1. preflight (own stage): the listener and both target groups exist and fit; nothing is touched otherwise;
2. create the green service on the new task definition, in the green target group;
3. wait until green's tasks are running and its targets healthy;
4. verify green through the test listener (when given); then, when the operator's policy asks for
   it, wait for a human's approval (``steps.approval``; denied: green deleted, nothing moved);
5. move the listener to green; bake (``bake_seconds``) with health and alarm gates, blue kept ready
   for an instant switch back;
6. update the original (blue) service to the new task definition and wait;
7. move the listener back to blue (its exact original actions);
8. delete green, which no longer receives traffic (the seed deleted it while the listener still
   pointed at it, dropping requests).

Any failure is undone in reverse: listener restored, blue reverted if it was updated, green deleted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from deploy_agent.models.strategy import TrafficStrategyOptions
from deploy_agent.strategies.base import Progress, Run
from deploy_agent.strategies.registry import register
from deploy_agent.strategies.steps.approval import await_approval
from deploy_agent.strategies.steps.gates import hold_gates
from deploy_agent.strategies.steps.listener import restore_listener, shift_traffic
from deploy_agent.strategies.steps.memory import TrafficMemory
from deploy_agent.strategies.steps.recipe import Step, load_balancer
from deploy_agent.strategies.steps.temp_service import (
    create_temp_service,
    delete_temp_service,
    verify_temp_service,
    wait_temp_service,
)
from deploy_agent.strategies.steps.traffic import ListenerDriven, update_original_service

if TYPE_CHECKING:
    from deploy_agent.models.request import DeployToECSTask


class BlueGreenStrategy(TrafficStrategyOptions):
    """Start the new tasks beside the old, then move all traffic at once and bake."""

    type: Literal["blue_green"] = "blue_green"
    bake_seconds: int = Field(default=0, ge=0, le=86_400)


def _to_green(run: Run[TrafficMemory]) -> Progress:
    lb = load_balancer(run)
    return shift_traffic(run, {lb.blue_target_group_arn: 0, lb.green_target_group_arn: 100}, "to green")


def _bake(run: Run[TrafficMemory]) -> Progress:
    options = run.request.strategy
    seconds = options.bake_seconds if isinstance(options, BlueGreenStrategy) else 0
    return hold_gates(run, "bake", float(seconds))


STEPS: list[Step] = [
    ("create_green", create_temp_service("green")),
    ("wait_green", wait_temp_service),
    ("verify_green", verify_temp_service),
    ("await_approval", await_approval),
    ("shift_to_green", _to_green),
    ("bake", _bake),
    ("update_blue", update_original_service),
    ("shift_to_blue", restore_listener),
    ("delete_green", delete_temp_service),
]


class BlueGreen(ListenerDriven):
    name: ClassVar[str] = "blue_green"
    options: ClassVar[type[BlueGreenStrategy]] = BlueGreenStrategy

    def steps(self, request: DeployToECSTask) -> list[Step]:
        return STEPS


register(BlueGreen)
