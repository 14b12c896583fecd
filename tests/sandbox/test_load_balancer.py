"""The sandbox's ALB: weighted forwards, listener rules, target health, a listener created at any time."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import pytest
import requests

from ecs_sandbox import BlueGreenSetup, Sandbox, provision_blue_green, provision_green_service
from ecs_sandbox.load_balancer import TARGET_HEADER, target_group_name
from ecs_sandbox.realism import REALISTIC
from tests.support import wait_until

from .traffic import Load

pytestmark = pytest.mark.integration

CLUSTER, SERVICE, GREEN = "app", "web", "web-green"


def _blue_green(sandbox: Sandbox, web_image: Callable[..., str], green_count: int = 1) -> BlueGreenSetup:
    """Blue (v1, 2 tasks) on the production listener, green (v2) running in the green target group."""
    setup = provision_blue_green(sandbox, CLUSTER, SERVICE, web_image("v1"), timeout_seconds=30)
    provision_green_service(
        sandbox,
        setup,
        GREEN,
        setup.green_target_group_arn,
        image=web_image("v2"),
        desired_count=green_count,
        timeout_seconds=30,
    )
    return setup


def _weights(blue: str, green: str, blue_weight: int, green_weight: int) -> list[dict[str, object]]:
    groups = [
        {"TargetGroupArn": blue, "Weight": blue_weight},
        {"TargetGroupArn": green, "Weight": green_weight},
    ]
    return [{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}]


def _served_by(response: requests.Response) -> str:
    return response.headers[TARGET_HEADER].rsplit("/", 1)[0]


class TestForwarding:
    def test_weighted_forward_splits_requests_by_weight(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """A 80/20 forward between two target groups gives each its share of 1000 requests within 5 points."""
        setup = _blue_green(sandbox, web_image)
        sandbox.client("elbv2").modify_listener(
            ListenerArn=setup.listener_arn,
            DefaultActions=_weights(setup.target_group_arn, setup.green_target_group_arn, 80, 20),
        )
        seen: Counter[str] = Counter()
        versions: Counter[str] = Counter()
        with requests.Session() as session:
            for _ in range(1000):
                response = session.get(f"{setup.url}/version", timeout=5)
                assert response.status_code == 200
                seen[_served_by(response)] += 1
                versions[response.text.strip()] += 1
        green_share = seen[target_group_name(setup.green_target_group_arn)] / 1000
        print(f"served by target group: {dict(seen)}; versions: {dict(versions)}")
        assert abs(green_share - 0.20) <= 0.05
        assert versions["v2"] == seen[target_group_name(setup.green_target_group_arn)]

    def test_modify_listener_takes_effect_on_the_next_request(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """Moving the forward to the green group (weight 0 for blue) sends the very next request to green."""
        setup = _blue_green(sandbox, web_image)
        assert requests.get(f"{setup.url}/version", timeout=5).text.strip() == "v1"
        sandbox.client("elbv2").modify_listener(
            ListenerArn=setup.listener_arn,
            DefaultActions=_weights(setup.target_group_arn, setup.green_target_group_arn, 0, 100),
        )
        assert {requests.get(f"{setup.url}/version", timeout=5).text.strip() for _ in range(20)} == {"v2"}

    def test_test_listener_created_after_start_serves_the_green_group(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """A listener created at any time answers at once on its own port, from its own target group."""
        setup = _blue_green(sandbox, web_image)
        assert setup.test_url != setup.url
        assert requests.get(f"{setup.test_url}/version", timeout=5).text.strip() == "v2"
        assert requests.get(f"{setup.url}/version", timeout=5).text.strip() == "v1"

    def test_target_group_without_healthy_targets_answers_503(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """Forwarding to a target group with no healthy target answers 503."""
        setup = provision_blue_green(sandbox, CLUSTER, SERVICE, web_image("v1"), timeout_seconds=30)
        response = requests.get(f"{setup.test_url}/version", timeout=5)
        assert response.status_code == 503


class TestRules:
    def test_rules_route_by_path_and_header_before_the_default_action(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """A path-pattern and an http-header rule send to green; other requests take the default (blue)."""
        setup = _blue_green(sandbox, web_image)
        elbv2 = sandbox.client("elbv2")
        forward_green = [{"Type": "forward", "TargetGroupArn": setup.green_target_group_arn}]
        elbv2.create_rule(
            ListenerArn=setup.listener_arn,
            Priority=10,
            Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/ver*"]}}],
            Actions=forward_green,
        )
        elbv2.create_rule(
            ListenerArn=setup.listener_arn,
            Priority=5,
            Conditions=[
                {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Canary", "Values": ["y*"]}}
            ],
            Actions=forward_green,
        )
        green, blue = (
            target_group_name(setup.green_target_group_arn),
            target_group_name(setup.target_group_arn),
        )
        assert requests.get(f"{setup.url}/version", timeout=5).text.strip() == "v2"
        assert _served_by(requests.get(f"{setup.url}/health", timeout=5)) == blue
        assert (
            _served_by(requests.get(f"{setup.url}/health", headers={"x-canary": "YES"}, timeout=5)) == green
        )
        assert _served_by(requests.get(f"{setup.url}/health", headers={"X-Canary": "no"}, timeout=5)) == blue


class TestTargetHealth:
    def test_new_targets_are_initial_then_healthy(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """describe_target_health shows a new task's target initial (registration in progress), healthy."""
        setup = provision_blue_green(sandbox, CLUSTER, SERVICE, web_image("v1"), timeout_seconds=30)
        provision_green_service(
            sandbox, setup, GREEN, setup.green_target_group_arn, desired_count=1, wait=False
        )
        elbv2 = sandbox.client("elbv2")
        seen: list[tuple[str, str | None]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not seen or seen[-1][0] != "healthy"):
            health = elbv2.describe_target_health(TargetGroupArn=setup.green_target_group_arn)
            for target in health["TargetHealthDescriptions"]:
                state = (target["TargetHealth"]["State"], target["TargetHealth"].get("Reason"))
                if not seen or seen[-1] != state:
                    seen.append(state)
            time.sleep(0.02)
        assert seen == [("initial", "Elb.RegistrationInProgress"), ("healthy", None)]

    def test_failing_health_checks_make_a_target_unhealthy(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """A task whose health path answers 404 goes unhealthy with Target.ResponseCodeMismatch."""
        setup = provision_blue_green(sandbox, CLUSTER, SERVICE, web_image("v1"), timeout_seconds=30)
        provision_green_service(
            sandbox,
            setup,
            GREEN,
            setup.green_target_group_arn,
            image=web_image("v2", "unhealthy"),
            desired_count=1,
            wait=False,
        )
        elbv2 = sandbox.client("elbv2")

        def unhealthy_targets() -> list[dict[str, str]]:
            health = elbv2.describe_target_health(TargetGroupArn=setup.green_target_group_arn)
            states = [t["TargetHealth"] for t in health["TargetHealthDescriptions"]]
            return [s for s in states if s["State"] == "unhealthy"]

        unhealthy = wait_until(unhealthy_targets, what="an unhealthy target", timeout=20, interval=0.02)
        assert unhealthy[0]["Reason"] == "Target.ResponseCodeMismatch"
        assert "[404]" in unhealthy[0]["Description"]


class TestTargetHealthAsConfigured:
    def test_a_real_tasks_target_follows_its_groups_interval_and_threshold(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """Realism at scale 0.1: the green group's 5 s x 2 passes make a new task's target healthy ~1 s
        after registration (the fixed knobs would take 0.2 s)."""
        setup = provision_blue_green(sandbox, CLUSTER, SERVICE, web_image("v1"), timeout_seconds=30)
        book = sandbox.scheduler.health
        profile = book.profile
        book.use_profile(replace(REALISTIC, time_scale=0.1))
        try:
            provision_green_service(
                sandbox, setup, GREEN, setup.green_target_group_arn, desired_count=1, wait=False
            )
            elbv2 = sandbox.client("elbv2")
            seen: list[tuple[float, str]] = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (not seen or seen[-1][1] != "healthy"):
                health = elbv2.describe_target_health(TargetGroupArn=setup.green_target_group_arn)
                for target in health["TargetHealthDescriptions"]:
                    state = target["TargetHealth"]["State"]
                    if not seen or seen[-1][1] != state:
                        seen.append((time.monotonic(), state))
                time.sleep(0.02)
        finally:
            book.use_profile(profile)
        assert [state for _, state in seen] == ["initial", "healthy"]
        # at least 2 checks 1 s apart; at most that plus the container's own (real-time) start-up
        assert 0.8 <= seen[1][0] - seen[0][0] <= 5.0


class TestUnderLoad:
    def test_proxy_serves_200_requests_per_second_without_errors(
        self, sandbox: Sandbox, web_image: Callable[..., str]
    ) -> None:
        """Four client threads at ~200 requests/s in total, with and without keep-alive, all get 200."""
        setup = provision_blue_green(sandbox, CLUSTER, SERVICE, web_image("v1"), timeout_seconds=30)
        with Load(f"{setup.url}/version", rate=200, threads=4) as load:
            time.sleep(3)
        print(f"statuses: {dict(load.statuses())} in 3 s")
        assert len(load.outcomes) >= 300
        assert load.failures() == []
