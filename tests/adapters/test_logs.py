"""LogsApi against a moto server over real HTTP."""

from __future__ import annotations

import pytest

from deploy_agent.adapters.aws import AwsClients
from deploy_agent.adapters.logs import LogsApi

pytestmark = pytest.mark.integration


def test_ensure_creates_once_and_then_finds_the_group(aws: AwsClients) -> None:
    """The first call creates the group; the second meets ResourceAlreadyExists and is fine."""
    logs = LogsApi(aws)
    assert logs.ensure_log_group("/ecs/web") is True
    assert logs.ensure_log_group("/ecs/web") is False
    names = [g["logGroupName"] for g in aws.client("logs").describe_log_groups()["logGroups"]]
    assert names == ["/ecs/web"]


def test_exists_matches_the_exact_name_not_a_prefix(aws: AwsClients) -> None:
    """A group named like a longer one is not taken for it."""
    aws.client("logs").create_log_group(logGroupName="/ecs/web-long")
    logs = LogsApi(aws)
    assert logs.log_group_exists("/ecs/web-long") is True
    assert logs.log_group_exists("/ecs/web") is False
