"""The approve and deny tasks on a real Redis, and a rolling deployment's deploy stage waiting on them.

What the Celery tasks answer (input errors naming the field, first decision wins, decisions for a
deployment that does not wait refused), and what the stage does meanwhile: it holds no step, keeps
the service's lock alive, shows ``awaiting_approval``, and ends ``denied`` / ``timed_out`` with
the ``approval`` object in the result and the lock released.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from deploy_agent.cli import main
from deploy_agent.core.outcome import Phase, Trigger
from deploy_agent.core.state import PipelineState, utcnow
from deploy_agent.settings import Settings
from deploy_agent.strategies.base import Progress, Run
from deploy_agent.strategies.steps.approval import await_approval
from deploy_agent.tasks import finish
from deploy_agent.tasks.approval import decide
from deploy_agent.tasks.runtime import Runtime, set_runtime
from deploy_agent.tasks.stages import STEPS, advance_stage
from deploy_agent.worker.status_page import summarize_deployment
from sandbox_harness.redis_server import LocalRedis

pytestmark = pytest.mark.integration

ALICE = "alice@laptop"
#: the pushed image of the message (the request is the validated model: it must be complete)
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web@sha256:" + "a" * 64


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    with LocalRedis(root=tmp_path_factory.mktemp("redis")) as running:
        yield running


@pytest.fixture
def rt(server: LocalRedis, tmp_path: Path) -> Iterator[Runtime]:
    conn: redis.Redis = server.client(0)
    conn.flushdb()
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps({"approvals": [{"name": "production", "clusters": ["prod"], "timeout_seconds": 300}]})
    )
    settings = Settings(policy=policy, approval_poll_seconds=1.5, lock_ttl_seconds=600)
    runtime = Runtime(settings=settings, redis=conn, now=Clock())
    yield runtime
    conn.close()  # type: ignore[no-untyped-call]


def clock(rt: Runtime) -> Clock:
    assert isinstance(rt.now, Clock)
    return rt.now


def recorded(rt: Runtime, cluster: str = "prod", deployment_id: str = "dep-1") -> str:
    now = rt.now()
    state = PipelineState(
        deployment_id=deployment_id,
        request={
            "deployment_id": deployment_id,
            "cluster_name": cluster,
            "service_name": "web",
            "image": {"uri": IMAGE},
            "strategy": {"type": "rolling"},
        },
        strategy="rolling",
        cluster=cluster,
        service="web",
        region="us-east-1",
        phase=Phase.REGISTERED,
        started_at=now,
        deadline=now + timedelta(seconds=3600),
        task_definition_arn="arn:aws:ecs:us-east-1:123456789012:task-definition/web:2",
        previous_task_definition_arn="arn:aws:ecs:us-east-1:123456789012:task-definition/web:1",
    )
    rt.store.create(deployment_id, state.model_dump(mode="json"))
    assert rt.lock(cluster, "web", "us-east-1").acquire(deployment_id)
    return deployment_id


def gate_only(_rt: Runtime, run: Run) -> Progress:
    """The deploy stage's approval gate without what follows it."""
    return await_approval(run)


def load(rt: Runtime, deployment_id: str) -> PipelineState:
    return PipelineState.model_validate(rt.store.load(deployment_id))


def waiting(rt: Runtime, cluster: str = "prod") -> str:
    """A deployment whose deploy stage waits for approval."""
    dep = recorded(rt, cluster)
    progress = advance_stage(rt, dep, "deploy", STEPS["deploy"])
    assert not progress.done
    return dep


def approve(rt: Runtime, **request: Any) -> dict[str, Any]:
    return decide(rt, "approved", request)


def deny(rt: Runtime, **request: Any) -> dict[str, Any]:
    return decide(rt, "denied", request)


class TestInput:
    @pytest.mark.parametrize(
        ("request_", "field"),
        [
            ({"approver": ALICE}, "deployment_id"),
            ({"deployment_id": "dep-1"}, "approver"),
            ({"deployment_id": "dep-1", "approver": "  "}, "approver"),
            ({"deployment_id": "dep-1", "approver": "a\x1b[31mb"}, "approver"),
            ({"deployment_id": "../etc", "approver": ALICE}, "deployment_id"),
            ({"deployment_id": "dep-1", "approver": ALICE, "comment": 7}, "comment"),
            ({"deployment_id": "dep-1", "approver": ALICE, "comment": "x" * 2001}, "comment"),
            ({"deployment_id": "dep-1", "approver": ALICE, "reason": "no"}, "reason"),
        ],
    )
    def test_an_invalid_approval_is_rejected_naming_the_field(
        self, rt: Runtime, request_: dict[str, Any], field: str
    ) -> None:
        answer = decide(rt, "approved", request_)
        error = answer["error"]
        assert error["type"] == "request_rejected"
        assert [e["field"] for e in error["errors"]] == [field]
        assert field in error["message"]

    def test_a_denial_needs_a_reason(self, rt: Runtime) -> None:
        dep = waiting(rt)
        for request in (
            {"deployment_id": dep, "approver": ALICE},
            {"deployment_id": dep, "approver": ALICE, "reason": " "},
        ):
            error = decide(rt, "denied", request)["error"]
            assert [e["field"] for e in error["errors"]] == ["reason"]
        assert load(rt, dep).awaiting_approval  # nothing decided

    @pytest.mark.parametrize("payload", [None, ["dep-1"], "not json", '"text"'])
    def test_a_request_that_is_not_an_object_says_so(self, rt: Runtime, payload: Any) -> None:
        error = decide(rt, "approved", payload)["error"]
        assert error["errors"][0]["field"] == "request"
        assert "JSON" in error["message"]

    def test_a_json_text_request_is_read_like_a_dict(self, rt: Runtime) -> None:
        dep = waiting(rt)
        answer = decide(rt, "approved", json.dumps({"deployment_id": dep, "approver": ALICE}))
        assert answer["decision"] == "approved"


class TestDecisions:
    def test_approve_answers_with_the_decision(self, rt: Runtime) -> None:
        dep = waiting(rt)
        answer = approve(rt, deployment_id=dep, approver=ALICE, comment="ship it")
        assert answer == {
            "deployment_id": dep,
            "decision": "approved",
            "approver": ALICE,
            "decided_at": rt.now().isoformat().replace("+00:00", "Z"),
        }

    def test_the_first_decision_wins(self, rt: Runtime) -> None:
        dep = waiting(rt)
        assert deny(rt, deployment_id=dep, approver="bob@desk", reason="freeze")["decision"] == "denied"
        error = approve(rt, deployment_id=dep, approver=ALICE)["error"]
        assert error["type"] == "not_awaiting_approval"
        assert "denied by bob@desk" in error["message"]
        # the same decision again (a redelivered task) answers as the first time did
        again = deny(rt, deployment_id=dep, approver="bob@desk", reason="freeze")
        assert again["decision"] == "denied"

    def test_concurrent_decisions_have_exactly_one_winner(self, rt: Runtime) -> None:
        dep = waiting(rt)
        answers: list[dict[str, Any]] = []

        def one(i: int) -> None:
            kind = "approved" if i % 2 else "denied"
            answers.append(decide(rt, kind, {"deployment_id": dep, "approver": f"u{i}", "reason": "r"}))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len([a for a in answers if "error" not in a]) == 1

    def test_unknown_and_not_waiting_deployments_are_refused_clearly(self, rt: Runtime) -> None:
        error = approve(rt, deployment_id="nope", approver=ALICE)["error"]
        assert error["type"] == "unknown_deployment"
        dep = recorded(rt, cluster="staging")  # no rule for staging: it never waits
        assert advance_stage(rt, dep, "deploy", gate_only).done  # no rule for staging: it goes on
        error = approve(rt, deployment_id=dep, approver=ALICE)["error"]
        assert error["type"] == "not_awaiting_approval"
        assert "not awaiting approval" in error["message"]

    def test_a_decision_past_the_approval_deadline_is_refused(self, rt: Runtime) -> None:
        dep = waiting(rt)
        clock(rt).advance(301)
        error = approve(rt, deployment_id=dep, approver=ALICE)["error"]
        assert "past its approval deadline" in error["message"]


class TestTheWaitingStage:
    def test_it_waits_the_poll_interval_keeps_the_lock_and_shows_awaiting_approval(
        self, rt: Runtime, capsys: pytest.CaptureFixture[str]
    ) -> None:
        dep = recorded(rt)
        lock_key = rt.lock("prod", "web", "us-east-1").key
        for _ in range(3):
            rt.redis.pexpire(lock_key, 5000)  # as if the TTL had almost run out
            progress = advance_stage(rt, dep, "deploy", STEPS["deploy"])
            assert (progress.done, progress.wait_seconds) == (False, 1.5)
            assert int(rt.redis.pttl(lock_key)) > 590_000  # type: ignore[arg-type]  # extended by the look
            clock(rt).advance(1.5)
        state = load(rt, dep)
        assert state.awaiting_approval
        assert not rt.redis.exists(f"deploy-agent:stepping:{dep}")  # no step held while it waits
        assert summarize_deployment(state, rt.now())["phase"] == "awaiting_approval"
        kinds = [e["event"] for e in rt.store.events(dep)]
        assert kinds.count("awaiting_approval") == 1
        set_runtime(rt)
        try:
            assert main(["status", dep]) == 0
        finally:
            set_runtime(None)
        assert "state: awaiting_approval (rule production" in capsys.readouterr().out

    def test_denied_ends_denied_with_the_approval_in_the_result_and_the_lock_released(
        self, rt: Runtime
    ) -> None:
        dep = waiting(rt)
        clock(rt).advance(12)
        deny(rt, deployment_id=dep, approver=ALICE, reason="not during the sale")
        assert advance_stage(rt, dep, "deploy", STEPS["deploy"]).done
        for stage in ("healthcheck", "rollback", "finalize"):
            assert advance_stage(rt, dep, stage, STEPS[stage]).done
        result = finish.finish(rt, dep)
        assert result is not None
        assert result["outcome"] == "denied"
        assert result["rollback"] is None
        assert result["error"]["type"] == "denied"
        approval = result["approval"]
        assert approval["rule"] == "production"
        assert (approval["decision"], approval["approver"], approval["reason"]) == (
            "denied",
            ALICE,
            "not during the sale",
        )
        assert datetime.fromisoformat(approval["decided_at"]) - datetime.fromisoformat(
            approval["requested_at"]
        ) == timedelta(seconds=12)
        assert rt.lock("prod", "web", "us-east-1").holder() is None
        events = {e["event"]: e for e in rt.store.events(dep)}
        assert events["denied"]["approver"] == ALICE
        assert events["denied"]["reason"] == "not during the sale"

    def test_nobody_deciding_ends_timed_out(self, rt: Runtime) -> None:
        dep = waiting(rt)
        clock(rt).advance(300)
        assert advance_stage(rt, dep, "deploy", STEPS["deploy"]).done
        result = finish.finish(rt, dep)
        assert result is not None
        assert result["outcome"] == "timed_out"
        assert result["approval"]["decision"] == "timed_out"
        assert result["approval"]["approver"] is None
        assert approve(rt, deployment_id=dep, approver=ALICE)["error"]["type"] == "not_awaiting_approval"

    def test_a_deployment_ended_while_waiting_closes_its_approval(self, rt: Runtime) -> None:
        """Ended by something else (a lost lock, its deadline): the approval is closed, decisions refused."""
        dep = waiting(rt)
        state = load(rt, dep)
        state.fail("superseded", "a newer deployment", Trigger.ERROR)
        rt.store.save(dep, state.model_dump(mode="json"))
        result = finish.finish(rt, dep)
        assert result is not None
        assert result["outcome"] == "superseded"
        assert result["approval"]["decision"] == "timed_out"
        assert "error" in approve(rt, deployment_id=dep, approver=ALICE)

    def test_approved_the_deployment_goes_on_with_the_approval_in_the_result(self, rt: Runtime) -> None:
        dep = waiting(rt)
        approve(rt, deployment_id=dep, approver=ALICE, comment="go")
        # the gate alone (the next step would be UpdateService, and no AWS is here)
        assert advance_stage(rt, dep, "deploy", gate_only).done
        state = load(rt, dep)
        assert state.approval is not None
        assert state.approval.decision == "approved"
        assert state.approval.reason == "go"
        kinds = [e["event"] for e in rt.store.events(dep)]
        assert kinds.index("awaiting_approval") < kinds.index("approved")


class TestCli:
    def test_approve_and_deny_from_the_command_line(
        self, rt: Runtime, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``deploy-agent approve`` records the decision itself (no worker needed); approver: $USER@host."""
        import socket

        monkeypatch.setenv("USER", "dora")
        dep = waiting(rt)
        set_runtime(rt)
        try:
            with pytest.raises(SystemExit):
                main(["deny", dep])  # --reason is required
            capsys.readouterr()
            assert main(["approve", dep, "--comment", "fine"]) == 0
            answer = json.loads(capsys.readouterr().out)
            assert main(["deny", dep, "--reason", "too late"]) == 1
            refused = json.loads(capsys.readouterr().out)
        finally:
            set_runtime(None)
        assert answer["decision"] == "approved"
        assert answer["approver"] == f"dora@{socket.gethostname()}"
        assert refused["error"]["type"] == "not_awaiting_approval"
        record = rt.redis.hgetall(f"deploy-agent:approval:{dep}")
        assert record[b"reason"] == b"fine"  # type: ignore[index]
