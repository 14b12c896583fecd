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
Hooks and the calls acting on a deployment are ``native_hooks``'; its endings (success, rollback,
stop, the circuit breaker, alarms) ``native_rollback``'s. A service that switches from ROLLING to a
native strategy keeps what runs as its production revision. All minutes are AWS minutes, played at
the realism profile's time scale.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from moto.core.utils import utcnow
from moto.ecs.exceptions import ECSException

from .containers import ContainerState
from .deployments import add_events, circuit_breaker_threshold, recount, task_list
from .native_config import is_native, read_native_config
from .native_fleet import Fleet, ServiceView, all_healthy, counts, make_revision, present
from .native_hooks import continue_hook, hooks_done, stop_deployment
from .native_plan import FIRST_DEPLOYMENT, Step, plan_lifecycle
from .native_records import Revision, ServiceDeployment, new_deployment_arn
from .native_rollback import NativeState, Rollbacks
from .realism import Realism
from .rollout import Rollout, ServiceMemory
from .tasks import TaskRecord, is_gone

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
            self.rollout.tasks.advance(record, states, view, events)
        active = state.active()
        started: list[TaskRecord] = []
        if active is not None:
            started = self._drive(backend, region, service, state, active, records, memory, states, events)
        elif state.production is not None:
            started = self.fleet.keep(backend, region, service, state.production, records, states)
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

    def _track(self, backend: Any, region: str, service: Any, state: NativeState) -> None:
        """Start a ServiceDeployment for a PRIMARY deployment not seen before."""
        primary = service.deployments[0] if service.deployments else None
        config = service.deployment_configuration
        if primary is None or primary["id"] in state.revisions or not is_native(config):
            return
        if state.production is None and not state.deployments and primary["rolloutState"] == "COMPLETED":
            # A running service switched to a native strategy: what runs is production, no deployment.
            state.production = self._revision(backend, region, service, primary, "primary", state)
            return
        source = state.production
        side = "primary" if source is None or source.side == "alternate" else "alternate"
        native = read_native_config(config)
        deployment = ServiceDeployment(
            arn=new_deployment_arn(region, self.account, service.cluster_name, service.name),
            service_arn=service.arn,
            cluster_arn=backend.clusters[service.cluster_name].arn,
            ecs_deployment_id=primary["id"],
            target=self._revision(backend, region, service, primary, side, state),
            sources=[source] if source is not None else [],
            configuration=dict(config or {}),
            config=native,
            breaker_threshold=circuit_breaker_threshold(service.desired_count, self.breaker_minimum),
            breaker_status="MONITORING" if native.circuit_breaker else "DISABLED",
            alarm_status="MONITORING" if native.alarms_enabled and native.alarm_names else "DISABLED",
        )
        current = state.active()
        if current is not None:  # superseded: its new tasks go, production traffic returns to the old
            self.rollbacks.supersede(region, service, current, deployment.arn)
        state.deployments.append(deployment)
        self.deployments[deployment.arn] = deployment

    def _revision(
        self, backend: Any, region: str, service: Any, ecs: dict[str, Any], side: str, state: NativeState
    ) -> Revision:
        revision = make_revision(backend, region, self.account, service, ecs, side)
        state.revisions[revision.ecs_deployment_id] = revision
        self.revisions[revision.arn] = revision
        return revision

    def _stop_strays(
        self, state: NativeState, active: ServiceDeployment | None, records: list[TaskRecord], states: Any
    ) -> None:
        """Stop tasks of no revision in play (a superseded deployment's, a service's rolling leftovers)."""
        keep = {state.production.ecs_deployment_id} if state.production is not None else set()
        if active is not None:
            keep.add(active.target.ecs_deployment_id)
        for record in records:
            if record.deployment_id not in keep and not record.stopping and not is_gone(record):
                reason = "Service deployment superseded"
                self.rollout.tasks.stop(record, reason, "ServiceSchedulerInitiated", states)

    # --- one deployment, one tick --------------------------------------------------------------------

    def _drive(
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
        if sd.status == "PENDING":
            sd.touch(status="IN_PROGRESS", started_at=utcnow())
        if sd.status in ("ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "STOP_REQUESTED"):
            return self.rollbacks.advance(
                backend, region, service, state, sd, records, memory, states, events
            )
        source = sd.sources[0] if sd.sources else None
        steps = plan_lifecycle(sd.config) if source is not None else FIRST_DEPLOYMENT
        step = steps[sd.step]
        started: list[TaskRecord] = []
        if source is not None and step.action != "clean_up":
            started += self.fleet.keep(backend, region, service, source, records, states)
        scale_up = next(i for i, s in enumerate(steps) if s.action == "scale_up")
        if sd.step > scale_up:  # once scaled up, the new revision is kept at full size too
            started += self.fleet.keep(backend, region, service, sd.target, records, states)
        if self.rollbacks.monitor(region, service, sd, records, events):
            return started
        if sd.lifecycle_stage != step.stage:
            sd.touch(lifecycle_stage=step.stage)
        now = time.monotonic()
        if sd.phase == "hooks":
            if not hooks_done(sd, step, now, self.realism, self.rollbacks):
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
                self.rollbacks.succeed(service, state, sd, memory, events)
        return started

    def _act(
        self,
        backend: Any,
        region: str,
        service: Any,
        sd: ServiceDeployment,
        step: Step,
        records: list[TaskRecord],
        states: dict[str, ContainerState],
    ) -> tuple[bool, list[TaskRecord]]:
        """Do the step's action; return whether it is done, and the tasks it started."""
        if step.action == "scale_up":
            # SCALE_UP: "the green service revision scales up to 100% and launches new tasks" (botocore
            # ServiceDeployment.lifecycleStage); failed ones are relaunched until the breaker trips.
            fresh = self.fleet.keep(backend, region, service, sd.target, records, states)
            return all_healthy(records, sd.target.ecs_deployment_id, service.desired_count), fresh
        if step.action == "test_shift":
            self.rollbacks.shift(region, service, sd, test=100.0)
        elif step.action == "shift":
            self.rollbacks.shift(region, service, sd, production=step.percent)
        elif step.action == "clean_up":
            old = sd.sources[0].ecs_deployment_id
            reason = f"Scaling activity initiated by (deployment {sd.ecs_deployment_id})"
            self.fleet.stop_all(records, old, reason, states)
            return not present(records, old), []
        return True, []

    # --- the API's side (native_api calls these) -----------------------------------------------------

    def find(self, arn: str) -> ServiceDeployment:
        """Return the deployment, or raise ECS's ServiceDeploymentNotFoundException."""
        found = self.deployments.get(arn)
        if found is None:
            message = f"The service deployment {arn} does not exist."
            raise ECSException("ServiceDeploymentNotFoundException", message)
        return found

    def continue_deployment(self, arn: str, hook_id: str, action: str) -> None:
        """ContinueServiceDeployment: resolve a PAUSE hook AWAITING_ACTION (CONTINUE or ROLLBACK)."""
        with self.lock:
            continue_hook(self.find(arn), hook_id, action, self.rollbacks)

    def stop_deployment(self, arn: str, stop_type: str) -> None:
        """StopServiceDeployment: ROLLBACK (the default) or ABORT an unfinished deployment."""
        with self.lock:
            stop_deployment(self.find(arn), stop_type, self.rollbacks)
