"""Pure listener logic: rule matching, action choice, weights, redirects, drain delays (no network)."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from ecs_sandbox.health_checks import decide_drain_seconds
from ecs_sandbox.listener_rules import (
    RequestFacts,
    Rule,
    choose_target_group,
    decide_action,
    matches_condition,
    plan_redirect,
)

GET = RequestFacts("GET", "/api/users?page=2&sort=asc", {"host": "Shop.Example.com:80", "x-canary": "Yes"})


def _path(*values: str) -> dict[str, Any]:
    return {"Field": "path-pattern", "PathPatternConfig": {"Values": list(values)}}


CONDITIONS = [
    ("a path pattern with * matches the path", _path("/api/*"), True),
    ("a path pattern is case-sensitive", _path("/API/*"), False),
    ("a path pattern ignores the query string", _path("/api/users"), True),
    ("? matches exactly one character", _path("/api/user?"), True),
    ("any of several values may match", _path("/nope", "/api/*"), True),
    ("the legacy Values list still works", {"Field": "path-pattern", "Values": ["/api/*"]}, True),
    (
        "host-header is case-insensitive and ignores the port",
        {"Field": "host-header", "HostHeaderConfig": {"Values": ["*.example.com"]}},
        True,
    ),
    (
        "http-header matches name and value without case",
        {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Canary", "Values": ["y*"]}},
        True,
    ),
    (
        "http-header on a header the request lacks never matches",
        {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Other", "Values": ["*"]}},
        False,
    ),
    (
        "http-request-method matches the method",
        {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["GET", "HEAD"]}},
        True,
    ),
    (
        "query-string matches a key and value pair",
        {"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "page", "Value": "2"}]}},
        True,
    ),
    (
        "query-string without a key matches any value",
        {"Field": "query-string", "QueryStringConfig": {"Values": [{"Value": "as?"}]}},
        True,
    ),
    (
        "source-ip matches a CIDR",
        {"Field": "source-ip", "SourceIpConfig": {"Values": ["127.0.0.0/8"]}},
        True,
    ),
    ("an unknown field never matches", {"Field": "mystery", "Values": ["x"]}, False),
]


@pytest.mark.parametrize(
    ("condition", "expected"), [c[1:] for c in CONDITIONS], ids=[c[0] for c in CONDITIONS]
)
def test_condition_matching(condition: dict[str, Any], expected: bool) -> None:
    """Each ELBv2 condition type matches as AWS documents it."""
    assert matches_condition(condition, GET) is expected


def _forward(arn: str) -> list[dict[str, Any]]:
    return [{"Type": "forward", "TargetGroupArn": arn}]


class TestDecideAction:
    def test_lowest_priority_number_wins_among_matching_rules(self) -> None:
        """Rules are tried by priority whatever their order in moto; the first that matches wins."""
        rules = [
            Rule(20, [_path("/api/*")], _forward("late")),
            Rule(None, [], _forward("default")),
            Rule(10, [_path("/api/*")], _forward("early")),
        ]
        assert decide_action(rules, GET) == _forward("early")[0]

    def test_default_action_comes_last(self) -> None:
        """When no rule matches, the default action is taken."""
        rules = [Rule(None, [], _forward("default")), Rule(1, [_path("/other")], _forward("rule"))]
        assert decide_action(rules, GET) == _forward("default")[0]

    def test_every_condition_of_a_rule_must_hold(self) -> None:
        """A rule's conditions are ANDed."""
        method = {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["POST"]}}
        rules = [Rule(1, [_path("/api/*"), method], _forward("rule")), Rule(None, [], _forward("default"))]
        assert decide_action(rules, GET) == _forward("default")[0]


class TestChooseTargetGroup:
    def test_weights_split_requests_proportionally(self) -> None:
        """A 90/10 forward sends about 90% of requests to the first group."""
        action = {
            "ForwardConfig": {
                "TargetGroups": [{"TargetGroupArn": "a", "Weight": 90}, {"TargetGroupArn": "b", "Weight": 10}]
            }
        }
        rng = random.Random(1)
        counts = Counter(choose_target_group(action, rng) for _ in range(10000))
        assert 0.88 < counts["a"] / 10000 < 0.92

    def test_weight_zero_gets_nothing(self) -> None:
        """A group with weight 0 receives no request; all weights 0 means nowhere."""
        groups = [{"TargetGroupArn": "a", "Weight": 0}, {"TargetGroupArn": "b", "Weight": 5}]
        rng = random.Random(1)
        assert {
            choose_target_group({"ForwardConfig": {"TargetGroups": groups}}, rng) for _ in range(100)
        } == {"b"}
        zero = [{**g, "Weight": 0} for g in groups]
        assert choose_target_group({"ForwardConfig": {"TargetGroups": zero}}, rng) is None

    def test_single_target_group_arn(self) -> None:
        """A plain forward names its one group."""
        assert choose_target_group({"TargetGroupArn": "a"}, random.Random(1)) == "a"


def test_redirect_keeps_the_request_parts_it_does_not_override() -> None:
    """A redirect to another path keeps host, port and query; HTTP_301 is permanent."""
    config = {"Path": "/v2/#{path}", "StatusCode": "HTTP_301"}
    assert plan_redirect(config, GET, 8080) == (
        301,
        "http://shop.example.com:8080/v2/api/users?page=2&sort=asc",
    )


DELAYS = [
    ("an explicit delay is kept", "1", 0.3, 5.0, 1.0),
    ("AWS's untouched 300 s means the sandbox default", 300, 0.3, 5.0, 0.3),
    ("a long delay is capped", "120", 0.3, 5.0, 5.0),
    ("zero means no drain", "0", 0.3, 5.0, 0.0),
    ("no attribute means the sandbox default", None, 0.3, 5.0, 0.3),
]


@pytest.mark.parametrize(
    ("attribute", "default", "cap", "expected"), [d[1:] for d in DELAYS], ids=[d[0] for d in DELAYS]
)
def test_drain_seconds(attribute: Any, default: float, cap: float, expected: float) -> None:
    """The deregistration delay follows the target group's attribute, with a sandbox default and cap."""
    assert decide_drain_seconds(attribute, default, cap) == expected
