"""What makes the cluster watcher wake a deployment: fingerprints, marks, verdict news."""

from __future__ import annotations

from typing import Any

import pytest

from deploy_agent.core.watch import (
    UPDATING,
    decide_wake,
    fingerprint_service,
    is_verdict_news,
    read_updated_mark,
    task_news,
    updated_mark,
)


def service(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "status": "ACTIVE",
        "taskDefinition": "td:2",
        "desiredCount": 2,
        "runningCount": 1,
        "pendingCount": 1,
        "deployments": [
            {"id": "ecs-svc/1", "status": "PRIMARY", "rolloutState": "IN_PROGRESS", "runningCount": 1},
        ],
        "events": [{"id": "e1", "message": "has started 1 tasks"}],
        "createdAt": "2026-12-05T10:00:00Z",
    }
    base.update(changes)
    return base


MOVES = [
    (
        "the rollout completed",
        {
            "deployments": [
                {"id": "ecs-svc/1", "status": "PRIMARY", "rolloutState": "COMPLETED", "runningCount": 1}
            ]
        },
    ),
    ("a task started", {"runningCount": 2, "pendingCount": 0}),
    ("a new service event was written", {"events": [{"id": "e2"}, {"id": "e1"}]}),
    ("ECS rolled back to another revision", {"taskDefinition": "td:1"}),
    (
        "a task failed",
        {
            "deployments": [
                {
                    "id": "ecs-svc/1",
                    "status": "PRIMARY",
                    "rolloutState": "IN_PROGRESS",
                    "runningCount": 1,
                    "failedTasks": 1,
                }
            ]
        },
    ),
    ("the service was deleted", {"status": "INACTIVE"}),
]


#: the moves a stage waiting only for ECS's verdict sleeps through (as ECS's task state change events)
TASK_MOVES = {"a task started", "a new service event was written", "a task failed"}


@pytest.mark.parametrize(("case", "change"), MOVES, ids=[m[0] for m in MOVES])
def test_a_tasks_move_is_task_news_and_the_services_own_is_not(case: str, change: dict[str, Any]) -> None:
    """Counts, failed tasks and service events move the task part only; the rollout's state, the
    revision and the service's status move the service part (what wakes a quiet wait)."""
    before, now = fingerprint_service(service()), fingerprint_service(service(**change))
    assert task_news(before, now) is (case in TASK_MOVES), case


def test_an_unchanged_or_older_digest_is_not_task_news() -> None:
    """No move is no news; a digest from before the two parts (no dot) counts as the service's news."""
    digest = fingerprint_service(service())
    assert not task_news(digest, digest)
    assert not task_news("0123456789abcdef", digest)


@pytest.mark.parametrize(("case", "change"), MOVES, ids=[m[0] for m in MOVES])
def test_a_move_that_can_change_a_verdict_changes_the_fingerprint(case: str, change: dict[str, Any]) -> None:
    """Each of these moves wakes the deployment."""
    assert fingerprint_service(service(**change)) != fingerprint_service(service()), case


def test_fields_that_cannot_change_a_verdict_leave_it_alone() -> None:
    """Tags, timestamps of creation and the like do not wake anyone."""
    assert fingerprint_service(service(createdAt="later", tags=[{"key": "a"}])) == fingerprint_service(
        service()
    )


OURS = {"id": "ecs-svc/new", "status": "PRIMARY", "rolloutState": "IN_PROGRESS"}
OLD = {"id": "ecs-svc/old", "status": "ACTIVE", "rolloutState": "COMPLETED"}
ROLLBACK_REASON = "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/old"
ROLLBACK = {
    "id": "ecs-svc/rb",
    "status": "PRIMARY",
    "rolloutState": "IN_PROGRESS",
    "rolloutStateReason": ROLLBACK_REASON,
}
#: case -> (deployments, service status, our deployment id, is it news)
VERDICT_NEWS = {
    "our rollout under way is what the update made": ([OURS, OLD], "ACTIVE", "ecs-svc/new", False),
    "a read from before the update (ours not listed yet)": (
        [{**OLD, "status": "PRIMARY"}],
        "ACTIVE",
        "ecs-svc/new",
        False,
    ),
    "our rollout done before the look": (
        [{**OURS, "rolloutState": "COMPLETED"}],
        "ACTIVE",
        "ecs-svc/new",
        True,
    ),
    "ours failed": (
        [{**OURS, "status": "ACTIVE", "rolloutState": "FAILED"}, OLD],
        "ACTIVE",
        "ecs-svc/new",
        True,
    ),
    "ECS rolling back": ([ROLLBACK, {**OURS, "status": "ACTIVE"}], "ACTIVE", "ecs-svc/new", True),
    "another deployment took over": (
        [{**OURS, "id": "ecs-svc/3"}, {**OURS, "status": "ACTIVE"}],
        "ACTIVE",
        "ecs-svc/new",
        True,
    ),
    "no PRIMARY (task sets)": ([], "ACTIVE", "ecs-svc/new", True),
    "the service going away": ([OURS], "DRAINING", "ecs-svc/new", True),
    "unnamed ours, a PRIMARY under way": ([OURS, OLD], "ACTIVE", "", False),
    "unnamed ours, a COMPLETED PRIMARY": ([{**OLD, "status": "PRIMARY"}], "ACTIVE", "", True),
}


@pytest.mark.parametrize("case", VERDICT_NEWS)
def test_only_more_than_our_own_rollout_under_way_is_verdict_news(case: str) -> None:
    deployments, status, ours, news = VERDICT_NEWS[case]
    assert is_verdict_news({"status": status, "deployments": deployments}, ours) is news, case


UNDER_WAY = {"status": "ACTIVE", "deployments": [OURS, OLD]}
DONE = {"status": "ACTIVE", "deployments": [{**OURS, "rolloutState": "COMPLETED"}]}
MARK = updated_mark("ecs-svc/new")
#: case -> (what the last look kept, the service now, its fingerprint now, the wake, what is kept)
WAKES: dict[str, tuple[str | None, dict[str, Any], str, bool | None, str]] = {
    "a first look only learns": (None, UNDER_WAY, "a.b", None, "a.b"),
    "nothing moved: no wake": ("a.b", UNDER_WAY, "a.b", None, "a.b"),
    "the service's own move": ("a.b", UNDER_WAY, "c.b", False, "c.b"),
    "a task's move": ("a.b", UNDER_WAY, "a.c", True, "a.c"),
    "the first look after our update sees what it made: no wake, the mark kept": (
        MARK,
        UNDER_WAY,
        "a.b",
        None,
        updated_mark("ecs-svc/new", "a.b"),
    ),
    "while our update is on its way nothing is news": (UPDATING, DONE, "d.e", None, UPDATING),
    "marked, nothing moved since the last look": (
        updated_mark("ecs-svc/new", "a.b"),
        UNDER_WAY,
        "a.b",
        None,
        updated_mark("ecs-svc/new", "a.b"),
    ),
    "marked, a task moved": (
        updated_mark("ecs-svc/new", "a.b"),
        UNDER_WAY,
        "a.c",
        True,
        updated_mark("ecs-svc/new", "a.c"),
    ),
    "marked, the verdict: the service's news, the fingerprint kept": (MARK, DONE, "d.e", False, "d.e"),
}


@pytest.mark.parametrize("case", WAKES)
def test_decide_wake(case: str) -> None:
    before, described, fingerprint, wake, kept = WAKES[case]
    assert decide_wake(before, described, fingerprint) == (wake, kept), case


def test_a_mark_reads_back_and_a_fingerprint_is_no_mark() -> None:
    """The mark carries our deployment id and the last look's fingerprint; a digest is not a mark."""
    assert read_updated_mark(updated_mark("ecs-svc/1", "a.b")) == ("ecs-svc/1", "a.b")
    assert read_updated_mark(updated_mark("")) == ("", "")
    assert read_updated_mark(fingerprint_service(service())) is None
