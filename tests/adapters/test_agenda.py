"""``Agenda`` and ``Dispatcher`` against a real Redis: waits, leases, tokens that fence stale copies."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import cast

import pytest
import redis

from deploy_agent.adapters.agenda import (
    AGENDA,
    DEP,
    STOPPED,
    STOPPED_KEPT,
    STOPPED_TTL_SECONDS,
    TASK,
    Agenda,
    Begun,
    Due,
    LeaseKeeper,
    Mutex,
    WakeRequest,
)
from deploy_agent.adapters.redis_locks import ServiceLock
from deploy_agent.core.watch import UPDATING, updated_mark
from deploy_agent.worker.dispatcher import Dispatcher
from sandbox_harness.redis_server import LocalRedis

pytestmark = pytest.mark.integration

SIG = json.dumps({"task": "deploy_agent.stage.deploy", "args": ["d1"], "kwargs": {}, "options": {}})


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


@pytest.fixture
def agenda(conn: redis.Redis) -> Agenda:
    return Agenda(conn, lease_seconds=0.3)


def _held_by(conn: redis.Redis, deployment_id: str) -> str:
    """Return the key of a service lock that ``deployment_id`` holds."""
    lock = ServiceLock(conn, "prod", "web", 600, "us-east-1")
    assert lock.acquire(deployment_id)
    return lock.key


class TestWaiting:
    def test_a_waiting_stage_is_claimed_only_once_it_is_due(self, agenda: Agenda) -> None:
        """A stage that waits 0.2 s is not claimed before, and is claimed once after, with a new token."""
        assert agenda.begin("t1", "d1", 4, "", SIG) is Begun.RUN
        assert agenda.wait("t1", "d1", "", 0.2, SIG)
        assert agenda.claim_due() == []
        time.sleep(0.25)
        due = agenda.claim_due()
        assert [(d.task_id, d.signature) for d in due] == [("t1", SIG)]
        assert due[0].token.startswith("d")
        assert agenda.claim_due() == []  # claimed: leased until its run begins

    def test_waking_a_deployment_makes_its_waiting_stage_due_at_once(
        self, agenda: Agenda, conn: redis.Redis
    ) -> None:
        """wake_holder() turns the service's deployment's 60-s wait into one due now."""
        key = _held_by(conn, "d1")
        agenda.begin("t1", "d1", 4, "", SIG)
        agenda.wait("t1", "d1", "", 60, SIG)
        assert agenda.wake_holder(key) == "woken"
        assert [d.task_id for d in agenda.claim_due()] == ["t1"]

    def test_a_wake_while_the_stage_runs_makes_its_next_wait_zero(
        self, agenda: Agenda, conn: redis.Redis
    ) -> None:
        """An event that comes while the stage runs is not lost: its next wait is cut to nothing."""
        key = _held_by(conn, "d1")
        agenda.begin("t1", "d1", 4, "", SIG)
        assert agenda.wake_holder(key) == "running"
        agenda.wait("t1", "d1", "", 60, SIG)
        assert [d.task_id for d in agenda.claim_due()] == ["t1"]

    def test_a_wake_while_a_stage_runs_cuts_the_first_wait_of_the_stage_after_it(
        self, agenda: Agenda, conn: redis.Redis
    ) -> None:
        """News that comes while the deploy stage runs its last look is the rollback stage's too."""
        key = _held_by(conn, "d1")
        agenda.begin("t1", "d1", 4, "", SIG)
        assert agenda.wake_holder(key) == "running"
        assert agenda.begin("t2", "d1", 6, "", SIG) is Begun.RUN  # the next stage, begun inline
        agenda.wait("t2", "d1", "", 60, SIG, quiet_tasks=True)
        assert [d.task_id for d in agenda.claim_due()] == ["t2"]

    def test_a_wake_during_a_hand_over_is_kept_for_the_next_stage(
        self, agenda: Agenda, conn: redis.Redis
    ) -> None:
        """Between a stage's end and the next one's start (its message on the broker) news is kept."""
        key = _held_by(conn, "d1")
        agenda.begin("t1", "d1", 4, "", SIG)
        agenda.hand_over("t1", "d1", "", SIG)
        assert agenda.wake_holder(key) == "running"
        agenda.begin("t2", "d1", 6, "", SIG)
        agenda.wait("t2", "d1", "", 60, SIG)
        assert [d.task_id for d in agenda.claim_due()] == ["t2"]

    def test_a_stage_after_one_nobody_woke_waits_its_time(self, agenda: Agenda, conn: redis.Redis) -> None:
        """No news in between: the next stage's first wait is as long as it asks (and one woken
        wait's news is spent by that wait, not carried on)."""
        key = _held_by(conn, "d1")
        agenda.begin("t1", "d1", 4, "", SIG)
        assert agenda.wake_holder(key) == "running"
        agenda.wait("t1", "d1", "", 0, SIG)  # the news cut this wait
        assert [d.task_id for d in agenda.claim_due()] == ["t1"]
        agenda.begin("t1", "d1", 4, conn.hget(TASK + "t1", "token").decode(), SIG)  # type: ignore[union-attr]
        agenda.hand_over("t1", "d1", conn.hget(TASK + "t1", "token").decode(), SIG)  # type: ignore[union-attr]
        agenda.begin("t2", "d1", 6, "", SIG)
        agenda.wait("t2", "d1", "", 60, SIG)
        assert agenda.claim_due() == []

    def test_news_of_a_deployment_whose_verdict_the_wait_knows_wakes_nothing(
        self, agenda: Agenda, conn: redis.Redis
    ) -> None:
        """A rollback settling knows ours failed: its FAILED is ignored, the rollback's end wakes."""
        key = _held_by(conn, "d1")
        agenda.begin("t1", "d1", 6, "", SIG)
        agenda.wait("t1", "d1", "", 60, SIG, quiet_tasks=True, known="ecs-svc/ours")
        assert agenda.wake_holder(key, deployment="ecs-svc/ours") == "ignored"
        assert agenda.claim_due() == []
        assert agenda.wake_holder(key, deployment="ecs-svc/rollback") == "woken"
        assert [d.task_id for d in agenda.claim_due()] == ["t1"]

    def test_a_wait_that_knows_no_verdict_is_woken_by_any_deployment_s_news(
        self, agenda: Agenda, conn: redis.Redis
    ) -> None:
        key = _held_by(conn, "d1")
        agenda.begin("t1", "d1", 4, "", SIG)
        agenda.wait("t1", "d1", "", 60, SIG, quiet_tasks=True)
        assert agenda.wake_holder(key, deployment="ecs-svc/ours") == "woken"

    def test_a_stopped_task_goes_into_the_holder_s_book_whatever_the_wake_does(
        self, agenda: Agenda, conn: redis.Redis
    ) -> None:
        """The book keeps the newest tasks first, up to its size, even when the wake is ignored
        (a quiet wait); a service nobody holds books nothing."""
        key = _held_by(conn, "d1")
        agenda.begin("t1", "d1", 4, "", SIG)
        agenda.wait("t1", "d1", "", 60, SIG, quiet_tasks=True)
        for n in range(STOPPED_KEPT + 2):
            task = json.dumps({"taskArn": f"task/{n}", "stopCode": "EssentialContainerExited"})
            assert agenda.wake_holder(key, about_tasks=True, stopped_task=task) == "ignored"
        booked = agenda.stopped_tasks("d1")
        assert len(booked) == STOPPED_KEPT
        assert booked[0] == {"taskArn": f"task/{STOPPED_KEPT + 1}", "stopCode": "EssentialContainerExited"}
        assert 0 < cast(int, conn.ttl(STOPPED + "d1")) <= STOPPED_TTL_SECONDS
        nobody = ServiceLock(conn, "prod", "api", 600, "us-east-1").key
        assert agenda.wake_holder(nobody, about_tasks=True, stopped_task='{"taskArn": "x"}') is None
        assert agenda.stopped_tasks("d2") == []

    def test_a_batch_of_news_wakes_each_holder_in_one_round_trip(
        self, agenda: Agenda, conn: redis.Redis
    ) -> None:
        """Each piece of news gets its own answer, in order, from one script call: a waiting stage
        woken, a quiet one that tasks' news leaves alone (its stopped task booked all the same), a
        service nobody holds, a start its own update made."""
        waiting, quiet = _held_by(conn, "d1"), ServiceLock(conn, "prod", "api", 600, "us-east-1")
        assert quiet.acquire("d2")
        for task_id, dep, is_quiet in (("t1", "d1", False), ("t2", "d2", True)):
            agenda.begin(task_id, dep, 4, "", SIG)
            agenda.wait(task_id, dep, "", 60, SIG, quiet_tasks=is_quiet)
        conn.hset("watch:r:prod", "web", updated_mark("ecs-svc/9", "a.b"))
        nobody = ServiceLock(conn, "prod", "db", 600, "us-east-1").key
        calls = []
        conn.set_response_callback("EVALSHA", lambda r, **kw: (calls.append(1), r)[1])
        answers = agenda.wake_holders(
            [
                WakeRequest(quiet.key, about_tasks=True, stopped_task='{"taskArn": "task/1"}'),
                WakeRequest(nobody),
                WakeRequest(waiting, own=("watch:r:prod", "web", updated_mark("ecs-svc/9"))),
                WakeRequest(waiting, deployment="ecs-svc/9"),
            ]
        )
        assert answers == ["ignored", None, "ignored", "woken"]
        assert len(calls) == 1
        assert agenda.stopped_tasks("d2") == [{"taskArn": "task/1"}]
        assert [d.task_id for d in agenda.claim_due()] == ["t1"]
        assert agenda.wake_holders([]) == []

    def test_waking_a_service_no_deployment_holds_says_so(self, agenda: Agenda, conn: redis.Redis) -> None:
        """wake_holder() of a service whose lock nobody holds answers None and wakes nothing."""
        agenda.begin("t1", "d1", 4, "", SIG)
        agenda.wait("t1", "d1", "", 60, SIG)
        assert agenda.wake_holder(ServiceLock(conn, "prod", "web", 600, "us-east-1").key) is None
        assert agenda.claim_due() == []

    def test_waking_an_unknown_deployment_does_nothing(self, agenda: Agenda, conn: redis.Redis) -> None:
        """An event for a deployment the agenda does not hold wakes nothing."""
        assert agenda.wake_holder(_held_by(conn, "nobody")) == "running"
        assert agenda.pending() == 0

    def test_a_stage_waiting_for_service_news_sleeps_through_a_task_s(
        self, agenda: Agenda, conn: redis.Redis
    ) -> None:
        """A wait with ``quiet_tasks``: a task's news leaves it due in 60 s; a deployment's wakes it."""
        key = _held_by(conn, "d1")
        agenda.begin("t1", "d1", 4, "", SIG)
        agenda.wait("t1", "d1", "", 60, SIG, quiet_tasks=True)
        assert agenda.wake_holder(key, about_tasks=True) == "ignored"
        assert agenda.claim_due() == []
        assert agenda.wake_holder(key) == "woken"
        assert [d.task_id for d in agenda.claim_due()] == ["t1"]

    def test_the_start_of_the_deployment_its_own_update_made_is_no_news_to_a_quiet_stage(
        self, agenda: Agenda, conn: redis.Redis
    ) -> None:
        """ECS's IN_PROGRESS for the deployment the stage's UpdateService started (the service carries
        its mark) leaves a quiet wait alone; the start of another (ECS rolling back) wakes it."""
        key = _held_by(conn, "d1")
        conn.hset("watch:r:prod", "web", updated_mark("ecs-svc/1", "a.b"))
        agenda.begin("t1", "d1", 4, "", SIG)
        agenda.wait("t1", "d1", "", 60, SIG, quiet_tasks=True)
        assert agenda.wake_holder(key, own=("watch:r:prod", "web", updated_mark("ecs-svc/1"))) == "ignored"
        assert agenda.claim_due() == []
        assert agenda.wake_holder(key, own=("watch:r:prod", "web", updated_mark("ecs-svc/2"))) == "woken"
        assert [d.task_id for d in agenda.claim_due()] == ["t1"]

    def test_its_own_update_s_start_does_not_mark_a_running_stage_woken_either(
        self, agenda: Agenda, conn: redis.Redis
    ) -> None:
        """ECS's IN_PROGRESS may come before the stage that sent UpdateService has scheduled its wait
        (while the update is on its way, or just after): the stage is not marked woken, so its wait is
        not cut to zero (39% of deployments at 500 made a task run for it)."""
        key = _held_by(conn, "d1")
        agenda.begin("t1", "d1", 4, "", SIG)  # running, its record not quiet
        for mark in (UPDATING, updated_mark("ecs-svc/1")):
            conn.hset("watch:r:prod", "web", mark)
            assert (
                agenda.wake_holder(key, own=("watch:r:prod", "web", updated_mark("ecs-svc/1"))) == "ignored"
            )
        agenda.wait("t1", "d1", "", 60, SIG)
        assert agenda.claim_due() == []

    def test_a_plain_wait_is_woken_by_a_task_s_news(self, agenda: Agenda, conn: redis.Redis) -> None:
        """Without ``quiet_tasks`` (a green service's tasks starting, say) a task's news wakes it."""
        key = _held_by(conn, "d1")
        agenda.begin("t1", "d1", 4, "", SIG)
        agenda.wait("t1", "d1", "", 60, SIG, quiet_tasks=True)
        agenda.begin("t1", "d1", 4, "", SIG)
        agenda.wait("t1", "d1", "", 60, SIG)  # the next wait is a plain one again
        assert agenda.wake_holder(key, about_tasks=True) == "woken"


class TestLeases:
    def test_a_running_stage_whose_lease_lapses_is_claimed_again(self, agenda: Agenda) -> None:
        """A host that died mid-stage: its lease lapses and the stage becomes due."""
        agenda.begin("t1", "d1", 4, "", SIG)
        assert agenda.claim_due() == []
        time.sleep(0.35)
        assert [d.task_id for d in agenda.claim_due()] == ["t1"]

    def test_the_keeper_holds_a_lease_while_the_stage_runs(self, agenda: Agenda, conn: redis.Redis) -> None:
        """A stage outliving its lease is not claimed while its keeper renews it; nor is its mutex lost."""
        conn.set("mutex", "x", px=300)
        keeper = LeaseKeeper(agenda, lambda keys: [conn.pexpire(k, 300) for k in keys] and None)
        agenda.begin("t1", "d1", 4, "", SIG)
        with keeper.holding("t1", "", "mutex"):
            time.sleep(0.8)
            assert agenda.claim_due() == []
            assert conn.get("mutex") == b"x"
        time.sleep(0.4)
        assert [d.task_id for d in agenda.claim_due()] == ["t1"]

    def test_a_finished_stage_stays_leased_until_the_next_stage_begins(self, agenda: Agenda) -> None:
        """Killed between a stage's end and the next one's start: the finished stage runs again."""
        agenda.begin("t1", "d1", 3, "", SIG)
        agenda.hand_over("t1", "d1", "", SIG)
        agenda.begin("t2", "d1", 4, "", SIG)  # the next stage begins: the handover record goes
        time.sleep(0.35)
        assert [d.task_id for d in agenda.claim_due()] == ["t2"]


ENTRY = json.dumps({"task": "deploy_agent.deploy", "args": [], "kwargs": {"request": {}}, "options": {}})


class TestEntries:
    def test_an_entry_whose_host_died_mid_run_is_claimed_again(self, agenda: Agenda) -> None:
        """An entry task is leased from its first moment: its host dies, it is published again."""
        assert agenda.lease_entry("e1", "", ENTRY)
        assert agenda.claim_due() == []
        time.sleep(0.35)
        (due,) = agenda.claim_due()
        assert (due.task_id, due.signature) == ("e1", ENTRY)
        assert agenda.lease_entry("e1", due.token, ENTRY)
        assert not agenda.lease_entry("e1", "", ENTRY)  # Redis redelivers the original: stale

    def test_a_dropped_entry_may_run_again(self, agenda: Agenda) -> None:
        """A finished entry leaves nothing; a redelivered copy leases afresh (entries are idempotent)."""
        agenda.lease_entry("e1", "", ENTRY)
        assert agenda.drop("e1", "")
        assert agenda.pending() == 0
        assert agenda.lease_entry("e1", "", ENTRY)


def _leases_left(conn: redis.Redis, task_id: str, lease_ms: int) -> int:
    """Return in how many leases of ``lease_ms`` the agenda has ``task_id`` due, by Redis's clock."""
    seconds, micros = cast(tuple[int, int], conn.time())
    due = float(cast(float, conn.zscore(AGENDA, task_id)))
    return round((due - (seconds * 1000 + micros / 1000)) / lease_ms)


class TestFencing:
    def test_the_original_copy_is_stale_once_a_dispatcher_published_the_stage_again(
        self, agenda: Agenda
    ) -> None:
        """Redis redelivers a dead host's message after the watchdog re-published it: it is dropped."""
        agenda.begin("t1", "d1", 4, "", SIG)
        time.sleep(0.35)
        (due,) = agenda.claim_due()
        assert agenda.begin("t1", "d1", 4, due.token, SIG) is Begun.RUN
        assert agenda.begin("t1", "d1", 4, "", SIG) is Begun.STALE  # the redelivered original
        assert not agenda.wait("t1", "d1", "", 1, SIG)  # nor may it reschedule

    def test_an_earlier_stage_is_stale_once_a_later_one_began(self, agenda: Agenda) -> None:
        """A copy of 'push' that comes back after 'deploy' began never runs."""
        agenda.begin("push", "d1", 2, "", SIG)
        agenda.begin("deploy", "d1", 4, "", SIG)
        assert agenda.begin("push", "d1", 2, "", SIG) is Begun.STALE

    def test_a_finished_deployment_fences_every_late_copy(self, agenda: Agenda) -> None:
        """After finalize, a late copy of any stage of it is dropped."""
        agenda.begin("fin", "d1", 7, "", SIG)
        assert agenda.finish("fin", "d1", "")
        assert agenda.begin("fin", "d1", 7, "", SIG) is Begun.STALE
        assert agenda.begin("deploy", "d1", 4, "", SIG) is Begun.STALE
        assert agenda.pending() == 0

    def test_a_publication_that_lapses_unbegun_goes_out_again_with_its_token(self, agenda: Agenda) -> None:
        """Behind a long queue a published stage is not begun within its lease: the copy published
        again carries the same token, so the first copy, when it comes up, still runs, and the
        second is dropped."""
        agenda.begin("t1", "d1", 4, "", SIG)
        agenda.wait("t1", "d1", "", 0, SIG)
        (first,) = agenda.claim_due()
        time.sleep(0.35)
        (again,) = agenda.claim_due()
        assert again.token == first.token
        assert agenda.begin("t1", "d1", 4, first.token, SIG) is Begun.RUN
        assert agenda.begin("t1", "d1", 4, again.token, SIG) is Begun.STALE  # the copy, after it

    def test_each_republication_of_an_unbegun_stage_waits_twice_as_long(
        self, agenda: Agenda, conn: redis.Redis
    ) -> None:
        """Leases of 0.3, 0.6, 1.2 s ... up to 16 leases: a long queue gets a few copies, not one a lease."""
        agenda.begin("t1", "d1", 4, "", SIG)
        agenda.wait("t1", "d1", "", 0, SIG)
        leases = []
        for _ in range(6):
            conn.zadd(AGENDA, {"t1": 0})  # due now, as if its lease had lapsed
            (due,) = agenda.claim_due()
            leases.append(_leases_left(conn, "t1", 300))
        assert leases == [1, 2, 4, 8, 16, 16]
        assert agenda.begin("t1", "d1", 4, due.token, SIG) is Begun.RUN
        agenda.wait("t1", "d1", due.token, 0, SIG)
        (fresh,) = agenda.claim_due()  # a new wait is a new publication: a new token, one lease
        assert fresh.token != due.token
        assert _leases_left(conn, "t1", 300) == 1

    def test_a_copy_of_a_publication_that_already_ran_is_dropped(self, agenda: Agenda) -> None:
        """Its run waits again (or hands over): a late copy of the same publication does not run it twice."""
        agenda.begin("t1", "d1", 4, "", SIG)
        agenda.wait("t1", "d1", "", 0, SIG)
        (due,) = agenda.claim_due()
        assert agenda.begin("t1", "d1", 4, due.token, SIG) is Begun.RUN
        agenda.wait("t1", "d1", due.token, 60, SIG)
        assert agenda.begin("t1", "d1", 4, due.token, SIG) is Begun.STALE
        agenda.hand_over("t1", "d1", due.token, SIG)
        assert agenda.begin("t1", "d1", 4, due.token, SIG) is Begun.STALE

    def test_a_copy_of_an_entry_publication_runs_once(self, agenda: Agenda) -> None:
        """An entry the agenda published twice (its first copy queued past its lease) runs once."""
        agenda.lease_entry("e1", "", ENTRY)
        agenda.wait("e1", "d1", "", 0, ENTRY)  # waits for the service lock
        (first,) = agenda.claim_due()
        assert agenda.lease_entry("e1", first.token, ENTRY)
        assert not agenda.lease_entry("e1", first.token, ENTRY)

    def test_a_stale_keeper_does_not_renew_a_lease_it_lost(self, agenda: Agenda) -> None:
        """The old copy's renewals stop counting once a dispatcher re-published its stage."""
        agenda.begin("t1", "d1", 4, "", SIG)
        time.sleep(0.35)
        agenda.claim_due()
        assert agenda.renew([("t1", "")]) == 0


class TestDispatcher:
    def test_it_publishes_each_due_stage_once_with_its_token(self, conn: redis.Redis) -> None:
        """Two dispatchers (two hosts) on one agenda publish 50 due stages once each."""
        agenda = Agenda(conn, lease_seconds=30)
        for i in range(50):
            agenda.begin(f"t{i}", f"d{i}", 4, "", SIG)
            agenda.wait(f"t{i}", f"d{i}", "", 0, SIG)
        published: list[Due] = []
        first = Dispatcher(agenda, published.append, 0.01).start()
        second = Dispatcher(Agenda(conn, lease_seconds=30), published.append, 0.01).start()
        deadline = time.monotonic() + 5
        while len(published) < 50 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        first.stop()
        second.stop()
        assert sorted(d.task_id for d in published) == sorted(f"t{i}" for i in range(50))
        assert conn.zcard(AGENDA) == 50  # each one leased until its run begins

    def test_a_poke_publishes_a_stage_due_now_without_waiting_for_the_interval(
        self, conn: redis.Redis
    ) -> None:
        """A wake on this host pokes the dispatcher: the stage goes out at once, not a minute later."""
        agenda = Agenda(conn, lease_seconds=30)
        agenda.begin("t1", "d1", 4, "", SIG)
        agenda.wait("t1", "d1", "", 600, SIG)
        published: list[Due] = []
        dispatcher = Dispatcher(agenda, published.append, 60.0).start()
        lock = ServiceLock(conn, "prod", "web", 600, "us-east-1")
        assert lock.acquire("d1")
        try:
            assert agenda.wake_holder(lock.key) == "woken"
            dispatcher.poke()
            deadline = time.monotonic() + 2
            while not published and time.monotonic() < deadline:
                time.sleep(0.01)
            assert [d.task_id for d in published] == ["t1"]
        finally:
            started = time.monotonic()
            dispatcher.stop()
            assert time.monotonic() - started < 1  # stopping does not wait out the interval either


class TestStepMutex:
    def test_begin_takes_the_step_mutex_and_a_second_copy_finds_it_busy(self, agenda: Agenda) -> None:
        """Two copies of one deployment: the second is told BUSY, and runs once the first waits."""
        first, second = Mutex("stepping:d1", "a"), Mutex("stepping:d1", "b")
        assert agenda.begin("t1", "d1", 4, "", SIG, first) is Begun.RUN
        assert agenda.begin("t1", "d1", 4, "", SIG, second) is Begun.BUSY
        agenda.wait("t1", "d1", "", 0, SIG, first)  # releases the mutex with the wait
        assert agenda.begin("t1", "d1", 4, "", SIG, second) is Begun.RUN

    def test_a_stale_copy_still_gives_back_the_mutex_it_holds(
        self, agenda: Agenda, conn: redis.Redis
    ) -> None:
        """A copy fenced out after it took the mutex does not keep the deployment locked."""
        mutex = Mutex("stepping:d1", "a")
        agenda.begin("t1", "d1", 4, "", SIG, mutex)
        time.sleep(0.35)
        agenda.claim_due()  # re-published: the running copy's token is stale now
        assert not agenda.wait("t1", "d1", "", 1, SIG, mutex)
        assert conn.get("stepping:d1") is None


WEEK = 7 * 24 * 3600


def ttl(conn: redis.Redis, key: str) -> int:
    return int(conn.ttl(key))  # type: ignore[arg-type]


def lives_a_week(conn: redis.Redis, key: str) -> bool:
    """Whether ``key`` was just given its week of expiry."""
    return WEEK - 5 < ttl(conn, key) <= WEEK


class TestRecordExpiry:
    """Records expire a week after they are made; later writes do not spend a command renewing it."""

    def test_begin_makes_both_records_with_a_week_to_live(self, agenda: Agenda, conn: redis.Redis) -> None:
        agenda.begin("t1", "d1", 4, "", SIG)
        assert lives_a_week(conn, f"{TASK}t1")
        assert lives_a_week(conn, f"{DEP}d1")

    def test_later_writes_keep_the_expiry_set_when_the_record_was_made(
        self, agenda: Agenda, conn: redis.Redis
    ) -> None:
        agenda.begin("t1", "d1", 4, "", SIG)
        conn.expire(f"{TASK}t1", 100)
        conn.expire(f"{DEP}d1", 100)
        assert agenda.wait("t1", "d1", "", 0, SIG)
        assert agenda.begin("t1", "d1", 4, "", SIG) is Begun.RUN  # the same stage again
        assert agenda.begin("t2", "d1", 5, "", SIG) is Begun.RUN  # the next stage
        assert ttl(conn, f"{TASK}t1") == -2  # replaced by t2's record
        assert 0 < ttl(conn, f"{DEP}d1") <= 100
        assert lives_a_week(conn, f"{TASK}t2")
        # the deployment record still names the stage that runs now
        assert conn.hmget(f"{DEP}d1", "task", "index") == [b"t2", b"5"]

    def test_a_wait_that_makes_the_record_gives_it_a_week(self, agenda: Agenda, conn: redis.Redis) -> None:
        """A copy that found the deployment busy puts itself on the agenda without having begun."""
        assert agenda.wait("t9", "d9", "", 5, SIG)
        assert lives_a_week(conn, f"{TASK}t9")

    def test_a_finished_deployment_is_remembered_a_week_from_its_end(
        self, agenda: Agenda, conn: redis.Redis
    ) -> None:
        agenda.begin("t1", "d1", 7, "", SIG)
        conn.expire(f"{DEP}d1", 100)
        assert agenda.finish("t1", "d1", "")
        assert lives_a_week(conn, f"{DEP}d1")
