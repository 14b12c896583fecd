"""Broker, result backend and state Redis behind Redis Sentinel: deployments ride out a failover.

A private primary, a replica and three sentinels (``RedisSentinelGroup``); two real workers and the
publisher reach all three Redis roles through ``sentinel://`` URLs only. While rolling deployments
run, the primary is SIGKILLed; every deployment must still end ``succeeded``, its result readable
through the client, its events complete.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from deploy_agent.client import DeploymentHandle, submit
from ecs_sandbox import Sandbox, provision_service
from sandbox_harness.redis_sentinel import RedisSentinelGroup
from sandbox_harness.stack import StackConfig, WorkerProcess
from tests.integration.chaos import count_calls, publisher_settings
from tests.integration.conftest import unique
from tests.integration.test_rolling import served_version
from tests.support import wait_until

pytestmark = pytest.mark.integration

DEPLOYMENTS = 4
MASTER = "deploys"


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[RedisSentinelGroup]:
    with RedisSentinelGroup(tmp_path / "redis", master_name=MASTER, password="s3cret;pw") as group:
        yield group


def rolling_request(svc: Any, cluster: str, service: str, image: str) -> dict[str, Any]:
    return {
        "deployment_id": unique("failover"),
        "cluster_name": cluster,
        "service_name": service,
        "image": {"uri": image},
        # Several healthy looks keep the deployments running across the kill.
        "health_check": {"url": f"{svc.url}/health", "healthy_threshold": 8, "timeout_seconds": 2},
        "timeout_seconds": 150,
    }


def test_deployments_through_sentinel_urls_survive_a_primary_killed_mid_flight(
    sandbox: Sandbox,
    stack_config: StackConfig,
    push_app: Any,
    sentinel_group: RedisSentinelGroup,
    tmp_path: Path,
) -> None:
    """Primary SIGKILLed while deployments run: all succeed, every result and event is still there."""
    config = replace(
        stack_config,
        redis_url=sentinel_group.url(),
        sentinel_master=MASTER,
        broker_db=0,
        result_db=1,
        state_db=2,
    )
    env = config.env()
    assert all(
        env[f"DEPLOY_AGENT_{key}"].startswith("sentinel://") for key in ("BROKER_URL", "RESULT_BACKEND")
    )
    assert env["DEPLOY_AGENT_STATE_REDIS_URL"].count("sentinel://") == 3
    settings = publisher_settings(config)
    cluster, v1, v2 = "failover", push_app("v1"), push_app("v2")
    names = [unique("fo") for _ in range(DEPLOYMENTS)]
    services = [provision_service(sandbox, cluster, name, image=v1, desired_count=1) for name in names]
    updates_before = count_calls(sandbox, "UpdateService")
    workers = [WorkerProcess(config, tmp_path / f"w{i}.log", concurrency=2, name=f"fo{i}") for i in (1, 2)]
    try:
        for worker in workers:
            worker.start()
        started = time.monotonic()
        handles: list[DeploymentHandle] = [
            submit(rolling_request(svc, cluster, name, v2), settings)
            for svc, name in zip(services, names, strict=True)
        ]

        def events_of(handle: DeploymentHandle) -> list[str]:
            return [e["event"] for e in handle.events(follow=False)]

        # Kill once every deployment has begun and none has ended: all four are mid-flight.
        wait_until(
            lambda: all(events_of(h) for h in handles),
            what="every deployment to start",
            timeout=60,
            interval=0.1,
        )
        unfinished_at_kill = sum("finished" not in events_of(h) for h in handles)
        failover_seconds = sentinel_group.kill_primary()
        killed_after = time.monotonic() - started

        results = [h.wait(timeout=150) for h in handles]
        total = time.monotonic() - started
    finally:
        for worker in workers:
            worker.stop()

    print(
        f"\n[sentinel] {DEPLOYMENTS} rolling deployments, {unfinished_at_kill} unfinished at the kill "
        f"({killed_after:.1f} s in); failover took {failover_seconds:.1f} s; all ended {total:.1f} s in"
    )
    assert unfinished_at_kill == DEPLOYMENTS, "the kill came too late to test anything"
    # Stages in flight at the kill are requeued when the consumer reconnects; none acts twice.
    assert count_calls(sandbox, "UpdateService") - updates_before == DEPLOYMENTS
    assert [r.outcome for r in results] == ["succeeded"] * DEPLOYMENTS, [
        (r.outcome, r.error) for r in results
    ]
    for handle, result, svc in zip(handles, results, services, strict=True):
        stored = handle.result()
        assert stored is not None, f"{handle.deployment_id} has no result in the state Redis"
        assert stored.outcome == "succeeded"
        assert stored.deployment_id == result.deployment_id == handle.deployment_id
        kinds = events_of(handle)
        assert kinds[-1] == "finished", kinds
        assert "service_updated" in kinds, kinds
        assert served_version(svc) == "v2"
    # The promoted replica is the primary now and holds what the workers wrote.
    new_primary = sentinel_group.client(2)
    assert new_primary.execute_command("ROLE")[0] == b"master"
    assert all(new_primary.exists(f"deploy-agent:events:{h.deployment_id}") for h in handles)
