"""ECS's native BLUE_GREEN / LINEAR / CANARY controller, one scheduler tick at a time.

A service whose deploymentConfiguration.strategy is native is driven here instead of by the rolling
replacement (``rollout``). Each new PRIMARY deployment (UpdateService with a new task definition or
forceNewDeployment) becomes a ServiceDeployment with a target ServiceRevision, which walks
``native_plan``'s steps: PAUSE hooks hold it (``AWAITING_ACTION`` until ContinueServiceDeployment or
their timeout; https://docs.aws.amazon.com/AmazonECS/latest/developerguide/pause-lifecycle-hooks.html),
SCALE_UP starts the new revision at full size in the other target group, TEST_TRAFFIC_SHIFT and each
PRODUCTION_TRAFFIC_SHIFT rewrite the listener rules' weights (``native_traffic``), BAKE_TIME keeps
both revisions running, CLEAN_UP drains and stops the old one
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/blue-green-deployment-how-it-works.html).
Rollbacks (StopServiceDeployment, a hook's ROLLBACK, the circuit breaker, alarms) are ``native_rollback``'s.
AWS_LAMBDA hooks are accepted and count as SUCCEEDED at once: the sandbox runs no Lambda.
All minutes are AWS minutes, played at the realism profile's time scale.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from moto.core.utils import utcnow
from moto.ecs.exceptions import ECSException

from .containers import ContainerState
from .deployments import add_events, circuit_breaker_threshold, recount, set_rollout, task_list
from .native_config import is_native, read_native_config
from .native_fleet import Fleet, ServiceView, all_healthy, counts, live, present, resolved_load_balancers
from .native_plan import FIRST_DEPLOYMENT, Step, hooks_at, plan_lifecycle
from .native_records import (
    HookRun,
    Revision,
    ServiceDeployment,
    new_deployment_arn,
    new_hook_id,
    new_revision_arn,
)
from .native_rollback import NativeState, Rollbacks
from .realism import Realism
from .rollout import Rollout, ServiceMemory
from .tasks import TaskRecord

ServiceKey = tuple[str, str, str]


class NativeController:
    """Plays ECS's native deployment controller for every service whose strategy asks for it."""

    def __init__(
        self, rollout: Rollout, account: str, lock: threading.RLock, breaker_minimum: int = 3
    ) -> None:
        self.rollout = rollout
        self.account = account
        self.lock = lock
        self.breaker_minimum = breaker_minimum
        self.fleet = Fleet(rollout.tasks)
        self.rollbacks = Rollbacks(self.fleet, account, rollout.log)
        self._services: dict[ServiceKey, NativeState] = {}
        self.deployments: dict[str, ServiceDeployment] = {}
        self.revisions: dict[str, Revision] = {}
        self.task_counts: dict[str, tuple[int, int, int]] = {}  # by ECS deployment id

    @property
    def realism(self) -> Realism:
        """Return the profile the scheduler plays now."""
        return self.rollout.realism

    def owns(self, service: Any) -> bool:
        """Return whether the service is run by this controller (a native strategy, or one in flight)."""
        if is_native(getattr(service, "deployment_configuration", None)):
            return True
        state = self._services.get((service.region_name, service.cluster_name, service.name))
        return state is not None and state.service_ref is service and state.active() is not None

    def forget_all(self) -> None:
        """Forget every deployment and revision (a moto reset)."""
        with self.lock:
            self._services.clear()
            self.deployments.clear()
            self.revisions.clear()
            self.task_counts.clear()

    def deployments_of(self, region: str, cluster: str, service: str) -> list[ServiceDeployment]:
        """Return the service's deployments, oldest first."""
        state = self._services.get((region, cluster, service))
        return list(state.deployments) if state is not None else []

    def production_of(self, region: str, cluster: str, service: str) -> Revision | None:
        """Return the revision serving the service's production traffic (None: not taken over yet)."""
        with self.lock:
            state = self._services.get((region, cluster, service))
            return state.production if state is not None else None

    def _state(self, region: str, service: Any) -> NativeState:
        key = (region, service.cluster_name, service.name)
        state = self._services.get(key)
        if state is None or state.service_ref is not service:
            state = self._services[key] = NativeState(service)
        return state

    # --- the scheduler's side ----------------------------------------------------------------------

    def on_updated(self, backend: Any, service: Any, memory: ServiceMemory) -> None:
        """Create the ServiceDeployment of UpdateService's new PRIMARY deployment at once."""
        self._track(backend, backend.region_name, service, self._state(backend.region_name, service))

    def reconcile(
        self,
        backend: Any,
        region: str,
        service: Any,
        records: list[TaskRecord],
        memory: ServiceMemory,
        states: dict[str, ContainerState],
    ) -> list[TaskRecord]:
        """Advance the service's tasks and its deployment one step; return the tasks started."""
        events: list[str] = []
        self.rollout.sync_deployments(backend, service, memory)
        state = self._state(region, service)
        self._track(backend, region, service, state)
        was_stopping = {r.task_arn for r in records if r.stopping}
        for record in records:
            revision = state.revisions.get(record.deployment_id)
            view = ServiceView(service, revision.side) if revision is not None else service
            self.tasks_advance(record, states, view, events)
        active = state.active()
        started: list[TaskRecord] = []
        if active is not None:
            started = self._drive(backend, region, service, state, active, records, memory, states, events)
        elif state.production is not None:
            started = self._keep(backend, region, service, state.production, records, states)
        self._stop_strays(state, active, records, states)
        everything = records + started
        stopped = [r for r in records if r.stopping and r.task_arn not in was_stopping]
        if stopped:
            events.append(
                task_list(
                    f"(service {service.name}) has stopped", [r.task_id for r in stopped], "running tasks"
                )
            )
        if started:
            events.append(task_list(f"(service {service.name}) has started", [r.task_id for r in started]))
        recount(service, everything, None)
        for deployment_id in state.revisions:
            self.task_counts[deployment_id] = counts(everything, deployment_id)
        add_events(service, events)
        return started

    def tasks_advance(
        self, record: TaskRecord, states: dict[str, ContainerState], view: Any, events: list[str]
    ) -> None:
        """Move one task along, registering it on its revision's side of each load balancer."""
        self.rollout.tasks.advance(record, states, view, events)

    def _track(self, backend: Any, region: str, service: Any, state: NativeState) -> None:
        """Start a ServiceDeployment for a PRIMARY deployment not seen before."""
        primary = service.deployments[0] if service.deployments else None
        if (
            primary is None
            or primary["id"] in state.revisions
            or not is_native(service.deployment_configuration)
        ):
            return
        if state.production is None and not state.deployments and primary["rolloutState"] == "COMPLETED":
            # A running service switched to a native strategy: what runs is production, no deployment.
            state.production = self._revision(backend, region, service, primary, "primary", state)
            return
        source = state.production
        side = "primary" if source is None or source.side == "alternate" else "alternate"
        config = read_native_config(service.deployment_configuration)
        deployment = ServiceDeployment(
            arn=new_deployment_arn(region, self.account, service.cluster_name, service.name),
            service_arn=service.arn,
            cluster_arn=backend.clusters[service.cluster_name].arn,
            ecs_deployment_id=primary["id"],
            target=self._revision(backend, region, service, primary, side, state),
            sources=[source] if source is not None else [],
            configuration=dict(service.deployment_configuration or {}),
            config=config,
            breaker_threshold=circuit_breaker_threshold(service.desired_count, self.breaker_minimum),
            breaker_status="MONITORING" if config.circuit_breaker else "DISABLED",
            alarm_status="MONITORING" if config.alarms_enabled and config.alarm_names else "DISABLED",
        )
        current = state.active()
        if current is not None:  # superseded: its new tasks go, production traffic returns to the old
            self.rollbacks.supersede(region, service, current, deployment.arn)
        state.deployments.append(deployment)
        self.deployments[deployment.arn] = deployment

    def _revision(
        self, backend: Any, region: str, service: Any, ecs: dict[str, Any], side: str, state: NativeState
    ) -> Revision:
        definition = backend.describe_task_definition(ecs["taskDefinition"])
        revision = Revision(
            arn=new_revision_arn(region, self.account, service.cluster_name, service.name),
            service_arn=service.arn,
            cluster_arn=backend.clusters[service.cluster_name].arn,
            task_definition=definition.arn,
            side=side,
            resolved=resolved_load_balancers(service, side),
            ecs_deployment_id=ecs["id"],
            service_fields={
                "launchType": service.launch_type,
                "platformVersion": service.platform_version,
                "platformFamily": ecs.get("platformFamily"),
                "loadBalancers": list(service.load_balancers),
                "networkConfiguration": service.network_configuration or None,
                "capacityProviderStrategy": getattr(service, "capacity_provider_strategy", None),
            },
            container_images=[
                {"containerName": c["name"], "image": c["image"]} for c in definition.container_definitions
            ],
        )
        state.revisions[revision.ecs_deployment_id] = revision
        self.revisions[revision.arn] = revision
        return revision

    def _keep(
        self,
        backend: Any,
        region: str,
        service: Any,
        revision: Revision,
        records: list[TaskRecord],
        states: dict[str, ContainerState],
    ) -> list[TaskRecord]:
        """Keep the production revision at the desired count (failed tasks replaced, scaling followed)."""
        return self.fleet.maintain(
            backend,
            region,
            service,
            revision.ecs_deployment_id,
            revision.task_definition,
            service.desired_count,
            records,
            states,
        )

    def _stop_strays(
        self,
        state: NativeState,
        active: ServiceDeployment | None,
        records: list[TaskRecord],
        states: dict[str, ContainerState],
    ) -> None:
        """Stop tasks of no revision in play (a superseded deployment's, a service's rolling leftovers)."""
        keep = {state.production.ecs_deployment_id} if state.production is not None else set()
        if active is not None:
            keep.add(active.target.ecs_deployment_id)
        for record in records:
            if (
                record.deployment_id not in keep
                and not record.stopping
                and record.task.last_status != "STOPPED"
            ):
                self.rollout.tasks.stop(
                    record, "Service deployment superseded", "ServiceSchedulerInitiated", states
                )

    # --- one deployment, one tick --------------------------------------------------------------------

    def _drive(
        self, backend: Any, region: str, service: Any, state: NativeState, sd: ServiceDeployment,
        records: list[TaskRecord], memory: ServiceMemory, states: dict[str, ContainerState], events: list[str],
    ) -> list[TaskRecord]:  # fmt: skip
        started: list[TaskRecord] = []
        if sd.status == "PENDING":
            sd.touch(status="IN_PROGRESS", started_at=utcnow())
        if sd.status in ("ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "STOP_REQUESTED"):
            return self.rollbacks.advance(
                backend, region, service, state, sd, records, memory, states, events
            )
        source = sd.sources[0] if sd.sources else None
        if source is not None and sd.lifecycle_stage != "CLEAN_UP":
            started += self._keep(backend, region, service, source, records, states)
        if self.rollbacks.monitor(region, service, sd, records, events):
            return started
        steps = plan_lifecycle(sd.config) if source is not None else FIRST_DEPLOYMENT
        step = steps[sd.step]
        if sd.lifecycle_stage != step.stage:
            sd.touch(lifecycle_stage=step.stage)
        now = time.monotonic()
        if sd.phase == "hooks":
            if not self._hooks_done(sd, step, now):
                return started
            sd.phase = "act"
        if sd.phase == "act":
            done, fresh = self._act(backend, region, service, sd, step, records, states)
            started += fresh
            if not done:
                return started
            sd.touch(phase="wait", wait_until=now + self.realism.scaled(step.wait_minutes * 60))
        if sd.phase == "wait" and now >= sd.wait_until:
            sd.touch(step=sd.step + 1, phase="hooks")
            if sd.step == len(steps):
                self._succeed(service, state, sd, memory, events)
        return started

    def _hooks_done(self, sd: ServiceDeployment, step: Step, now: float) -> bool:
        """Run the step's hooks: PAUSE hooks wait for an action or their timeout, Lambda hooks succeed."""
        if sd.hooks_step != sd.step:
            runs = []
            for hook in hooks_at(sd.config, step.hook_stages):
                seconds = self.realism.scaled(hook.timeout_minutes * 60)
                paused = hook.target_type == "PAUSE"
                runs.append(HookRun(
                    hook_id=new_hook_id(), target_type=hook.target_type,
                    status="AWAITING_ACTION" if paused else "SUCCEEDED",
                    expires_at=utcnow() + timedelta(seconds=seconds), deadline=now + seconds,
                    timeout_action=hook.timeout_action, target_arn=None if paused else hook.target_arn,
                ))  # fmt: skip
            if runs or sd.hooks:
                sd.touch(hooks=runs, hooks_step=sd.step)
            sd.hooks_step = sd.step
        for run in sd.hooks:
            if run.status == "AWAITING_ACTION" and now >= run.deadline:
                # The timeout applies the hook's action (timeoutConfiguration.action, ROLLBACK by default).
                run.status = "TIMED_OUT"
                sd.touch()
                if run.timeout_action == "ROLLBACK":
                    self.rollbacks.request(sd, f"Lifecycle hook {run.hook_id} timed out.")
                    return False
        return all(r.status != "AWAITING_ACTION" for r in sd.hooks)

    def _act(
        self, backend: Any, region: str, service: Any, sd: ServiceDeployment, step: Step,
        records: list[TaskRecord], states: dict[str, ContainerState],
    ) -> tuple[bool, list[TaskRecord]]:  # fmt: skip
        target = sd.target
        if step.action == "scale_up":
            # SCALE_UP: "the green service revision scales up to 100% and launches new tasks"
            # (botocore ServiceDeployment.lifecycleStage); failed ones are relaunched.
            if sd.status == "IN_PROGRESS" and sd.breaker_status != "TRIGGERED":
                fresh = self._keep(backend, region, service, target, records, states)
            else:
                fresh = []
            return all_healthy(records, target.ecs_deployment_id, service.desired_count), fresh
        if sd.step > 2:  # after SCALE_UP, green is kept at full size too
            fresh = self._keep(backend, region, service, target, records, states)
        else:
            fresh = []
        if step.action == "test_shift":
            self.rollbacks.shift(region, service, sd, test=100.0)
        elif step.action == "shift":
            self.rollbacks.shift(region, service, sd, production=step.percent)
        elif step.action == "clean_up":
            source = sd.sources[0]
            reason = f"Scaling activity initiated by (deployment {sd.ecs_deployment_id})"
            self.fleet.stop_all(records, source.ecs_deployment_id, reason, states)
            return not present(records, source.ecs_deployment_id), fresh
        return True, fresh

    def _succeed(
        self,
        service: Any,
        state: NativeState,
        sd: ServiceDeployment,
        memory: ServiceMemory,
        events: list[str],
    ) -> None:
        """End the deployment SUCCESSFUL: its revision is production now."""
        sd.touch(
            status="SUCCESSFUL", finished_at=utcnow(), status_reason="Service deployment completed.",
            breaker_status="MONITORING_COMPLETE" if sd.breaker_status == "MONITORING" else sd.breaker_status,
            alarm_status="MONITORING_COMPLETE" if sd.alarm_status == "MONITORING" else sd.alarm_status,
        )  # fmt: skip
        state.production = sd.target
        ecs = next((d for d in service.deployments if d["id"] == sd.ecs_deployment_id), None)
        if ecs is not None:
            set_rollout(ecs, "COMPLETED", f"ECS deployment {ecs['id']} completed.")
            self.rollout.log.record(service, ecs)
            memory.last_completed = (ecs["id"], ecs["taskDefinition"])
        events.append(f"(service {service.name}) (deployment {sd.ecs_deployment_id}) deployment completed.")
        events.append(f"(service {service.name}) has reached a steady state.")

    # --- the API's side (native_api calls these under the scheduler's lock) -------------------------

    def find(self, arn: str) -> ServiceDeployment:
        """Return the deployment, or raise ECS's ServiceDeploymentNotFoundException."""
        found = self.deployments.get(arn)
        if found is None:
            raise ECSException(
                "ServiceDeploymentNotFoundException", f"The service deployment {arn} does not exist."
            )
        return found

    def continue_deployment(self, arn: str, hook_id: str, action: str) -> None:
        """ContinueServiceDeployment: resolve a PAUSE hook AWAITING_ACTION (CONTINUE or ROLLBACK)."""
        with self.lock:
            sd = self.find(arn)
            run = next((h for h in sd.hooks if h.hook_id == hook_id), None)
            if run is None:
                raise ECSException(
                    "InvalidParameterException",
                    f"The hook {hook_id} was not found for service deployment {arn}.",
                )
            # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/continue-service-deployment.html:
            # the hook must be AWAITING_ACTION and the deployment IN_PROGRESS.
            if run.status != "AWAITING_ACTION" or sd.status != "IN_PROGRESS":
                raise ECSException(
                    "ClientException",
                    f"The hook {hook_id} is {run.status}, not AWAITING_ACTION; the service deployment is {sd.status}.",
                )
            run.status = "SUCCEEDED" if action == "CONTINUE" else "FAILED"
            sd.touch()
            if action == "ROLLBACK":
                self.rollbacks.request(
                    sd, f"Rolled back at lifecycle hook {hook_id} by ContinueServiceDeployment."
                )

    def stop_deployment(self, arn: str, stop_type: str) -> None:
        """StopServiceDeployment: ROLLBACK (the default) or ABORT an unfinished deployment."""
        with self.lock:
            sd = self.find(arn)
            # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stop-service-deployment.html:
            # PENDING/IN_PROGRESS move on to ROLLBACK_REQUESTED; a rollback or stop already asked continues.
            if sd.status in ("ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "STOP_REQUESTED"):
                return
            if sd.finished or sd.lifecycle_stage == "CLEAN_UP":
                raise ECSException(
                    "ConflictException", f"The service deployment {arn} is {sd.status} and cannot be stopped."
                )
            if stop_type == "ABORT":
                sd.touch(
                    status="STOP_REQUESTED",
                    status_reason="Service deployment stopped by StopServiceDeployment.",
                )
            else:
                self.rollbacks.request(sd, "Service deployment rolled back by StopServiceDeployment.")
