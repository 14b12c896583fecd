"""The sandbox's AWS fails on request: throttles and server errors botocore recognises and retries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ecs_sandbox import Sandbox
from ecs_sandbox.faults import FaultInjector, FaultRule

pytestmark = pytest.mark.integration

CONTAINER = {"name": "web", "image": "busybox", "memory": 128, "essential": True}


@pytest.fixture
def faults(sandbox: Sandbox) -> Iterator[FaultInjector]:
    sandbox.moto.faults.clear()
    sandbox.moto.reset_api_calls()
    yield sandbox.moto.faults
    sandbox.moto.faults.clear()  # the sandbox is shared by the whole session


def _client(sandbox: Sandbox, service: str, attempts: int) -> Any:
    # total_max_attempts counts the first attempt; botocore reads a bare max_attempts as retries.
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=sandbox.aws_endpoint_url,
        region_name=sandbox.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
    )


def _record_failures(client: Any) -> list[tuple[int, str]]:
    """Return a list that fills with (HTTP status, error code) of every failed attempt botocore parsed."""
    seen: list[tuple[int, str]] = []

    def record(response: Any = None, **_: Any) -> None:
        if response is not None and "Error" in response[1]:
            seen.append((response[0].status_code, response[1]["Error"]["Code"]))

    # Registered first, so it runs before the retry handler; returning None leaves its decision alone.
    client.meta.events.register_first("needs-retry", record)
    return seen


class TestThrottling:
    def test_every_second_describe_services_is_throttled_and_retried(
        self, sandbox: Sandbox, faults: FaultInjector
    ) -> None:
        """Throttling every 2nd DescribeServices costs one retry per throttle and every call succeeds."""
        ecs = _client(sandbox, "ecs", attempts=5)
        ecs.create_cluster(clusterName="app")
        faults.add(FaultRule("ecs", "DescribeServices", "throttle", every=2))
        seen = _record_failures(ecs)

        retries = [
            ecs.describe_services(cluster="app", services=["web"])["ResponseMetadata"]["RetryAttempts"]
            for _ in range(3)
        ]

        assert retries == [0, 1, 1]
        assert seen == [(400, "ThrottlingException")] * 2
        assert faults.injected() == {("ecs", "DescribeServices", "throttle"): 2}
        assert sandbox.moto.api_calls()[("ecs", "DescribeServices")] == 3

    def test_two_throttles_then_success(self, sandbox: Sandbox, faults: FaultInjector) -> None:
        """A call throttled twice succeeds on its third attempt under standard retries."""
        ecs = _client(sandbox, "ecs", attempts=5)
        faults.add(FaultRule("ecs", "ListClusters", "throttle", times=2))
        seen = _record_failures(ecs)

        response = ecs.list_clusters()

        assert response["ResponseMetadata"]["RetryAttempts"] == 2
        assert seen == [(400, "ThrottlingException")] * 2

    def test_json_throttle_without_retries_is_a_throttling_exception(
        self, sandbox: Sandbox, faults: FaultInjector
    ) -> None:
        """With one attempt, a throttled ECS call raises ClientError ThrottlingException (HTTP 400)."""
        ecs = _client(sandbox, "ecs", attempts=1)
        faults.add(FaultRule("ecs", None, "throttle"))

        with pytest.raises(ClientError) as raised:
            ecs.list_clusters()

        assert raised.value.response["Error"]["Code"] == "ThrottlingException"
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    def test_elbv2_throttle_speaks_the_query_protocol(self, sandbox: Sandbox, faults: FaultInjector) -> None:
        """An ELBv2 throttle is an XML ErrorResponse botocore reads as Sender/Throttling."""
        elbv2 = _client(sandbox, "elbv2", attempts=1)
        faults.add(FaultRule("elbv2", "DescribeLoadBalancers", "throttle", times=1))

        with pytest.raises(ClientError) as raised:
            elbv2.describe_load_balancers()
        elbv2.describe_load_balancers()  # the rule is spent

        error: dict[str, Any] = dict(raised.value.response["Error"])
        assert (error["Code"], error["Type"], error["Message"]) == ("Throttling", "Sender", "Rate exceeded")
        assert faults.injected() == {("elasticloadbalancing", "DescribeLoadBalancers", "throttle"): 1}

    def test_elbv2_throttle_is_retried(self, sandbox: Sandbox, faults: FaultInjector) -> None:
        """Standard retries recover from an ELBv2 throttle, which botocore saw as Throttling."""
        elbv2 = _client(sandbox, "elbv2", attempts=5)
        faults.add(FaultRule("elasticloadbalancing", None, "throttle", times=2))
        seen = _record_failures(elbv2)

        response = elbv2.describe_target_groups()

        assert response["ResponseMetadata"]["RetryAttempts"] == 2
        assert seen == [(400, "Throttling")] * 2

    def test_cloudwatch_throttle_reads_as_the_query_code(
        self, sandbox: Sandbox, faults: FaultInjector
    ) -> None:
        """CloudWatch (JSON in query-compatible mode) throttles as Throttling, as its query API did."""
        cloudwatch = _client(sandbox, "cloudwatch", attempts=1)
        faults.add(FaultRule("cloudwatch", "DescribeAlarms", "throttle"))

        with pytest.raises(ClientError) as raised:
            cloudwatch.describe_alarms()

        assert raised.value.response["Error"]["Code"] == "Throttling"
        assert faults.injected() == {("monitoring", "DescribeAlarms", "throttle"): 1}


class TestServerErrors:
    def test_register_task_definition_succeeds_after_two_500s(
        self, sandbox: Sandbox, faults: FaultInjector
    ) -> None:
        """Two 500 InternalFailure answers to RegisterTaskDefinition, then the third attempt registers it."""
        ecs = _client(sandbox, "ecs", attempts=5)
        faults.add(FaultRule("ecs", "RegisterTaskDefinition", "server_error", times=2))
        seen = _record_failures(ecs)

        response = ecs.register_task_definition(family="web", containerDefinitions=[CONTAINER])

        assert response["taskDefinition"]["revision"] == 1
        assert response["ResponseMetadata"]["RetryAttempts"] == 2
        assert seen == [(500, "InternalFailure")] * 2
        assert faults.injected() == {("ecs", "RegisterTaskDefinition", "server_error"): 2}
        assert sandbox.moto.api_calls()[("ecs", "RegisterTaskDefinition")] == 1

    def test_service_unavailable_is_retried(self, sandbox: Sandbox, faults: FaultInjector) -> None:
        """A 503 ServiceUnavailable is transient: the call succeeds on the next attempt."""
        ecr = _client(sandbox, "ecr", attempts=3)
        faults.add(FaultRule("ecr", "DescribeRepositories", "unavailable", times=1))
        seen = _record_failures(ecr)

        ecr.describe_repositories()

        assert seen == [(503, "ServiceUnavailable")]


class TestRules:
    def test_cleared_faults_inject_nothing(self, sandbox: Sandbox, faults: FaultInjector) -> None:
        """After clear(), a call the rules would have failed reaches moto on its first attempt."""
        ecs = _client(sandbox, "ecs", attempts=1)
        faults.add(FaultRule(None, None, "server_error"))
        faults.clear()

        ecs.list_clusters()

        assert faults.injected() == {}
        assert sandbox.moto.api_calls()[("ecs", "ListClusters")] == 1

    def test_rules_only_fail_the_calls_they_name(self, sandbox: Sandbox, faults: FaultInjector) -> None:
        """A rule for ECS DescribeServices leaves other actions and services alone."""
        ecs, elbv2 = _client(sandbox, "ecs", attempts=1), _client(sandbox, "elbv2", attempts=1)
        faults.add(FaultRule("ecs", "DescribeServices", "throttle"))

        ecs.list_clusters()
        elbv2.describe_load_balancers()

        assert faults.injected() == {}

    @pytest.mark.parametrize(
        ("rule", "expected"),
        [
            pytest.param(
                FaultRule("ecs", None, "throttle"), [True] * 6, id="no every, no probability: always"
            ),
            pytest.param(
                FaultRule("ecs", None, "throttle", every=3), [False, False, True] * 2, id="every 3rd"
            ),
            pytest.param(FaultRule("ecs", None, "throttle", times=2), [True, True] + [False] * 4, id="twice"),
            pytest.param(
                FaultRule("ecs", None, "throttle", every=2, times=2),
                [False, True, False, True, False, False],
                id="every 2nd, twice",
            ),
            pytest.param(FaultRule("ecs", None, "throttle", probability=1.0), [True] * 6, id="certain"),
            pytest.param(FaultRule("ecr", None, "throttle"), [False] * 6, id="other service"),
        ],
    )
    def test_when_a_rule_fires(self, rule: FaultRule, expected: list[bool]) -> None:
        """A rule fires on the calls its every/probability/times pick, in order."""
        injector = FaultInjector(seed=1)
        injector.add(rule)

        assert [injector.decide("ecs", "DescribeServices") is not None for _ in expected] == expected

    def test_random_faults_hit_about_their_probability(self) -> None:
        """probability=0.3 fails roughly 30 % of matching calls."""
        injector = FaultInjector(seed=7)
        injector.add(FaultRule(None, None, "server_error", probability=0.3))

        fired = sum(injector.decide("ecs", "DescribeServices") is not None for _ in range(2000))

        assert 500 < fired < 700
        assert injector.injected() == {("ecs", "DescribeServices", "server_error"): fired}

    def test_nonsense_rules_are_refused(self) -> None:
        """A rule with a negative period, a probability above 1 or times=0 is a ValueError."""
        for bad in ({"every": -1}, {"probability": 1.5}, {"times": 0}):
            with pytest.raises(ValueError, match="must be"):
                FaultRule("ecs", None, "throttle", **bad)


class TestCallsByCaller:
    def test_each_access_key_counts_its_own_calls(self, faults: FaultInjector, sandbox: Sandbox) -> None:
        """Two callers signing with their own access key ids: each one's count holds its calls only."""

        def ecs_as(key: str) -> Any:
            return boto3.client(
                "ecs",
                endpoint_url=sandbox.aws_endpoint_url,
                region_name=sandbox.region,
                aws_access_key_id=key,
                aws_secret_access_key="testing",
            )

        ecs_as("TOOLA").list_clusters()
        ecs_as("TOOLA").list_clusters()
        ecs_as("TOOLB").describe_clusters(clusters=["none"])

        assert sandbox.moto.api_calls("TOOLA") == {("ecs", "ListClusters"): 2}
        assert sandbox.moto.api_calls("TOOLB") == {("ecs", "DescribeClusters"): 1}
        assert sandbox.moto.api_calls()[("ecs", "ListClusters")] == 2
