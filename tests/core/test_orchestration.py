"""The pipeline's decisions (``core.orchestration``) as tables: which stages run, what a stage run
does, how a failing step goes on, how a stage and the whole deployment read at the end.

States are built with ``PipelineState`` directly; nothing here touches Redis, Docker or AWS.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from deploy_agent.core.orchestration import (
    ChainPlan,
    Entry,
    OnError,
    decide_entry,
    decide_on_error,
    decide_rollback_info,
    decide_stage_outcome,
    plan_chain,
    plan_result,
)
from deploy_agent.core.outcome import APPROVAL_TIMED_OUT, DENIED, Trigger
from deploy_agent.core.state import ApprovalState, FailureState, PipelineState, StageState
from deploy_agent.models.request import DeployToECSTask
from deploy_agent.models.result import DeploymentResult

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:2"
OLD = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1"
NEW = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:2"
ALL = ("preflight", "build", "push", "register", "deploy", "healthcheck", "rollback", "finalize")
ROLLBACK_CHAIN = ("preflight", "deploy", "rollback", "finalize")


def message(**fields: Any) -> DeployToECSTask:
    return DeployToECSTask.model_validate(
        {"cluster_name": "c1", "service_name": "web", "image": {"uri": IMAGE}, **fields}
    )


def state(**fields: Any) -> PipelineState:
    """A deployment of revision 2 of c1/web over revision 1, started at ``T0``; ``fields`` override."""
    values: dict[str, Any] = {
        "deployment_id": "d-1",
        "request": {"cluster_name": "c1", "service_name": "web", "image": {"uri": IMAGE}},
        "strategy": "rolling",
        "cluster": "c1",
        "service": "web",
        "region": "us-east-1",
        "started_at": T0,
        "deadline": T0 + timedelta(seconds=600),
        "finished_at": T0 + timedelta(seconds=42.5),
        "image_uri": IMAGE,
        "task_definition_arn": NEW,
        "previous_task_definition_arn": OLD,
    }
    return PipelineState(**{**values, **fields})


#: the message every result below is planned with (``plan_result`` reads who asked and the labels)
MESSAGE = message(requested_by="ci")


def failure(type_: str, trigger: Trigger, message_: str = "it broke") -> FailureState:
    return FailureState(type=type_, message=message_, trigger=trigger)


TOUCHED = T0 + timedelta(seconds=10)
HEALTH = failure("health_check_failed", Trigger.HEALTH_CHECK, "500 three times in a row")
BREAKER = failure("rollout_failed", Trigger.CIRCUIT_BREAKER, "tasks failed to start")
BUILD = failure("build_failed", Trigger.ERROR, "RUN exit 3")
LATE = failure("deadline_exceeded", Trigger.DEADLINE, "not done in 600 s")
REFUSED = failure("preflight_failed", Trigger.ERROR, "not ours to deploy")
NO = failure(DENIED, Trigger.ERROR, "denied by ana: not today")
NOBODY = failure(APPROVAL_TIMED_OUT, Trigger.DEADLINE, "nobody approved the deployment within 3600 s")
NEWER = failure("superseded", Trigger.ERROR, "a newer deployment of this service (d-2) was requested")


# --- plan_chain ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("request_", "stages", "run", "idle"),
    [
        (
            message(),
            ALL,
            ["preflight", "register", "deploy", "rollback", "finalize"],
            ["build", "push", "healthcheck"],
        ),
        (
            message(
                build={"context": "web"}, image={"repository": "web"}, health_check={"url": "http://x/h"}
            ),
            ALL,
            list(ALL),
            [],
        ),
        (
            message(health_check={"url": "http://x/h"}),
            ALL,
            ["preflight", "register", "deploy", "healthcheck", "rollback", "finalize"],
            ["build", "push"],
        ),
        (
            message(build={"context": "web"}, image={"repository": "web"}),
            ALL,
            ["preflight", "build", "push", "register", "deploy", "rollback", "finalize"],
            ["healthcheck"],
        ),
        (None, ROLLBACK_CHAIN, list(ROLLBACK_CHAIN), []),
        (None, ALL, list(ALL), []),
        (message(), ("preflight", "deploy", "finalize"), ["preflight", "deploy", "finalize"], []),
        (message(), ("healthcheck", "push", "build"), [], ["healthcheck", "push", "build"]),
    ],
    ids=[
        "a prebuilt image without a health URL skips build, push and healthcheck",
        "a build with a health URL runs every stage",
        "a prebuilt image with a health URL still checks health",
        "a build without a health URL skips only the healthcheck",
        "a manual rollback (no message) runs its whole chain",
        "a manual rollback runs every stage it is given, even build and push",
        "a chain without the skippable stages runs as given",
        "the stages keep the order they were given in, idle ones too",
    ],
)
def test_plan_chain(
    request_: DeployToECSTask | None, stages: tuple[str, ...], run: list[str], idle: list[str]
) -> None:
    """A stage with nothing to do for the message is idle; every other runs, in the given order."""
    assert plan_chain(stages, request_) == ChainPlan(run, idle)


# --- decide_entry -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stage", "outcome", "failed", "entry"),
    [
        ("deploy", "running", False, Entry.RUN),
        ("deploy", "succeeded", False, Entry.DONE),
        ("deploy", "failed", True, Entry.DONE),
        ("healthcheck", "skipped", True, Entry.DONE),
        ("deploy", "running", True, Entry.SKIP),
        ("healthcheck", "running", True, Entry.SKIP),
        ("preflight", "running", True, Entry.SKIP),
        ("rollback", "running", True, Entry.RUN),
        ("finalize", "running", True, Entry.RUN),
        ("rollback", "running", False, Entry.SKIP),
        ("rollback", "succeeded", True, Entry.DONE),
        ("finalize", "succeeded", True, Entry.DONE),
    ],
    ids=[
        "a running stage of a healthy deployment runs",
        "a redelivered finished stage is done",
        "a redelivered failed stage is done, not run again",
        "a redelivered skipped stage is done",
        "deploy after a failure is skipped",
        "healthcheck after a failure is skipped",
        "any stage but rollback and finalize is skipped after a failure",
        "rollback still runs after a failure: it undoes",
        "finalize still runs after a failure: it reports",
        "rollback in a healthy deployment is skipped: nothing to undo",
        "a redelivered finished rollback is done",
        "a redelivered finished finalize is done",
    ],
)
def test_decide_entry(stage: str, outcome: str, failed: bool, entry: Entry) -> None:
    """A stage runs while its record is running, unless a failure (rollback: no failure) leaves it no work."""
    assert decide_entry(stage, outcome, failed) is entry


# --- decide_on_error ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stage", "transient", "past_deadline", "undo_out_of_time", "decision"),
    [
        ("deploy", True, False, False, OnError.WAIT),
        ("register", True, False, False, OnError.WAIT),
        ("deploy", True, True, False, OnError.FAIL),
        ("deploy", False, False, False, OnError.FAIL),
        ("deploy", False, True, False, OnError.FAIL),
        ("deploy", True, False, True, OnError.WAIT),
        ("rollback", True, False, False, OnError.RETRY_UNDO),
        ("rollback", False, False, False, OnError.RETRY_UNDO),
        ("rollback", False, True, False, OnError.RETRY_UNDO),
        ("rollback", True, False, True, OnError.FAIL),
        ("rollback", False, True, True, OnError.FAIL),
    ],
    ids=[
        "a transient error inside the deadline waits",
        "a transient error in any forward stage waits",
        "a transient error past the deadline fails",
        "a lasting error fails at once",
        "a lasting error past the deadline fails",
        "the undo's own timeout does not matter outside rollback",
        "a transient error while undoing is retried",
        "even a lasting error while undoing is retried",
        "the deployment's deadline does not stop an undo",
        "an undo out of its own time fails",
        "an undo out of time fails whatever the error",
    ],
)
def test_decide_on_error(
    stage: str, transient: bool, past_deadline: bool, undo_out_of_time: bool, decision: OnError
) -> None:
    """Forward stages wait out transient errors until the deadline; undoing retries until its own timeout."""
    assert decide_on_error(stage, transient, past_deadline, undo_out_of_time) is decision


# --- decide_stage_outcome -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stage", "skipped", "failed", "earlier", "rollback_failed", "outcome"),
    [
        ("deploy", False, False, False, False, "succeeded"),
        ("build", True, False, False, False, "skipped"),
        ("rollback", True, True, True, False, "skipped"),
        ("deploy", False, True, False, False, "failed"),
        ("healthcheck", False, True, False, False, "failed"),
        ("healthcheck", False, True, True, False, "succeeded"),
        ("rollback", False, True, False, False, "succeeded"),
        ("finalize", False, True, False, False, "succeeded"),
        ("rollback", False, True, True, True, "failed"),
        ("rollback", True, True, True, True, "skipped"),
        ("finalize", False, True, True, True, "succeeded"),
        ("deploy", False, False, False, True, "succeeded"),
    ],
    ids=[
        "a stage that finished in a healthy deployment succeeded",
        "a stage that found nothing to do is skipped",
        "a rollback with nothing to undo is skipped",
        "the stage in which the deployment failed is failed",
        "a health check that failed the deployment is failed",
        "a stage after another stage's failure is not blamed for it",
        "a rollback that undid a failure succeeded",
        "finalize after a failure succeeded: it reported",
        "a rollback that did not settle is failed",
        "a skipped rollback stays skipped even when flagged failed",
        "only the rollback stage carries the undo's failure",
        "a forward stage is not failed by the undo flag alone",
    ],
)
def test_decide_stage_outcome(
    stage: str, skipped: bool, failed: bool, earlier: bool, rollback_failed: bool, outcome: str
) -> None:
    """A stage is failed only if the failure is its own (or the undo did not settle), else it succeeded."""
    assert decide_stage_outcome(stage, skipped, failed, earlier, rollback_failed) == outcome


# --- decide_rollback_info -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "info"),
    [
        ({}, None),
        ({"failure": BUILD}, None),
        ({"failure": HEALTH, "update_requested_at": TOUCHED}, None),
        (
            {"failure": HEALTH, "update_requested_at": TOUCHED, "rollback_requested": True},
            {"trigger": "health_check", "reason": "500 three times in a row", "to_task_definition_arn": OLD},
        ),
        (
            {"failure": BREAKER, "update_requested_at": TOUCHED, "ecs_rolled_back": True},
            {"trigger": "circuit_breaker", "reason": "tasks failed to start", "to_task_definition_arn": OLD},
        ),
        (
            {"failure": LATE, "update_requested_at": TOUCHED, "rollback_requested": True},
            {"trigger": "deadline", "reason": "not done in 600 s", "to_task_definition_arn": OLD},
        ),
        ({"failure": HEALTH, "rollback_requested": True}, None),
        ({"failure": NO, "update_requested_at": TOUCHED, "rollback_requested": True}, None),
        ({"failure": NOBODY, "update_requested_at": TOUCHED, "rollback_requested": True}, None),
        (
            {"manual_rollback": True, "requested_by": "ana"},
            {"trigger": "manual", "reason": "rollback requested by ana", "to_task_definition_arn": NEW},
        ),
        (
            {"manual_rollback": True},
            {
                "trigger": "manual",
                "reason": "rollback requested by an operator",
                "to_task_definition_arn": NEW,
            },
        ),
        (
            {"manual_rollback": True, "requested_by": "ana", "failure": HEALTH},
            {"trigger": "manual", "reason": "rollback requested by ana", "to_task_definition_arn": NEW},
        ),
    ],
    ids=[
        "a deployment without a failure names no rollback",
        "a failure before the service was touched names no rollback",
        "a failure left in place (nothing undone) names no rollback",
        "an undone health failure names its trigger, reason and the previous revision",
        "a rollback ECS made by itself is named too",
        "a deadline that was undone names the deadline",
        "an undo asked for before the service was touched names no rollback",
        "a denial names no rollback: production was untouched",
        "an approval that timed out names no rollback",
        "a manual rollback names who asked and the revision it put back",
        "a manual rollback without a requester names an operator",
        "a manual rollback is named as manual whatever went wrong after",
    ],
)
def test_decide_rollback_info(fields: dict[str, Any], info: dict[str, Any] | None) -> None:
    """The result names a rollback only when production was touched and undone, or an operator asked."""
    fields = dict(fields)
    requested_by = fields.pop("requested_by", None)  # the message's, not the state's
    s = state(**fields)
    assert decide_rollback_info(s, s.failure.as_failure() if s.failure else None, requested_by) == info


# --- plan_result --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "outcome"),
    [
        ({"update_requested_at": TOUCHED}, "succeeded"),
        ({"failure": HEALTH, "update_requested_at": TOUCHED, "rollback_done": True}, "rolled_back"),
        (
            {
                "failure": BREAKER,
                "update_requested_at": TOUCHED,
                "ecs_rolled_back": True,
                "rollback_done": True,
            },
            "rolled_back",
        ),
        ({"failure": BUILD}, "failed"),
        ({"failure": HEALTH, "update_requested_at": TOUCHED}, "failed"),
        (
            {
                "failure": HEALTH,
                "update_requested_at": TOUCHED,
                "rollback_requested": True,
                "rollback_failed": True,
            },
            "failed",
        ),
        ({"failure": LATE, "update_requested_at": TOUCHED, "rollback_done": True}, "timed_out"),
        ({"failure": NOBODY}, "timed_out"),
        ({"failure": REFUSED}, "rejected"),
        ({"failure": NO}, "denied"),
        ({"failure": NEWER}, "superseded"),
        ({"manual_rollback": True, "update_requested_at": TOUCHED}, "succeeded"),
    ],
    ids=[
        "a deployment without a failure succeeded",
        "a health failure that was undone rolled back",
        "a circuit-breaker failure that ECS undid rolled back",
        "a build failure failed: nothing was touched",
        "a failure left in place failed",
        "a rollback that did not settle failed",
        "the deadline is timed out even when undone",
        "an approval nobody gave in time is timed out",
        "a preflight refusal is rejected",
        "a denial is denied",
        "a newer deployment of the service superseded it",
        "a manual rollback that settled succeeded",
    ],
)
def test_plan_result_outcome(fields: dict[str, Any], outcome: str) -> None:
    """The result's outcome follows from the state's failure, what was touched and how the undo went."""
    assert plan_result(state(**fields), MESSAGE, ALL)["outcome"] == outcome


def record(name: str, outcome: str = "succeeded", detail: str | None = None) -> StageState:
    return StageState(name=name, started_at=T0, finished_at=T0, outcome=outcome, detail=detail)


@pytest.mark.parametrize(
    ("recorded", "order", "shown"),
    [
        (["deploy", "build", "preflight", "push"], ALL, ["preflight", "build", "push", "deploy"]),
        (["finalize", "healthcheck", "register"], ALL, ["register", "healthcheck", "finalize"]),
        (["finalize", "deploy", "rollback", "preflight"], ROLLBACK_CHAIN, list(ROLLBACK_CHAIN)),
        (["extra", "deploy", "preflight"], ALL, ["preflight", "deploy", "extra"]),
        ([], ALL, []),
    ],
    ids=[
        "skipped stages recorded up front are shown in chain order",
        "records are shown in the strategy's order whatever order they were made in",
        "a manual rollback's records follow its own chain",
        "a record the order does not name comes last",
        "no records, no stages",
    ],
)
def test_plan_result_stage_order(recorded: list[str], order: tuple[str, ...], shown: list[str]) -> None:
    """The result lists the stage records in the strategy's stage order."""
    result = plan_result(state(stages=[record(n) for n in recorded]), MESSAGE, order)
    assert [s["name"] for s in result["stages"]] == shown


def test_plan_result_stage_records_keep_outcome_and_detail() -> None:
    """A stage record reaches the result with its outcome and detail, as JSON."""
    s = state(stages=[record("rollback", "failed", "did not settle on web:1")], failure=HEALTH)
    assert plan_result(s, MESSAGE, ALL)["stages"] == [
        {
            "name": "rollback",
            "started_at": T0.isoformat().replace("+00:00", "Z"),
            "finished_at": T0.isoformat().replace("+00:00", "Z"),
            "outcome": "failed",
            "detail": "did not settle on web:1",
        }
    ]


APPROVAL = {"rule": "production", "requested_at": T0, "deadline": T0 + timedelta(hours=1)}


@pytest.mark.parametrize(
    ("approval", "shown"),
    [
        (None, None),
        (
            ApprovalState(**APPROVAL, decision="approved", approver="ana", decided_at=TOUCHED, reason="ok"),
            {
                "rule": "production",
                "requested_at": T0,
                "decided_at": TOUCHED,
                "decision": "approved",
                "approver": "ana",
                "reason": "ok",
            },
        ),
        (
            ApprovalState(**APPROVAL, decision="denied", approver="bo", decided_at=TOUCHED, reason="freeze"),
            {
                "rule": "production",
                "requested_at": T0,
                "decided_at": TOUCHED,
                "decision": "denied",
                "approver": "bo",
                "reason": "freeze",
            },
        ),
        (
            ApprovalState(**APPROVAL),
            {
                "rule": "production",
                "requested_at": T0,
                "decided_at": None,
                "decision": "timed_out",
                "approver": None,
                "reason": None,
            },
        ),
    ],
    ids=[
        "no approval needed shows none",
        "an approval shows its rule, times, approver and comment",
        "a denial shows who denied it and why",
        "an approval nobody decided reads timed out",
    ],
)
def test_plan_result_approval(approval: ApprovalState | None, shown: dict[str, Any] | None) -> None:
    """The result's approval block is the approval the deployment waited for, decided or not."""
    assert plan_result(state(approval=approval), MESSAGE, ALL)["approval"] == shown


def test_plan_result_of_a_manual_rollback() -> None:
    """A manual rollback's result names the operator, the revision put back and the labels it carries."""
    s = state(
        manual_rollback=True,
        update_requested_at=TOUCHED,
        stages=[record(n) for n in reversed(ROLLBACK_CHAIN)],
    )
    # a manual rollback has no message: the worker makes one of what the operator asked
    # (``tasks.messages.request_of``), unvalidated because it carries no image
    asked = DeployToECSTask.model_construct(
        cluster_name="c1",
        service_name="web",
        requested_by="ana",
        labels={"deploy-agent/kind": "manual-rollback"},
    )
    result = plan_result(s, asked, ROLLBACK_CHAIN)
    assert result["outcome"] == "succeeded"
    assert result["rollback"] == {
        "trigger": "manual",
        "reason": "rollback requested by ana",
        "to_task_definition_arn": NEW,
    }
    assert result["requested_by"] == "ana"
    assert result["labels"] == {"deploy-agent/kind": "manual-rollback"}
    assert [r["name"] for r in result["stages"]] == list(ROLLBACK_CHAIN)


@pytest.mark.parametrize(
    ("fields", "error", "errors"),
    [
        ({}, None, []),
        ({"failure": HEALTH}, {"type": "health_check_failed", "message": "500 three times in a row"}, []),
        (
            {"failure": REFUSED, "rejections": [{"field": "service_name", "problem": "not ours"}]},
            {"type": "preflight_failed", "message": "not ours to deploy"},
            [{"field": "service_name", "problem": "not ours"}],
        ),
    ],
    ids=[
        "a success has no error",
        "a failure is the result's error",
        "a refusal carries its per-field problems",
    ],
)
def test_plan_result_error(
    fields: dict[str, Any], error: dict[str, str] | None, errors: list[dict[str, str]]
) -> None:
    """The result's error is the first failure; a refusal's problems are listed field by field."""
    result = plan_result(state(**fields), MESSAGE, ALL)
    assert (result["error"], result["errors"]) == (error, errors)


@pytest.mark.parametrize(
    ("finished_at", "seconds"),
    [(T0 + timedelta(seconds=42.5), 42.5), (None, 0.0), (T0 + timedelta(milliseconds=1234.5678), 1.235)],
    ids=[
        "the duration runs from start to finish",
        "a state without a finish time lasted nothing",
        "the duration is rounded to milliseconds",
    ],
)
def test_plan_result_duration(finished_at: datetime | None, seconds: float) -> None:
    """The result's duration is the state's finish minus its start, in seconds."""
    result = plan_result(state(finished_at=finished_at), MESSAGE, ALL)
    assert result["duration_seconds"] == seconds
    assert result["finished_at"] == (finished_at or T0)


@pytest.mark.parametrize(
    "fields",
    [
        {"update_requested_at": TOUCHED, "stages": [record(n) for n in ALL]},
        {
            "failure": HEALTH,
            "update_requested_at": TOUCHED,
            "rollback_requested": True,
            "rollback_done": True,
        },
        {"failure": NO, "approval": ApprovalState(**APPROVAL, decision="denied", approver="bo")},
        {"manual_rollback": True},
        {"failure": REFUSED, "rejections": [{"field": "x", "problem": "y"}]},
    ],
    ids=[
        "a success",
        "a rollback",
        "a denial",
        "a manual rollback",
        "a refusal",
    ],
)
def test_plan_result_is_a_deployment_result(fields: dict[str, Any]) -> None:
    """Every planned result validates as the published ``DeploymentResult``."""
    result = DeploymentResult.model_validate(plan_result(state(**fields), MESSAGE, ALL))
    assert result.deployment_id == "d-1"
    assert result.strategy == "rolling"


def test_plan_result_carries_the_analysis_measurements() -> None:
    """The state's analysis measurements become the result's ``analysis``, valid and in order."""
    measured = [
        {
            "gate": "error-rate",
            "step": f"step {i} (50%)",
            "query": "sum(rate(errors[1m]))",
            "value": value,
            "verdict": verdict,
            "reason": "why",
            "at": TOUCHED.isoformat(),
        }
        for i, (value, verdict) in enumerate([(0.01, "successful"), (None, "inconclusive")], 1)
    ]
    result = DeploymentResult.model_validate(plan_result(state(analysis=measured), MESSAGE, ALL))
    assert [(m.step, m.value, m.verdict) for m in result.analysis] == [
        ("step 1 (50%)", 0.01, "successful"),
        ("step 2 (50%)", None, "inconclusive"),
    ]
