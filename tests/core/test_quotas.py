"""Which AWS quota bucket a call draws on, and how the operator's overrides read, as tables."""

from __future__ import annotations

import pytest

from deploy_agent.core.quotas import (
    DEFAULT_QUOTA,
    TABLE,
    Bucket,
    Quota,
    QuotaError,
    choose_bucket,
    parse_overrides,
    parse_quota,
    scale,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20/100", Quota(20, 100)),
        (" 4 / 4 ", Quota(4, 4)),
        ("0.5/10", Quota(0.5, 10)),
        ("7", Quota(7, 7)),
        (12, Quota(12, 12)),
        (2.5, Quota(2.5, 2.5)),
        (".5/1", Quota(0.5, 1)),
    ],
    ids=[
        "rate and burst are read in that order",
        "spaces around the numbers are allowed",
        "a rate below one per second is allowed",
        "a lone rate in text is its own burst",
        "an integer is a rate with the same burst",
        "a float is a rate with the same burst",
        "a number may start with its decimal point",
    ],
)
def test_parse_quota_reads(text: str | float, expected: Quota) -> None:
    assert parse_quota(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "fast", "20/", "/100", "0/10", "20/0.5", "-1/10", "20/100/3", True, 0, float("inf"), float("nan")],
    ids=[
        "empty text is refused",
        "a word is refused",
        "a missing burst after the slash is refused",
        "a missing rate is refused",
        "a rate of zero would block forever and is refused",
        "a burst below one call is refused",
        "a negative rate is refused",
        "three numbers are refused",
        "a boolean is not a number here",
        "the number zero is refused",
        "an infinite rate is refused",
        "not a number is refused",
    ],
)
def test_parse_quota_refuses(text: str | float) -> None:
    with pytest.raises(QuotaError):
        parse_quota(text)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, {}),
        ({"ecs:DescribeServices": "4/4"}, {"ecs:DescribeServices": Quota(4, 4)}),
        ({"ecs:service_read": 10, "*": "5/10"}, {"ecs:service_read": Quota(10, 10), "*": Quota(5, 10)}),
    ],
    ids=["no overrides", "an operation", "a group and the default"],
)
def test_parse_overrides_reads(raw: dict[str, str | float], expected: dict[str, Quota]) -> None:
    assert parse_overrides(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [{"DescribeServices": "4/4"}, {"ecs:": "4/4"}, {"ecs:Describe Services": "4"}, {"ecs:X": "x"}],
    ids=[
        "a key without its service is refused",
        "a key without an operation is refused",
        "a key with a space is refused",
        "a good key with a bad quota is refused",
    ],
)
def test_parse_overrides_refuses(raw: dict[str, str | float]) -> None:
    with pytest.raises(QuotaError):
        parse_overrides(raw)


@pytest.mark.parametrize(
    ("service", "operation", "overrides", "share", "expected"),
    [
        ("ecs", "DescribeServices", {}, 1.0, Bucket("ecs:service_read", Quota(20, 100))),
        ("ecs", "ListServices", {}, 1.0, Bucket("ecs:service_read", Quota(20, 100))),
        ("ecs", "DescribeClusters", {}, 1.0, Bucket("ecs:cluster_read", Quota(20, 50))),
        ("ecs", "DescribeTasks", {}, 1.0, Bucket("ecs:task_read", Quota(20, 100))),
        ("ecs", "RegisterTaskDefinition", {}, 1.0, Bucket("ecs:task_definition_write", Quota(1, 20))),
        ("ecs", "UpdateService", {}, 1.0, Bucket("ecs:service_write", Quota(5, 50))),
        ("ecs", "TagResource", {}, 1.0, Bucket("ecs:other", Quota(20, 50))),
        ("elbv2", "DescribeTargetHealth", {}, 1.0, Bucket("elbv2:describe", Quota(10, 40))),
        ("elbv2", "RegisterTargets", {}, 1.0, Bucket("elbv2:registration", Quota(4, 20))),
        ("elbv2", "ModifyListener", {}, 1.0, Bucket("elbv2:mutating", Quota(3, 20))),
        ("ecr", "DescribeImages", {}, 1.0, Bucket("ecr:DescribeImages", DEFAULT_QUOTA)),
        ("ecs", "DescribeServices", {}, 0.5, Bucket("ecs:service_read", Quota(10, 50))),
        (
            "ecs",
            "DescribeServices",
            {"ecs:DescribeServices": Quota(4, 4)},
            1.0,
            Bucket("ecs:DescribeServices", Quota(4, 4)),
        ),
        (
            "ecs",
            "ListServices",
            {"ecs:DescribeServices": Quota(4, 4)},
            1.0,
            Bucket("ecs:service_read", Quota(20, 100)),
        ),
        (
            "ecs",
            "ListServices",
            {"ecs:service_read": Quota(40, 200)},
            0.5,
            Bucket("ecs:service_read", Quota(20, 100)),
        ),
        ("logs", "GetLogEvents", {"*": Quota(2, 5)}, 1.0, Bucket("logs:GetLogEvents", Quota(2, 5))),
        ("ecs", "TagResource", {"*": Quota(2, 5)}, 1.0, Bucket("ecs:other", Quota(20, 50))),
        (
            "ecs",
            "RegisterTaskDefinition",
            {},
            0.01,
            Bucket("ecs:task_definition_write", Quota(0.01, 1)),
        ),
    ],
    ids=[
        "DescribeServices draws on ECS's service-read bucket",
        "ListServices shares that bucket",
        "cluster reads have the documented 50-token bucket",
        "task reads have their own bucket",
        "registering a task definition refills at one per second",
        "service writes have a smaller bucket than reads",
        "any other ECS action draws on ECS's other bucket",
        "every ELB Describe shares the 40-token bucket",
        "target registration has its own ELB bucket",
        "other ELB writes share the mutating bucket",
        "a service without a table gets the default per operation",
        "half the account's share halves rate and burst",
        "an override on an operation gives it a bucket of its own",
        "the other operations of its group keep the shared bucket",
        "an override on a group is scaled by the share too",
        "the star override replaces the default of untabled services",
        "the star override leaves tabled services alone",
        "a tiny share still lets one call through",
    ],
)
def test_choose_bucket(
    service: str, operation: str, overrides: dict[str, Quota], share: float, expected: Bucket
) -> None:
    assert choose_bucket(service, operation, overrides, share) == expected


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5], ids=["no share", "a negative share", "more than all"])
def test_scale_refuses_a_share_outside_zero_to_one(share: float) -> None:
    with pytest.raises(QuotaError):
        scale(Quota(20, 100), share)


def test_every_table_bucket_is_reachable_from_some_operation() -> None:
    """A table entry no call maps to would be a quota nobody enforces."""
    probes = [
        ("ecs", op)
        for op in (
            "DescribeClusters",
            "DescribeServices",
            "DescribeTasks",
            "DescribeTaskDefinition",
            "RegisterTaskDefinition",
            "UpdateService",
            "TagResource",
        )
    ] + [("elbv2", op) for op in ("DescribeRules", "RegisterTargets", "ModifyRule")]
    assert {choose_bucket(s, o).name for s, o in probes} == set(TABLE)
