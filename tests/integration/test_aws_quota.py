"""The fleet's AWS quota end to end: two worker hosts, concurrent deployments, counted at the AWS endpoint.

The workers get a low quota (``ecs:DescribeServices`` 4 per second, burst 4, all of it theirs);
each deployment runs in its own cluster, so the batched reads of one cluster cannot hide the calls.
The sandbox counts every DescribeServices it answers (server side, from any process); a thread
samples that count every 10 ms, so the calls are placed in time to within a sample.

The stack has Redis DBs of its own (broker 7, results 8, state 3), so no other worker on the
machine's Redis (the session's, on 13-15) claims its stages; they are flushed before it starts.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from deploy_agent.settings import Settings
from deploy_agent.worker.app import create_app
from ecs_sandbox.environment import Sandbox, provision_service
from sandbox_harness.stack import StackConfig, WorkerProcess
from tests.integration.conftest import APPS, REDIS_URL, unique

pytestmark = pytest.mark.integration

BROKER_DB, RESULT_DB, STATE_DB = 7, 8, 3
PER_SECOND, BURST = 4.0, 4.0
DEPLOYMENTS = 6
CALL = ("ecs", "DescribeServices")


class CallSampler:
    """Samples the sandbox's count of one API call every ``interval`` s; gives the calls' times."""

    def __init__(self, sandbox: Sandbox, call: tuple[str, str], interval: float = 0.01) -> None:
        self._sandbox, self._call, self._interval = sandbox, call, interval
        self._stop = threading.Event()
        self.times: list[float] = []
        self._thread = threading.Thread(target=self._run, name="call-sampler", daemon=True)

    def _count(self) -> int:
        return self._sandbox.moto.api_calls().get(self._call, 0)

    def _run(self) -> None:
        seen = self._count()
        while not self._stop.wait(self._interval):
            now, count = time.monotonic(), self._count()
            self.times.extend([now] * (count - seen))
            seen = count

    def __enter__(self) -> CallSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def worst_window(times: list[float], width: float) -> int:
    """Return the most calls in any window of ``width`` seconds."""
    times = sorted(times)
    most, end = 0, 0
    for start, at in enumerate(times):
        while end < len(times) and times[end] < at + width:
            end += 1
        most = max(most, end - start)
    return most


def waited(metrics_dirs: list[Path]) -> tuple[int, float]:
    """Return (attempts, seconds waited) for DescribeServices tokens, read from the workers' metrics."""
    count, total = 0, 0.0
    for path in metrics_dirs:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(path))
        for family in registry.collect():
            if family.name != "deploy_agent_aws_rate_limit_wait_seconds":
                continue
            for sample in family.samples:
                if sample.labels.get("operation") != "DescribeServices":
                    continue
                if sample.name.endswith("_count"):
                    count += int(sample.value)
                elif sample.name.endswith("_sum"):
                    total += sample.value
    return count, total


def test_two_hosts_together_keep_describe_services_within_the_quota(
    sandbox: Sandbox, push_app: Any, tmp_path: Path
) -> None:
    """Six deployments on two worker hosts keep DescribeServices within 4/s, burst 4; all succeed."""
    services = [
        provision_service(sandbox, unique("quota"), unique("q"), image=push_app("v1"), desired_count=1)
        for _ in range(DEPLOYMENTS)
    ]
    new_image = push_app("v7")
    for db in (BROKER_DB, RESULT_DB, STATE_DB):
        redis.Redis.from_url(f"{REDIS_URL}/{db}").flushdb()
    config = StackConfig(
        aws_endpoint_url=sandbox.aws_endpoint_url,
        registry_host=sandbox.registry_host,
        build_root=APPS,
        redis_url=REDIS_URL,
        broker_db=BROKER_DB,
        result_db=RESULT_DB,
        state_db=STATE_DB,
        poll_interval_seconds=0.1,
        extra_env={
            "AWS_MAX_ATTEMPTS": "2",
            "DEPLOY_AGENT_HEALTH_INTERVAL_DEFAULT_SECONDS": "0.2",
            "DEPLOY_AGENT_AWS_QUOTAS": json.dumps({"ecs:DescribeServices": f"{PER_SECOND}/{BURST}"}),
            "DEPLOY_AGENT_AWS_QUOTA_SHARE": "1.0",
        },
    )
    app = create_app(
        Settings(broker_url=f"{REDIS_URL}/{BROKER_DB}", result_backend=f"{REDIS_URL}/{RESULT_DB}"),
        set_as_current=False,
    )
    hosts = [WorkerProcess(config, tmp_path / f"{n}.log", concurrency=2, name=n) for n in ("qa", "qb")]
    try:
        for host in hosts:
            host.start()
        with CallSampler(sandbox, CALL) as sampler:
            started = time.monotonic()
            pending = [
                app.send_task(
                    "deploy_agent.deploy",
                    kwargs={
                        "request": {
                            "cluster_name": svc.cluster_arn.rsplit("/", 1)[-1],
                            "service_name": svc.service_arn.rsplit("/", 1)[-1],
                            "image": {"uri": new_image},
                            "health_check": {"url": f"{svc.url}/version", "healthy_threshold": 1},
                            "timeout_seconds": 300,
                        }
                    },
                )
                for svc in services
            ]
            results = [p.get(timeout=400) for p in pending]
            elapsed = time.monotonic() - started
    finally:
        for host in hosts:
            host.stop()

    assert [r["outcome"] for r in results] == ["succeeded"] * DEPLOYMENTS, [r["error"] for r in results]
    calls, peak = sampler.times, worst_window(sampler.times, 1.0)
    span = max(calls) - min(calls)
    attempts, seconds_waited = waited([tmp_path / f"metrics-{name}" for name in ("qa", "qb")])
    print(
        f"\nDescribeServices at the endpoint: {len(calls)} calls in {span:.1f} s "
        f"(deployments took {elapsed:.1f} s): mean {len(calls) / span:.2f}/s, worst 1-s window {peak}; "
        f"quota {PER_SECOND:g}/s burst {BURST:g}; the workers waited {seconds_waited:.1f} s over "
        f"{attempts} attempts"
    )
    # A token bucket lets through at most burst + rate * t in any t seconds; one more for the 10-ms
    # sampling, which can place a call that arrived at a window's edge inside it.
    assert peak <= BURST + PER_SECOND * 1.0 + 1, peak
    assert len(calls) <= BURST + PER_SECOND * span + 1, (len(calls), span)
    assert len(calls) / span <= PER_SECOND + BURST / span + 0.2, len(calls) / span
    # The quota did bind: the deployments wanted more than it gave, and waited for it.
    assert attempts >= len(calls), (attempts, len(calls))
    assert seconds_waited > 1.0, seconds_waited
