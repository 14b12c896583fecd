"""The first stage of every chain: is this service ours to deploy, and can the strategy deploy it?
Nothing is touched on AWS either way: one DescribeServices, then the strategy's own reads.
"""

from __future__ import annotations

from typing import Any

from deploy_agent.core.controllers import decide_controller
from deploy_agent.core.outcome import Trigger
from deploy_agent.models.strategy import NativeStrategyOptions
from deploy_agent.strategies import Progress, Run, strategy_for
from deploy_agent.tasks.runtime import Runtime


def preflight(rt: Runtime, run: Run[Any]) -> Progress:
    """Refuse a service another controller owns (``rejected``); then the strategy's own checks."""
    state = run.state
    service = run.ports.ecs.describe_service(state.cluster, state.service)
    foreign = decide_controller(service, isinstance(run.request.strategy, NativeStrategyOptions))
    if foreign is not None:
        state.rejections = [foreign.as_dict()]
        run.emit("rejected", controller=foreign.controller, reason=foreign.problem)
        return run.fail("preflight_failed", f"cannot deploy this service: {foreign.problem}", Trigger.ERROR)
    # the strategy's DescribeServices is served from the reader's snapshot
    return strategy_for(state.strategy).preflight(run)
