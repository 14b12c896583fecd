"""Every port of a strategy on one clock and one journal, with saves and crashes; a blue/green set-up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from deploy_agent.core.outcome import Phase
from deploy_agent.core.polling import PollPolicy
from deploy_agent.core.ports import ApprovalPort
from deploy_agent.core.state import PipelineState
from deploy_agent.models.request import DeployToECSTask
from deploy_agent.strategies import Ports, Progress, Run, Tunables, strategy_for
from deploy_agent.testing.clock import FakeClock
from deploy_agent.testing.ecs import AwsCall, FakeEcs, deployment
from deploy_agent.testing.elb import FakeElb
from deploy_agent.testing.probes import FakeAlarms, FakeProber, FakeRevisions, FakeTrafficWatch
from deploy_agent.testing.prometheus import FakePrometheus, VerdictLog


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
    prometheus: FakePrometheus = field(default_factory=FakePrometheus)
    verdicts: VerdictLog = field(default_factory=VerdictLog)
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
            prometheus=self.prometheus,
            count_verdict=self.verdicts,
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
