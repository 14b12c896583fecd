"""The first stage of every chain: is this service ours to deploy, and (traffic strategies) is its
load-balancer setup usable? Nothing is touched on AWS either way: one DescribeServices, and the
traffic strategies' ELB and CloudWatch reads.
"""

from __future__ import annotations

from deploy_agent.core.controllers import decide_controller
from deploy_agent.core.outcome import Trigger
from deploy_agent.strategies import Progress, Run, traffic
from deploy_agent.tasks.runtime import Runtime


def preflight(rt: Runtime, run: Run) -> Progress:
    """Refuse a service another controller owns (``rejected``); then the strategy's own checks."""
    state = run.state
    service = run.ecs.describe_service(state.cluster, state.service)
    foreign = decide_controller(service)
    if foreign is not None:
        state.rejections = [foreign.as_dict()]
        state.fail("preflight_failed", f"cannot deploy this service: {foreign.problem}", Trigger.ERROR)
        run.emit("rejected", controller=foreign.controller, reason=foreign.problem)
        return Progress.finished()
    if (state.request.get("strategy") or {}).get("load_balancer"):
        return traffic.preflight(run)  # its DescribeServices is served from the reader's snapshot
    return Progress.finished()
