"""The service lock's fence on a real Redis: a deployment that lost its lock never acts again.

Each test gets a private ``redis-server`` (the Lua scripts run in Redis itself, so no fake would do).
Issue 9, the worker's point 9.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.exceptions import Ignore

from deploy_agent.adapters.agenda import DEP, TASK, Begun
from deploy_agent.adapters.redis_locks import ServiceLock, StepMutex
from deploy_agent.core.outcome import Phase
from deploy_agent.core.state import PipelineState, utcnow
from deploy_agent.settings import Settings
from deploy_agent.strategies.base import Progress, Run
from deploy_agent.tasks import entry, finish, stages
from deploy_agent.tasks.fence import LockLost, fenced
from deploy_agent.tasks.runtime import Runtime
from deploy_agent.tasks.stages import advance_stage
from sandbox_harness.redis_server import LocalRedis

pytestmark = pytest.mark.integration

#: a message the worker accepts (``tasks.wiring.request_of`` validates the stored one every step)
REQUEST = {
    "cluster_name": "c1",
    "service_name": "web",
    "image": {"uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:2"},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    with LocalRedis(root=tmp_path_factory.mktemp("redis")) as running:
        yield running


@pytest.fixture
def client(server: LocalRedis) -> Iterator[redis.Redis]:
    conn = server.client(0)
    conn.flushdb()
    yield conn
    conn.close()


@pytest.fixture
def rt(client: redis.Redis) -> Runtime:
    return Runtime(settings=Settings(lock_ttl_seconds=30), redis=client)


def lock(client: redis.Redis, ttl_seconds: int = 30) -> ServiceLock:
    return ServiceLock(client, "c1", "web", ttl_seconds, "us-east-1")


def lapse(client: redis.Redis, service_lock: ServiceLock) -> None:
    """Let the lock expire as its TTL would (the last-holder record stays, as it does then)."""
    client.delete(service_lock.key)


class TestFenceScript:
    def test_the_holder_passes_and_its_lock_is_extended(self, client: redis.Redis) -> None:
        service_lock = lock(client)
        assert service_lock.acquire("A")
        client.pexpire(service_lock.key, 500)

        assert service_lock.fence("A")
        assert client.pttl(service_lock.key) > 25_000
        assert service_lock.holder() == "A"

    def test_another_holder_fails_the_fence_and_keeps_the_lock(self, client: redis.Redis) -> None:
        service_lock = lock(client)
        assert service_lock.acquire("B")

        assert not service_lock.fence("A")
        assert service_lock.holder() == "B"

    def test_a_lapsed_lock_nobody_took_since_is_taken_back(self, client: redis.Redis) -> None:
        """A's worker outlived the TTL while nobody wanted the service: nobody acted in between."""
        service_lock = lock(client)
        assert service_lock.acquire("A")
        lapse(client, service_lock)

        assert service_lock.fence("A")
        assert service_lock.holder() == "A"
        assert client.pttl(service_lock.key) > 25_000

    def test_a_lapsed_lock_that_someone_held_and_released_is_lost(self, client: redis.Redis) -> None:
        """The issue's case: B ran and released while A was gone; A must not take the service back."""
        service_lock = lock(client)
        assert service_lock.acquire("A")
        lapse(client, service_lock)
        assert service_lock.acquire("B")
        assert service_lock.release("B")

        assert not service_lock.fence("A")
        assert service_lock.holder() is None
        assert service_lock.acquire("C"), "a lost fence must leave the lock free for others"

    def test_a_released_lock_cannot_be_fenced_again(self, client: redis.Redis) -> None:
        service_lock = lock(client)
        assert service_lock.acquire("A")
        assert service_lock.release("A")

        assert not service_lock.fence("A")
        assert service_lock.holder() is None

    def test_release_by_a_non_holder_changes_nothing(self, client: redis.Redis) -> None:
        service_lock = lock(client)
        assert service_lock.acquire("B")

        assert not service_lock.release("A")
        assert service_lock.holder() == "B"
        assert service_lock.fence("B")

    def test_acquire_is_reentrant_for_the_holder_only(self, client: redis.Redis) -> None:
        service_lock = lock(client)
        assert service_lock.acquire("A")
        assert service_lock.acquire("A")
        assert not service_lock.acquire("B")

    def test_the_ttl_really_expires(self, client: redis.Redis) -> None:
        service_lock = lock(client, ttl_seconds=1)
        assert service_lock.acquire("A")
        time.sleep(1.2)
        assert service_lock.holder() is None
        assert service_lock.acquire("B")
        assert not service_lock.fence("A")


class Recorder:
    """An adapter that notes what it was asked (the fenced proxy's target)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def describe_service(self, cluster: str, service: str) -> dict[str, Any]:
        self.calls.append("describe_service")
        return {}

    def update_service(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("update_service")
        return {}

    def brand_new_mutation(self) -> None:
        self.calls.append("brand_new_mutation")


class TestFencedAdapter:
    def test_reads_skip_the_fence_and_mutations_are_fenced(self) -> None:
        fences: list[int] = []
        target = Recorder()
        ecs = fenced(target, lambda: fences.append(1))

        ecs.describe_service("c1", "web")
        assert fences == []
        ecs.update_service("c1", "web")
        assert fences == [1]
        assert target.calls == ["describe_service", "update_service"]

    def test_a_failed_fence_stops_the_call_before_it_is_made(self) -> None:
        target = Recorder()

        def lost() -> None:
            raise LockLost("c1", "web", "B")

        ecs = fenced(target, lost)
        with pytest.raises(LockLost, match="deployment B holds it now"):
            ecs.update_service("c1", "web")
        with pytest.raises(LockLost):
            ecs.brand_new_mutation()  # a method nobody listed is fenced by default
        assert target.calls == []


def state_for(deployment_id: str, **fields: Any) -> PipelineState:
    now = utcnow()
    return PipelineState(
        deployment_id=deployment_id,
        request=REQUEST,
        strategy="rolling",
        cluster="c1",
        service="web",
        region="us-east-1",
        started_at=now,
        deadline=now + timedelta(seconds=600),
        **fields,
    )


def saved(rt: Runtime, state: PipelineState) -> PipelineState:
    rt.store.save(state.deployment_id, state.model_dump(mode="json"))
    return state


def loaded(rt: Runtime, deployment_id: str) -> PipelineState:
    raw = rt.store.load(deployment_id)
    assert raw is not None
    return PipelineState.model_validate(raw)


class TestAdvanceStage:
    def test_a_step_does_not_run_once_another_deployment_holds_the_lock(self, rt: Runtime) -> None:
        saved(rt, state_for("A"))
        assert rt.lock("c1", "web", "us-east-1").acquire("B")
        ran: list[str] = []

        progress = advance_stage(
            rt, "A", "deploy", lambda _rt, _run: ran.append("deploy") or Progress.wait(1)
        )

        state = loaded(rt, "A")
        assert ran == []
        assert progress.done
        assert state.failure is not None
        assert state.failure.type == "superseded"
        assert "deployment B holds it now" in state.failure.message
        assert state.stage("deploy") is not None
        assert state.stage("deploy").outcome == "failed"
        assert rt.lock("c1", "web", "us-east-1").holder() == "B"

    def test_a_lock_lost_mid_step_stops_the_next_mutating_call(self, rt: Runtime) -> None:
        """The fence runs right before the call, not only before the step."""
        saved(rt, state_for("A"))
        assert rt.lock("c1", "web", "us-east-1").acquire("A")

        def step(rt_: Runtime, run: Run[Any]) -> Progress:
            rt_.redis.delete(rt_.lock("c1", "web", "us-east-1").key)
            assert rt_.lock("c1", "web", "us-east-1").acquire("B")  # B takes the lapsed lock meanwhile
            run.ports.ecs.update_service("c1", "web", "td:2", None, 200, 100, True, True)
            raise AssertionError("UpdateService was sent without the lock")

        advance_stage(rt, "A", "deploy", step)

        state = loaded(rt, "A")
        assert state.failure is not None
        assert state.failure.type == "superseded"
        assert state.update_requested_at is None

    def test_later_stages_undo_nothing_and_skip(self, rt: Runtime) -> None:
        saved(rt, state_for("A"))
        assert rt.lock("c1", "web", "us-east-1").acquire("B")
        advance_stage(rt, "A", "deploy", lambda _rt, _run: Progress.finished())
        ran: list[str] = []

        advance_stage(rt, "A", "rollback", lambda _rt, _run: ran.append("rollback") or Progress.finished())

        record = loaded(rt, "A").stage("rollback")
        assert ran == []
        assert record is not None
        assert record.outcome == "skipped"

    def test_the_holder_steps_as_before(self, rt: Runtime) -> None:
        saved(rt, state_for("A"))
        assert rt.lock("c1", "web", "us-east-1").acquire("A")

        progress = advance_stage(rt, "A", "deploy", lambda _rt, _run: Progress.finished())

        assert progress.done
        assert loaded(rt, "A").failure is None
        assert loaded(rt, "A").stage("deploy").outcome == "succeeded"  # type: ignore[union-attr]

    def test_a_second_copy_waits_while_the_first_steps(self, rt: Runtime) -> None:
        saved(rt, state_for("A"))
        assert rt.lock("c1", "web", "us-east-1").acquire("A")
        ran: list[str] = []
        with StepMutex(rt.redis, "A", 60).held() as mine:
            assert mine
            progress = advance_stage(
                rt, "A", "deploy", lambda _rt, _run: ran.append("x") or Progress.finished()
            )
        assert ran == []
        assert not progress.done

        assert advance_stage(rt, "A", "deploy", lambda _rt, _run: Progress.finished()).done


class TestFinishRedelivered:
    def test_a_redelivered_finish_releases_the_lock_it_still_holds(self, rt: Runtime) -> None:
        """Killed between saving the final phase and releasing: the retry lets the service go."""
        done = state_for("A", phase=Phase.DONE, outcome="succeeded")
        rt.store.save_final("A", {"outcome": "succeeded"}, done.model_dump(mode="json"))
        assert rt.lock("c1", "web", "us-east-1").acquire("A")

        assert finish.finish(rt, "A") == {"outcome": "succeeded"}
        assert rt.lock("c1", "web", "us-east-1").holder() is None

    def test_it_never_releases_someone_elses_lock(self, rt: Runtime) -> None:
        saved(rt, state_for("A", phase=Phase.DONE, outcome="succeeded"))
        assert rt.lock("c1", "web", "us-east-1").acquire("B")

        finish.finish(rt, "A")
        assert rt.lock("c1", "web", "us-east-1").holder() == "B"


class TestHandOver:
    def test_a_finished_stage_leaves_the_agenda_once_celery_sent_the_next(self, rt: Runtime) -> None:
        """Its hand-over lease ends when the next message is on the broker, not when that stage begins."""
        assert rt.agenda.begin("s1", "A", 2, "", "{}") is Begun.RUN
        assert rt.agenda.hand_over("s1", "A", "", "{}")
        stages._HANDING_OVER["s1"] = ("s1", "")

        stages.next_stage_sent("other-task", rt)
        assert rt.agenda.pending() == 1
        stages.next_stage_sent("s1", rt)

        assert rt.agenda.pending() == 0
        assert "s1" not in stages._HANDING_OVER

    def test_a_publish_by_anything_else_drops_nothing(self, rt: Runtime) -> None:
        """A message sent with no parent (a publisher, the dispatcher) leaves every lease alone."""
        rt.agenda.begin("s1", "A", 2, "", "{}")
        stages.next_stage_sent(None, rt)
        assert rt.agenda.pending() == 1


class FakeEntryTask:
    """The parts of a bound Celery task ``_accept_and_run`` uses; ``replace`` publishes like Celery.

    ``app`` is a real Celery app: an in-memory broker (what the entry sends lands in ``sent``) and a
    Redis result backend on the test's Redis.
    """

    def __init__(self, task_id: str, app: Celery) -> None:
        self.request = type("Request", (), {"id": task_id})()
        self.app = app
        self.published: list[Any] = []

    def replace(self, sig: Any) -> None:
        self.published.append(sig)
        raise Ignore("Replaced by new task")  # what Task.on_replace raises after sig.delay()

    def retry(self, countdown: float) -> Exception:
        raise AssertionError(f"unexpected retry ({countdown})")


class BrokenPublishTask(FakeEntryTask):
    """Its first publish fails the way kombu's did in a Sentinel failover; the next goes through."""

    def __init__(self, task_id: str, app: Celery) -> None:
        super().__init__(task_id, app)
        self.request.ignore_result = False  # type: ignore[attr-defined]
        self.broken = True

    def replace(self, sig: Any) -> None:
        if self.broken:
            self.broken = False
            raise AttributeError("'NoneType' object has no attribute 'client'")
        super().replace(sig)

    def signature_from_request(self) -> dict[str, Any]:
        return {"task": "deploy_agent.deploy", "args": [], "kwargs": {}, "options": {"task_id": "t1"}}


@pytest.fixture
def app(server: LocalRedis) -> Iterator[Celery]:
    celery_app = Celery("entry", broker="memory://", backend=f"{server.url}/0", set_as_current=False)
    yield celery_app
    celery_app.close()


def sent(app: Celery) -> list[str]:
    """The task names of the messages on ``app``'s in-memory broker queue ``celery``, taken off it."""
    names = []
    with app.connection_for_write() as conn:
        queue = conn.SimpleQueue("celery")
        while queue.qsize():
            message = queue.get(timeout=1)
            names.append(str(message.headers["task"]))
            message.ack()
        queue.close()
    return names


def waiting(_rt: Runtime, _run: Run[Any]) -> Progress:
    return Progress.wait(30)


def done(_rt: Runtime, _run: Run[Any]) -> Progress:
    return Progress.finished()


def agenda_record(rt: Runtime, task_id: str) -> dict[str, str]:
    raw = rt.redis.hgetall(TASK + task_id)
    return {k.decode(): v.decode() for k, v in raw.items()}  # type: ignore[union-attr]


class TestEntryRunsTheFirstStage:
    STAGES = ["preflight", "register", "deploy", "finalize"]

    def test_the_entry_runs_the_first_stage_itself_and_publishes_nothing(
        self, rt: Runtime, app: Celery, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A new deployment's first stage runs in the entry's run; its wait is on the agenda."""
        monkeypatch.setitem(stages.STEPS, "preflight", waiting)
        assert rt.agenda.lease_entry("t1", "", "{}")
        task = FakeEntryTask("t1", app)

        with pytest.raises(entry._RanInline):
            entry._accept_and_run(task, rt, state_for("A"), self.STAGES, "")

        assert task.published == []
        assert sent(app) == []
        assert entry._chain_published(rt, "A")
        assert not rt.store.is_chain_published("A")  # no marker written: the stage's record says so
        assert rt.agenda.pending() == 1  # the first stage, waiting: the entry's own lease is gone
        assert agenda_record(rt, "t1") == {}
        dep = {k.decode(): v.decode() for k, v in rt.redis.hgetall(DEP + "A").items()}  # type: ignore[union-attr]
        first = agenda_record(rt, dep["task"])
        assert first["mode"] == "waiting"
        assert json.loads(first["sig"])["task"] == "deploy_agent.stage.preflight"
        chain = json.loads(first["sig"])["options"]["chain"]
        assert [c["task"] for c in chain] == [f"deploy_agent.stage.{n}" for n in reversed(self.STAGES[1:])]
        assert chain[0]["options"]["task_id"] == "t1"  # finalize takes the entry's id: its result is awaited
        assert [s.name for s in loaded(rt, "A").stages] == ["preflight"]
        assert not rt.redis.exists(StepMutex.key_for("A"))  # given back with the wait

    def test_a_stage_that_cannot_go_on_inline_is_sent_and_its_lease_dropped(
        self, rt: Runtime, app: Celery, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Past half the run's time limit the next stage goes to the broker, as Celery would send it."""
        start, ticks = utcnow(), itertools.count()
        rt.now = lambda: start + timedelta(minutes=20 * next(ticks))  # a step outlasts half the hour's limit
        monkeypatch.setitem(stages.STEPS, "preflight", done)
        task = FakeEntryTask("t1", app)

        with pytest.raises(entry._RanInline):
            entry._accept_and_run(task, rt, state_for("A"), self.STAGES, "")

        assert sent(app) == ["deploy_agent.stage.register"]
        assert rt.agenda.pending() == 0  # the hand-over lease ended with the send
        assert [(s.name, s.outcome) for s in loaded(rt, "A").stages] == [("preflight", "succeeded")]

    def test_a_chain_recorded_but_never_published_is_run(
        self, rt: Runtime, app: Celery, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Killed between recording ``chain_started`` and beginning the chain: the deployment still runs."""
        monkeypatch.setitem(stages.STEPS, "preflight", waiting)
        saved(rt, state_for("A", entry_task_id="t1", chain_started=True))
        assert rt.lock("c1", "web", "us-east-1").acquire("A")
        task = FakeEntryTask("t1", app)

        with pytest.raises(entry._RanInline):
            entry._accept_and_run(task, rt, state_for("A"), self.STAGES, "")

        assert entry._chain_published(rt, "A")
        assert [s.name for s in loaded(rt, "A").stages] == ["preflight"]

    def test_a_published_chain_is_not_run_again(
        self, rt: Runtime, app: Celery, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(stages.STEPS, "preflight", waiting)
        saved(rt, state_for("A", entry_task_id="t1"))
        task = FakeEntryTask("t1", app)
        with pytest.raises(entry._RanInline):
            entry._accept_and_run(task, rt, state_for("A"), self.STAGES, "")

        with pytest.raises(Ignore):  # Redis redelivered the entry: its chain runs already
            entry._accept_and_run(task, rt, state_for("A"), self.STAGES, "")
        assert rt.agenda.pending() == 1
        assert task.published == []

    def test_a_first_stage_another_copy_steps_is_published_instead(
        self, rt: Runtime, app: Celery, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The step mutex held elsewhere (an earlier run's copy): the chain goes to the broker."""
        monkeypatch.setitem(stages.STEPS, "preflight", waiting)
        saved(rt, state_for("A", entry_task_id="t1"))
        rt.redis.set(StepMutex.key_for("A"), "another copy", px=30_000)
        task = FakeEntryTask("t1", app)

        with pytest.raises(Ignore):
            entry._accept_and_run(task, rt, state_for("A"), self.STAGES, "")

        assert len(task.published) == 1
        assert entry._chain_published(rt, "A")

    def test_a_publish_the_broker_broke_off_is_tried_again_from_the_agenda(
        self, rt: Runtime, app: Celery
    ) -> None:
        """A Sentinel failover mid-publish (kombu's channel without its connection) is no failure."""
        saved(rt, state_for("A", entry_task_id="t1"))
        rt.redis.set(StepMutex.key_for("A"), "another copy", px=30_000)  # so the entry publishes
        task = BrokenPublishTask("t1", app)

        with pytest.raises(entry._Waiting):
            entry._accept_and_run(task, rt, state_for("A"), self.STAGES, "")

        assert not entry._chain_published(rt, "A")
        assert rt.agenda.pending() == 1  # on the agenda, due again shortly
        assert rt.lock("c1", "web", "us-east-1").holder() == "A"
        with pytest.raises(Ignore):  # the agenda's copy: the broker is back
            entry._accept_and_run(task, rt, state_for("A"), self.STAGES, "")
        assert len(task.published) == 1
        assert entry._chain_published(rt, "A")

    def test_an_unpublished_chain_whose_lock_went_to_another_is_superseded(
        self, rt: Runtime, app: Celery
    ) -> None:
        saved(rt, state_for("A", entry_task_id="t1", chain_started=True))
        service_lock = rt.lock("c1", "web", "us-east-1")
        assert service_lock.acquire("A")
        lapse(rt.redis, service_lock)
        assert service_lock.acquire("B")
        assert service_lock.release("B")
        task = FakeEntryTask("t1", app)

        result = entry._accept_and_run(task, rt, state_for("A"), self.STAGES, "")

        assert task.published == []
        assert result is not None
        assert result["outcome"] == "superseded"

    def test_an_entry_redelivered_after_its_deployment_succeeded_returns_its_result(
        self, rt: Runtime, app: Celery
    ) -> None:
        """Redis redelivers the entry (its host died before the ack) after the deployment succeeded
        and let its lock go: the stored result comes back; nothing calls it superseded."""
        ended = state_for("A", entry_task_id="t1", chain_started=True, phase=Phase.DONE)
        result = {"deployment_id": "A", "outcome": "succeeded"}
        rt.store.save_final("A", result, ended.model_dump(mode="json"))
        service_lock = rt.lock("c1", "web", "us-east-1")
        assert service_lock.acquire("A")
        assert service_lock.release("A")
        history, stored = rt.store.events("A"), rt.store.load("A")

        again = entry._accept_and_run(FakeEntryTask("t1", app), rt, state_for("A"), self.STAGES, "")

        assert again == result
        assert (rt.store.events("A"), rt.store.load("A")) == (history, stored)


def test_local_redis_is_not_the_shared_one(server: LocalRedis) -> None:
    """These tests flush their database: it must be the private server's."""
    assert server.port != 6379
    assert Path(server.root).exists()
