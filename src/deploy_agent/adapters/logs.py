"""CloudWatch Logs: the log groups the tasks' awslogs driver writes to.

A task whose awslogs group does not exist stops with ResourceInitializationError ("failed to
validate logger args: ... The specified log group does not exist"; cn-terraform/
terraform-aws-ecs-fargate-task-definition#1, terraform-aws-modules/terraform-aws-ecs#313), unless
``awslogs-create-group`` is "true" and the execution role may create it.
"""

from __future__ import annotations

from deploy_agent.adapters.aws import AwsClients, call
from deploy_agent.core.errors import AwsError


class LogsApi:
    """One method per CloudWatch Logs call the register stage makes."""

    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    def ensure_log_group(self, name: str) -> bool:
        """Return True when this call created the group, False when it existed already.

        CreateLogGroup answers ResourceAlreadyExistsException for an existing group: that is the
        outcome we want, so it is not an error (two deployments may race to create it).
        """
        try:
            call(self._clients.client("logs").create_log_group, logGroupName=name)
        except AwsError as exc:
            if exc.code == "ResourceAlreadyExistsException":
                return False
            raise
        return True

    def log_group_exists(self, name: str) -> bool:
        """Return whether the log group exists (DescribeLogGroups by prefix, exact name matched)."""
        logs = self._clients.client("logs")
        token: str | None = None
        while True:
            kwargs: dict[str, object] = {"logGroupNamePrefix": name}
            if token:
                kwargs["nextToken"] = token
            response = call(logs.describe_log_groups, **kwargs)
            if any(group.get("logGroupName") == name for group in response.get("logGroups", [])):
                return True
            token = response.get("nextToken")
            if not token:
                return False
