"""Canary steps, listener weights, observed shares and gate verdicts: dict in, answer out."""

from __future__ import annotations

from typing import Any

import pytest

from deploy_agent.core.traffic import (
    CanaryStepPlan,
    GateVerdict,
    ZeroDowntimeReport,
    forward_weights_for,
    gate_verdict,
    listener_forward_weights,
    observed_share,
    plan_canary_weights,
    plan_rule_shifts,
    share_of_weight,
    with_forward_weights,
    writable_actions,
)

BLUE = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-blue/1111"
GREEN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-green/2222"

PLAN_CASES: list[tuple[str, list[tuple[int, int]], list[tuple[int, int]]]] = [
    ("a single full step is kept as it is", [(100, 0)], [(100, 0)]),
    ("a last step short of 100 gets a final 100 step", [(10, 60)], [(10, 60), (100, 0)]),
    ("several steps keep their pauses", [(10, 30), (50, 60), (100, 0)], [(10, 30), (50, 60), (100, 0)]),
    ("a pause on the 100 step is kept", [(25, 5), (100, 120)], [(25, 5), (100, 120)]),
    ("a repeated weight holds the canary for longer", [(10, 30), (10, 30)], [(10, 30), (10, 30), (100, 0)]),
    ("a zero first step sends nothing yet", [(0, 10), (50, 0)], [(0, 10), (50, 0), (100, 0)]),
]


@pytest.mark.parametrize(("steps", "expected"), [c[1:] for c in PLAN_CASES], ids=[c[0] for c in PLAN_CASES])
def test_plan_canary_weights(steps: list[tuple[int, int]], expected: list[tuple[int, int]]) -> None:
    """The plan lists every step with its index and always ends at 100 percent."""
    plans = plan_canary_weights(steps)
    assert [(p.weight, p.pause_seconds) for p in plans] == expected
    assert [p.index for p in plans] == list(range(len(expected)))


BAD_PLANS: list[tuple[str, list[tuple[int, int]], str]] = [
    ("no steps are refused", [], "at least one step"),
    ("a weight above 100 is refused", [(120, 0)], "outside 0-100"),
    ("a negative weight is refused", [(-1, 0)], "outside 0-100"),
    ("a negative pause is refused", [(10, -5)], "negative"),
    ("a falling weight is refused", [(50, 0), (20, 0)], "falls below"),
]


@pytest.mark.parametrize(("steps", "message"), [c[1:] for c in BAD_PLANS], ids=[c[0] for c in BAD_PLANS])
def test_plan_canary_weights_refuses(steps: list[tuple[int, int]], message: str) -> None:
    """A plan that cannot be followed raises ValueError saying why."""
    with pytest.raises(ValueError, match=message):
        plan_canary_weights(steps)


def test_plan_steps_are_values() -> None:
    """A step plan compares by value."""
    assert plan_canary_weights([(100, 0)]) == [CanaryStepPlan(index=0, weight=100, pause_seconds=0)]


@pytest.mark.parametrize(
    ("percent", "expected"),
    [(0, {BLUE: 100, GREEN: 0}), (10, {BLUE: 90, GREEN: 10}), (100, {BLUE: 0, GREEN: 100})],
    ids=["zero percent keeps everything on stable", "ten percent is 90/10", "a full canary is 0/100"],
)
def test_forward_weights_for(percent: int, expected: dict[str, int]) -> None:
    """The canary percent is the canary's weight and the rest is stable's."""
    assert forward_weights_for(BLUE, GREEN, percent) == expected


@pytest.mark.parametrize(
    ("stable", "canary", "percent"),
    [(BLUE, GREEN, 101), (BLUE, GREEN, -1), (BLUE, BLUE, 10)],
    ids=["above 100 is refused", "below 0 is refused", "one group for both is refused"],
)
def test_forward_weights_for_refuses(stable: str, canary: str, percent: int) -> None:
    """Weights that do not describe a split between two groups raise ValueError."""
    with pytest.raises(ValueError, match=r"outside 0-100|must differ"):
        forward_weights_for(stable, canary, percent)


def forward(**action: Any) -> dict[str, Any]:
    return {"DefaultActions": [{"Type": "forward", **action}]}


LISTENER_CASES: list[tuple[str, dict[str, Any], dict[str, int]]] = [
    ("a plain forward is weight one for its group", forward(TargetGroupArn=BLUE), {BLUE: 1}),
    (
        "a weighted forward gives each group its weight",
        forward(
            ForwardConfig={
                "TargetGroups": [
                    {"TargetGroupArn": BLUE, "Weight": 90},
                    {"TargetGroupArn": GREEN, "Weight": 10},
                ]
            }
        ),
        {BLUE: 90, GREEN: 10},
    ),
    (
        "a weighted group without a weight counts as one",
        forward(ForwardConfig={"TargetGroups": [{"TargetGroupArn": BLUE}]}),
        {BLUE: 1},
    ),
    (
        "ForwardConfig wins over the TargetGroupArn AWS echoes beside it",
        forward(TargetGroupArn=BLUE, ForwardConfig={"TargetGroups": [{"TargetGroupArn": BLUE, "Weight": 5}]}),
        {BLUE: 5},
    ),
    (
        "the forward action is found after an authenticate action",
        {
            "DefaultActions": [
                {"Type": "authenticate-oidc", "Order": 1},
                {"Type": "forward", "Order": 2, "TargetGroupArn": GREEN},
            ]
        },
        {GREEN: 1},
    ),
    (
        "a fixed response forwards nowhere",
        {"DefaultActions": [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503"}}]},
        {},
    ),
    ("a listener without actions forwards nowhere", {}, {}),
]


@pytest.mark.parametrize(
    ("listener", "expected"), [c[1:] for c in LISTENER_CASES], ids=[c[0] for c in LISTENER_CASES]
)
def test_listener_forward_weights(listener: dict[str, Any], expected: dict[str, int]) -> None:
    """Any forward action reads as {target group: weight}."""
    assert listener_forward_weights(listener) == expected


@pytest.mark.parametrize(
    ("counts", "tg", "expected"),
    [
        ({BLUE: 90, GREEN: 10}, GREEN, 0.1),
        ({BLUE: 50}, GREEN, 0.0),
        ({}, GREEN, 0.0),
        ({GREEN: 7}, GREEN, 1.0),
    ],
    ids=[
        "ten of a hundred is a tenth",
        "a group never reached has no share",
        "no requests counted is no share, not a division by zero",
        "all requests on one group is all of it",
    ],
)
def test_observed_share(counts: dict[str, int], tg: str, expected: float) -> None:
    """The share is the fraction of counted requests that reached the group."""
    assert observed_share(counts, tg) == pytest.approx(expected)


def test_share_of_weight_is_relative() -> None:
    """Weights 1 and 3 give the second group three quarters; all-zero weights give none."""
    assert share_of_weight({BLUE: 1, GREEN: 3}, GREEN) == pytest.approx(0.75)
    assert share_of_weight({BLUE: 0, GREEN: 0}, GREEN) == 0.0


GATE_CASES: list[tuple[str, bool | None, list[str], float | None, int | None, GateVerdict]] = [
    ("everything fine passes", True, [], 50.0, 200, GateVerdict(True, "all gates passed")),
    ("no health check and no alarm pass", None, [], None, None, GateVerdict(True, "all gates passed")),
    (
        "a failed health check stops the canary",
        False,
        [],
        50.0,
        200,
        GateVerdict(False, "the canary failed its health check", "health"),
    ),
    (
        "an alarm in ALARM stops the canary and is named",
        True,
        ["web-5xx"],
        None,
        None,
        GateVerdict(False, "alarm in ALARM state: web-5xx", "alarm"),
    ),
    (
        "several alarms are named in order",
        None,
        ["b-latency", "a-5xx"],
        None,
        None,
        GateVerdict(False, "alarm in ALARM state: a-5xx, b-latency", "alarm"),
    ),
    (
        "health is reported before an alarm",
        False,
        ["web-5xx"],
        None,
        None,
        GateVerdict(False, "the canary failed its health check", "health"),
    ),
    (
        "latency above the limit stops the canary",
        True,
        [],
        250.4,
        200,
        GateVerdict(False, "latency 250 ms above 200 ms", "latency"),
    ),
    ("latency at the limit passes", True, [], 200.0, 200, GateVerdict(True, "all gates passed")),
    ("latency without a limit passes", True, [], 9000.0, None, GateVerdict(True, "all gates passed")),
    ("a limit without a measurement passes", True, [], None, 200, GateVerdict(True, "all gates passed")),
]


@pytest.mark.parametrize(
    ("health_ok", "alarms", "latency_ms", "max_latency_ms", "expected"),
    [c[1:] for c in GATE_CASES],
    ids=[c[0] for c in GATE_CASES],
)
def test_gate_verdict(
    health_ok: bool | None,
    alarms: list[str],
    latency_ms: float | None,
    max_latency_ms: int | None,
    expected: GateVerdict,
) -> None:
    """The first failing gate, in the order health, alarm, latency, decides the verdict."""
    assert gate_verdict(health_ok, alarms, latency_ms, max_latency_ms) == expected


def test_zero_downtime_report_as_dict() -> None:
    """The report's JSON shape rounds the gap and copies the statuses."""
    report = ZeroDowntimeReport(requests=3, failures=1, longest_gap_ms=512.345, statuses={"200": 2, "503": 1})
    assert report.as_dict() == {
        "requests": 3,
        "failures": 1,
        "longest_gap_ms": 512.3,
        "statuses": {"200": 2, "503": 1},
    }
    assert report.had_downtime


BLUE_TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/blue/1"
GREEN_TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/green/2"
OTHER_TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api/3"
OIDC = {
    "Type": "authenticate-oidc",
    "Order": 1,
    "AuthenticateOidcConfig": {
        "Issuer": "https://idp.example",
        "AuthorizationEndpoint": "https://idp.example/auth",
        "TokenEndpoint": "https://idp.example/token",
        "UserInfoEndpoint": "https://idp.example/userinfo",
        "ClientId": "web",
    },
}


def _forward(*pairs: tuple[str, int], order: int | None = None) -> dict[str, Any]:
    action: dict[str, Any] = {
        "Type": "forward",
        "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": a, "Weight": w} for a, w in pairs]},
    }
    return action | ({"Order": order} if order is not None else {})


class TestWritableActions:
    def test_a_described_oidc_action_is_written_back_with_the_existing_secret(self) -> None:
        """DescribeListeners omits ClientSecret: the write-back sets UseExistingClientSecret, nothing else."""
        written = writable_actions([OIDC, _forward((BLUE_TG, 1), order=2)])
        assert written[0]["AuthenticateOidcConfig"] == {
            **OIDC["AuthenticateOidcConfig"],
            "UseExistingClientSecret": True,
        }
        assert written[1] == _forward((BLUE_TG, 1), order=2)
        assert "UseExistingClientSecret" not in OIDC["AuthenticateOidcConfig"]  # the record is not changed

    def test_an_oidc_action_that_carries_its_secret_is_left_as_it_is(self) -> None:
        """A secret given explicitly is sent as given."""
        action = {**OIDC, "AuthenticateOidcConfig": {**OIDC["AuthenticateOidcConfig"], "ClientSecret": "s"}}
        assert writable_actions([action]) == [action]

    def test_weights_replace_only_the_forward_keeping_its_order(self) -> None:
        """with_forward_weights leaves the authenticate step alone and keeps the forward's Order."""
        changed = with_forward_weights([OIDC, _forward((BLUE_TG, 1), order=2)], {BLUE_TG: 0, GREEN_TG: 100})
        assert changed == [OIDC, _forward((BLUE_TG, 0), (GREEN_TG, 100), order=2)]


RULE_CASES = [
    pytest.param([_forward((BLUE_TG, 1))], "shifted", id="a rule forwarding to blue moves with the default"),
    pytest.param([OIDC, _forward((BLUE_TG, 1), order=2)], "shifted", id="behind an authenticate step too"),
    pytest.param(
        [_forward((BLUE_TG, 1), (OTHER_TG, 1))],
        "refused",
        id="a rule splitting blue with another group is refused",
    ),
    pytest.param([_forward((GREEN_TG, 1))], "refused", id="a rule already on green is refused"),
    pytest.param(
        [_forward((OTHER_TG, 1))], "ignored", id="a forward to another group carries none of our traffic"
    ),
    pytest.param(
        [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}],
        "ignored",
        id="a fixed response carries none of our traffic",
    ),
    pytest.param(
        [_forward((BLUE_TG, 0), (OTHER_TG, 1))], "ignored", id="weight 0 on blue sends blue nothing"
    ),
]


@pytest.mark.parametrize(("actions", "fate"), RULE_CASES)
def test_listener_rules_move_with_blue_or_are_refused(actions: list[dict[str, Any]], fate: str) -> None:
    """plan_rule_shifts: shift rules that send only to blue, refuse those it cannot shift faithfully."""
    rules = [
        {"RuleArn": "rule/1", "IsDefault": False, "Actions": actions},
        {"RuleArn": "rule/default", "IsDefault": True, "Actions": [_forward((BLUE_TG, 1))]},
    ]
    plan = plan_rule_shifts(rules, BLUE_TG, GREEN_TG)
    seen = "shifted" if plan.shifted else ("refused" if plan.refusals else "ignored")
    assert seen == fate
    if fate == "shifted":
        assert plan.shifted == {"rule/1": actions}
