"""Blue-green: the new release starts beside the old one, takes all traffic at once, then settles home.

Recipe (the seed's flow with its gap closed; each step returns early while it is not finished):

1. preflight (own stage): the listener and both target groups exist and fit; nothing is touched otherwise;
2. create the green service on the new task definition, in the green target group;
3. wait until green's tasks are running and its targets healthy;
4. verify green through the test listener (when given); then, when the operator's policy asks for
   it, wait for a human's approval (``strategies.approval``; denied: green deleted, nothing moved);
5. move the listener to green; bake (``bake_seconds``) with health and alarm gates, blue kept ready
   for an instant switch back;
6. update the original (blue) service to the new task definition and wait;
7. move the listener back to blue (its exact original actions);
8. delete green, which no longer receives traffic (the seed deleted it while the listener still
   pointed at it, dropping requests).

Any failure is undone in reverse: listener restored, blue reverted if it was updated, green deleted.
"""

from __future__ import annotations

from typing import ClassVar

from deploy_agent.strategies import traffic
from deploy_agent.strategies.approval import await_approval
from deploy_agent.strategies.base import Progress, Run, register_strategy

STAGES = ["preflight", "build", "push", "register", "deploy", "healthcheck", "rollback", "finalize"]


def _to_green(run: Run) -> Progress:
    # Keyed on the flag written after the call: a crash before it repeats the (idempotent) shift.
    if not run.state.strategy_state.get("shifted:to green"):
        lb = traffic.load_balancer(run)
        traffic.shift_traffic(
            run, {lb["blue_target_group_arn"]: 0, lb["green_target_group_arn"]: 100}, "to green"
        )
    return Progress.finished()


def _bake(run: Run) -> Progress:
    seconds = float((run.request.get("strategy") or {}).get("bake_seconds") or 0)
    return traffic.gate_pause(run, seconds, "bake")


STEPS: list[traffic.Step] = [
    ("create_green", traffic.create_temp_service("green")),
    ("wait_green", traffic.wait_temp_service),
    ("verify_green", traffic.verify_temp_service),
    ("await_approval", await_approval),
    ("shift_to_green", _to_green),
    ("bake", _bake),
    ("update_blue", traffic.update_original_service),
    ("shift_to_blue", traffic.restore_listener),
    ("delete_green", traffic.delete_temp_service),
]


@register_strategy
class BlueGreenStrategy:
    name: ClassVar[str] = "blue_green"

    def stages(self) -> list[str]:
        return list(STAGES)

    def deploy(self, run: Run) -> Progress:
        return traffic.run_recipe(run, STEPS)

    def rollback(self, run: Run) -> Progress:
        return traffic.undo(run)
