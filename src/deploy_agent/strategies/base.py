"""What every strategy is: a named recipe for the preflight, deploy and rollback stages of the pipeline.

A strategy is one module with one class, registered by name (``strategies.registry``). The pipeline
calls its ``preflight``, ``deploy`` and ``rollback`` again and again until they say they are done;
between calls the Celery task returns and schedules its next look, so waiting on AWS never holds a
worker process. Each call gets a :class:`Run`: the deployment's state, the validated message, the
strategy's own typed memory and the ports (``core.ports``) it may act through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from deploy_agent.core.outcome import Trigger
from deploy_agent.core.polling import WOKEN_MARGIN_SECONDS, PollPolicy, decide_quiet_streak, plan_next_poll
from deploy_agent.core.ports import (
    AlarmsPort,
    ApprovalPort,
    Clock,
    EcsPort,
    ElbPort,
    GateVerdictCounter,
    ProberPort,
    PrometheusPort,
    RevisionsPort,
    TrafficWatchPort,
)
from deploy_agent.core.state import PipelineState
from deploy_agent.core.traffic import CanaryStepPlan

if TYPE_CHECKING:
    from deploy_agent.models.request import DeployToECSTask


@dataclass(frozen=True)
class Progress:
    """A step's answer: finished, or come back in ``wait_seconds``."""

    done: bool
    wait_seconds: float = 0.0
    skipped: bool = False
    #: while it waits, ECS's news about tasks alone (one started or stopped, tasks failing to
    #: start) does not wake the stage: what it waits for shows in the service's deployments, whose
    #: own news does
    quiet_tasks: bool = False
    #: an ECS deployment whose verdict the stage already has: news of it does not wake the wait
    known: str = ""

    @classmethod
    def finished(cls) -> Progress:
        return cls(True)

    @classmethod
    def skip(cls) -> Progress:
        """Finished without doing anything (nothing to build, no health URL, nothing to undo)."""
        return cls(True, skipped=True)

    @classmethod
    def wait(cls, seconds: float, *, quiet_tasks: bool = False, known: str | None = None) -> Progress:
        return cls(False, seconds, quiet_tasks=quiet_tasks, known=known or "")


def _no_count(kind: str, result: str) -> None:
    return None


@dataclass(frozen=True)
class Ports:
    """Everything outside the process a strategy may reach, each behind its ``core.ports`` Protocol."""

    ecs: EcsPort
    elb: ElbPort
    alarms: AlarmsPort
    prober: ProberPort
    traffic: TrafficWatchPort
    revisions: RevisionsPort
    clock: Clock
    #: None: no operator policy, so no approvals ever
    approvals: ApprovalPort | None = None
    #: None: no Prometheus client wired; every analysis measurement is then inconclusive
    prometheus: PrometheusPort | None = None
    #: counts each gate's verdicts (the worker: ``deploy_agent_gate_verdicts_total``)
    count_verdict: GateVerdictCounter = _no_count


@dataclass(frozen=True)
class Tunables:
    """The waits a strategy works with, from the worker's settings (tests make them short)."""

    poll: PollPolicy = field(default_factory=PollPolicy)
    rollback_timeout_seconds: float = 900.0
    approval_poll_seconds: float = 5.0
    #: how long a listener change is watched for dropped requests after it is made
    settle_seconds: float = 2.0
    #: how long DescribeServices may answer MISSING for a service we just created (eventual consistency)
    temp_missing_grace_seconds: float = 30.0

    @property
    def poll_seconds(self) -> float:
        return self.poll.slow

    @property
    def settle_poll_seconds(self) -> float:
        """Return the wait between looks at a service settling: with ECS's events waking the stage,
        the safety poll, else the slow poll."""
        return self.poll.safety or self.poll.slow


class Memory(BaseModel):
    """A strategy's own durable facts, kept in ``PipelineState.strategy_state`` between task runs."""


M = TypeVar("M", bound=Memory, covariant=True)
#: the memory a strategy's steps take (a strategy is generic in it; see ``Strategy``)
MemoryT = TypeVar("MemoryT", bound=Memory, contravariant=True)


class Emit(Protocol):
    def __call__(self, kind: str, **fields: Any) -> None:
        """Record the progress event ``kind`` of the deployment, with its fields."""
        ...


def _no_fence() -> None:
    return None


def _no_save() -> None:
    return None


@dataclass(frozen=True)
class Run(Generic[M]):
    """One deployment as a strategy sees it, for one task run.

    ``fence`` raises when this deployment no longer holds its service's lock. The pipeline calls it
    before each task run's first step, and ``ports.ecs`` and ``ports.elb`` come wrapped so that it
    runs right before each of their mutating calls (``tasks.fence.fenced``): a strategy cannot
    forget it.
    ``save`` persists the state (the memory included) before an AWS call that would need undoing.
    """

    state: PipelineState
    request: DeployToECSTask
    memory: M
    ports: Ports
    emit: Emit
    tunables: Tunables = field(default_factory=Tunables)
    persist: Callable[[], None] = _no_save
    fence: Callable[[], None] = _no_fence

    def now(self) -> datetime:
        return self.ports.clock()

    @property
    def poll_seconds(self) -> float:
        return self.tunables.poll_seconds

    def save(self) -> None:
        """Write the memory into the state and persist both now."""
        self.state.strategy_state = self.memory.model_dump(mode="json")
        self.persist()

    def fail(self, type_: str, message: str, trigger: Trigger) -> Progress:
        """Record the deployment's failure (the first one wins) and end the step."""
        self.state.fail(type_, message, trigger)
        return Progress.finished()

    def next_poll(self, changed: bool, woken_on_change: bool = True, verdict_only: bool = False) -> float:
        """Note a look at ECS (``changed``: it saw something move) and return when to look again.

        ``woken_on_change=False``: what this look waits for is not seen by ECS's events or the
        cluster watcher (a native deployment's hooks), so it polls on its own schedule.
        ``verdict_only``: the wait is woken only by ECS's verdict (``Progress.wait(quiet_tasks=True)``),
        so with events or the watcher a look without one is no news, whatever counts moved.
        """
        state, now = self.state, self.now()
        state.polls += 1
        policy = self.tunables.poll if woken_on_change else replace(self.tunables.poll, safety=None)
        if policy.safety is not None:
            changed = changed and not verdict_only
            due = state.next_look_at
            woken = due is not None and (due - now).total_seconds() > WOKEN_MARGIN_SECONDS
            state.quiet_polls = decide_quiet_streak(state.quiet_polls, changed, woken, policy)
        elif changed or state.last_change_at is None:
            state.quiet_polls = 0
        else:
            state.quiet_polls += 1
        if changed or state.last_change_at is None:
            state.last_change_at = now
        began = state.update_requested_at or state.started_at
        wait = plan_next_poll(
            policy,
            (now - began).total_seconds(),
            (now - state.last_change_at).total_seconds(),
            state.quiet_polls,
            state.polls,
            state.expected_rollout_seconds,
        )
        state.next_look_at = now + timedelta(seconds=wait)
        return wait


class Strategy(Protocol[MemoryT]):
    """The extension point: one class per strategy module, constructed without arguments.

    ``options`` is the message's ``strategy`` object for this strategy (its ``type`` is ``name``);
    it becomes part of ``DeployToECSTask`` and its JSON Schema. ``memory`` is the model of its
    durable state. ``stages`` is its chain; ``triggers`` the rollback triggers it can report
    (metric labels are made for each).
    """

    # read-only (properties) so that a strategy's narrower ClassVars satisfy them
    @property
    def name(self) -> str: ...

    @property
    def options(self) -> type[BaseModel]: ...

    @property
    def memory(self) -> type[Memory]: ...

    @property
    def stages(self) -> tuple[str, ...]: ...

    @property
    def triggers(self) -> tuple[Trigger, ...]: ...

    def preflight(self, run: Run[MemoryT]) -> Progress:
        """Refuse, with nothing touched, a setup this strategy cannot deploy."""
        ...

    def deploy(self, run: Run[MemoryT]) -> Progress:
        """Advance the deployment one step."""
        ...

    def rollback(self, run: Run[MemoryT]) -> Progress:
        """Advance the undoing of a failed deployment one step."""
        ...

    def recipe(self, request: DeployToECSTask) -> list[str]:
        """Return the names of the deploy stage's steps for this message (``deploy-agent plan``)."""
        ...

    def weights(self, request: DeployToECSTask) -> list[CanaryStepPlan]:
        """Return the traffic weights its steps set, in order (none for rolling and blue-green)."""
        ...
