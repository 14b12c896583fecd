"""Rolling back to a revision ECS has deregistered: register it again, or refuse before any change.

UpdateService cannot point a service at an INACTIVE revision (DeregisterTaskDefinition API doc:
"you can't ... update an existing service to reference an INACTIVE task definition revision"). An
INACTIVE revision stays describable, so its definition is registered again as a new revision of its
family; when ECS no longer has it (deleted revisions, DeleteTaskDefinitions), the definition the
release ledger stored for that release is used. Without either the rollback fails with a clear
error before any UpdateService, never half done.
"""

from __future__ import annotations

from typing import Any

from deploy_agent.adapters.redis_store import ReleaseLedger
from deploy_agent.core.errors import AwsNotFound, RolloutFailed
from deploy_agent.core.taskdef import image_of, plan_task_definition

#: tag on a revision registered again for a rollback, naming the one it restores
RESTORED_TAG = "deploy-agent:restored-from"


def usable_revision(ecs: Any, ledger: ReleaseLedger, cluster: str, service: str, arn: str) -> str:
    """Return ``arn`` when UpdateService may use it, else the ARN of a fresh copy of it.

    ``ecs`` is the ECS adapter (fenced: the registration is a mutating call); raises
    ``RolloutFailed`` when the revision is gone and the ledger holds no definition of it.
    """
    try:
        described: dict[str, Any] | None = ecs.describe_task_definition(arn)
    except AwsNotFound:
        described = None
    if described is not None and str(described.get("status") or "ACTIVE") == "ACTIVE":
        return arn
    kwargs = (
        register_kwargs_of(described)
        if described is not None
        else ledger.definition_of(cluster, service, arn)
    )
    if kwargs is None:
        raise RolloutFailed(
            f"cannot roll back to {arn}: ECS has deregistered it and the release ledger holds no copy "
            "of its definition; register it again (or name another revision) and retry"
        )
    tags = [t for t in kwargs.get("tags") or [] if t.get("key") != RESTORED_TAG]
    kwargs["tags"] = [*tags, {"key": RESTORED_TAG, "value": arn}]
    registered = ecs.register_task_definition(kwargs)
    new_arn = str(registered["taskDefinitionArn"])
    ledger.remember_registered(str(registered.get("family") or kwargs.get("family")), new_arn)
    return new_arn


def register_kwargs_of(described: dict[str, Any]) -> dict[str, Any]:
    """Return RegisterTaskDefinition kwargs that make a copy of a described revision."""
    return plan_task_definition(described, image_of(described))
