"""A stage run goes on into the stages after it while each finishes at once (real Redis, real agenda).

The chain Celery carries in the message is played by a list of signature dicts, as Celery keeps it
(the next stage last); what the run leaves in it is what Celery sends when the run returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from celery import Celery, Task
from celery.exceptions import Ignore
from celery.result import AsyncResult
from kombu.utils import json as kombu_json

from deploy_agent.adapters.agenda import DEP, TASK, Begun
from deploy_agent.adapters.redis_locks import ServiceLock
from deploy_agent.adapters.redis_store import DeploymentStore
from deploy_agent.core.state import PipelineState, utcnow
from deploy_agent.settings import Settings
from deploy_agent.strategies.base import Progress, Run
from deploy_agent.tasks import stages
from deploy_agent.tasks.runtime import Runtime, set_runtime
from sandbox_harness.redis_server import LocalRedis

pytestmark = pytest.mark.integration

REQUEST = {
    "cluster_name": "c1",
    "service_name": "web",
    "image": {"uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:2"},
}
AFTER_PREFLIGHT = ["register", "deploy", "healthcheck", "rollback", "finalize"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    with LocalRedis(root=tmp_path_factory.mktemp("redis")) as running:
        yield running


@pytest.fixture
def rt(server: LocalRedis) -> Iterator[Runtime]:
    conn = server.client(0)
    conn.flushdb()
    runtime = Runtime(settings=Settings(lock_ttl_seconds=30), redis=conn)
    set_runtime(runtime)
    assert runtime.lock("c1", "web", "us-east-1").acquire("A")
    now = utcnow()
    state = PipelineState(
        deployment_id="A",
        request=REQUEST,
        strategy="rolling",
        cluster="c1",
        service="web",
        region="us-east-1",
        started_at=now,
        deadline=now + timedelta(seconds=600),
    )
    runtime.store.save("A", state.model_dump(mode="json"))
    yield runtime
    set_runtime(None)
    conn.close()


def signature(stage: str) -> dict[str, Any]:
    return {
        "task": f"deploy_agent.stage.{stage}",
        "args": ["A"],
        "kwargs": {},
        "options": {"task_id": f"t-{stage}", "ignore_result": stage != "finalize"},
        "immutable": True,
        "subtask_type": None,
    }


class FakeStageTask:
    """A bound stage task as ``run_stage`` reads it: the request, the signature from it, the backend.

    The backend is a real Celery Redis result backend on the test's Redis.
    """

    def __init__(self, stage: str, following: list[str], backend: Any = None) -> None:
        chain = [signature(name) for name in reversed(following)]
        self.request = SimpleNamespace(id=f"t-{stage}", chain=chain, root_id="entry", ignore_result=True)
        self.stage = stage
        self.backend = backend

    def signature_from_request(self) -> dict[str, Any]:
        options = {"task_id": self.request.id, "chain": list(self.request.chain)}
        return {"task": f"deploy_agent.stage.{self.stage}", "args": ["A"], "kwargs": {}, "options": options}

    def sent_next(self) -> list[str]:
        """The stages Celery sends after this run, in order."""
        return [str(sig["task"]).removeprefix("deploy_agent.stage.") for sig in reversed(self.request.chain)]


def done(_rt: Runtime, _run: Run[Any]) -> Progress:
    return Progress.finished()


def skipped(_rt: Runtime, _run: Run[Any]) -> Progress:
    return Progress.skip()


def waiting(_rt: Runtime, _run: Run[Any]) -> Progress:
    return Progress.wait(30)


def run(task: FakeStageTask) -> str:
    return stages.run_stage(cast(Task, task), "A", task.stage, done, None)


def outcomes(rt: Runtime) -> dict[str, str]:
    raw = rt.store.load("A")
    assert raw is not None
    return {record.name: record.outcome for record in PipelineState.model_validate(raw).stages}


def record(rt: Runtime, task_id: str) -> dict[str, str]:
    raw = cast(dict[bytes, bytes], rt.redis.hgetall(TASK + task_id))
    return {k.decode(): v.decode() for k, v in raw.items()}


@pytest.fixture
def app(server: LocalRedis) -> Iterator[Celery]:
    celery_app = Celery("stage-runs", broker="memory://", backend=f"{server.url}/0", set_as_current=False)
    yield celery_app
    celery_app.close()


class TestStagesInOneRun:
    def test_stages_that_finish_at_once_run_in_the_same_task_run_up_to_the_result(
        self, rt: Runtime, app: Celery, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Everything after preflight runs in its run, finalize too: the result is stored under its id."""
        for name in ("register", "deploy", "healthcheck"):
            monkeypatch.setitem(stages.STEPS, name, done)
        monkeypatch.setitem(stages.STEPS, "rollback", skipped)
        task = FakeStageTask("preflight", AFTER_PREFLIGHT, app.backend)
        loads: list[str] = []
        load = DeploymentStore.load
        monkeypatch.setattr(DeploymentStore, "load", lambda store, dep: loads.append(dep) or load(store, dep))
        fences: list[str] = []
        fence = ServiceLock.fence
        monkeypatch.setattr(ServiceLock, "fence", lambda lock, dep: fences.append(dep) or fence(lock, dep))

        assert run(task) == "A"

        # the state is read once: each stage after the first starts from what the one before saved
        assert loads == ["A"]
        # the lock is fenced before the run's first step (the steps here make no AWS call)
        assert fences == ["A"]

        assert task.sent_next() == []
        assert outcomes(rt) == {
            "preflight": "succeeded",
            "register": "succeeded",
            "deploy": "succeeded",
            "healthcheck": "succeeded",
            "rollback": "skipped",
            "finalize": "succeeded",
        }
        result = AsyncResult("t-finalize", app=app)
        assert result.state == "SUCCESS"
        assert result.result["outcome"] == "succeeded"
        assert result.result == rt.store.result("A")
        # the deployment is off the agenda, its marker fences late copies, its lock is free
        assert rt.agenda.pending() == 0
        assert record(rt, "t-finalize") == {}
        assert rt.agenda.begin("t-finalize", "A", 7, "", "{}") is Begun.STALE
        assert rt.lock("c1", "web", "us-east-1").holder() is None

    def test_a_run_whose_chain_holds_only_finalize_ends_the_deployment(
        self, rt: Runtime, app: Celery, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A rollback run whose chain holds only finalize runs it inline; nothing is left to send."""
        monkeypatch.setitem(stages.STEPS, "rollback", skipped)
        task = FakeStageTask("rollback", ["finalize"], app.backend)

        stages.run_stage(cast(Task, task), "A", "rollback", skipped, None)

        assert task.sent_next() == []
        assert AsyncResult("t-finalize", app=app).state == "SUCCESS"
        assert rt.agenda.pending() == 0

    def test_a_stage_that_waits_goes_on_the_agenda_with_the_rest_of_the_chain(
        self, rt: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Deploy waits: its own signature, carrying healthcheck..finalize, is what the agenda publishes."""
        monkeypatch.setitem(stages.STEPS, "register", done)
        monkeypatch.setitem(stages.STEPS, "deploy", waiting)
        task = FakeStageTask("preflight", AFTER_PREFLIGHT)

        with pytest.raises(Ignore):
            run(task)

        saved = record(rt, "t-deploy")
        assert saved["mode"] == "waiting"
        sig = kombu_json.loads(saved["sig"])
        assert sig["task"] == "deploy_agent.stage.deploy"
        assert [s["task"] for s in reversed(sig["options"]["chain"])] == [
            f"deploy_agent.stage.{name}" for name in ("healthcheck", "rollback", "finalize")
        ]
        assert sig["options"]["ignore_result"] is True
        assert cast(bytes, rt.redis.hget(DEP + "A", "task")).decode() == "t-deploy"
        assert outcomes(rt)["deploy"] == "running"
        # the step mutex is free again for the agenda's copy
        assert rt.redis.exists("deploy-agent:stepping:A") == 0

    def test_the_first_message_redelivered_later_is_a_stale_copy(
        self, rt: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Once a later stage began here, the message this run came with can never step it again."""
        monkeypatch.setitem(stages.STEPS, "register", done)
        monkeypatch.setitem(stages.STEPS, "deploy", waiting)
        with pytest.raises(Ignore):
            run(FakeStageTask("preflight", AFTER_PREFLIGHT))

        assert rt.agenda.begin("t-preflight", "A", 0, "", "{}") is Begun.STALE

    def test_a_stage_a_dispatcher_published_is_left_to_celery(
        self, rt: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The next stage's record carries a dispatcher's token: this run stops and Celery sends it."""
        monkeypatch.setitem(stages.STEPS, "register", done)
        rt.redis.hset(TASK + "t-register", mapping={"token": "d7", "mode": "dispatched", "sig": "{}"})
        task = FakeStageTask("preflight", AFTER_PREFLIGHT)

        run(task)

        assert task.sent_next() == AFTER_PREFLIGHT
        assert outcomes(rt) == {"preflight": "succeeded"}
        assert record(rt, "t-preflight")["mode"] == "handover"

    def test_a_run_past_half_its_time_limit_leaves_the_next_stage_to_celery(
        self, rt: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Celery's time limit is per run: after a preflight that took over half of it, no stage follows."""
        clock = [utcnow()]
        rt.now = lambda: clock[0]

        def slow(_rt: Runtime, _run: Run[Any]) -> Progress:
            clock[0] += timedelta(seconds=rt.settings.task_time_limit_seconds * 0.6)
            return Progress.finished()

        monkeypatch.setitem(stages.STEPS, "register", done)
        task = FakeStageTask("preflight", AFTER_PREFLIGHT)

        stages.run_stage(cast(Task, task), "A", "preflight", slow, None)

        assert task.sent_next() == AFTER_PREFLIGHT
        assert outcomes(rt) == {"preflight": "succeeded"}
