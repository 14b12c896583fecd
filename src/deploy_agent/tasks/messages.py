"""A deployment's message as the validated model, read back from its stored state."""

from __future__ import annotations

from typing import cast

from deploy_agent.core.state import PipelineState
from deploy_agent.models.request import DeployToECSTask, ImageSpec, RollbackSpec
from deploy_agent.models.strategy import StrategyOptions
from deploy_agent.strategies import strategy_for


def request_of(state: PipelineState) -> DeployToECSTask:
    """Return the deployment's message as the validated model.

    An operator's rollback has no message: it redeploys a registered revision with rolling's
    defaults, so its model carries only what the rolling steps read (no image, nothing to build).
    """
    if state.manual_rollback:
        strategy = cast(StrategyOptions, strategy_for("rolling").options())
        return DeployToECSTask.model_construct(
            image=ImageSpec.model_construct(),  # no image: a registered revision is redeployed
            cluster_name=state.cluster,
            service_name=state.service,
            strategy=strategy,
            rollback=RollbackSpec(enabled=True),
            requested_by=state.request.get("requested_by"),
            labels=dict(state.request.get("labels") or {}),
        )
    return DeployToECSTask.model_validate(state.request)
