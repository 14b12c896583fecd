"""The ``awslogs`` log driver's check at task start: the log group must exist, or be created.

ECS's agent creates a task's log stream before its containers start; in a log group that does not
exist that fails and the task stops with ``ResourceInitializationError`` and stop code
``TaskFailedToStart`` (public reports: cn-terraform/terraform-aws-ecs-fargate-task-definition#1,
terraform-aws-modules/terraform-aws-ecs#313). With the option ``awslogs-create-group`` set to
``"true"`` the agent creates the group first (AWS: "Using the awslogs log driver", option
``awslogs-create-group``, default ``false``;
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using_awslogs.html).
moto never checks any of this; the sandbox does it against moto's own Logs backend.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from moto.backends import get_backend

MISSING_GROUP = (
    "ResourceInitializationError: failed to validate logger args: create stream has been retried 1 times: "
    "failed to create Cloudwatch log stream: ResourceNotFoundException: The specified log group does not "
    "exist. : exit status 1"
)


class AwslogsTarget(NamedTuple):
    """Where one container's awslogs driver writes: its log group and region, and whether it may create it."""

    group: str
    region: str
    create: bool


def plan_awslogs_targets(definitions: Iterable[dict[str, Any]], task_region: str) -> list[AwslogsTarget]:
    """Return the log groups the containers' ``awslogs`` drivers write to (other drivers need none)."""
    targets = []
    for definition in definitions:
        config = definition.get("logConfiguration") or {}
        options = config.get("options") or {}
        if config.get("logDriver") != "awslogs" or not options.get("awslogs-group"):
            continue
        targets.append(
            AwslogsTarget(
                group=str(options["awslogs-group"]),
                region=str(options.get("awslogs-region") or task_region),
                # The agent parses the option as a boolean: only "true" (any case) turns it on.
                create=str(options.get("awslogs-create-group", "false")).lower() == "true",
            )
        )
    return targets


def prepare_log_groups(account: str, definitions: Iterable[dict[str, Any]], task_region: str) -> str:
    """Return "" when every awslogs log group exists (creating those allowed to be), else the stop reason."""
    for target in plan_awslogs_targets(definitions, task_region):
        logs = get_backend("logs")[account][target.region]
        if target.group in logs.groups:
            continue
        if not target.create:
            return MISSING_GROUP
        try:
            logs.create_log_group(target.group, {})
        except Exception as error:  # created meanwhile by another task is fine; anything else is not
            if target.group not in logs.groups:
                return f"ResourceInitializationError: failed to create Cloudwatch log group: {error}"
    return ""
