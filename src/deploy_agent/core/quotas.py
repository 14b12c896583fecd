"""AWS API request quotas: which token bucket a call draws on, and the operator's overrides.

AWS throttles per account and Region with token buckets: a bucket holds at most ``burst`` tokens,
gets ``per_second`` back every second, and each request (each HTTP attempt, retries included)
takes one. Several operations can share one bucket: ECS names buckets by action group ("cluster
read actions, such as DescribeClusters"), ELB has one bucket for all its non-mutating ``Describe*``
actions. So a call maps to a *bucket*, not to its operation::

    ecs   DescribeServices          -> "ecs:service_read"      (shared with ListServices, ...)
    elbv2 DescribeTargetHealth      -> "elbv2:describe"        (every Describe*)
    ecr   DescribeImages            -> "ecr:DescribeImages"    (no table: one bucket per operation)

An override naming an operation (``ecs:DescribeServices``) gives that operation a bucket of its
own; one naming a group (``ecs:service_read``) changes the shared bucket; ``*`` changes the default
of services without a table. Every quota is then scaled by the fleet's share of the account.

Sources (the numbers are the ones ``ecs_sandbox.quotas`` encodes, copied, not imported):
docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html confirms the model and
the 50-token cluster-read bucket; the other ECS figures are the ones quoted publicly and are NOT
confirmed from AWS's own table: service/task reads 100 burst / 20 per s (prometheus
discovery/aws/ecs.go), RegisterTaskDefinition 20 / 1 per s (aws-actions/amazon-ecs-deploy-task-
definition#502), service writes 50 / 5 per s (an estimate: lower than reads).
docs.aws.amazon.com/elasticloadbalancing/latest/userguide/elb-api-throttling.html confirms the ELB
v2 non-mutating bucket (40 tokens, 10 per s); registration 20 / 4 and other writes 20 / 3 per s are
NOT confirmed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass


class QuotaError(ValueError):
    """An operator's quota override that cannot be read."""


@dataclass(frozen=True)
class Quota:
    """A token bucket's size: ``per_second`` tokens back every second, ``burst`` tokens at most."""

    per_second: float
    burst: float


@dataclass(frozen=True)
class Bucket:
    """The bucket a call draws on: its name (``ecs:service_read``) and its quota for this fleet."""

    name: str
    quota: Quota


#: services without a table of their own, one bucket per operation; an estimate like ECS's "other"
DEFAULT_QUOTA = Quota(per_second=20, burst=50)
#: the override key that replaces DEFAULT_QUOTA
DEFAULT_KEY = "*"

_ECS_GROUPS: dict[str, tuple[str, ...]] = {
    "cluster_read": ("DescribeClusters", "ListClusters"),
    "service_read": ("DescribeServices", "ListServices", "ListServicesByNamespace"),
    "task_read": ("DescribeTasks", "ListTasks"),
    "task_definition_read": ("DescribeTaskDefinition", "ListTaskDefinitions", "ListTaskDefinitionFamilies"),
    "task_definition_write": ("RegisterTaskDefinition", "DeregisterTaskDefinition", "DeleteTaskDefinitions"),
    "service_write": ("CreateService", "UpdateService", "DeleteService"),
}
_ECS_QUOTAS: dict[str, Quota] = {
    "cluster_read": Quota(20, 50),  # burst confirmed; refill unconfirmed
    "service_read": Quota(20, 100),
    "task_read": Quota(20, 100),
    "task_definition_read": Quota(20, 100),  # unconfirmed: assumed like the other reads
    "task_definition_write": Quota(1, 20),
    "service_write": Quota(5, 50),  # unconfirmed estimate
    "other": Quota(20, 50),  # unconfirmed: every other ECS action
}
_ELBV2_QUOTAS: dict[str, Quota] = {
    "describe": Quota(10, 40),  # confirmed
    "registration": Quota(4, 20),  # unconfirmed
    "mutating": Quota(3, 20),  # unconfirmed
}

#: every bucket the tables name, e.g. "ecs:service_read" -> Quota(20, 100)
TABLE: dict[str, Quota] = {
    **{f"ecs:{group}": quota for group, quota in _ECS_QUOTAS.items()},
    **{f"elbv2:{kind}": quota for kind, quota in _ELBV2_QUOTAS.items()},
}

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_QUOTA_TEXT = re.compile(rf"^\s*{_NUMBER}\s*(?:/\s*{_NUMBER}\s*)?$")
_KEY = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9_]+$")


def group_of(service: str, operation: str) -> str | None:
    """Return the table's bucket name a call draws on (``ecs:service_read``), or None without a table."""
    if service == "ecs":
        group = next((g for g, ops in _ECS_GROUPS.items() if operation in ops), "other")
        return f"ecs:{group}"
    if service == "elbv2":
        if operation.startswith("Describe"):
            return "elbv2:describe"
        if operation in ("RegisterTargets", "DeregisterTargets"):
            return "elbv2:registration"
        return "elbv2:mutating"
    return None


def parse_quota(value: str | float) -> Quota:
    """Return the quota an override states: ``"20/100"`` (per second / burst) or ``20`` (burst 20 too)."""
    if isinstance(value, bool):
        raise QuotaError(f"quota {value!r}: expected 'PER_SECOND/BURST' or a number")
    if isinstance(value, int | float):
        per_second, burst = float(value), float(value)
    else:
        found = _QUOTA_TEXT.match(value)
        if found is None:
            raise QuotaError(f"quota {value!r}: expected 'PER_SECOND/BURST' (e.g. '20/100') or a number")
        per_second = float(found.group(1))
        burst = float(found.group(2)) if found.group(2) is not None else per_second
    if not (math.isfinite(per_second) and per_second > 0):
        raise QuotaError(f"quota {value!r}: the rate per second must be above 0")
    if not (math.isfinite(burst) and burst >= 1):
        raise QuotaError(f"quota {value!r}: the burst must be at least 1 (one call)")
    return Quota(per_second=per_second, burst=burst)


def parse_overrides(raw: Mapping[str, str | float]) -> dict[str, Quota]:
    """Return the operator's overrides by key (``ecs:DescribeServices``, ``ecs:service_read``, ``*``)."""
    parsed: dict[str, Quota] = {}
    for key, value in raw.items():
        if key != DEFAULT_KEY and not _KEY.match(key):
            raise QuotaError(
                f"quota key {key!r}: expected 'SERVICE:Operation' (ecs:DescribeServices), "
                f"'SERVICE:group' (ecs:service_read) or '{DEFAULT_KEY}'"
            )
        parsed[key] = parse_quota(value)
    return parsed


def check_overrides(raw: dict[str, str | float]) -> dict[str, str | float]:
    """Return ``raw`` unchanged once it parses (raises QuotaError, a ValueError, when it does not)."""
    parse_overrides(raw)
    return raw


def scale(quota: Quota, share: float) -> Quota:
    """Return the part of an account's quota a fleet with ``share`` of it may use (a burst of 1 at least)."""
    if not (0 < share <= 1):
        raise QuotaError(f"share {share!r}: expected a fraction in (0, 1]")
    return Quota(per_second=quota.per_second * share, burst=max(1.0, quota.burst * share))


def choose_bucket(
    service: str, operation: str, overrides: Mapping[str, Quota] | None = None, share: float = 1.0
) -> Bucket:
    """Return the bucket a call to ``service``/``operation`` (boto3 names) takes its token from."""
    overrides = overrides or {}
    own = f"{service}:{operation}"
    if own in overrides:
        return Bucket(own, scale(overrides[own], share))
    group = group_of(service, operation)
    if group is not None:
        return Bucket(group, scale(overrides.get(group, TABLE[group]), share))
    return Bucket(own, scale(overrides.get(DEFAULT_KEY, DEFAULT_QUOTA), share))
