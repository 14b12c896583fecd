"""The ECS service scheduler that moto lacks, as a daemon thread over moto's in-memory backends.

Services move as in ECS: ACTIVE services are reconciled every tick (``rollout``) at the pace and
with the fidelity of a realism profile (``realism.Realism``: REALISTIC by default, IDEALISED for the
fast, simple ECS of earlier versions), whose durations are scaled by its ``time_scale``; DeleteService on a
service that still has tasks leaves it DRAINING (desiredCount 0) while each task is deregistered from
its target groups, drains and stops, and only then INACTIVE. Tasks whose service object is gone (a
moto reset, a service re-created under the same name) are stopped the same way.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import docker
from moto.backends import get_backend

from . import moto_patches
from .containers import ContainerRunner
from .deployments import RolloutLog, RolloutTransition, add_events, recount, task_list
from .ecs_events import TaskEventWatch
from .native_controller import NativeController
from .realism import REALISTIC, Realism
from .rollout import Rollout, ServiceMemory
from .target_health import TargetHealthBook
from .task_launch import TaskTiming
from .task_runner import TaskRunner
from .tasks import TaskRecord

log = logging.getLogger(__name__)
ServiceKey = tuple[str, str, str]  # (region, cluster, service name)


class EcsScheduler:
    """Plays ECS for every ACTIVE service with the ECS deployment controller, once per tick.

    Each task runs as real containers (host network, its own loopback ``PORT``), is registered in its
    service's target groups and health-checked over HTTP; deployments, counts, rollout states, the
    circuit breaker, stopped-task reasons and service events are written into moto's backends.
    """

    def __init__(
        self,
        docker_client: docker.DockerClient,
        registry_host: str,
        account: str = "123456789012",
        regions: tuple[str, ...] = ("us-east-1",),
        tick_seconds: float | None = None,
        task_start_delay_seconds: float | None = None,
        health_check_interval_seconds: float | None = None,
        healthy_threshold: int | None = None,
        unhealthy_threshold: int | None = None,
        health_check_grace_seconds: float | None = None,
        drain_seconds: float | None = None,
        max_drain_seconds: float | None = None,
        circuit_breaker_minimum: int = 3,
        virtual_tasks: bool = False,
        profile: Realism = REALISTIC,
        time_scale: float | None = None,
    ) -> None:
        """``profile``: how closely to play ECS (its ``time_scale`` replaced by ``time_scale`` if given).

        Explicit knobs win over the profile. Knobs: seconds of the sandbox's own pace; ``tick_seconds``
        (default: the profile's); ``drain_seconds`` is the deregistration delay of a target group whose
        ``deregistration_delay.timeout_seconds`` was left at AWS's 300, and ``max_drain_seconds`` caps
        every delay; giving any health knob makes target health use the fixed knobs (else each target
        group's own settings, when the profile says so). ``task_start_delay_seconds``: how long a new
        task takes to be RUNNING (at least; default: the profile's PROVISIONING + PENDING seconds,
        scaled). ``virtual_tasks``: tasks run no container (see ``task_runner``).
        """
        realism = profile if time_scale is None else profile.with_scale(time_scale)
        self._lock = threading.RLock()
        self.account = account
        self.regions = regions
        self.tick_seconds = realism.tick_seconds if tick_seconds is None else tick_seconds
        self._start_delay_knob = task_start_delay_seconds
        knobs = (
            health_check_interval_seconds, healthy_threshold, unhealthy_threshold,
            health_check_grace_seconds, drain_seconds, max_drain_seconds,
        )  # fmt: skip
        self._fixed_health = any(knob is not None for knob in knobs)
        interval = 0.2 if health_check_interval_seconds is None else health_check_interval_seconds
        unhealthy = 2 if unhealthy_threshold is None else unhealthy_threshold
        grace = 1.0 if health_check_grace_seconds is None else health_check_grace_seconds
        self.health = TargetHealthBook(
            interval_seconds=interval,
            healthy_threshold=2 if healthy_threshold is None else healthy_threshold,
            unhealthy_threshold=unhealthy,
            grace_seconds=grace,
            default_drain_seconds=0.3 if drain_seconds is None else drain_seconds,
            max_drain_seconds=5.0 if max_drain_seconds is None else max_drain_seconds,
        )
        self.containers = ContainerRunner(docker_client, registry_host)
        timing = TaskTiming(
            health_check_interval_seconds=interval, unhealthy_threshold=unhealthy, grace_seconds=grace
        )
        self.tasks = TaskRunner(self.containers, self.health, account, timing, virtual=virtual_tasks)
        self._rollout_log = RolloutLog()
        self.rollout = Rollout(self.tasks, circuit_breaker_minimum, self._rollout_log, realism)
        #: ECS's native BLUE_GREEN / LINEAR / CANARY controller runs those services instead of ``rollout``
        self.native = NativeController(self.rollout, account, self._lock, circuit_breaker_minimum)
        self.realism = realism
        self.use_profile(realism)
        self._records: dict[str, TaskRecord] = {}
        #: sends "ECS Task State Change" to EventBridge for every task whose lastStatus moved
        self.task_events = TaskEventWatch(account)
        self.rollout.task_events = self.task_events
        self._memory: dict[ServiceKey, tuple[Any, ServiceMemory]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def use_profile(self, profile: Realism) -> None:
        """Play the ECS timeline (rollout, task start, log groups) of ``profile`` from the next tick on.

        Explicit ``task_start_delay_seconds`` still wins: with it a task is PROVISIONING that long
        and RUNNING as soon as its containers are up, as before profiles existed.
        """
        with self._lock:
            self.realism = profile
            self.rollout.realism = profile
            self.tasks.check_log_groups = profile.enforce_aws_rules
            self.health.use_profile(None if self._fixed_health else profile)
            if self._start_delay_knob is None:
                provisioning = profile.scaled(profile.task_provisioning_seconds)
                pending = profile.scaled(profile.task_pending_seconds)
            else:
                provisioning, pending = self._start_delay_knob, 0.0
            self.tasks.timing = replace(
                self.tasks.timing, start_delay_seconds=provisioning, pending_seconds=pending
            )

    def start(self) -> EcsScheduler:
        """Hook into moto's UpdateService/DeleteService, start health checks and the thread; return self."""
        moto_patches.register(moto_patches.hooks.service_updated, self._on_service_updated)
        moto_patches.register(moto_patches.hooks.service_deleted, self._on_service_deleted)
        moto_patches.register(moto_patches.hooks.native_controllers, self.native)
        self.health.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sandbox-ecs", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and remove every container the scheduler started."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.health.stop()
        moto_patches.unregister(moto_patches.hooks.service_updated, self._on_service_updated)
        moto_patches.unregister(moto_patches.hooks.service_deleted, self._on_service_deleted)
        moto_patches.unregister(moto_patches.hooks.native_controllers, self.native)
        self.tasks.shutdown()
        self.containers.remove_all()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold the scheduler still (e.g. while moto is reset)."""
        with self._lock:
            yield

    def rollout_log(self) -> list[RolloutTransition]:
        """Return every rolloutState transition so far: ``(time.time(), cluster, service, deployment id,
        state)``, oldest first; IN_PROGRESS marks a deployment's creation (UpdateService, CreateService,
        a circuit-breaker rollback), COMPLETED and FAILED its end."""
        return self._rollout_log.entries()

    def forget_all(self) -> None:
        """Drop every task (removing its containers) and everything remembered; for a moto reset."""
        with self._lock:
            for record in self._records.values():
                if record.launch is not None:
                    concurrent.futures.wait([record.launch], timeout=60)
            self._records.clear()
            self._memory.clear()
            self._rollout_log.clear()
            self.task_events.clear()
            self.native.forget_all()
            self.health.clear()
            self.containers.remove_all()

    def tick(self) -> None:
        """Advance every service one step (the thread calls this every tick_seconds)."""
        states = self.containers.states()
        with self._lock:
            live: set[int] = set()
            # Each service's tasks, grouped in one pass: looking them up per service went over every
            # task once per service (500 services, 500 tasks: 250,000 steps a tick), which made the
            # sandbox's ECS lag seconds behind its own timing under a fleet's load.
            by_service: dict[int, list[TaskRecord]] = {}
            for record in self._records.values():
                by_service.setdefault(id(record.service_ref), []).append(record)
            for region in self.regions:
                backend = get_backend("ecs")[self.account][region]
                for service in list(backend.services.values()):
                    if service.deployment_controller.get("type", "ECS") != "ECS":
                        continue
                    key = (region, service.cluster_name, service.name)
                    if service.status == "ACTIVE":
                        live.add(id(service))
                        records = by_service.get(id(service), [])
                        self._reconcile(backend, region, key, service, states, records)
                    elif service.status == "DRAINING":
                        live.add(id(service))
                        self._drain(key, service, states)
            for record in list(self._records.values()):
                if id(record.service_ref) not in live:  # gone after a reset, or re-created under its name
                    self.tasks.stop(record, "Service was deleted", "ServiceSchedulerInitiated", states)
                    self.tasks.advance(record, states, None, [])
            self.task_events.observe(self._records.values())
            self._records = {arn: r for arn, r in self._records.items() if r.task.last_status != "STOPPED"}
            self.task_events.keep_only(self._records)

    def _records_of(self, service: Any) -> list[TaskRecord]:
        return [r for r in self._records.values() if r.service_ref is service]

    def _memory_of(self, key: ServiceKey, service: Any) -> ServiceMemory:
        known = self._memory.get(key)
        if known is None or known[0] is not service:
            known = self._memory[key] = (service, ServiceMemory())
        return known[1]

    def _reconcile(
        self, backend: Any, region: str, key: ServiceKey, service: Any, states: Any, records: list[TaskRecord]
    ) -> None:
        memory = self._memory_of(key, service)
        play = self.native if self.native.owns(service) else self.rollout
        try:
            started = play.reconcile(backend, region, service, records, memory, states)
        except Exception:
            log.exception("sandbox scheduler: service %s failed a tick", key)
            return
        for record in started:
            self._records[record.task_arn] = record

    def _drain(self, key: ServiceKey, service: Any, states: Any) -> None:
        """Stop a deleted service's tasks (each drains first); make the service INACTIVE once none is left."""
        records = self._records_of(service)
        newly = [r for r in records if not r.stopping]
        for record in records:
            self.tasks.stop(record, "Service was deleted", "ServiceSchedulerInitiated", states)
            self.tasks.advance(record, states, service, [])
        if newly:
            stopped = task_list(
                f"(service {service.name}) has stopped", [r.task_id for r in newly], "running tasks"
            )
            add_events(service, [stopped])
        present = [r for r in records if r.task.last_status != "STOPPED"]
        service.running_count = len(present)
        service.pending_count = 0
        if not present:
            service.status = "INACTIVE"
            self._memory.pop(key, None)

    def _on_service_updated(self, backend: Any, service: Any) -> None:
        """Answer UpdateService as ECS does: the new PRIMARY deployment and true counts are in the reply."""
        key = (backend.region_name, service.cluster_name, service.name)
        with self._lock:
            if service.deployment_controller.get("type", "ECS") != "ECS" or service.status != "ACTIVE":
                return
            memory = self._memory_of(key, service)
            self.rollout.sync_deployments(backend, service, memory)
            if self.native.owns(service):
                self.native.on_updated(backend, service, memory)
            recount(service, self._records_of(service), memory.rolled_back_from)

    def _on_service_deleted(self, backend: Any, service: Any) -> None:
        """Answer DeleteService as ECS does: a service with tasks left is DRAINING, not yet INACTIVE."""
        with self._lock:
            if any(r.task.last_status != "STOPPED" for r in self._records_of(service)):
                service.status = "DRAINING"
                service.desired_count = 0

    def _run(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            try:
                self.tick()
            except Exception:
                log.exception("sandbox scheduler tick failed")
