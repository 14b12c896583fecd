"""Opt-in API quotas: ECS's and ELB's token buckets, answered with the real throttling errors."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from botocore.exceptions import ClientError

from ecs_sandbox import Sandbox
from ecs_sandbox.faults import FaultInjector
from ecs_sandbox.quotas import QuotaBook, bucket_of
from ecs_sandbox.realism import IDEALISED, REALISTIC
from tests.support import ManualClock

pytestmark = pytest.mark.integration


@pytest.fixture
def quotas(sandbox: Sandbox) -> Iterator[FaultInjector]:
    faults = sandbox.moto.faults
    faults.apply_profile(replace(REALISTIC, quotas=True))
    faults.clear()
    yield faults
    faults.apply_profile(IDEALISED)
    faults.clear()


def _until_throttled(call: Callable[[], object], limit: int = 1000) -> tuple[int, ClientError]:
    """Return how many calls were answered before the first throttle, and that throttle."""
    for answered in range(limit):
        try:
            call()
        except ClientError as error:
            return answered, error
    raise AssertionError(f"{limit} calls and no throttle")


class TestBuckets:
    @pytest.mark.parametrize(
        ("service", "action", "bucket", "burst", "per_second"),
        [
            ("ecs", "DescribeServices", "ecs:service_read", 100, 20),
            ("ecs", "ListTasks", "ecs:task_read", 100, 20),
            ("ecs", "RegisterTaskDefinition", "ecs:task_definition_write", 20, 1),
            ("ecs", "UpdateService", "ecs:service_write", 50, 5),
            ("ecs", "DescribeClusters", "ecs:cluster_read", 50, 20),
            ("elasticloadbalancing", "DescribeTargetHealth", "elb:describe", 40, 10),
            ("elasticloadbalancing", "RegisterTargets", "elb:registration", 20, 4),
            ("elasticloadbalancing", "ModifyListener", "elb:mutating", 20, 3),
        ],
    )
    def test_which_bucket_a_call_draws_on(
        self, service: str, action: str, bucket: str, burst: int, per_second: int
    ) -> None:
        """Each action draws on its published bucket."""
        found = bucket_of(service, action)
        assert found is not None
        assert (found[0], found[1].burst, found[1].per_second) == (bucket, burst, per_second)

    def test_other_services_have_no_quota_here(self) -> None:
        """Only ECS and ELB are throttled by the quota book."""
        assert bucket_of("ecr", "DescribeRepositories") is None
        assert all(QuotaBook().take("ecr", "DescribeImages") for _ in range(1000))

    def test_burst_then_sustained_rate(self) -> None:
        """RegisterTaskDefinition: 20 at once, then one per second."""
        clock = ManualClock()
        book = QuotaBook(clock)

        burst = [book.take("ecs", "RegisterTaskDefinition") for _ in range(21)]
        clock.now = 0.5
        half_second = book.take("ecs", "RegisterTaskDefinition")
        clock.now = 1.0
        one_second = [book.take("ecs", "RegisterTaskDefinition") for _ in range(2)]

        assert burst == [True] * 20 + [False]
        assert half_second is False
        assert one_second == [True, False]

    def test_buckets_are_per_region_and_account(self) -> None:
        """An empty bucket in one Region or account leaves another's full."""
        book = QuotaBook(ManualClock())
        for _ in range(40):
            assert book.take("elasticloadbalancing", "DescribeListeners", "us-east-1", "1")

        assert not book.take("elasticloadbalancing", "DescribeListeners", "us-east-1", "1")
        assert book.take("elasticloadbalancing", "DescribeListeners", "eu-west-1", "1")
        assert book.take("elasticloadbalancing", "DescribeListeners", "us-east-1", "2")

    def test_describe_and_mutating_buckets_are_separate(self) -> None:
        """Exhausting Describe* leaves ModifyListener its own tokens."""
        book = QuotaBook(ManualClock())
        while book.take("elasticloadbalancing", "DescribeTargetGroups"):
            pass

        assert book.take("elasticloadbalancing", "ModifyListener")

    def test_a_full_bucket_does_not_overflow(self) -> None:
        """Idle time refills up to the burst, never past it."""
        clock = ManualClock()
        book = QuotaBook(clock)
        book.take("ecs", "RegisterTaskDefinition")
        clock.now = 3600.0

        assert sum(book.take("ecs", "RegisterTaskDefinition") for _ in range(30)) == 20


class TestOnTheServer:
    def test_ecs_past_its_burst_is_a_throttling_exception(
        self, sandbox: Sandbox, quotas: FaultInjector
    ) -> None:
        """DescribeServices past 100 burst + 20/s is ECS's ThrottlingException (HTTP 400), not sooner."""
        ecs = sandbox.client("ecs")
        ecs.create_cluster(clusterName="c")  # the ecs:other bucket, not the service reads'
        started = time.monotonic()
        answered, error = _until_throttled(lambda: ecs.describe_services(cluster="c", services=["web"]))
        elapsed = time.monotonic() - started

        assert 100 <= answered <= 100 + 20 * elapsed + 1
        assert error.response["Error"]["Code"] == "ThrottlingException"
        assert error.response["Error"]["Message"] == "Rate exceeded"
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert quotas.injected() == {("ecs", "DescribeServices", "throttle"): 1}

    def test_elb_counts_every_process_and_refills(self, sandbox: Sandbox, quotas: FaultInjector) -> None:
        """Another process empties the Describe* bucket (40 + 10/s); ours then gets only the refill."""
        script = (
            "import boto3, botocore.config as b;"
            f"c=boto3.client('elbv2',endpoint_url={sandbox.aws_endpoint_url!r},region_name='us-east-1',"
            "aws_access_key_id='testing',aws_secret_access_key='testing',"
            "config=b.Config(retries={'total_max_attempts':1}))\n"
            "try:\n while True: c.describe_load_balancers()\n"
            "except c.exceptions.ClientError as e: print(e.response['Error']['Code'])"
        )
        other = subprocess.run(
            [sys.executable, "-c", script], check=True, timeout=60, capture_output=True, text=True
        )
        elbv2 = sandbox.client("elbv2")
        answered, error = _until_throttled(elbv2.describe_load_balancers)
        # The other process's exit is part of the time the bucket refilled in (not measured here).
        time.sleep(0.3)
        elbv2.describe_load_balancers()  # about 3 tokens are back

        assert other.stdout.strip() == "Throttling"
        assert answered < 20  # a refill of about a second, not a full bucket of 40
        assert (error.response["Error"]["Code"], dict(error.response["Error"])["Type"]) == (
            "Throttling",
            "Sender",
        )
        assert quotas.injected()[("elasticloadbalancing", "DescribeLoadBalancers", "throttle")] == 2

    def test_quotas_are_off_by_default(self, sandbox: Sandbox) -> None:
        """Without the opt-in, 200 calls in a burst all reach moto."""
        assert sandbox.moto.faults.quotas is None
        ecs = sandbox.client("ecs")
        for _ in range(200):
            ecs.list_clusters()
        assert sandbox.moto.faults.injected() == {}
