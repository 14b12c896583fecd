"""``ClusterWatcher`` against a real Redis: one batched look per cluster wakes the deployments that moved."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from deploy_agent.adapters.agenda import Agenda, News, WakeRequest
from deploy_agent.adapters.redis_locks import ServiceLock
from deploy_agent.adapters.service_reader import WATCHED, BatchedServiceReader
from deploy_agent.core.watch import UPDATING, updated_mark
from deploy_agent.worker.cluster_watch import LOOK_CALLS_AT_ONCE, ClusterWatcher
from sandbox_harness.redis_server import LocalRedis

pytestmark = pytest.mark.integration

REGION = "us-east-1"
SIG = json.dumps({"task": "deploy_agent.stage.deploy", "args": [], "kwargs": {}, "options": {}})


class Ecs:
    """Services by name; counts DescribeServices calls."""

    def __init__(self, count: int) -> None:
        self.services = {
            f"s{i}": {"serviceName": f"s{i}", "status": "ACTIVE", "runningCount": 0} for i in range(count)
        }
        self.batches: list[list[str]] = []

    def describe_services(self, cluster: str, names: list[str]) -> dict[str, dict[str, Any]]:
        self.batches.append(list(names))
        return {name: dict(self.services[name]) for name in names}

    def update_service(self, cluster: str, name: str, *_: Any) -> dict[str, Any]:
        """Starts a new PRIMARY deployment, IN_PROGRESS, as ECS's UpdateService does."""
        service = self.services[name]
        old = [{**d, "status": "ACTIVE"} for d in service.get("deployments") or []]
        ours = {"id": "ecs-svc/new", "status": "PRIMARY", "rolloutState": "IN_PROGRESS"}
        service["deployments"] = [ours, *old]
        return dict(service)


STEADY = [{"id": "ecs-svc/old", "status": "PRIMARY", "rolloutState": "COMPLETED"}]


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


def setup(conn: redis.Redis, count: int) -> tuple[Ecs, Agenda, ClusterWatcher, BatchedServiceReader]:
    ecs = Ecs(count)
    reader = BatchedServiceReader(ecs, conn, REGION, 5.0)  # type: ignore[arg-type]
    agenda = Agenda(conn, lease_seconds=30)
    for i in range(count):
        reader.track("prod", f"s{i}")
        assert _lock(conn, f"s{i}").acquire(f"d{i}")
        agenda.begin(f"t{i}", f"d{i}", 4, "", SIG)
        agenda.wait(f"t{i}", f"d{i}", "", 60, SIG)  # waits on ECS: a minute unless woken
    watcher = ClusterWatcher(conn, lambda _region: reader, _waker(conn, agenda), 1.0)
    return ecs, agenda, watcher, reader


def _lock(conn: redis.Redis, service: str) -> ServiceLock:
    return ServiceLock(conn, "prod", service, 600, REGION)


def _waker(conn: redis.Redis, agenda: Agenda) -> Any:
    """The worker's waker: the agenda wakes whoever holds each service's lock, a look's news at once."""
    return lambda news: agenda.wake_holders(
        [WakeRequest(_lock(conn, n.service).key, n.about_tasks) for n in news]
    )


class TestClusterWatcher:
    def test_one_look_describes_25_services_in_3_calls_and_wakes_only_those_that_moved(
        self, conn: redis.Redis
    ) -> None:
        """25 deployments waiting: 3 DescribeServices per look; the 2 services that moved are woken."""
        ecs, agenda, watcher, _ = setup(conn, 25)
        assert watcher.watch_once() == 0  # the first look only learns the fingerprints
        assert [len(b) for b in ecs.batches] == [10, 10, 5]
        ecs.services["s3"]["runningCount"] = 1
        ecs.services["s17"]["runningCount"] = 1
        assert watcher.watch_once() == 2
        assert sorted(d.task_id for d in agenda.claim_due()) == ["t17", "t3"]

    def test_a_looks_wakes_go_in_one_call_and_the_look_is_reported(self, conn: redis.Redis) -> None:
        """The services a look found moved are woken in one batch (one Redis round trip), and the look
        reports its duration and how many services it described."""
        ecs, agenda, _, reader = setup(conn, 25)
        waker = _waker(conn, agenda)
        batches: list[list[str]] = []
        looks: list[tuple[float, int]] = []

        def wake(news: list[News]) -> Any:
            batches.append(sorted(n.service for n in news))
            return waker(news)

        watcher = ClusterWatcher(
            conn, lambda _r: reader, wake, 1.0, observe=lambda s, n: looks.append((s, n))
        )
        watcher.watch_once()
        for name in ("s3", "s17", "s21"):
            ecs.services[name]["runningCount"] = 1
        assert watcher.watch_once() == 3
        assert batches == [["s17", "s21", "s3"]]  # the first look only learned: no call for it
        assert [n for _, n in looks] == [25, 25]
        assert all(s >= 0 for s, _ in looks)

    def test_a_looks_calls_run_side_by_side(self, conn: redis.Redis) -> None:
        """A look at 40 services makes its 4 DescribeServices at once, not one after the other (50
        calls of 100 ms took a look at 500 services far past its 1-s interval)."""
        ecs, _, watcher, _ = setup(conn, 40)
        in_flight, most = 0, 0
        lock = threading.Lock()
        describe = ecs.describe_services

        def slow_describe(cluster: str, names: list[str]) -> dict[str, dict[str, Any]]:
            nonlocal in_flight, most
            with lock:
                in_flight += 1
                most = max(most, in_flight)
            time.sleep(0.1)
            with lock:
                in_flight -= 1
            return describe(cluster, names)

        ecs.describe_services = slow_describe  # type: ignore[method-assign]
        watcher.watch_once()
        assert sorted(len(b) for b in ecs.batches) == [10, 10, 10, 10]
        assert most == LOOK_CALLS_AT_ONCE
        watcher.stop()

    def test_a_look_slower_than_two_intervals_warns_once(
        self, conn: redis.Redis, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A look that took two intervals or more says so, with the way out (ECS's events), once for a
        run of slow looks rather than at every look."""
        _, agenda, _, reader = setup(conn, 3)

        class Slow:
            def refresh(self, cluster: str, ttl_seconds: float | None = None, **kw: Any) -> dict[str, Any]:
                time.sleep(0.12)
                return reader.refresh(cluster, ttl_seconds, **kw)

        watcher = ClusterWatcher(conn, lambda _r: Slow(), _waker(conn, agenda), 0.05)  # type: ignore[arg-type, return-value]
        with caplog.at_level("WARNING", logger="deploy_agent.watcher"):
            watcher.watch_once()
            watcher.watch_once()
        slow = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
        assert len(slow) == 1
        assert "3 in-flight services" in slow[0]
        assert "deploy-agent events setup" in slow[0]

    def test_a_stage_waiting_for_ecss_verdict_sleeps_through_its_tasks_moves(self, conn: redis.Redis) -> None:
        """A quiet wait (a rolling deployment following its rollout) is not woken when only task
        counts moved, and is woken when the rollout's state did."""
        ecs, agenda, watcher, _ = setup(conn, 1)
        ecs.services["s0"]["deployments"] = [{"id": "ecs-svc/1", "rolloutState": "IN_PROGRESS"}]
        agenda.wait("t0", "d0", "", 60, SIG, quiet_tasks=True)
        watcher.watch_once()
        ecs.services["s0"]["runningCount"] = 1
        assert watcher.watch_once() == 0
        assert agenda.claim_due() == []
        ecs.services["s0"]["deployments"] = [{"id": "ecs-svc/1", "rolloutState": "COMPLETED"}]
        assert watcher.watch_once() == 1
        assert [d.task_id for d in agenda.claim_due()] == ["t0"]

    def test_a_stages_own_update_service_is_no_news_to_it_and_the_verdict_is(self, conn: redis.Redis) -> None:
        """The look after a deployment's UpdateService sees the new PRIMARY it made: a stage waiting for
        ECS's verdict sleeps on (waking it cost every deployment a task run); COMPLETED wakes it."""
        ecs, agenda, watcher, reader = setup(conn, 1)
        ecs.services["s0"]["deployments"] = STEADY
        watcher.watch_once()  # the fingerprint from before the update
        reader.update_service("prod", "s0")
        agenda.wait("t0", "d0", "", 60, SIG, quiet_tasks=True)
        assert watcher.watch_once() == 0
        assert agenda.claim_due() == []
        ecs.services["s0"]["deployments"][0]["rolloutState"] = "COMPLETED"
        assert watcher.watch_once() == 1
        assert [d.task_id for d in agenda.claim_due()] == ["t0"]

    def test_a_rollout_done_before_the_watchers_first_look_wakes_its_stage(self, conn: redis.Redis) -> None:
        """A service updated before the watcher ever looked at it, whose rollout ended before that look:
        the look wakes its stage (it used to only learn the fingerprint, and the stage slept on until
        its safety poll)."""
        ecs, agenda, watcher, reader = setup(conn, 1)
        ecs.services["s0"]["deployments"] = STEADY
        reader.update_service("prod", "s0")
        agenda.wait("t0", "d0", "", 60, SIG, quiet_tasks=True)
        ecs.services["s0"]["deployments"][0]["rolloutState"] = "COMPLETED"
        assert watcher.watch_once() == 1
        assert [d.task_id for d in agenda.claim_due()] == ["t0"]

    def test_a_read_from_before_the_update_is_no_news_either(self, conn: redis.Redis) -> None:
        """ECS's reads are eventually consistent: a look that still shows the old PRIMARY does not wake
        the stage, and the mark stays, so the next look's new deployment is no news either."""
        ecs, agenda, watcher, reader = setup(conn, 1)
        ecs.services["s0"]["deployments"] = STEADY
        watcher.watch_once()
        stale = [dict(d) for d in STEADY]
        reader.update_service("prod", "s0")
        fresh, ecs.services["s0"]["deployments"] = ecs.services["s0"]["deployments"], stale
        agenda.wait("t0", "d0", "", 60, SIG, quiet_tasks=True)
        assert watcher.watch_once() == 0
        ecs.services["s0"]["deployments"] = fresh
        assert watcher.watch_once() == 0
        assert agenda.claim_due() == []
        fresh[0]["rolloutState"] = "COMPLETED"
        assert watcher.watch_once() == 1

    def test_an_update_marked_while_a_look_runs_keeps_its_mark(self, conn: redis.Redis) -> None:
        """A service updated after the look described it: the look stores the others' fingerprints but
        keeps that service's mark (storing the fingerprint from before the update made the new
        deployment news at the next look)."""
        ecs, agenda, _, reader = setup(conn, 2)
        for name in ("s0", "s1"):
            ecs.services[name]["deployments"] = [dict(d) for d in STEADY]
        waker = _waker(conn, agenda)

        def wake_and_update(news: list[News]) -> Any:
            if any(n.service == "s0" for n in news):
                reader.update_service("prod", "s1")  # lands between the look's read and its store
            return waker(news)

        watcher = ClusterWatcher(conn, lambda _region: reader, wake_and_update, 1.0)
        watcher.watch_once()
        ecs.services["s0"]["runningCount"] = 1
        assert watcher.watch_once() == 1  # s0 moved; s1 was updated during the look
        agenda.wait("t1", "d1", "", 60, SIG, quiet_tasks=True)
        assert watcher.watch_once() == 0
        assert [d.task_id for d in agenda.claim_due()] == ["t0"]

    def test_a_service_that_came_in_flight_during_a_look_keeps_its_mark(self, conn: redis.Redis) -> None:
        """A deployment tracked and updated after the look described the cluster is not in the look: its
        mark stays (the look's store dropped it; the next look then learned the rollout as a first
        look, and a later move of its service woke the stage for nothing)."""
        ecs, agenda, _, reader = setup(conn, 3)
        for name in ("s0", "s1", "s2"):
            ecs.services[name]["deployments"] = [dict(d) for d in STEADY]
        reader.untrack("prod", "s2")
        waker = _waker(conn, agenda)

        def wake_and_start(news: list[News]) -> Any:
            if any(n.service == "s0" for n in news):  # s2's deployment begins while the look runs
                reader.track("prod", "s2")
                reader.update_service("prod", "s2")
            return waker(news)

        watcher = ClusterWatcher(conn, lambda _region: reader, wake_and_start, 1.0)
        watcher.watch_once()
        ecs.services["s0"]["runningCount"] = 1
        watcher.watch_once()
        key = f"deploy-agent:watch:{REGION}:prod"
        assert conn.hget(key, "s2") == updated_mark("ecs-svc/new").encode()

    def test_while_an_update_is_on_its_way_the_service_reads_updating_and_a_failed_one_drops_it(
        self, conn: redis.Redis
    ) -> None:
        """During UpdateService the service's fingerprint reads UPDATING (a look then wakes nothing); when
        the call fails the mark is dropped, so the next look learns the service afresh."""
        ecs, _, watcher, reader = setup(conn, 1)
        ecs.services["s0"]["deployments"] = STEADY
        watcher.watch_once()
        key = f"deploy-agent:watch:{REGION}:prod"
        seen: list[bytes | None] = []

        def failing_update(*_: Any) -> dict[str, Any]:
            seen.append(conn.hget(key, "s0"))
            raise RuntimeError("throttled")

        ecs.update_service = failing_update  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            reader.update_service("prod", "s0")
        assert seen == [UPDATING.encode()]
        assert conn.hget(key, "s0") is None

    def test_a_service_no_deployment_holds_wakes_nothing(self, conn: redis.Redis) -> None:
        """A moved service whose lock was let go (its deployment ended) wakes nobody."""
        ecs, agenda, watcher, _ = setup(conn, 2)
        watcher.watch_once()
        assert _lock(conn, "s1").release("d1")
        ecs.services["s1"]["runningCount"] = 1
        assert watcher.watch_once() == 0
        assert agenda.claim_due() == []

    def test_the_look_leaves_snapshots_the_woken_stages_read_without_calling_ecs(
        self, conn: redis.Redis
    ) -> None:
        """A woken stage's DescribeServices is answered from the watcher's snapshot."""
        ecs, _, watcher, reader = setup(conn, 3)
        watcher.watch_once()
        calls = len(ecs.batches)
        assert reader.describe_service("prod", "s1")["serviceName"] == "s1"
        assert len(ecs.batches) == calls

    def test_the_looks_snapshots_last_until_the_next_look_whatever_the_readers_ttl(
        self, conn: redis.Redis
    ) -> None:
        """The stages' own snapshots serve a fast poll (a quarter second); the watcher's serve until its
        next look, so a stage it woke that runs half a second later still reads the look that woke it."""
        ecs = Ecs(3)
        reader = BatchedServiceReader(ecs, conn, REGION, 0.25)  # type: ignore[arg-type]
        for i in range(3):
            reader.track("prod", f"s{i}")
        watcher = ClusterWatcher(conn, lambda _region: reader, lambda news: [None] * len(news), 2.0)
        watcher.watch_once()
        ttl_ms = conn.pttl(f"deploy-agent:svc:{REGION}:prod/s1")
        assert 1500 < ttl_ms <= 2000
        calls = len(ecs.batches)
        reader.describe_service("prod", "s1")
        assert len(ecs.batches) == calls

    def test_the_looks_are_an_interval_apart_from_start_to_start(self, conn: redis.Redis) -> None:
        """A look that takes most of the interval does not push the next one a whole interval later."""
        ecs = Ecs(1)
        reader = BatchedServiceReader(ecs, conn, REGION, 0.25)  # type: ignore[arg-type]
        reader.track("prod", "s0")
        starts: list[float] = []

        def slow_refresh(
            cluster: str, ttl_seconds: float | None = None, **_: Any
        ) -> dict[str, dict[str, Any]]:
            starts.append(time.monotonic())
            time.sleep(0.3)
            return {}

        reader.refresh = slow_refresh  # type: ignore[method-assign]
        watcher = ClusterWatcher(conn, lambda _region: reader, lambda news: [None] * len(news), 0.4).start()
        try:
            deadline = time.monotonic() + 10
            while len(starts) < 6 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            watcher.stop()
        gaps = sorted(b - a for a, b in itertools.pairwise(starts))
        # 0.4 s from start to start; waiting the interval after each look's end would make it 0.7 s
        assert 0.35 < gaps[len(gaps) // 2] < 0.55, gaps

    def test_one_host_leads_at_a_time(self, conn: redis.Redis) -> None:
        """Two hosts' watchers: only one holds the lease."""
        _, agenda, first, reader = setup(conn, 1)
        second = ClusterWatcher(conn, lambda _r: reader, _waker(conn, agenda), 1.0)
        assert first.leads()
        assert not second.leads()
        assert first.leads()  # renewing its own lease

    def test_a_cluster_with_nothing_in_flight_is_no_longer_watched(self, conn: redis.Redis) -> None:
        """Untracking the last service of a cluster takes it off the watched list."""
        _, _, _, reader = setup(conn, 2)
        reader.untrack("prod", "s0")
        assert conn.smembers(WATCHED) == {f"{REGION}:prod".encode()}
        reader.untrack("prod", "s1")
        assert conn.smembers(WATCHED) == set()
