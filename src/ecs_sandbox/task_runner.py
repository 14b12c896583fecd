"""Starts, watches and stops one task at a time: its containers, its targets, its moto object.

A task is PROVISIONING for ``start_delay_seconds`` (Fargate attaching the task's ENI), PENDING while
its images are pulled and its containers start, for ``pending_seconds`` at least, then RUNNING (the
task lifecycle: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-lifecycle-explanation.html).
With ``check_log_groups`` a container whose ``awslogs`` log group does not exist stops the task in
PENDING with ECS's ResourceInitializationError (``log_groups``). With ``virtual`` tasks get no
container at all (so one host can emulate hundreds of services): a task is PENDING at once, RUNNING
after ``start_delay_seconds`` + ``pending_seconds`` and healthy at once; it is registered in its
target groups with port 0 as a target that is ``healthy`` without checks and that the load balancer
never sends a request to (a virtual service answers 503).
Deregistration, draining, counts and rollout states are as for real tasks.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .containers import ContainerRunner, ContainerState, PortAllocator
from .log_groups import prepare_log_groups
from .target_health import TargetHealthBook
from .task_launch import TaskTiming, container_spec, launch, log_exit
from .task_targets import deregister_targets, register_targets
from .tasks import (
    LaunchResult,
    TaskRecord,
    create_task,
    mark_health,
    mark_pending,
    mark_running,
    mark_stopped,
    mark_stopping,
)

KILLED = 137  # SIGKILL: how a container the scheduler stops ends


def _essential(definition: dict[str, Any]) -> bool:
    return bool(definition.get("essential", True))


class TaskRunner:
    """Runs a service's tasks as containers and keeps their moto tasks and ELB targets true."""

    def __init__(
        self,
        runner: ContainerRunner,
        book: TargetHealthBook,
        account: str,
        timing: TaskTiming,
        virtual: bool = False,
        check_log_groups: bool = False,
    ) -> None:
        self.runner = runner
        self.book = book
        self.account = account
        self.timing = timing
        self.virtual = virtual
        self.check_log_groups = check_log_groups
        self.ports = PortAllocator()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sandbox-task")

    def start(
        self, backend: Any, region: str, service: Any, task_definition: Any, deployment_id: str
    ) -> TaskRecord:
        """Create a PROVISIONING task of the deployment and start its containers in the background."""
        task = create_task(backend, service, task_definition, deployment_id)
        definitions = [d for d in task_definition.container_definitions if _essential(d)]
        if self.virtual:
            mark_pending(task)
            ports = {str(d["name"]): 0 for d in definitions}  # nothing listens for a virtual task
        else:
            ports = {str(d["name"]): self.ports.take() for d in definitions}
        by_lb = [lb.get("containerName") for lb in service.load_balancers if lb.get("containerName") in ports]
        with_ports = [str(d["name"]) for d in definitions if d.get("portMappings")]
        record = TaskRecord(
            task=task,
            region=region,
            cluster=service.cluster_name,
            service_name=service.name,
            deployment_id=deployment_id,
            ports=ports,
            target_container=str((by_lb or with_ports or list(ports))[0]),
            service_ref=service,
            virtual=self.virtual,
            container_definitions=list(task_definition.container_definitions),
        )
        if self.virtual:
            return record
        try:
            specs = [
                container_spec(self.account, region, d, ports[str(d["name"])], self.timing)
                for d in definitions
            ]
        except Exception as error:  # any secret lookup failure fails the task, as in ECS
            reason = f"ResourceInitializationError: unable to pull secrets or registry auth: {error}"
            self.fail(record, reason, "TaskFailedToStart", {})
            return record
        labels = {
            "deploy-agent.cluster": record.cluster,
            "deploy-agent.service": record.service_name,
            "deploy-agent.task": record.task_arn,
        }
        record.launch = self._pool.submit(
            launch, self.runner, record, specs, labels, self.timing, self._prepare_logs
        )
        return record

    def _prepare_logs(self, record: TaskRecord) -> str:
        """Return "" when the task's awslogs log groups exist (or were created), else its stop reason."""
        if not self.check_log_groups:
            return ""
        return prepare_log_groups(self.account, record.container_definitions, record.region)

    def advance(
        self, record: TaskRecord, states: dict[str, ContainerState], service: Any, events: list[str]
    ) -> None:
        """Move one task along: pending -> running -> healthy, or to stopped when it fails or drained."""
        task = record.task
        if record.stopping:
            self._advance_stop(record)
            return
        if task.desired_status == "STOPPED":  # someone called StopTask
            self.stop(record, task.stopped_reason or "Task stopped by user", "UserInitiated", states)
            return
        if record.virtual:
            self._advance_virtual(record, service, events)
            return
        if record.launch is not None and task.last_status in ("PROVISIONING", "PENDING"):
            if (
                task.last_status == "PROVISIONING"
                and time.monotonic() - record.created >= self.timing.start_delay_seconds
            ):
                mark_pending(task)
            if not record.launch.done():
                return
            result = record.launch.result()
            record.container_ids = dict(result.container_ids)
            if result.error:
                self.fail(record, result.error, "TaskFailedToStart", states)
                return
            mark_running(task, result)
            register_targets(self.book, self.account, record, service, events)
        if task.last_status == "RUNNING":
            self._assess_health(record, states, events)

    def _advance_virtual(self, record: TaskRecord, service: Any, events: list[str]) -> None:
        """A virtual task: RUNNING, registered and healthy once the start delay is over."""
        if record.task.last_status != "PENDING":
            return
        if time.monotonic() - record.created < self.timing.running_after:
            return
        logger_error = self._prepare_logs(record)
        if logger_error:
            self.fail(record, logger_error, "TaskFailedToStart", {})
            return
        mark_running(record.task, LaunchResult({}, {}))
        register_targets(self.book, self.account, record, service, events)
        mark_health(record.task, True)
        record.healthy = True

    def _assess_health(
        self, record: TaskRecord, states: dict[str, ContainerState], events: list[str]
    ) -> None:
        mine = {name: states.get(cid) for name, cid in record.container_ids.items()}
        if any(state is None for state in mine.values()):
            return  # started after this tick's look at Docker
        if any(state is not None and not state.running for state in mine.values()):
            log_exit(self.runner, record, mine)
            self.fail(record, "Essential container in task exited", "EssentialContainerExited", states)
            return
        if record.targets:
            verdicts = {tg: self.book.get(tg, tid) for tg, tid in record.targets}
            for tg, tid in record.targets:
                target = verdicts[tg]
                # ECS ignores ELB's unhealthy verdict during the service's health-check grace period
                # (service_definition_parameters.html, healthCheckGracePeriodSeconds).
                if target is not None and self.book.ecs_sees_unhealthy(tg, tid):
                    port = record.ports[record.target_container]
                    events.append(
                        f"(service {record.service_name}) (port {port}) is unhealthy in (target-group {tg}) "
                        f"due to (reason {target.last_failure})."
                    )
                    self.fail(
                        record,
                        f"Task failed ELB health checks in (target-group {tg})",
                        "ServiceSchedulerInitiated",
                        states,
                    )
                    return
            healthy = all(t is not None and t.state == "healthy" for t in verdicts.values())
        elif any(s is not None and s.health != "none" for s in mine.values()):
            if any(s is not None and s.health == "unhealthy" for s in mine.values()):
                events.append(
                    f"(service {record.service_name}) (task {record.task_id}) failed container health checks."
                )
                self.fail(record, "Task failed container health checks", "ServiceSchedulerInitiated", states)
                return
            healthy = all(s is not None and s.health in ("healthy", "none") for s in mine.values())
        else:
            record.healthy = True  # no check of any kind: ECS counts a RUNNING task as healthy
            return
        if healthy and not record.healthy:
            mark_health(record.task, True)
        record.healthy = healthy

    def fail(
        self, record: TaskRecord, reason: str, stop_code: str, states: dict[str, ContainerState]
    ) -> None:
        """Stop a task that failed; its deployment counts it as failed."""
        record.failed = True
        if stop_code == "ServiceSchedulerInitiated":
            mark_health(record.task, False)
        self.stop(record, reason, stop_code, states)

    def stop(
        self,
        record: TaskRecord,
        reason: str,
        stop_code: str,
        states: dict[str, ContainerState],
    ) -> None:
        """Ask a task to stop: drain its targets first when it served traffic, then remove its containers."""
        if record.stopping:
            return
        record.stopping = True
        record.exit_codes = {
            name: state.exit_code
            for name, cid in record.container_ids.items()
            if (state := states.get(cid)) is not None and not state.running
        }
        mark_stopping(record.task, reason, stop_code)
        # As ECS: deregister from every target group first; the containers stop once the targets have
        # drained (no new requests meanwhile, requests in flight finish). No target: stop at once.
        deregister_targets(self.book, self.account, record)
        self._advance_stop(record)

    def _advance_stop(self, record: TaskRecord) -> None:
        if record.launch is not None and not record.launch.done():
            return  # the containers are still being started: stop them once they exist
        if record.launch is not None and not record.container_ids:
            record.container_ids = dict(record.launch.result().container_ids)
        if record.removal is None and not any(self.book.is_draining(tg, tid) for tg, tid in record.targets):
            for tg, tid in record.targets:
                self.book.remove(tg, tid)
            record.targets = []
            record.removal = self._remove_later(list(record.container_ids.values()))
        if record.removal is not None and record.removal.done() and record.task.last_status != "STOPPED":
            names = record.ports if record.virtual else record.container_ids
            codes: dict[str, int | None] = {n: record.exit_codes.get(n, KILLED) for n in names}
            mark_stopped(record.task, codes, record.task.stopped_reason if record.failed else "")
            for port in record.ports.values():
                self.ports.release(port)

    def _remove_later(self, container_ids: list[str]) -> Future[None]:
        if not container_ids:  # a virtual task, or one whose containers never started
            done: Future[None] = Future()
            done.set_result(None)
            return done
        return self._pool.submit(self._remove, container_ids)

    def _remove(self, container_ids: list[str]) -> None:
        for container_id in container_ids:
            self.runner.remove(container_id)

    def shutdown(self) -> None:
        """Wait for background starts and removals to finish."""
        self._pool.shutdown(wait=True, cancel_futures=True)
