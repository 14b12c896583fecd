"""The fleet's AWS quotas: token buckets in the machine's Redis, shared by processes, and the boto3 hook.

The Redis tests use DB 9 of the shared Redis (127.0.0.1:6379) and each its own account name, and
delete only their own keys. Several real processes hammer one bucket to show the quota holds across
processes (they stand for workers on several hosts: the bucket's clock is Redis's, not theirs).
"""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from deploy_agent.adapters.aws import AwsClients
from deploy_agent.adapters.rate_limit import RedisRateLimiter, quota_key
from deploy_agent.core.quotas import Quota
from tests.support import free_port

REDIS_URL = "redis://127.0.0.1:" + os.environ.get("DEPLOY_AGENT_REDIS_PORT", "6379") + "/9"
REGION = "us-east-1"


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(REDIS_URL)
    yield r
    r.close()


@pytest.fixture
def account(client: redis.Redis) -> Iterator[str]:
    """A fresh account name per test; its quota keys are deleted afterwards (no one else's are)."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    keys = list(client.scan_iter(match=quota_key(name, "*", "*"), count=1000))
    if keys:
        client.delete(*keys)


def limiter(client: redis.Redis, quota: Quota, **kwargs: Any) -> RedisRateLimiter:
    return RedisRateLimiter(client, {"ecs:DescribeServices": quota}, 1.0, **kwargs)


def worst_window(times: list[float], width: float) -> int:
    """Return the most calls in any window of ``width`` seconds (windows start at a call)."""
    times = sorted(times)
    most, end = 0, 0
    for start, at in enumerate(times):
        while end < len(times) and times[end] < at + width:
            end += 1
        most = max(most, end - start)
    return most


@pytest.mark.integration
class TestBucket:
    def test_a_full_bucket_lets_the_burst_through_at_once(self, client: redis.Redis, account: str) -> None:
        """A new bucket starts full: ``burst`` calls take a token each without waiting, the next waits."""
        gate = limiter(client, Quota(per_second=2, burst=5))
        waits = [gate.try_take(account, REGION, "ecs", "DescribeServices") for _ in range(6)]
        assert waits[:5] == [0.0] * 5
        assert 0.3 < waits[5] <= 0.5  # one token at 2 per second, minus what refilled meanwhile

    def test_acquire_waits_for_the_refill(self, client: redis.Redis, account: str) -> None:
        """Past the burst, calls go out at the sustained rate: 4 more at 10/s take about 0.4 s."""
        gate = limiter(client, Quota(per_second=10, burst=2))
        started = time.monotonic()
        for _ in range(6):
            gate.acquire(account, REGION, "ecs", "DescribeServices")
        elapsed = time.monotonic() - started
        assert 0.35 <= elapsed < 1.0, elapsed

    def test_the_wait_is_reported_per_call(self, client: redis.Redis, account: str) -> None:
        """Each acquired token is reported with its service, operation and wait (0 when none)."""
        seen: list[tuple[str, str, float]] = []
        gate = limiter(client, Quota(per_second=5, burst=1), on_wait=lambda *a: seen.append(a))
        gate.acquire(account, REGION, "ecs", "DescribeServices")
        gate.acquire(account, REGION, "ecs", "DescribeServices")
        assert [(s, o) for s, o, _ in seen] == [("ecs", "DescribeServices")] * 2
        assert seen[0][2] < 0.05
        assert 0.1 < seen[1][2] < 0.5

    def test_operations_of_one_group_share_its_bucket(self, client: redis.Redis, account: str) -> None:
        """ListServices and DescribeServices draw on ECS's one service-read bucket, as AWS counts them."""
        gate = RedisRateLimiter(client, {"ecs:service_read": Quota(per_second=1, burst=2)})
        assert gate.try_take(account, REGION, "ecs", "DescribeServices") == 0.0
        assert gate.try_take(account, REGION, "ecs", "ListServices") == 0.0
        assert gate.try_take(account, REGION, "ecs", "DescribeServices") > 0
        assert client.exists(quota_key(account, REGION, "ecs:service_read"))

    def test_accounts_and_regions_have_their_own_buckets(self, client: redis.Redis, account: str) -> None:
        """An empty bucket in one Region or account does not hold back another's."""
        gate = limiter(client, Quota(per_second=1, burst=1))
        assert gate.try_take(account, REGION, "ecs", "DescribeServices") == 0.0
        assert gate.try_take(account, REGION, "ecs", "DescribeServices") > 0
        assert gate.try_take(account, "eu-west-1", "ecs", "DescribeServices") == 0.0
        assert gate.try_take(f"{account}-2", REGION, "ecs", "DescribeServices") == 0.0
        client.delete(quota_key(f"{account}-2", REGION, "ecs:DescribeServices"))

    def test_an_idle_bucket_expires(self, client: redis.Redis, account: str) -> None:
        """A bucket left alone is deleted once it would be full again (plus a minute)."""
        gate = limiter(client, Quota(per_second=10, burst=10))
        gate.try_take(account, REGION, "ecs", "DescribeServices")
        ttl = client.pttl(quota_key(account, REGION, "ecs:DescribeServices"))
        assert 60_000 < ttl <= 61_000

    def test_a_redis_failure_lets_the_call_through(self) -> None:
        """With Redis unreachable the call goes ahead without a token rather than failing a deployment."""
        dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry_on_error=[])
        gate = limiter(dead, Quota(per_second=1, burst=1))
        assert gate.acquire("any", REGION, "ecs", "DescribeServices") < 2.0


def _hammer(account: str, start: float, seconds: float, queue: Any) -> None:
    """From ``start`` on, take tokens as fast as the bucket allows for ``seconds``; put their times."""
    r = redis.Redis.from_url(REDIS_URL)
    gate = limiter(r, Quota(per_second=10, burst=5))
    times: list[float] = []
    time.sleep(max(0.0, start - time.time()))
    while time.time() < start + seconds:
        gate.acquire(account, REGION, "ecs", "DescribeServices")
        times.append(time.time())
    queue.put(times)


@pytest.mark.integration
class TestSharedByProcesses:
    def test_four_processes_together_stay_within_burst_plus_rate(
        self, client: redis.Redis, account: str
    ) -> None:
        """Four processes hammering one 10/s bucket (burst 5) for 3 s send at most 5 + 10 t in t seconds."""
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        # all start together, once spawned (which takes a while per child)
        start, seconds = time.time() + 4.0, 3.0
        procs = [ctx.Process(target=_hammer, args=(account, start, seconds, queue)) for _ in range(4)]
        for proc in procs:
            proc.start()
        batches = [queue.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(timeout=10)
        assert all(batches), "every process got tokens"
        times = [t for batch in batches for t in batch]
        span = max(times) - min(times)
        # The bound AWS enforces: burst + sustained * t, in the whole run and in every 1-s window.
        # +2 covers the few milliseconds between Redis taking a token and the client noting it.
        assert len(times) <= 5 + 10 * span + 2, (len(times), span)
        assert worst_window(times, 1.0) <= 5 + 10 + 2, worst_window(times, 1.0)
        # And the bucket is used, not just starved: close to the bound.
        assert len(times) >= 0.8 * (5 + 10 * span), (len(times), span)
        print(
            f"\n4 processes, {len(times)} tokens in {span:.2f} s: {len(times) / span:.1f}/s "
            f"(bound {5 + 10 * span:.0f}); worst 1-s window {worst_window(times, 1.0)} (bound 15)"
        )


class _Sink:
    """A RateLimiter that records the calls asking for a token."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str, str]] = []

    def acquire(self, account: str, region: str, service: str, operation: str) -> float:
        self.asked.append((account, region, service, operation))
        return 0.0


class TestAwsClientsTakeTokens:
    def test_every_attempt_takes_a_token(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Each HTTP attempt, retries included, asks for a token of its service and operation."""
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.delenv("AWS_ACCOUNT_ID", raising=False)
        sink = _Sink()
        # nothing listens on the port: every attempt fails at connect, fast
        aws = AwsClients(
            REGION,
            endpoint_url=f"http://127.0.0.1:{free_port()}",
            max_attempts=2,
            rate_limiter=sink,
            account_label="fleet-a",
        )
        with pytest.raises(Exception):  # noqa: B017, PT011 - the connection error is not the point
            aws.ecs.describe_clusters(clusters=["x"])
        assert sink.asked == [("fleet-a", REGION, "ecs", "DescribeClusters")] * 2

    def test_the_credentials_account_names_the_bucket(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Credentials that carry an account id (AWS_ACCOUNT_ID) name the bucket, not the label."""
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_ACCOUNT_ID", "111122223333")
        sink = _Sink()
        aws = AwsClients(
            REGION, endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1, rate_limiter=sink
        )
        with pytest.raises(Exception):  # noqa: B017, PT011
            aws.elbv2.describe_load_balancers()
        assert sink.asked == [("111122223333", REGION, "elbv2", "DescribeLoadBalancers")]
