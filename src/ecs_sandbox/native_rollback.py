"""Traffic shifts, and every way a native deployment ends: success, rollback, stop, superseded, monitors.

A rollback of a native deployment is a weight flip back to the running revision while it still runs
(bake time keeps it: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/
deployment-type-blue-green.html, "rollback ... without downtime"), then the new revision's tasks
deregister, drain and stop: ROLLBACK_REQUESTED -> ROLLBACK_IN_PROGRESS -> ROLLBACK_SUCCESSFUL, with
``rollback {reason, startedAt, serviceRevisionArn}`` (https://docs.aws.amazon.com/AmazonECS/latest/
developerguide/stop-service-deployment.html; API_Rollback.html). What asks for one: StopServiceDeployment
(ROLLBACK, "even if you didn't configure the service deployment for the rollback option"), a PAUSE
hook's ROLLBACK or timeout, the circuit breaker and CloudWatch alarms with ``rollback: true``.
Without rollback (ABORT, a monitor with ``rollback: false``) the deployment ends STOPPED
(API_ServiceDeployment.html, stoppedAt); the sandbox then returns traffic to the running revision
and stops the new one's tasks as well, which ECS does not document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from moto.core.utils import utcnow

from .containers import ContainerState
from .deployments import RolloutLog, new_deployment, set_rollout
from .native_fleet import Fleet, alarms_in_alarm, present
from .native_records import Revision, ServiceDeployment
from .native_traffic import set_weights
from .rollout import ServiceMemory
from .tasks import TaskRecord

_BREAKER = "ECS deployment circuit breaker: tasks failed to start."


@dataclass
class NativeState:
    """What the native controller knows about one service."""

    service_ref: Any  # the moto Service (a re-created service is another one)
    production: Revision | None = None  # the revision serving production traffic
    deployments: list[ServiceDeployment] = field(default_factory=list)  # oldest first
    revisions: dict[str, Revision] = field(default_factory=dict)  # by ECS deployment id

    def active(self) -> ServiceDeployment | None:
        """Return the deployment still under way, if any."""
        return next((d for d in reversed(self.deployments) if not d.finished), None)


def _named(service: Any, sd: ServiceDeployment) -> str:
    return f"(service {service.name}) (deployment {sd.ecs_deployment_id})"


def _other(side: str) -> str:
    return "primary" if side == "alternate" else "alternate"


class Rollbacks:
    """Moves weights and ends deployments early."""

    def __init__(self, fleet: Fleet, account: str, log: RolloutLog) -> None:
        self.fleet = fleet
        self.account = account
        self.log = log

    def shift(
        self,
        region: str,
        service: Any,
        sd: ServiceDeployment,
        production: float | None = None,
        test: float | None = None,
    ) -> None:
        """Set the share of production and/or test traffic on the deployment's new revision."""
        blue_side = sd.sources[0].side if sd.sources else _other(sd.target.side)
        for balancer in service.load_balancers:
            advanced = balancer.get("advancedConfiguration") or {}
            groups = {
                "primary": balancer.get("targetGroupArn"),
                "alternate": advanced.get("alternateTargetGroupArn"),
            }
            blue, green = groups[blue_side], groups[sd.target.side]
            if not blue or not green:
                continue
            for share, rule in (
                (production, advanced.get("productionListenerRule")),
                (test, advanced.get("testListenerRule")),
            ):
                if share is not None and rule:
                    set_weights(self.account, region, str(rule), str(blue), str(green), share)
        if production is not None:
            sd.touch(green_percent=production)
        if test is not None:
            sd.touch(test_percent=test)

    def request(self, sd: ServiceDeployment, reason: str) -> None:
        """Ask for a rollback (it starts on the next tick)."""
        if sd.status not in ("PENDING", "IN_PROGRESS"):
            return
        back_to = sd.sources[0].arn if sd.sources else sd.target.arn
        rollback = {"reason": reason, "startedAt": utcnow(), "serviceRevisionArn": back_to}
        sd.touch(status="ROLLBACK_REQUESTED", status_reason=reason, rollback=rollback)

    def stop(self, sd: ServiceDeployment, reason: str) -> None:
        """Ask for the deployment to stop without a rollback record."""
        if sd.status in ("PENDING", "IN_PROGRESS"):
            sd.touch(status="STOP_REQUESTED", status_reason=reason)

    def supersede(self, region: str, service: Any, sd: ServiceDeployment, by: str) -> None:
        """End a deployment a newer one replaces: traffic back to the running revision, STOPPED."""
        self.shift(region, service, sd, production=0.0, test=0.0)
        now = utcnow()
        sd.touch(status="STOPPED", stopped_at=now, finished_at=now, status_reason=f"Superseded by {by}.")

    def monitor(
        self, region: str, service: Any, sd: ServiceDeployment, records: list[TaskRecord], events: list[str]
    ) -> bool:
        """Count the new revision's failed tasks and read its alarms; return whether either stopped it.

        The breaker trips at the rollout code's threshold (0.5 x desired within [3, 200]); an alarm in
        ALARM trips the alarms (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/
        deployment-alarm-failure.html).
        """
        if sd.status != "IN_PROGRESS":
            return False
        ecs = next((d for d in service.deployments if d["id"] == sd.ecs_deployment_id), None)
        for record in records:
            if (
                record.deployment_id == sd.target.ecs_deployment_id
                and record.failed
                and not record.failure_counted
            ):
                record.failure_counted = True
                sd.touch(failure_count=sd.failure_count + 1)
                if ecs is not None:
                    ecs["failedTasks"] = int(ecs.get("failedTasks") or 0) + 1
        config = sd.config
        if (
            config.circuit_breaker
            and sd.breaker_status == "MONITORING"
            and sd.failure_count >= sd.breaker_threshold
        ):
            sd.touch(breaker_status="TRIGGERED")
            events.append(f"{_named(service, sd)} deployment failed: tasks failed to start.")
            (self.request if config.breaker_rollback else self.stop)(sd, _BREAKER)
            return True
        if config.alarms_enabled and sd.alarm_status == "MONITORING":
            triggered = alarms_in_alarm(self.account, region, config.alarm_names)
            if triggered:
                sd.touch(alarm_status="TRIGGERED", triggered_alarms=triggered)
                reason = f"ECS deployment alarms: {', '.join(triggered)} in ALARM."
                events.append(f"{_named(service, sd)} deployment failed: alarm detected.")
                (self.request if config.alarm_rollback else self.stop)(sd, reason)
                return True
        return False

    def advance(
        self,
        backend: Any,
        region: str,
        service: Any,
        state: NativeState,
        sd: ServiceDeployment,
        records: list[TaskRecord],
        memory: ServiceMemory,
        states: dict[str, ContainerState],
        events: list[str],
    ) -> list[TaskRecord]:
        """Play one tick of a rollback or stop; return the running revision's tasks started."""
        rolling_back = sd.status != "STOP_REQUESTED"
        source = sd.sources[0] if sd.sources else None
        if source is None:  # a first deployment has nothing to go back to
            now = utcnow()
            sd.touch(status="ROLLBACK_FAILED" if rolling_back else "STOPPED", finished_at=now, stopped_at=now)
            return []
        if sd.phase != "flipped":
            self._flip(region, service, state, sd, source, memory, records, states, events)
            if rolling_back:
                sd.touch(status="ROLLBACK_IN_PROGRESS")
        started = self.fleet.maintain(
            backend,
            region,
            service,
            source.ecs_deployment_id,
            source.task_definition,
            service.desired_count,
            records,
            states,
        )
        if not present(records, sd.target.ecs_deployment_id):
            now = utcnow()
            if rolling_back:
                sd.touch(status="ROLLBACK_SUCCESSFUL", finished_at=now)
            else:
                sd.touch(status="STOPPED", finished_at=now, stopped_at=now)
            events.append(
                f"(service {service.name}) rolled back to {source.task_definition}."
                if rolling_back
                else f"(service {service.name}) service deployment {sd.arn} stopped."
            )
        return started

    def succeed(
        self,
        service: Any,
        state: NativeState,
        sd: ServiceDeployment,
        memory: ServiceMemory,
        events: list[str],
    ) -> None:
        """End the deployment SUCCESSFUL: its revision is production now, its ECS deployment COMPLETED."""
        sd.touch(
            status="SUCCESSFUL",
            finished_at=utcnow(),
            status_reason="Service deployment completed.",
            breaker_status="MONITORING_COMPLETE" if sd.breaker_status == "MONITORING" else sd.breaker_status,
            alarm_status="MONITORING_COMPLETE" if sd.alarm_status == "MONITORING" else sd.alarm_status,
        )
        state.production = sd.target
        ecs = next((d for d in service.deployments if d["id"] == sd.ecs_deployment_id), None)
        if ecs is not None:
            set_rollout(ecs, "COMPLETED", f"ECS deployment {ecs['id']} completed.")
            self.log.record(service, ecs)
            memory.last_completed = (ecs["id"], ecs["taskDefinition"])
        events.append(f"(service {service.name}) (deployment {sd.ecs_deployment_id}) deployment completed.")
        events.append(f"(service {service.name}) has reached a steady state.")

    def _flip(
        self,
        region: str,
        service: Any,
        state: NativeState,
        sd: ServiceDeployment,
        source: Revision,
        memory: ServiceMemory,
        records: list[TaskRecord],
        states: dict[str, ContainerState],
        events: list[str],
    ) -> None:
        """Traffic back to the running revision, its ECS deployment PRIMARY again, the new tasks stopped."""
        self.shift(region, service, sd, production=0.0, test=0.0)
        self.fleet.stop_all(records, sd.target.ecs_deployment_id, sd.status_reason or "Rolled back", states)
        deployments = list(service.deployments)
        blue = next((d for d in deployments if d["id"] == source.ecs_deployment_id), None)
        if blue is None:  # its tasks are all gone: the running revision starts again under a new id
            blue = new_deployment(service, source.task_definition)
            source.ecs_deployment_id = blue["id"]
            state.revisions[blue["id"]] = source
            deployments.append(blue)
        green = next((d for d in deployments if d["id"] == sd.ecs_deployment_id), None)
        if green is not None:
            set_rollout(green, "FAILED", sd.status_reason or "Service deployment stopped.")
            self.log.record(service, green)
        for deployment in deployments:
            deployment["status"] = "PRIMARY" if deployment is blue else "ACTIVE"
        service.deployments = [blue, *(d for d in deployments if d is not blue)]
        service.task_definition = source.task_definition
        memory.primary_id = blue["id"]
        sd.touch(phase="flipped")
        events.append(f"(service {service.name}) rolling back to deployment {blue['id']}.")
