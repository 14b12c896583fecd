"""What every strategy is: a named recipe for the deploy and rollback stages of the pipeline.

A strategy is one module with one class, registered by name. The pipeline asks it for its
stage list, then calls ``deploy`` and ``rollback`` again and again until they say they are done;
between calls the Celery task returns and schedules its next check, so waiting on AWS never holds
a worker process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from deploy_agent.core.state import PipelineState


@dataclass(frozen=True)
class Progress:
    """A step's answer: finished, or come back in ``wait_seconds``."""

    done: bool
    wait_seconds: float = 0.0
    skipped: bool = False

    @classmethod
    def finished(cls) -> Progress:
        return cls(True)

    @classmethod
    def skip(cls) -> Progress:
        """Finished without doing anything (nothing to build, no health URL, nothing to undo)."""
        return cls(True, skipped=True)

    @classmethod
    def wait(cls, seconds: float) -> Progress:
        return cls(False, seconds)


class EcsPort(Protocol):
    def describe_service(self, cluster: str, service: str) -> dict[str, Any]: ...

    def update_service(
        self,
        cluster: str,
        service: str,
        task_definition_arn: str,
        desired_count: int | None,
        maximum_percent: int | None,
        minimum_healthy_percent: int | None,
        circuit_breaker: bool | None,
        circuit_breaker_rollback: bool | None,
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


@dataclass
class Run:
    """One deployment as a strategy sees it: its state, the AWS ports, the clock and the event sink.

    ``ecs`` is all rolling needs; the traffic strategies also use ``elb`` (listeners, target groups),
    ``alarms`` (CloudWatch), ``prober`` (HTTP health) and ``traffic_probe`` (a factory of zero-downtime
    probes). ``extras`` carries ``save`` (persist the state now) and the tunables.

    ``fence`` raises when this deployment no longer holds its service's lock. The pipeline calls it
    before each step, and ``ecs`` and ``elb`` come wrapped so that it runs right before each of
    their mutating calls (``tasks.fence.fenced``): a strategy cannot forget it. A strategy about to
    act on AWS through anything else calls ``run.fence()`` first.
    """

    state: PipelineState
    ecs: EcsPort
    now: Callable[[], datetime]
    emit: Callable[..., None]
    poll_seconds: float
    extras: dict[str, Any] = field(default_factory=dict)
    elb: Any = None
    alarms: Any = None
    prober: Any = None
    traffic_probe: Callable[[str], Any] | None = None
    fence: Callable[[], None] = field(default=lambda: None)

    def next_poll(self, changed: bool) -> float:
        """Note a look at ECS (``changed``: it saw something move) and return when to look again."""
        from deploy_agent.core.polling import PollPolicy, plan_next_poll

        state, now = self.state, self.now()
        policy: PollPolicy = self.extras.get("poll_policy") or PollPolicy(
            fast=self.poll_seconds, slow=self.poll_seconds
        )
        state.polls += 1
        if changed or state.last_change_at is None:
            state.last_change_at, state.quiet_polls = now, 0
        else:
            state.quiet_polls += 1
        began = state.update_requested_at or state.started_at
        return plan_next_poll(
            policy,
            (now - began).total_seconds(),
            (now - state.last_change_at).total_seconds(),
            state.quiet_polls,
            state.polls,
            state.expected_rollout_seconds,
        )

    def save(self) -> None:
        """Persist the state before an AWS call that would need undoing."""
        saver = self.extras.get("save")
        if saver is not None:
            saver()

    @property
    def request(self) -> dict[str, Any]:
        return self.state.request


class Strategy(Protocol):
    """The extension point: one class per strategy module, constructed without arguments."""

    name: ClassVar[str]

    def stages(self) -> list[str]:
        """Return the stage names of this strategy's chain, in order."""
        ...

    def deploy(self, run: Run) -> Progress:
        """Advance the deployment one step."""
        ...

    def rollback(self, run: Run) -> Progress:
        """Advance the undoing of a failed deployment one step."""
        ...


_REGISTRY: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make a strategy available under its ``name``."""
    _REGISTRY[cls.name] = cls
    return cls


def strategy_for(name: str) -> Strategy:
    """Return a new instance of the strategy registered as ``name``."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown strategy {name!r} (known: {known})") from None


def strategy_names() -> list[str]:
    return sorted(_REGISTRY)
