"""Target health as each target group configures it: moto over HTTP, real HTTP targets, real checks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from ecs_sandbox.moto_server import MotoServer
from ecs_sandbox.realism import IDEALISED, REALISTIC
from ecs_sandbox.target_group_settings import CheckSettings, decide_settings, forwarded_groups
from ecs_sandbox.target_health import TargetHealthBook

pytestmark = pytest.mark.integration

#: 1 AWS second = 10 ms: a 30 s interval is 0.3 s
PROFILE = replace(REALISTIC, time_scale=0.01, app_start_allowance_seconds=0.0)
_names = iter(range(10_000))


class App:
    """A real HTTP target on loopback whose answer (status, delay) a test changes."""

    def __init__(self) -> None:
        self.status, self.delay = 200, 0.0
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                time.sleep(app.delay)
                self.send_response(app.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Aws:
    """boto3 clients on the test's moto server, and the VPC/subnets/ALB every group needs."""

    def __init__(self, endpoint: str) -> None:
        kwargs: dict[str, Any] = {
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        self.ec2, self.elbv2 = boto3.client("ec2", **kwargs), boto3.client("elbv2", **kwargs)
        self.vpc = self.ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            self.ec2.create_subnet(
                VpcId=self.vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=f"us-east-1{z}"
            )
            for i, z in ((1, "a"), (2, "b"))
        ]
        self.alb = self.elbv2.create_load_balancer(
            Name="health-realism", Subnets=[s["Subnet"]["SubnetId"] for s in subnets]
        )["LoadBalancers"][0]["LoadBalancerArn"]

    def group(self, listener: bool = True, delay: int | None = None, **health: Any) -> str:
        """Return a new target group's ARN (with a listener forwarding to it unless ``listener`` is False)."""
        arn = self.elbv2.create_target_group(
            Name=f"tg-{next(_names)}", Protocol="HTTP", Port=80, VpcId=self.vpc, TargetType="ip", **health
        )["TargetGroups"][0]["TargetGroupArn"]
        if delay is not None:
            self.elbv2.modify_target_group_attributes(
                TargetGroupArn=arn,
                Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": str(delay)}],
            )
        if listener:
            self.listen(arn)
        return str(arn)

    def listen(self, arn: str) -> None:
        self.elbv2.create_listener(
            LoadBalancerArn=self.alb,
            Protocol="HTTP",
            Port=8000 + next(_names),
            DefaultActions=[{"Type": "forward", "TargetGroupArn": arn}],
        )

    def health(self, arn: str) -> list[dict[str, Any]]:
        described = self.elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        return [dict(d["TargetHealth"]) for d in described]


@pytest.fixture(scope="module")
def aws() -> Iterator[Aws]:
    server = MotoServer()
    server.start()
    yield Aws(server.endpoint_url)
    server.stop()


@pytest.fixture
def book() -> Iterator[TargetHealthBook]:
    health = TargetHealthBook(profile=PROFILE)
    health.start()
    yield health
    health.stop()


@pytest.fixture
def app() -> Iterator[App]:
    served = App()
    yield served
    served.close()


def _register(aws: Aws, book: TargetHealthBook, arn: str, port: int, grace: float | None = None) -> str:
    """Register a target as the scheduler does: in moto over HTTP, then in the book; return its id."""
    target_id = f"10.9.1.{next(_names) % 250 + 1}"
    aws.elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": target_id, "Port": 80}])
    book.register(arn, target_id, port, "/", "200", grace_seconds=grace)
    return target_id


def _timeline(aws: Aws, arn: str, until: str, seconds: float) -> list[tuple[float, str, str | None]]:
    """Return (seconds since now, state, reason) each time DescribeTargetHealth's answer changes."""
    seen: list[tuple[float, str, str | None]] = []
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        states = aws.health(arn)
        state = (states[0]["State"], states[0].get("Reason")) if states else ("gone", None)
        if not seen or seen[-1][1:] != state:
            seen.append((time.monotonic() - start, *state))
        if state[0] == until:
            break
        time.sleep(0.01)
    return seen


class TestThresholds:
    def test_each_group_turns_healthy_after_its_own_threshold_times_its_interval(
        self, aws: Aws, book: TargetHealthBook, app: App
    ) -> None:
        """Interval 30 s / healthy 5 at scale 0.01: initial for ~1.5 s, then healthy; 10 s / 2: ~0.2 s."""
        slow = aws.group(HealthCheckIntervalSeconds=30, HealthyThresholdCount=5)
        fast = aws.group(HealthCheckIntervalSeconds=10, HealthyThresholdCount=2)
        _register(aws, book, slow, app.port)
        _register(aws, book, fast, app.port)
        fast_seen = _timeline(aws, fast, "healthy", 5)
        slow_seen = _timeline(aws, slow, "healthy", 5)
        print(f"fast {fast_seen}\nslow {slow_seen}")
        assert [s[1:] for s in slow_seen] == [("initial", "Elb.RegistrationInProgress"), ("healthy", None)]
        assert [s[1:] for s in fast_seen] == [("initial", "Elb.RegistrationInProgress"), ("healthy", None)]
        assert fast_seen[-1][0] < 0.6
        # both timelines started at registration (the slow one 'fast_seen' later): 5 x 0.3 s from then
        slow_at = fast_seen[-1][0] + slow_seen[-1][0]
        assert 1.5 * 0.9 <= slow_at <= 1.5 + 1.0

    def test_defaults_are_aws_when_the_group_sets_nothing(
        self, aws: Aws, book: TargetHealthBook, app: App
    ) -> None:
        """A group created without health settings checks every 30 s, needs 5 passes: not healthy in 1.2 s."""
        arn = aws.group()
        _register(aws, book, arn, app.port)
        seen = _timeline(aws, arn, "healthy", 1.2)
        assert [s[1] for s in seen] == ["initial"]

    def test_failed_checks_make_a_target_unhealthy_with_elbs_reason(
        self, aws: Aws, book: TargetHealthBook, app: App
    ) -> None:
        """500s: unhealthy after the group's 3 failures (~0.3 s at 10 s), Target.ResponseCodeMismatch."""
        arn = aws.group(HealthCheckIntervalSeconds=10, UnhealthyThresholdCount=3)
        app.status = 500
        _register(aws, book, arn, app.port)
        seen = _timeline(aws, arn, "unhealthy", 5)
        assert seen[-1][1:] == ("unhealthy", "Target.ResponseCodeMismatch")
        assert 0.3 * 0.9 <= seen[-1][0] <= 0.3 + 1.0
        assert "[500]" in aws.health(arn)[0]["Description"]

    def test_a_slow_target_times_out(self, aws: Aws, book: TargetHealthBook, app: App) -> None:
        """A target slower than the check timeout goes unhealthy with Target.Timeout."""
        # The timeout is real seconds (the app answers in real time), unlike the scaled interval.
        arn = aws.group(HealthCheckIntervalSeconds=10, HealthCheckTimeoutSeconds=2, UnhealthyThresholdCount=2)
        app.delay = 2.5
        _register(aws, book, arn, app.port)
        assert _timeline(aws, arn, "unhealthy", 10)[-1][1:] == ("unhealthy", "Target.Timeout")

    def test_a_target_answering_within_the_real_timeout_is_healthy(
        self, aws: Aws, book: TargetHealthBook, app: App
    ) -> None:
        """A 0.3 s answer passes a 5 s timeout: the timeout is not scaled down to 0.05 s."""
        arn = aws.group(HealthCheckIntervalSeconds=10, HealthCheckTimeoutSeconds=5, HealthyThresholdCount=2)
        app.delay = 0.3
        _register(aws, book, arn, app.port)
        assert _timeline(aws, arn, "healthy", 5)[-1][1:] == ("healthy", None)

    def test_failures_while_the_app_starts_do_not_count(self, aws: Aws, app: App) -> None:
        """Inside the app-start allowance (real seconds) a new target's failures leave it initial."""
        book = TargetHealthBook(profile=replace(PROFILE, app_start_allowance_seconds=1.0))
        book.start()
        try:
            arn = aws.group(HealthCheckIntervalSeconds=10, UnhealthyThresholdCount=2)
            app.status = 500
            _register(aws, book, arn, app.port)
            early = _timeline(aws, arn, "unhealthy", 0.7)
            assert [s[1] for s in early] == ["initial"]
            assert _timeline(aws, arn, "unhealthy", 3)[-1][1:] == ("unhealthy", "Target.ResponseCodeMismatch")
        finally:
            book.stop()

    def test_nothing_listening_fails_health_checks(self, aws: Aws, book: TargetHealthBook, app: App) -> None:
        """A closed port goes unhealthy with Target.FailedHealthChecks."""
        arn = aws.group(HealthCheckIntervalSeconds=10, UnhealthyThresholdCount=2)
        port = app.port
        app.close()
        _register(aws, book, arn, port)
        assert _timeline(aws, arn, "unhealthy", 5)[-1][1:] == ("unhealthy", "Target.FailedHealthChecks")


class TestGracePeriod:
    def test_ecs_ignores_elbs_unhealthy_verdict_during_the_grace_period(
        self, aws: Aws, book: TargetHealthBook, app: App
    ) -> None:
        """Grace 100 s (1 s): ELB says unhealthy after ~0.2 s, ECS acts on it only once the grace is over."""
        arn = aws.group(HealthCheckIntervalSeconds=10, UnhealthyThresholdCount=2)
        app.status = 503
        registered = time.monotonic()
        target_id = _register(aws, book, arn, app.port, grace=100)
        assert _timeline(aws, arn, "unhealthy", 3)[-1][1] == "unhealthy"
        assert time.monotonic() - registered < 1.0
        assert not book.ecs_sees_unhealthy(arn, target_id)
        while not book.ecs_sees_unhealthy(arn, target_id) and time.monotonic() - registered < 5:
            time.sleep(0.01)
        assert 1.0 <= time.monotonic() - registered < 1.5


class TestDraining:
    def test_a_deregistered_target_drains_for_the_groups_delay(
        self, aws: Aws, book: TargetHealthBook, app: App
    ) -> None:
        """deregistration_delay 60 s (0.6 s): draining (Target.DeregistrationInProgress), then not listed."""
        arn = aws.group(HealthCheckIntervalSeconds=5, HealthyThresholdCount=2, delay=60)
        target_id = _register(aws, book, arn, app.port)
        assert _timeline(aws, arn, "healthy", 3)[-1][1] == "healthy"
        aws.elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": target_id}])
        seen = _timeline(aws, arn, "gone", 3)
        assert [s[1:] for s in seen] == [("draining", "Target.DeregistrationInProgress"), ("gone", None)]
        assert 0.6 * 0.9 <= seen[-1][0] <= 0.6 + 0.5


class TestUnused:
    def test_a_group_no_listener_uses_reports_unused_until_one_does(
        self, aws: Aws, book: TargetHealthBook, app: App
    ) -> None:
        """No listener forwards to the group: unused (Target.NotInUse); once one does: initial, healthy."""
        arn = aws.group(listener=False, HealthCheckIntervalSeconds=5, HealthyThresholdCount=2)
        _register(aws, book, arn, app.port)
        seen = _timeline(aws, arn, "healthy", 0.5)
        assert [s[1:] for s in seen] == [("unused", "Target.NotInUse")]
        aws.listen(arn)
        seen = _timeline(aws, arn, "healthy", 3)
        # A read before the book's next look at the listeners still answers unused (so does AWS until
        # the load balancer takes the target in); after it, initial then healthy, never unused again.
        states = [s[1] for s in seen]
        assert states[states[0] == "unused" :] == ["initial", "healthy"]


class TestIdealised:
    def test_idealised_profile_keeps_the_fixed_knobs(self, aws: Aws, app: App) -> None:
        """IDEALISED: the book's 0.2 s / 2 passes, not the group's 30 s / 5, and no unused state."""
        book = TargetHealthBook(profile=IDEALISED)
        book.start()
        try:
            arn = aws.group(listener=False, HealthCheckIntervalSeconds=30, HealthyThresholdCount=5)
            _register(aws, book, arn, app.port)
            seen = _timeline(aws, arn, "healthy", 3)
        finally:
            book.stop()
        assert [s[1] for s in seen] == ["initial", "healthy"]
        assert seen[-1][0] < 1.0


class TestSettings:
    def _group(self, **fields: Any) -> Any:
        base: dict[str, Any] = {
            "health_check_interval_seconds": None,
            "health_check_timeout_seconds": None,
            "healthy_threshold_count": None,
            "unhealthy_threshold_count": None,
            "health_check_path": None,
            "matcher": None,
            "attributes": {},
        }
        return SimpleNamespace(**{**base, **fields})

    def test_unset_fields_are_elbs_defaults_scaled(self) -> None:
        """Nothing set: 30 s, 5, 2, "/", "200", 300 s delay, scaled; the 5 s timeout is real seconds."""
        assert decide_settings(self._group(), PROFILE) == CheckSettings(0.3, 5.0, 5, 2, "/", "200", 3.0)

    def test_set_fields_win_and_strings_are_read(self) -> None:
        """moto keeps some counts as strings: they are read as numbers."""
        group = self._group(
            health_check_interval_seconds=10,
            healthy_threshold_count="3",
            unhealthy_threshold_count="4",
            health_check_path="/health",
            matcher={"HttpCode": "200-299"},
            attributes={"deregistration_delay.timeout_seconds": "20"},
        )
        assert decide_settings(group, PROFILE) == CheckSettings(0.1, 5.0, 3, 4, "/health", "200-299", 0.2)

    def test_forwarded_groups_counts_every_weight(self) -> None:
        """A forward by ARN and a weighted forward (weight 0 included) both use their groups."""
        actions: list[dict[str, Any]] = [
            {"Type": "forward", "TargetGroupArn": "a"},
            {"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": "b", "Weight": 0}]}},
            {"Type": "fixed-response"},
        ]
        assert forwarded_groups(actions) == {"a", "b"}
