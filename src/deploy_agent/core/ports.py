"""The ports a strategy works through, declared once: what it may ask of ECS, ELB, CloudWatch, HTTP.

The adapters (``deploy_agent.adapters``) implement them against AWS and the network; the fakes in
``deploy_agent.testing`` implement them in memory. Both are checked against these Protocols by
mypy where they are wired (``tasks.runtime`` and ``testing.FakeAws``), so a port that changes here
breaks the build in both places, not a deployment at run time.

Every mutating method is fenced by the pipeline (``tasks.fence``): reads are named ``describe_*``,
``list_*``, ``get_*`` or are listed in ``tasks.fence.READS``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from deploy_agent.core.analysis import QueryResult
from deploy_agent.core.health import Probe
from deploy_agent.core.state import ApprovalState
from deploy_agent.core.traffic import ZeroDowntimeReport


class Clock(Protocol):
    def __call__(self) -> datetime:
        """Return the current time, timezone-aware."""
        ...


class EcsPort(Protocol):
    """ECS as the strategies see it (batched, briefly cached reads; writes pass straight through)."""

    def describe_service(self, cluster: str, service: str) -> dict[str, Any]: ...

    def update_service(
        self,
        cluster: str,
        service: str,
        task_definition_arn: str,
        desired_count: int | None = None,
        maximum_percent: int | None = None,
        minimum_healthy_percent: int | None = None,
        circuit_breaker: bool | None = None,
        circuit_breaker_rollback: bool | None = None,
        deployment_configuration: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]: ...

    def create_service(
        self,
        cluster: str,
        template: dict[str, Any],
        name: str,
        task_definition_arn: str,
        target_group_arn: str,
        desired_count: int,
    ) -> dict[str, Any]: ...

    def delete_service(self, cluster: str, service: str) -> None: ...

    # ECS's native deployments (``core.ecs_native``): botocore's ServiceDeployment shapes
    def list_service_deployments(
        self, cluster: str, service: str, created_after: datetime | None = None
    ) -> list[dict[str, Any]]: ...

    def describe_service_deployment(self, arn: str) -> dict[str, Any]: ...

    def describe_service_revision(self, arn: str) -> dict[str, Any]: ...

    def continue_service_deployment(self, arn: str, hook_id: str, action: str) -> None: ...

    def update_deployment_configuration(
        self, cluster: str, service: str, deployment_configuration: Mapping[str, Any]
    ) -> None:
        """Change only the service's deploymentConfiguration (no new deployment starts)."""
        ...

    def stop_service_deployment(self, arn: str, stop_type: str) -> None: ...


class ElbPort(Protocol):
    """The listener, its rules and the two target groups traffic moves between."""

    def describe_listener(self, arn: str) -> dict[str, Any]: ...

    def describe_rules(self, listener_arn: str) -> list[dict[str, Any]]: ...

    def describe_target_group(self, arn: str) -> dict[str, Any]: ...

    def describe_target_health(self, tg_arn: str) -> list[dict[str, Any]]: ...

    def set_forward_weights(self, listener_arn: str, weights: Mapping[str, int]) -> dict[str, Any]: ...

    def set_rule_forward_weights(
        self, rule_arn: str, actions: Sequence[Mapping[str, Any]], weights: Mapping[str, int]
    ) -> None: ...

    def restore_default_actions(
        self, listener_arn: str, actions: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]: ...

    def restore_rule_actions(self, rule_arn: str, actions: Sequence[Mapping[str, Any]]) -> None: ...


class AlarmsPort(Protocol):
    """CloudWatch alarms that abort a deployment."""

    def alarms_in_alarm(self, names: Sequence[str]) -> list[dict[str, str]]: ...

    def missing_alarms(self, names: Sequence[str]) -> list[str]: ...


class ProberPort(Protocol):
    """One HTTP health probe of a URL."""

    def probe(
        self,
        url: str,
        expected_status: int = 200,
        timeout_seconds: float = 5.0,
        max_latency_ms: int | None = None,
    ) -> Probe: ...


class PrometheusPort(Protocol):
    """Prometheus's instant-query API, for the analysis gates."""

    def query(self, url: str, query: str, timeout_seconds: float = 10.0) -> QueryResult:
        """Return the sample values ``query`` has now at the Prometheus whose base URL is ``url``.

        Never raises: a refused URL, a transport error, a timeout or an error answer is a result
        with ``error`` set (an inconclusive measurement).
        """
        ...


class GateVerdictCounter(Protocol):
    def __call__(self, kind: str, result: str) -> None:
        """Count one gate verdict: ``kind`` health, alarm, latency or prometheus; ``result`` passed,
        failed or inconclusive (``deploy_agent_gate_verdicts_total``)."""
        ...


class TrafficWatchPort(Protocol):
    """The zero-downtime probe of a production URL, which outlives the task run that started it.

    A listener change is watched from before it is made until ``seconds`` after: the step calls
    ``begin``, changes the listener, calls ``end_after`` and returns; a later look (any process,
    any host) reads the ``report`` once the watch has stored it. Waiting holds no worker process.
    """

    def begin(self, key: str, url: str) -> None:
        """Start probing ``url`` for the change ``key`` (a probe already running keeps running)."""
        ...

    def end_after(self, key: str, seconds: float) -> None:
        """Stop probing ``seconds`` from now and store the report under ``key``."""
        ...

    def report(self, key: str) -> ZeroDowntimeReport | None:
        """Return the stored report of ``key``; None while it is still being watched (or was lost)."""
        ...


class RevisionsPort(Protocol):
    """Task-definition revisions a rollback can use."""

    def usable_revision(self, task_definition_arn: str) -> str:
        """Return ``task_definition_arn``, or a re-registered copy of it when ECS deregistered it.

        Raises ``RolloutFailed`` when the revision can be neither used nor restored.
        """
        ...


class ApprovalPort(Protocol):
    """Where approvals are asked for and decided (``tasks.approval.ApprovalBook`` on Redis)."""

    def rule_for(self, region: str, cluster: str, service: str) -> ApprovalRuleRef | None: ...

    def open(
        self, deployment_id: str, rule: str, requested_at: datetime, deadline: datetime
    ) -> ApprovalState:
        """Ask for an approval (idempotent: an earlier request's times are kept); return it."""
        ...

    def look(self, deployment_id: str) -> ApprovalState | None:
        """Return the approval as decided so far (``decision`` None: still waiting)."""
        ...

    def expire(self, deployment_id: str, now: datetime) -> ApprovalState | None:
        """End a waiting approval ``timed_out``; a decision that came first wins. Return the outcome."""
        ...


class ApprovalRuleRef(Protocol):
    """The part of a policy's approval rule a strategy reads."""

    @property
    def name(self) -> str: ...

    @property
    def timeout_seconds(self) -> int: ...
