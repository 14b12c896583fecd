"""The result contract: what ``AsyncResult.get()`` hands back, as JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from deploy_agent.core.errors import RequestRejected
from deploy_agent.models import (
    DeploymentResult,
    Diagnostics,
    ErrorInfo,
    Outcome,
    RollbackInfo,
    StageRecord,
    StoppedTask,
    ZeroDowntime,
    parse_request,
)

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def rolled_back() -> DeploymentResult:
    return DeploymentResult(
        deployment_id="d-1",
        outcome=Outcome.ROLLED_BACK,
        strategy="canary",
        cluster_name="prod",
        service_name="web",
        image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/web@sha256:" + "b" * 64,
        task_definition_arn="arn:aws:ecs:us-east-1:123456789012:task-definition/web:8",
        previous_task_definition_arn="arn:aws:ecs:us-east-1:123456789012:task-definition/web:7",
        started_at=NOW,
        finished_at=NOW + timedelta(seconds=95),
        duration_seconds=95.0,
        stages=[
            StageRecord(
                name="build", started_at=NOW, finished_at=NOW + timedelta(seconds=30), outcome="succeeded"
            ),
            StageRecord(name="health_check", started_at=NOW, outcome="failed", detail="3 x HTTP 503"),
        ],
        rollback=RollbackInfo(
            trigger="health_check",
            reason="3 consecutive failures",
            to_task_definition_arn="arn:aws:ecs:us-east-1:123456789012:task-definition/web:7",
        ),
        diagnostics=Diagnostics(
            stopped_tasks=[
                StoppedTask(
                    task_arn="arn:aws:ecs:us-east-1:123456789012:task/prod/abc",
                    stopped_reason="Essential container in task exited",
                    stop_code="EssentialContainerExited",
                    exit_codes={"app": 1, "envoy": None},
                )
            ],
            service_events=["(service web) has started 1 tasks"],
            target_health=[{"id": "10.0.0.1", "port": 8080, "state": "unhealthy"}],
        ),
        error=ErrorInfo(type="health_check_failed", message="GET /health returned 503"),
        zero_downtime=ZeroDowntime(requests=1200, failures=0, longest_gap_ms=41.5),
        requested_by="release-bot",
        labels={"git_sha": "abc123"},
    )


class TestResultJson:
    def test_a_result_survives_the_json_round_trip_celery_makes(self) -> None:
        """model_dump(mode="json") -> JSON text -> model gives back an equal result."""
        result = rolled_back()
        wire = json.loads(json.dumps(result.model_dump(mode="json")))
        assert DeploymentResult.model_validate(wire) == result

    def test_the_json_uses_the_contracts_snake_case_names_and_iso_times(self) -> None:
        """Publishers read outcome, stages and rollback under DESIGN section 3's names."""
        wire = rolled_back().model_dump(mode="json")
        assert wire["outcome"] == "rolled_back"
        assert wire["started_at"] == "2024-06-01T12:00:00Z"
        assert wire["rollback"] == {
            "trigger": "health_check",
            "reason": "3 consecutive failures",
            "to_task_definition_arn": "arn:aws:ecs:us-east-1:123456789012:task-definition/web:7",
        }
        assert wire["diagnostics"]["stopped_tasks"][0]["exit_codes"] == {"app": 1, "envoy": None}
        assert wire["stages"][1]["finished_at"] is None

    def test_times_without_a_zone_are_refused(self) -> None:
        """A naive datetime would be read differently on every host, so results carry an offset."""
        with pytest.raises(ValueError, match="timezone"):
            StageRecord(name="build", started_at=datetime(2024, 6, 1), outcome="succeeded")

    def test_outcomes_are_the_seven_of_the_contract(self) -> None:
        """The outcome names are part of the public contract."""
        assert [o.value for o in Outcome] == [
            "succeeded",
            "rolled_back",
            "failed",
            "timed_out",
            "rejected",
            "superseded",
            "denied",
        ]


def rejection_of(payload: object) -> RequestRejected:
    with pytest.raises(RequestRejected) as caught:
        parse_request(payload)
    return caught.value


class TestRejectedResult:
    @pytest.mark.parametrize(
        "payload",
        [
            pytest.param(
                {"deploymentId": "d-7", "clusterName": "prod", "serviceName": "web", "image": {}},
                id="camelCase names are picked up from a rejected dict",
            ),
            pytest.param(
                '{"deployment_id": "d-7", "cluster_name": "prod", "service_name": "web", "image": {}}',
                id="snake_case names are picked up from rejected JSON text",
            ),
        ],
    )
    def test_a_rejected_result_names_the_deployment_it_refused(self, payload: object) -> None:
        """The rejected result carries the message's ids, the error and each field problem."""
        exc = rejection_of(payload)
        result = DeploymentResult.rejected(payload, exc, NOW)
        assert (result.deployment_id, result.cluster_name, result.service_name) == ("d-7", "prod", "web")
        assert result.outcome is Outcome.REJECTED
        assert result.strategy == "rolling"
        assert result.error == ErrorInfo(type="request_rejected", message=exc.message)
        assert result.errors == exc.errors
        assert result.errors[0]["field"] == "image"
        assert (result.started_at, result.finished_at, result.duration_seconds) == (NOW, NOW, 0.0)

    @pytest.mark.parametrize(
        "payload",
        [
            pytest.param([1, 2], id="a payload that is not an object leaves the names empty"),
            pytest.param("{broken", id="broken JSON leaves the names empty"),
            pytest.param(
                {"deployment_id": "no spaces allowed", "cluster_name": 7}, id="unusable values are dropped"
            ),
        ],
    )
    def test_a_rejected_result_is_built_from_any_payload(self, payload: object) -> None:
        """Whatever arrived, the rejected result is valid: a fresh id and empty names when none are usable."""
        result = DeploymentResult.rejected(payload, rejection_of(payload), NOW)
        assert len(result.deployment_id) == 32
        assert (result.cluster_name, result.service_name) == ("", "")
        assert DeploymentResult.model_validate(result.model_dump(mode="json")) == result
