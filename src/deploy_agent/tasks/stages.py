"""One Celery task per pipeline stage, and the loop that runs a stage one step at a time.

Stages pass only the deployment id; the state lives in Redis. A step that waits on AWS returns and
the task is retried after a countdown, so it never holds a worker process while it waits. A
failure is recorded on the state and the chain goes on to ``rollback`` and ``finalize``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from celery import Task, shared_task

from deploy_agent.adapters.redis_locks import StepMutex
from deploy_agent.adapters.redis_store import ReleaseLedger
from deploy_agent.core.errors import DeployError
from deploy_agent.core.outcome import Trigger
from deploy_agent.core.polling import PollPolicy
from deploy_agent.core.state import PipelineState, StageState
from deploy_agent.strategies import Progress, Run, strategy_for
from deploy_agent.strategies.approval import GATE, POLL
from deploy_agent.tasks import finish, metrics, retries, revisions, steps
from deploy_agent.tasks.approval import book_for
from deploy_agent.tasks.events import record_event
from deploy_agent.tasks.fence import LOCK_LOST, LockLost, fence_for, fenced
from deploy_agent.tasks.preflight import preflight
from deploy_agent.tasks.runtime import Runtime, get_runtime

log = logging.getLogger("deploy_agent.pipeline")

#: stages that still run after a failure: they undo and report
ALWAYS_RUN = ("rollback", "finalize")


def make_run(rt: Runtime, state: PipelineState, stage: str) -> Run:
    """Return the strategy's view of this deployment, wired to this process's adapters."""
    store = rt.store

    def save() -> None:
        store.save(state.deployment_id, state.model_dump(mode="json"))

    def emit(kind: str, **fields: Any) -> None:
        record_event(rt, state, kind, stage=stage, **fields)
        shown = {k: v for k, v in fields.items() if v is not None}
        log.info("%s %s", kind, shown, extra={"deployment_id": state.deployment_id, "stage": stage})

    lock = rt.lock(state.cluster, state.service, state.region)
    fence = fence_for(lock, state.cluster, state.service, state.deployment_id)
    ecs = fenced(rt.services(state.region), fence)
    ledger = ReleaseLedger(rt.redis, rt.settings.keep_releases, state.region)
    return Run(
        state=state,
        ecs=ecs,
        now=rt.now,
        emit=emit,
        poll_seconds=rt.settings.poll_interval_seconds,
        extras={
            "save": save,
            "rollback_timeout": rt.settings.rollback_timeout_seconds,
            "usable_revision": lambda arn: revisions.usable_revision(
                ecs, ledger, state.cluster, state.service, arn
            ),
            "poll_policy": PollPolicy(
                fast=rt.settings.poll_fast_seconds,
                slow=rt.settings.poll_interval_seconds,
                budget=rt.settings.poll_budget,
            ),
            "settle": lambda: time.sleep(rt.settings.zero_downtime_settle_seconds),
            "on_zero_downtime": lambda report: metrics.ZERO_DOWNTIME.labels(
                "failed" if report.failures else "ok"
            ).inc(),
            # no policy, no approvals ever (strategies.approval)
            GATE: book_for(rt) if rt.policy is not None else None,
            POLL: rt.settings.approval_poll_seconds,
        },
        elb=fenced(rt.elb(state.region), fence),
        alarms=rt.alarms(state.region),
        prober=rt.prober,
        traffic_probe=rt.traffic_probe,
        fence=fence,
    )


def run_stage(task: Task, deployment_id: str, stage: str, step: Callable[[Runtime, Run], Progress]) -> str:
    """Advance ``stage`` one step; while it waits, retry the Celery task after the wait (no process held)."""
    progress = advance_stage(get_runtime(), deployment_id, stage, step)
    if not progress.done:
        raise task.retry(countdown=progress.wait_seconds, max_retries=None)
    return deployment_id


def advance_stage(
    rt: Runtime, deployment_id: str, stage: str, step: Callable[[Runtime, Run], Progress]
) -> Progress:
    """Advance ``stage`` one step, one copy of the deployment at a time; return whether it is done."""
    with StepMutex(rt.redis, deployment_id, rt.settings.task_time_limit_seconds).held() as mine:
        if not mine:
            # Another copy steps this deployment (its chain published twice, or a delivery still
            # running when redelivered): look again soon; the state loaded then includes its step.
            return Progress.wait(rt.settings.poll_fast_seconds)
        return _advance_stage(rt, deployment_id, stage, step)


def _advance_stage(
    rt: Runtime, deployment_id: str, stage: str, step: Callable[[Runtime, Run], Progress]
) -> Progress:
    """Load the state, advance ``stage`` one step and save it; return whether the stage is done."""
    raw = rt.store.load(deployment_id)
    if raw is None:
        raise DeployError(f"deployment {deployment_id} has no recorded state")
    state = PipelineState.model_validate(raw)
    run = make_run(rt, state, stage)
    record, created = state.begin_stage(stage, rt.now())
    if created:
        run.emit("stage_started")
    if record.outcome != "running":  # a redelivered message for a finished stage
        return Progress.finished()
    if state.failure is not None and stage not in ALWAYS_RUN:
        record.outcome, record.finished_at = "skipped", rt.now()
        run.emit("stage_finished", outcome="skipped")
        run.save()
        return Progress.finished()
    try:
        run.fence()  # before every step; the adapters fence each mutating call within it
        progress = step(rt, run)
    except LockLost as lost:
        progress = _lock_lost(run, record, lost)
    except DeployError as exc:
        waiting = None if stage == "rollback" else retries.wait_out_transient(rt, state, stage, exc)
        if waiting is not None:  # a throttled or failing read slows the deployment, never fails it
            run.save()
            return waiting
        if stage == "rollback" and not _undo_out_of_time(rt, state):
            # Undoing must not give up on a transient AWS error: try again at the next poll.
            log.warning(
                "rollback step failed, retrying: %s", exc.message, extra={"deployment_id": deployment_id}
            )
            run.save()
            return Progress.wait(rt.settings.poll_interval_seconds)
        state.fail(exc.kind, exc.message, Trigger.ERROR)
        if stage == "rollback":
            state.rollback_failed = True
        progress, record.outcome = Progress.finished(), "failed"
    except Exception as exc:  # an unexpected error still ends the deployment cleanly
        log.exception("stage %s crashed", stage, extra={"deployment_id": deployment_id, "stage": stage})
        state.fail("internal_error", f"{type(exc).__name__}: {exc}", Trigger.ERROR)
        progress, record.outcome = Progress.finished(), "failed"
    retries.clear_streak(state)
    if not progress.done:
        run.save()
        return progress
    if record.outcome == "running":
        if progress.skipped:
            record.outcome = "skipped"
        elif state.failure is not None and stage not in ALWAYS_RUN and not _failed_before(state, stage):
            record.outcome = "failed"
        elif stage == "rollback" and state.rollback_failed:
            # An undo that did not settle is a failed stage, whatever the strategy returned.
            record.outcome = "failed"
            record.detail = str(state.strategy_state.get("rollback_failure") or "the rollback did not settle")
        else:
            record.outcome = "succeeded"
    record.finished_at = rt.now()
    if state.failure is not None and record.outcome == "failed" and record.detail is None:
        record.detail = state.failure.message
    metrics.STAGE_SECONDS.labels(stage, state.strategy).observe(
        (record.finished_at - record.started_at).total_seconds()
    )
    run.emit("stage_finished", outcome=record.outcome)
    run.save()
    return Progress.finished()


def _lock_lost(run: Run, record: StageState, lost: LockLost) -> Progress:
    """Stop a deployment that lost its service's lock; return that the stage is done.

    It ends ``superseded`` (``failed`` when it had failed before), and undoes nothing: the service
    is another deployment's now. The stage that finds the loss reads ``failed``, later ones skip.
    """
    state = run.state
    already = state.failure is not None and state.failure.type == LOCK_LOST
    state.fail(LOCK_LOST, lost.message, Trigger.ERROR)
    record.outcome, record.detail = ("skipped" if already else "failed"), lost.message
    log.warning("%s", lost.message, extra={"deployment_id": state.deployment_id, "stage": record.name})
    if not already:
        run.emit("lock_lost", holder=lost.holder, reason=lost.message)
    return Progress.finished()


def _undo_out_of_time(rt: Runtime, state: PipelineState) -> bool:
    started = state.rollback_started_at or (state.stage("rollback") or state.stages[-1]).started_at
    return (rt.now() - started).total_seconds() > rt.settings.rollback_timeout_seconds


def _failed_before(state: PipelineState, stage: str) -> bool:
    return any(s.outcome == "failed" for s in state.stages if s.name != stage)


def _strategy_step(method: str) -> Callable[[Runtime, Run], Progress]:
    def step(rt: Runtime, run: Run) -> Progress:
        if method == "rollback" and run.state.failure is None:
            return Progress.skip()
        result: Progress = getattr(strategy_for(run.state.strategy), method)(run)
        return result

    return step


def _collect(rt: Runtime, run: Run) -> Progress:
    if run.state.update_requested_at is not None:
        try:
            steps.collect_diagnostics(rt, run.state)
        except DeployError:
            log.warning("could not collect diagnostics", extra={"deployment_id": run.state.deployment_id})
    return Progress.finished()


#: each stage's step function, by stage name (the in-process runner uses these directly)
STEPS: dict[str, Callable[[Runtime, Run], Progress]] = {
    "preflight": preflight,
    "build": steps.build,
    "push": steps.push,
    "register": steps.register,
    "deploy": _strategy_step("deploy"),
    "healthcheck": steps.healthcheck,
    "rollback": _strategy_step("rollback"),
    "finalize": _collect,
}


def _stage_task(stage: str, step: Callable[[Runtime, Run], Progress]) -> Any:
    @shared_task(bind=True, name=f"deploy_agent.stage.{stage}", max_retries=None, acks_late=True)
    def stage_task(self: Task, deployment_id: str) -> str:
        return run_stage(self, deployment_id, stage, step)

    stage_task.__doc__ = f"The pipeline's {stage} stage."
    return stage_task


preflight_stage = _stage_task("preflight", STEPS["preflight"])
build_stage = _stage_task("build", STEPS["build"])
push_stage = _stage_task("push", STEPS["push"])
register_stage = _stage_task("register", STEPS["register"])
deploy_stage = _stage_task("deploy", STEPS["deploy"])
healthcheck_stage = _stage_task("healthcheck", STEPS["healthcheck"])
rollback_stage = _stage_task("rollback", STEPS["rollback"])


@shared_task(bind=True, name="deploy_agent.stage.finalize", max_retries=None, acks_late=True)
def finalize_stage(self: Task, deployment_id: str) -> dict[str, Any] | None:
    """Collect diagnostics, decide the outcome, store the result, release the lock; return the result."""
    run_stage(self, deployment_id, "finalize", STEPS["finalize"])
    return finish.finish(get_runtime(), deployment_id)
