"""Starting one task's containers as ECS's agent does, on a launch thread of ``task_runner``.

The environment gets the task definition's variables, its Secrets Manager / SSM secrets and
``PORT``; a container ``healthCheck`` becomes a Docker healthcheck at the sandbox's pace; images are
pulled first, then the ``awslogs`` log groups are checked (the agent creates a container's log
stream as it creates the container), then each essential container runs. The task is RUNNING no
sooner than ``start_delay_seconds + pending_seconds`` after its creation.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .containers import ContainerRunner, ContainerState, ImagePullError
from .tasks import ContainerSpec, LaunchResult, TaskRecord, resolve_secret

_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")

log = logging.getLogger("ecs_sandbox.tasks")


@dataclass(frozen=True)
class TaskTiming:
    """How fast tasks start, are checked and drain."""

    start_delay_seconds: float = 0.0  # PROVISIONING
    pending_seconds: float = 0.0  # PENDING, at least (the image pull and container start may take longer)
    health_check_interval_seconds: float = 0.2
    unhealthy_threshold: int = 2
    grace_seconds: float = 1.0

    @property
    def running_after(self) -> float:
        """Return how long after its creation a task may be RUNNING at the soonest."""
        return self.start_delay_seconds + self.pending_seconds


def _nanos(seconds: float) -> int:
    return int(seconds * 1e9)


def container_spec(
    account: str, region: str, definition: dict[str, Any], port: int, timing: TaskTiming
) -> ContainerSpec:
    """Return a container definition as Docker will run it (raises when a secret cannot be read)."""
    env = {str(e["name"]): str(e["value"]) for e in definition.get("environment", [])}
    for secret in definition.get("secrets", []):
        env[str(secret["name"])] = resolve_secret(account, region, str(secret["valueFrom"]))
    env["PORT"] = str(port)
    check = definition.get("healthCheck")
    healthcheck = None
    if check:
        # ECS's timing is in whole seconds and at least 5 s; the sandbox keeps its own pace.
        healthcheck = {
            "test": check["command"],
            "interval": _nanos(timing.health_check_interval_seconds),
            "timeout": _nanos(max(1.0, timing.health_check_interval_seconds)),
            "retries": timing.unhealthy_threshold,
            "start_period": _nanos(timing.grace_seconds),
        }
    return ContainerSpec(
        str(definition["name"]), str(definition["image"]), env, definition.get("command"), healthcheck
    )


def launch(
    runner: ContainerRunner,
    record: TaskRecord,
    specs: list[ContainerSpec],
    labels: dict[str, str],
    timing: TaskTiming,
    prepare_logs: Callable[[TaskRecord], str],
) -> LaunchResult:
    """Return the started containers of a task, or why it could not start (nothing left running)."""
    # The delays count from the task's creation: time spent queued for a launch thread is part of it.
    time.sleep(max(0.0, timing.start_delay_seconds - (time.monotonic() - record.created)))
    refs: dict[str, str] = {}
    for spec in specs:
        try:
            refs[spec.name] = runner.ensure_image(spec.image)
        except ImagePullError as error:
            return LaunchResult({}, {}, f"CannotPullContainerError: {error}")
    logger_error = prepare_logs(record)
    if logger_error:
        return LaunchResult({}, {}, logger_error)
    started: dict[str, str] = {}
    for spec in specs:
        name = _NAME_UNSAFE.sub("-", f"sbx-{record.service_name}-{record.task_id[:8]}-{spec.name}")
        try:
            started[spec.name] = runner.run(
                refs[spec.name], name, spec.environment, labels, spec.command, spec.healthcheck
            )
        except Exception as error:
            for container_id in started.values():
                runner.remove(container_id)
            return LaunchResult({}, {}, f"CannotStartContainerError: {error}")
    digests = {name: ref.split("@", 1)[1] for name, ref in refs.items() if "@" in ref}
    time.sleep(max(0.0, timing.running_after - (time.monotonic() - record.created)))
    return LaunchResult(started, digests)


def log_exit(runner: ContainerRunner, record: TaskRecord, mine: dict[str, ContainerState | None]) -> None:
    """Log an exited container's exit code and last lines (what CloudWatch Logs would hold)."""
    for name, state in mine.items():
        if state is None or state.running:
            continue
        container_id = record.container_ids[name]
        try:
            tail = runner.client.api.logs(container_id, tail=5).decode(errors="replace")
        except Exception as error:
            tail = f"(no logs: {error})"
        log.warning(
            "task %s of %s: container %s exited (code %s) on port %s: %s",
            record.task_id[:8],
            record.service_name,
            name,
            state.exit_code,
            record.ports.get(name),
            tail.strip()[-500:],
        )
