"""``BatchedServiceReader`` against a real Redis: batched snapshots, and never one older than a write.

Two readers on one Redis stand for two workers on two hosts. A snapshot is fresh for a write when
the service's write generation (a Redis counter) is still the one read before the snapshot's
DescribeServices; no host's clock takes part, so hosts whose clocks disagree by a minute still
refuse a snapshot taken before the other's write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest
import redis

from deploy_agent.adapters.service_reader import BatchedServiceReader
from sandbox_harness.redis_server import LocalRedis

pytestmark = pytest.mark.integration

CLUSTER = "prod"
REGION = "us-east-1"


class Ecs:
    """ECS services by name: counts DescribeServices calls and can act in the middle of one."""

    def __init__(self, *names: str) -> None:
        self.services = {
            name: {"serviceName": name, "status": "ACTIVE", "taskDefinition": "td:1"} for name in names
        }
        self.batches: list[list[str]] = []
        #: called after DescribeServices read the services, before it answers (a write racing it)
        self.during_describe: Callable[[], None] | None = None

    def describe_services(self, cluster: str, names: list[str]) -> dict[str, dict[str, Any]]:
        self.batches.append(list(names))
        found = {name: dict(self.services[name]) for name in names if name in self.services}
        if self.during_describe is not None:
            hook, self.during_describe = self.during_describe, None
            hook()
        return found

    def describe_service(self, cluster: str, service: str) -> dict[str, Any]:
        raise LookupError(service)

    def update_service(self, cluster: str, service: str, task_definition_arn: str) -> dict[str, Any]:
        self.services[service]["taskDefinition"] = task_definition_arn
        return dict(self.services[service])

    def delete_service(self, cluster: str, service: str) -> None:
        self.services[service]["status"] = "INACTIVE"


@contextmanager
def clock_off_by(seconds: float) -> Iterator[None]:
    """Run the block as a host whose wall clock is ``seconds`` ahead of this one."""
    real = time.time
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "time", lambda: real() + seconds)
        yield


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    with LocalRedis(root=tmp_path_factory.mktemp("redis")) as running:
        yield running


@pytest.fixture
def conn(server: LocalRedis) -> Iterator[redis.Redis]:
    client: redis.Redis = server.client(0)
    client.flushdb()
    yield client
    client.close()  # type: ignore[no-untyped-call]


def reader(ecs: Ecs, conn: redis.Redis, ttl: float = 30.0) -> BatchedServiceReader:
    return BatchedServiceReader(ecs, conn, REGION, ttl)  # type: ignore[arg-type]


def twelve_in_flight(conn: redis.Redis) -> tuple[list[str], Ecs, BatchedServiceReader]:
    """Return twelve service names tracked in flight, the ECS that counts their calls, and the reader."""
    names = [f"svc{i:02d}" for i in range(12)]
    ecs = Ecs(*names)
    one = reader(ecs, conn)
    for name in names:
        one.track(CLUSTER, name)
    return names, ecs, one


class TestBatching:
    """One DescribeServices answers for every in-flight service of the cluster."""

    def test_a_snapshot_answers_for_the_other_services_in_flight(self, conn: redis.Redis) -> None:
        """The second service's look is served by the first one's DescribeServices."""
        ecs = Ecs("web", "api")
        one, other = reader(ecs, conn), reader(ecs, conn)
        one.track(CLUSTER, "web")
        one.track(CLUSTER, "api")
        assert one.describe_service(CLUSTER, "web")["serviceName"] == "web"
        assert other.describe_service(CLUSTER, "api")["serviceName"] == "api"
        assert ecs.batches == [["web", "api"]]

    def test_a_stage_look_is_one_call_of_ten(self, conn: redis.Redis) -> None:
        """Twelve services in flight: a stage's look is one call, the asking one first and nine others."""
        _, ecs, one = twelve_in_flight(conn)
        one.describe_service(CLUSTER, "svc05")
        assert [len(batch) for batch in ecs.batches] == [10]
        assert ecs.batches[0][0] == "svc05"
        assert len(set(ecs.batches[0])) == 10

    def test_a_reader_whose_stages_are_woken_describes_the_asking_service_alone(
        self, conn: redis.Redis
    ) -> None:
        """With the watcher or ECS's events waking the stages (``others=0``), a stage's look is one call
        for its own service, still kept as a snapshot; the watcher's refresh still takes them all."""
        names, ecs, _ = twelve_in_flight(conn)
        alone = BatchedServiceReader(ecs, conn, REGION, 5.0, others=0)  # type: ignore[arg-type]
        alone.describe_service(CLUSTER, "svc05")
        alone.describe_service(CLUSTER, "svc05")
        assert ecs.batches == [["svc05"]]
        assert sorted(alone.refresh(CLUSTER)) == names

    def test_the_watchers_refresh_describes_every_service_ten_at_a_time(self, conn: redis.Redis) -> None:
        """Twelve services in flight take two calls for the watcher, and every one gets a snapshot."""
        names, ecs, one = twelve_in_flight(conn)
        assert sorted(one.refresh(CLUSTER)) == names
        assert [len(batch) for batch in ecs.batches] == [10, 2]
        for name in names:
            one.describe_service(CLUSTER, name)
        assert len(ecs.batches) == 2

    def test_the_generations_of_a_whole_cluster_are_read_in_one_command(self, conn: redis.Redis) -> None:
        """1200 in flight: the watcher's look reads their generations with three MGETs, not 1200 GETs."""
        names = [f"svc{i:04}" for i in range(1200)]
        ecs = Ecs(*names)
        one = reader(ecs, conn)
        pipe = conn.pipeline()
        pipe.sadd(f"deploy-agent:inflight:{REGION}:{CLUSTER}", *names)
        pipe.set(f"deploy-agent:svc-gen:{REGION}:{CLUSTER}/svc0777", 4)
        pipe.execute()
        conn.config_resetstat()
        generations = one._generations(CLUSTER, "svc0001")
        stats = cast(dict[str, dict[str, Any]], conn.info("commandstats"))
        assert len(generations) == 1200
        assert generations["svc0777"] == 4
        assert generations["svc0001"] == 0
        assert "cmdstat_get" not in stats
        assert stats["cmdstat_mget"]["calls"] == 3

    def test_a_snapshot_lives_only_as_long_as_its_ttl(self, conn: redis.Redis) -> None:
        """After the TTL (kept by Redis, not by a host's clock) the service is described again."""
        ecs = Ecs("web")
        one = reader(ecs, conn, ttl=0.05)
        one.describe_service(CLUSTER, "web")
        time.sleep(0.15)
        one.describe_service(CLUSTER, "web")
        assert len(ecs.batches) == 2


class TestFreshness:
    """A snapshot taken before a write to its service is never used after the write."""

    def test_a_write_makes_the_next_look_describe_again(self, conn: redis.Redis) -> None:
        """After UpdateService the service is described anew and shows the new revision."""
        ecs = Ecs("web")
        one, other = reader(ecs, conn), reader(ecs, conn)
        one.describe_service(CLUSTER, "web")
        other.update_service(CLUSTER, "web", "td:2")
        assert one.describe_service(CLUSTER, "web")["taskDefinition"] == "td:2"
        assert len(ecs.batches) == 2

    def test_a_deployment_that_ends_leaves_no_snapshot_for_the_next_one(self, conn: redis.Redis) -> None:
        """Untracking a service (its deployment ended) drops its snapshot: the next deployment of the
        service starts from a DescribeServices of its own, not from a look taken during the last one."""
        ecs = Ecs("web", "api")
        one = reader(ecs, conn)
        one.track(CLUSTER, "web")
        one.track(CLUSTER, "api")
        one.describe_service(CLUSTER, "web")  # describes api too
        one.untrack(CLUSTER, "web")
        one.describe_service(CLUSTER, "api")
        assert len(ecs.batches) == 1  # the other service's snapshot stays
        one.describe_service(CLUSTER, "web")
        assert len(ecs.batches) == 2

    def test_an_unwritten_service_keeps_its_snapshot(self, conn: redis.Redis) -> None:
        """A write to one service leaves the other services' snapshots in use."""
        ecs = Ecs("web", "api")
        one = reader(ecs, conn)
        one.track(CLUSTER, "web")
        one.track(CLUSTER, "api")
        one.describe_service(CLUSTER, "web")
        one.update_service(CLUSTER, "web", "td:2")
        one.describe_service(CLUSTER, "api")
        assert len(ecs.batches) == 1

    def test_a_snapshot_taken_while_a_write_runs_is_refused(self, conn: redis.Redis) -> None:
        """A DescribeServices that overlaps a write stores a snapshot nobody uses afterwards."""
        ecs = Ecs("web")
        one, other = reader(ecs, conn), reader(ecs, conn)
        ecs.during_describe = lambda: other.update_service(CLUSTER, "web", "td:2")
        assert one.describe_service(CLUSTER, "web")["taskDefinition"] == "td:1"
        assert one.describe_service(CLUSTER, "web")["taskDefinition"] == "td:2"

    @pytest.mark.parametrize("skew", [60.0, -60.0])
    def test_hosts_whose_clocks_disagree_still_refuse_a_stale_snapshot(
        self, conn: redis.Redis, skew: float
    ) -> None:
        """The snapshot's host runs a minute ahead of (or behind) the writer's: still refused."""
        ecs = Ecs("web")
        snapshotter, writer = reader(ecs, conn), reader(ecs, conn)
        with clock_off_by(skew):
            assert snapshotter.describe_service(CLUSTER, "web")["taskDefinition"] == "td:1"
        writer.update_service(CLUSTER, "web", "td:2")
        with clock_off_by(skew):
            assert snapshotter.describe_service(CLUSTER, "web")["taskDefinition"] == "td:2"

    def test_a_deleted_service_is_never_served_from_a_snapshot(self, conn: redis.Redis) -> None:
        """DeleteService invalidates the snapshot; the look asks ECS, which says it is gone."""
        ecs = Ecs("web")
        one = reader(ecs, conn)
        one.describe_service(CLUSTER, "web")
        one.delete_service(CLUSTER, "web")
        with pytest.raises(LookupError):
            one.describe_service(CLUSTER, "web")
