"""Test doubles that ship with the package: scripted AWS ports for strategy tests without AWS.

``FakeEcs`` implements the strategies' ``EcsPort``: it records every UpdateService and lets a test
script what DescribeServices answers next, so a strategy's recipe can be tested step by step. It
also keeps the temporary (green/canary) services it is asked to create, each with deployments of
its own that the test completes or fails.

The traffic strategies' other ports: ``FakeElb`` (listeners, target groups, target health),
``FakeAlarms`` (CloudWatch alarm states), ``FakeProber`` (scripted HTTP probes),
``FakeTrafficWatch`` (the zero-downtime watch) and ``FakeRevisions``; ``FakeAws.ports`` is where
mypy checks each of them against its ``core.ports`` Protocol. ``FakeEcs`` and ``FakeElb`` append every
AWS-visible change to a ``journal`` of :class:`AwsCall`; give both the same list to see one order.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from deploy_agent.core.errors import AwsError, AwsNotFound
from deploy_agent.core.health import Probe
from deploy_agent.core.outcome import Phase
from deploy_agent.core.polling import PollPolicy
from deploy_agent.core.ports import ApprovalPort
from deploy_agent.core.state import PipelineState
from deploy_agent.core.traffic import ZeroDowntimeReport, listener_forward_weights, with_forward_weights
from deploy_agent.models.request import DeployToECSTask
from deploy_agent.strategies import Ports, Progress, Run, Tunables, strategy_for


@dataclass(frozen=True)
class AwsCall:
    """One AWS-visible change a fake received: the call, the resource it named, and what it set.

    ``detail`` is the task definition for ECS calls and the listener's forward weights *after* the
    change for listener calls (``{target_group_arn: weight}``).
    """

    call: str
    resource: str
    detail: Any = None


@dataclass
class TempService:
    """A service made by CreateService: its own deployments, target group and lifecycle status."""

    name: str
    task_definition: str
    target_group_arn: str
    desired_count: int
    template: dict[str, Any]
    deployments: list[dict[str, Any]]
    status: str = "ACTIVE"  # DeleteService makes it INACTIVE

    def describe(self) -> dict[str, Any]:
        """Return the service the way DescribeServices shows it."""
        balancers = [
            {k: v for k, v in lb.items() if k in ("containerName", "containerPort")}
            | {"targetGroupArn": self.target_group_arn}
            for lb in self.template.get("loadBalancers") or []
        ][:1]
        return {
            "serviceName": self.name,
            "status": self.status,
            "taskDefinition": self.task_definition,
            "desiredCount": self.desired_count,
            "loadBalancers": balancers,
            "deployments": copy.deepcopy(self.deployments),
            "events": [],
        }


@dataclass
class UpdateCall:
    cluster: str
    service: str
    task_definition_arn: str
    desired_count: int | None
    maximum_percent: int | None
    minimum_healthy_percent: int | None
    circuit_breaker: bool | None
    circuit_breaker_rollback: bool | None


@dataclass
class FakeEcs:
    """An ECS service whose deployments the test sets; UpdateService starts a new PRIMARY deployment."""

    task_definition: str
    deployments: list[dict[str, Any]] = field(default_factory=list)
    updates: list[UpdateCall] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    describes: int = 0
    #: the original service's ``loadBalancers`` and ``desiredCount`` as DescribeServices shows them
    load_balancers: list[dict[str, Any]] = field(default_factory=list)
    desired_count: int = 2
    #: the original service's name; when set, describing a name that is neither it nor a created
    #: service raises ``AwsNotFound`` (when None, every unknown name describes the original service)
    service_name: str | None = None
    temp_services: dict[str, TempService] = field(default_factory=dict)
    journal: list[AwsCall] = field(default_factory=list)
    #: names DescribeServices answers MISSING for (ECS's eventual consistency after CreateService)
    missing: set[str] = field(default_factory=set)

    def describe_service(self, cluster: str, service: str) -> dict[str, Any]:
        """Return the service; a created one answers for itself and raises ``AwsNotFound`` once deleted."""
        self.describes += 1
        if service in self.missing:
            raise AwsNotFound(
                f"ECS service {service} not found in cluster {cluster} (MISSING)", service="ecs"
            )
        temp = self.temp_services.get(service)
        if temp is not None:
            if temp.status == "INACTIVE":
                raise AwsNotFound(
                    f"ECS service {service} is INACTIVE (deleted)", service="ecs", code="INACTIVE"
                )
            return temp.describe()
        if self.service_name is not None and service != self.service_name:
            raise AwsNotFound(f"ECS service {service} not found in cluster {cluster}", service="ecs")
        return {
            "serviceName": service,
            "status": "ACTIVE",
            "taskDefinition": self.task_definition,
            "desiredCount": self.desired_count,
            "loadBalancers": copy.deepcopy(self.load_balancers),
            "deployments": copy.deepcopy(self.deployments),
            "events": [],
        }

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
    ) -> dict[str, Any]:
        self.updates.append(
            UpdateCall(
                cluster,
                service,
                task_definition_arn,
                desired_count,
                maximum_percent,
                minimum_healthy_percent,
                circuit_breaker,
                circuit_breaker_rollback,
            )
        )
        self.journal.append(AwsCall("update_service", service, task_definition_arn))
        self.task_definition = task_definition_arn
        for dep in self.deployments:
            dep["status"] = "ACTIVE"
        self.deployments.insert(
            0, deployment(f"ecs-svc/{len(self.updates)}", task_definition_arn, "IN_PROGRESS")
        )
        return self.describe_service(cluster, service)

    def create_service(
        self,
        cluster: str,
        template: dict[str, Any],
        name: str,
        task_definition_arn: str,
        target_group_arn: str,
        desired_count: int,
    ) -> dict[str, Any]:
        """Start a service beside the original: one IN_PROGRESS deployment on ``task_definition_arn``.

        Creating a name that is still ACTIVE fails, as ECS does ("Creation of service was not idempotent").
        """
        self.created.append(name)
        existing = self.temp_services.get(name)
        if existing is not None and existing.status == "ACTIVE":
            raise AwsError(f"Creation of service {name} was not idempotent", service="ecs")
        first = deployment(f"ecs-svc/{name}", task_definition_arn, "IN_PROGRESS")
        first["desiredCount"] = desired_count
        self.temp_services[name] = TempService(
            name, task_definition_arn, target_group_arn, desired_count, copy.deepcopy(template), [first]
        )
        self.journal.append(AwsCall("create_service", name, task_definition_arn))
        return self.temp_services[name].describe()

    def delete_service(self, cluster: str, service: str) -> None:
        """Mark a created service INACTIVE; a missing one is fine (like the adapter)."""
        self.deleted.append(service)
        temp = self.temp_services.get(service)
        if temp is not None:
            temp.status = "INACTIVE"
        self.journal.append(AwsCall("delete_service", service))

    def complete_service(self, name: str) -> None:
        """Let a created service's deployment finish: all tasks running, rolloutState COMPLETED."""
        dep = self.temp_services[name].deployments[0]
        dep["rolloutState"], dep["runningCount"] = "COMPLETED", dep["desiredCount"]

    def fail_service(
        self, name: str, failed_tasks: int = 3, reason: str = "", circuit_breaker: bool = False
    ) -> None:
        """Make a created service's tasks fail ``failed_tasks`` times (and its rollout FAILED if asked)."""
        dep = self.temp_services[name].deployments[0]
        dep["failedTasks"], dep["rolloutStateReason"] = failed_tasks, reason
        if circuit_breaker:
            dep["rolloutState"] = "FAILED"

    def is_active(self, name: str) -> bool:
        """Is ``name`` a created service that has not been deleted?"""
        temp = self.temp_services.get(name)
        return temp is not None and temp.status == "ACTIVE"

    def set_rollout(self, state: str, reason: str = "", index: int = 0) -> None:
        """Set the rolloutState of a deployment (0 = newest)."""
        self.deployments[index]["rolloutState"] = state
        self.deployments[index]["rolloutStateReason"] = reason

    def settle(self) -> None:
        """Finish the newest deployment and drop the others, as ECS does when the rollout completes."""
        self.deployments[0]["rolloutState"] = "COMPLETED"
        del self.deployments[1:]


def deployment(id_: str, task_definition: str, rollout: str, status: str = "PRIMARY") -> dict[str, Any]:
    """Return a deployment dict shaped like DescribeServices'."""
    return {
        "id": id_,
        "status": status,
        "taskDefinition": task_definition,
        "rolloutState": rollout,
        "rolloutStateReason": "",
        "desiredCount": 2,
        "runningCount": 0,
        "failedTasks": 0,
    }


@dataclass
class FakeClock:
    """A clock that moves only when told to."""

    at: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


# --- ELBv2 ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ListenerChange:
    """One ModifyListener the fake received: which listener, by which call, and the actions it set."""

    listener_arn: str
    call: str  # set_forward_weights | restore_default_actions
    actions: list[dict[str, Any]]

    @property
    def weights(self) -> dict[str, int]:
        """Return the forward weights these actions give (``{}`` when they do not forward)."""
        return listener_forward_weights({"DefaultActions": self.actions})


@dataclass
class FakeElb:
    """Listeners, target groups and scriptable target health; every listener change is recorded.

    ``set_forward_weights`` replaces only the default forward action (keeping ``Order``), like
    ``adapters.elb.ElbApi``; unknown ARNs raise ``AwsNotFound``.
    """

    listeners: dict[str, dict[str, Any]] = field(default_factory=dict)
    target_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    target_health: dict[str, list[str]] = field(default_factory=dict)
    changes: list[ListenerChange] = field(default_factory=list)
    journal: list[AwsCall] = field(default_factory=list)
    #: listener ARN -> its non-default rules (``RuleArn``, ``Priority``, ``Actions``), as DescribeRules gives
    rules: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def blue_green(
        cls,
        listener_arn: str,
        blue_arn: str,
        green_arn: str,
        *,
        load_balancer_arn: str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/1",
        journal: list[AwsCall] | None = None,
    ) -> FakeElb:
        """Return an ALB whose HTTP listener forwards everything to blue, green attached and idle."""
        elb = cls(journal=journal if journal is not None else [])
        elb.add_listener(listener_arn, forward_action(blue_arn), load_balancer_arn=load_balancer_arn)
        for arn in (blue_arn, green_arn):
            elb.add_target_group(arn, load_balancer_arn=load_balancer_arn)
        return elb

    def add_listener(
        self,
        arn: str,
        *actions: dict[str, Any],
        load_balancer_arn: str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/1",
        protocol: str = "HTTP",
        port: int = 80,
    ) -> None:
        self.listeners[arn] = {
            "ListenerArn": arn,
            "LoadBalancerArn": load_balancer_arn,
            "Protocol": protocol,
            "Port": port,
            "DefaultActions": [copy.deepcopy(a) for a in actions],
        }

    def add_target_group(
        self,
        arn: str,
        *,
        load_balancer_arn: str | None = None,
        protocol: str = "HTTP",
        target_type: str = "ip",
        vpc_id: str = "vpc-1",
    ) -> None:
        self.target_groups[arn] = {
            "TargetGroupArn": arn,
            "Protocol": protocol,
            "Port": 80,
            "TargetType": target_type,
            "VpcId": vpc_id,
            "LoadBalancerArns": [load_balancer_arn] if load_balancer_arn else [],
        }

    def set_target_health(self, tg_arn: str, *states: str) -> None:
        """Script the target group's targets: one state each (``healthy``, ``unhealthy``, ``initial``...)."""
        self.target_health[tg_arn] = list(states)

    def describe_listener(self, arn: str) -> dict[str, Any]:
        if arn not in self.listeners:
            raise AwsNotFound(f"listener {arn} not found", service="elbv2", code="ListenerNotFound")
        return copy.deepcopy(self.listeners[arn])

    def describe_target_group(self, arn: str) -> dict[str, Any]:
        if arn not in self.target_groups:
            raise AwsNotFound(f"target group {arn} not found", service="elbv2", code="TargetGroupNotFound")
        return copy.deepcopy(self.target_groups[arn])

    def describe_target_health(self, tg_arn: str) -> list[dict[str, Any]]:
        return [
            {"Target": {"Id": f"10.0.0.{i + 1}", "Port": 8080}, "TargetHealth": {"State": state}}
            for i, state in enumerate(self.target_health.get(tg_arn, []))
        ]

    def set_forward_weights(self, listener_arn: str, weights: Mapping[str, int]) -> dict[str, Any]:
        """Return the listener after its default forward action sends to ``weights``."""
        if not weights or not any(weights.values()) or any(not 0 <= w <= 999 for w in weights.values()):
            raise ValueError(f"weights {dict(weights)} are not a valid forward action")
        actions = self.describe_listener(listener_arn)["DefaultActions"]
        index = next(i for i, a in enumerate(actions) if a.get("Type") == "forward")
        new: dict[str, Any] = {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [{"TargetGroupArn": arn, "Weight": w} for arn, w in weights.items()]
            },
        }
        if "Order" in actions[index]:
            new["Order"] = actions[index]["Order"]
        actions[index] = new
        return self._modify(listener_arn, actions, "set_forward_weights")

    def restore_default_actions(
        self, listener_arn: str, actions: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Return the listener after setting its ``DefaultActions`` to exactly ``actions``."""
        self.describe_listener(listener_arn)
        return self._modify(listener_arn, [dict(a) for a in actions], "restore_default_actions")

    def add_rule(
        self, listener_arn: str, rule_arn: str, *actions: dict[str, Any], priority: int = 10
    ) -> None:
        """Add a non-default rule (path condition elided) with ``actions``."""
        rule = {"RuleArn": rule_arn, "Priority": str(priority), "IsDefault": False, "Actions": list(actions)}
        self.rules.setdefault(listener_arn, []).append(copy.deepcopy(rule))

    def describe_rules(self, listener_arn: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.rules.get(listener_arn, []))

    def rule_actions(self, rule_arn: str) -> list[dict[str, Any]]:
        """Return a rule's actions now."""
        rule = next(r for rules in self.rules.values() for r in rules if r["RuleArn"] == rule_arn)
        return copy.deepcopy(rule["Actions"])

    def set_rule_forward_weights(
        self, rule_arn: str, actions: Sequence[Mapping[str, Any]], weights: Mapping[str, int]
    ) -> None:
        self.restore_rule_actions(rule_arn, with_forward_weights(actions, weights))

    def restore_rule_actions(self, rule_arn: str, actions: Sequence[Mapping[str, Any]]) -> None:
        rule = next(r for rules in self.rules.values() for r in rules if r["RuleArn"] == rule_arn)
        rule["Actions"] = copy.deepcopy([dict(a) for a in actions])
        self.journal.append(
            AwsCall("modify_rule", rule_arn, listener_forward_weights({"DefaultActions": actions}))
        )

    def forward_weights(self, listener_arn: str) -> dict[str, int]:
        """Return the listener's forward weights now."""
        return listener_forward_weights(self.listeners[listener_arn])

    def _modify(self, listener_arn: str, actions: list[dict[str, Any]], call: str) -> dict[str, Any]:
        self.listeners[listener_arn]["DefaultActions"] = copy.deepcopy(actions)
        change = ListenerChange(listener_arn, call, copy.deepcopy(actions))
        self.changes.append(change)
        self.journal.append(AwsCall(call, listener_arn, change.weights))
        return self.describe_listener(listener_arn)


def forward_action(target_group_arn: str) -> dict[str, Any]:
    """Return a plain forward action the way DescribeListeners shows it (ForwardConfig included)."""
    return {
        "Type": "forward",
        "TargetGroupArn": target_group_arn,
        "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": target_group_arn, "Weight": 1}],
            "TargetGroupStickinessConfig": {"Enabled": False},
        },
    }


# --- CloudWatch, HTTP probes, zero-downtime probes ------------------------------------------------
@dataclass
class FakeAlarms:
    """CloudWatch alarms by name: ``states`` maps a name to OK, ALARM or INSUFFICIENT_DATA."""

    states: dict[str, str] = field(default_factory=dict)
    queries: list[list[str]] = field(default_factory=list)

    def set_state(self, name: str, state: str) -> None:
        self.states[name] = state

    def alarms_in_alarm(self, names: Sequence[str]) -> list[dict[str, str]]:
        """Return ``{"name", "reason", "updated"}`` for each named alarm in ALARM, in ``names`` order."""
        self.queries.append(list(names))
        return [
            {"name": n, "reason": "Threshold Crossed", "updated": "2026-01-01T00:00:00+00:00"}
            for n in dict.fromkeys(names)
            if self.states.get(n) == "ALARM"
        ]

    def missing_alarms(self, names: Sequence[str]) -> list[str]:
        self.queries.append(list(names))
        return [n for n in dict.fromkeys(names) if n not in self.states]


def probe_ok(status: int = 200, latency_ms: float = 20.0) -> Probe:
    """Return a passing probe."""
    return Probe(ok=True, status=status, latency_ms=latency_ms, error=None, at=0.0)


def probe_failed(status: int | None = 500, error: str | None = None, latency_ms: float = 20.0) -> Probe:
    """Return a failing probe (``status=None`` for a connection error)."""
    why = error or (f"status {status}, expected 200" if status is not None else "ConnectionError")
    return Probe(ok=False, status=status, latency_ms=latency_ms, error=why, at=0.0)


@dataclass
class FakeProber:
    """Answers probes from ``script`` in order; the last answer repeats (a passing one when empty)."""

    script: list[Probe] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def probe(
        self,
        url: str,
        expected_status: int = 200,
        timeout_seconds: float = 5.0,
        max_latency_ms: int | None = None,
    ) -> Probe:
        self.urls.append(url)
        if not self.script:
            return probe_ok()
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


@dataclass
class WatchedChange:
    """One listener change a ``FakeTrafficWatch`` watched: its key, URL and scripted report."""

    key: str
    url: str
    report: ZeroDowntimeReport
    ended_after: float | None = None


@dataclass
class FakeTrafficWatch:
    """The zero-downtime watch (``TrafficWatchPort``): each change gets the next of ``reports``.

    Without scripted reports a change reports 10 requests and no failures. A change's report is
    available as soon as ``end_after`` was called (the fake needs no time to propagate).
    """

    reports: list[ZeroDowntimeReport] = field(default_factory=list)
    changes: list[WatchedChange] = field(default_factory=list)

    def begin(self, key: str, url: str) -> None:
        if any(c.key == key for c in self.changes):
            return
        report = self.reports.pop(0) if self.reports else ZeroDowntimeReport(10, 0, 0.0)
        self.changes.append(WatchedChange(key, url, report))

    def end_after(self, key: str, seconds: float) -> None:
        for change in self.changes:
            if change.key == key:
                change.ended_after = seconds

    def report(self, key: str) -> ZeroDowntimeReport | None:
        for change in self.changes:
            if change.key == key and change.ended_after is not None:
                return change.report
        return None


@dataclass
class FakeRevisions:
    """``RevisionsPort``: every revision is usable as it is, unless ``copies`` maps it to a copy."""

    copies: dict[str, str] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def usable_revision(self, task_definition_arn: str) -> str:
        self.asked.append(task_definition_arn)
        return self.copies.get(task_definition_arn, task_definition_arn)


# --- all the ports together, with saves and crashes ---------------------------------------------
class Crash(BaseException):
    """The worker process died; a ``BaseException`` so that no ``except Exception`` survives it."""


@dataclass
class FakeAws:
    """Every port of a traffic strategy on one clock and one journal; makes ``Run``s and persists them.

    ``saved`` holds each persisted state as JSON, as the store would. With ``crash_at_save=n`` the
    n-th save is persisted and then the worker dies (``Crash``): :meth:`redeliver` builds the run a
    redelivered message would see.
    """

    ecs: FakeEcs
    elb: FakeElb
    alarms: FakeAlarms = field(default_factory=FakeAlarms)
    prober: FakeProber = field(default_factory=FakeProber)
    traffic: FakeTrafficWatch = field(default_factory=FakeTrafficWatch)
    revisions: FakeRevisions = field(default_factory=FakeRevisions)
    clock: FakeClock = field(default_factory=FakeClock)
    approvals: ApprovalPort | None = None
    poll_seconds: float = 5.0
    #: a listener change is watched this long (0: not watched, finished at once)
    settle_seconds: float = 2.0
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    saved: list[str] = field(default_factory=list)
    crash_at_save: int | None = None

    def __post_init__(self) -> None:
        self.elb.journal = self.ecs.journal  # one order for every AWS-visible change

    @property
    def journal(self) -> list[AwsCall]:
        return self.ecs.journal

    def ports(self) -> Ports:
        """Return these fakes as a strategy's ports (mypy checks each against its Protocol here)."""
        return Ports(
            ecs=self.ecs,
            elb=self.elb,
            alarms=self.alarms,
            prober=self.prober,
            traffic=self.traffic,
            revisions=self.revisions,
            clock=self.clock,
            approvals=self.approvals,
        )

    def run(self, state: PipelineState) -> Run[Any]:
        """Return a run of ``state`` wired to these fakes (its message parsed, its memory loaded)."""

        def persist() -> None:
            self.saved.append(state.model_dump_json())
            if self.crash_at_save is not None and len(self.saved) >= self.crash_at_save:
                self.crash_at_save = None
                raise Crash(f"worker died after save {len(self.saved)}")

        return Run(
            state=state,
            request=DeployToECSTask.model_validate(state.request),
            memory=strategy_for(state.strategy).memory.model_validate(state.strategy_state),
            ports=self.ports(),
            emit=lambda kind, **fields: self.events.append((kind, fields)),
            tunables=Tunables(
                poll=PollPolicy(fast=self.poll_seconds, slow=self.poll_seconds),
                rollback_timeout_seconds=600,
                settle_seconds=self.settle_seconds,
            ),
            persist=persist,
        )

    def step(self, call: Callable[[Run[Any]], Progress], run: Run[Any]) -> Progress:
        """Advance one step and persist the state afterwards, as the pipeline's stage task does."""
        progress = call(run)
        run.save()
        return progress

    def redeliver(self) -> Run[Any]:
        """Return the run a redelivered message sees: the last persisted state, these fakes."""
        return self.run(PipelineState.model_validate_json(self.saved[-1]))

    def let_aws_progress(self) -> None:
        """Let time do its work: created services complete with healthy targets, the rollout settles."""
        for temp in self.ecs.temp_services.values():
            if temp.status == "ACTIVE" and temp.deployments[0]["rolloutState"] == "IN_PROGRESS":
                self.ecs.complete_service(temp.name)
                self.elb.set_target_health(temp.target_group_arn, *["healthy"] * temp.desired_count)
        if self.ecs.deployments and self.ecs.deployments[0]["rolloutState"] == "IN_PROGRESS":
            self.ecs.settle()

    def kinds(self) -> list[str]:
        """Return the emitted event kinds, in order."""
        return [kind for kind, _ in self.events]


#: a believable blue/green setup for :func:`traffic_aws` and :func:`traffic_state`
OLD_TASK_DEFINITION = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1"
NEW_TASK_DEFINITION = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:2"
LISTENER_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/1/80"
BLUE_TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-blue/1"
GREEN_TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-green/2"
#: the pushed image the new revision runs
IMAGE_URI = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web@sha256:" + "a" * 64


def traffic_aws() -> FakeAws:
    """Return the fakes of service ``web`` on revision 1, registered with blue, its listener all on blue."""
    ecs = FakeEcs(
        OLD_TASK_DEFINITION,
        [deployment("ecs-svc/0", OLD_TASK_DEFINITION, "COMPLETED")],
        load_balancers=[{"targetGroupArn": BLUE_TG_ARN, "containerName": "web", "containerPort": 8080}],
        service_name="web",
    )
    return FakeAws(ecs, FakeElb.blue_green(LISTENER_ARN, BLUE_TG_ARN, GREEN_TG_ARN))


def traffic_state(
    strategy: dict[str, Any],
    clock: FakeClock,
    *,
    health_check: dict[str, Any] | None = None,
    rollback: dict[str, Any] | None = None,
    timeout_seconds: float = 3600,
) -> PipelineState:
    """Return the state of deployment ``d-1`` of revision 2 of ``web``, registered, before preflight.

    ``strategy`` is the message's strategy (``type`` and its fields); its ``load_balancer`` defaults
    to the setup of :func:`traffic_aws`.
    """
    lb = {
        "listener_arn": LISTENER_ARN,
        "blue_target_group_arn": BLUE_TG_ARN,
        "green_target_group_arn": GREEN_TG_ARN,
    }
    request: dict[str, Any] = {
        "deployment_id": "d-1",
        "cluster_name": "c",
        "service_name": "web",
        "image": {"uri": IMAGE_URI},
        "strategy": {"load_balancer": lb, **strategy},
        "desired_count": None,
        "health_check": health_check,
        "rollback": rollback or {"enabled": True, "alarm_names": []},
        "timeout_seconds": max(30, min(86_400, int(timeout_seconds))),
    }
    return PipelineState(
        deployment_id="d-1",
        request=request,
        strategy=str(strategy["type"]),
        cluster="c",
        service="web",
        region="us-east-1",
        phase=Phase.REGISTERED,
        started_at=clock(),
        deadline=clock() + timedelta(seconds=timeout_seconds),
        task_definition_arn=NEW_TASK_DEFINITION,
        previous_task_definition_arn=OLD_TASK_DEFINITION,
    )
