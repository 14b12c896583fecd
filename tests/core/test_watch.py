"""``fingerprint_service`` and ``decide_changed``: what makes the cluster watcher wake a deployment."""

from __future__ import annotations

from typing import Any

import pytest

from deploy_agent.core.watch import decide_changed, fingerprint_service, task_news


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


class TestDecideChanged:
    def test_it_names_the_services_whose_digest_moved(self) -> None:
        """Only b moved."""
        assert decide_changed({"a": "1", "b": "2"}, {"a": "1", "b": "3"}) == ["b"]

    def test_a_service_seen_for_the_first_time_counts_as_changed(self) -> None:
        """A new in-flight service has no earlier digest."""
        assert decide_changed({}, {"a": "1"}) == ["a"]

    def test_nothing_moved_wakes_nobody(self) -> None:
        """Same digests: empty."""
        assert decide_changed({"a": "1"}, {"a": "1"}) == []
