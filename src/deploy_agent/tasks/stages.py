"""One Celery task per pipeline stage, and the loop that runs a stage one step at a time.

Stages pass only the deployment id; the state lives in Redis. A step that waits on AWS returns and
the stage goes on the agenda (``adapters.agenda``) until it is due or woken, so it never holds a
worker process or a broker message while it waits; a running stage holds a lease there, so a dead
host's stages run again elsewhere within a lease. A
failure is recorded on the state and the chain goes on to ``rollback`` and ``finalize``. What a
stage run does at each turn is decided by ``core.orchestration``; this module applies it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import Celery, Task, shared_task, signature
from celery.exceptions import Ignore
from kombu.utils import json as kombu_json

from deploy_agent.adapters.agenda import Agenda, Begun, Mutex
from deploy_agent.adapters.redis_client import BROKER_PUBLISH_ERRORS
from deploy_agent.adapters.redis_locks import StepMutex
from deploy_agent.adapters.redis_store import events_with_next_save
from deploy_agent.core.errors import DeployError, is_transient
from deploy_agent.core.orchestration import (
    Entry,
    OnError,
    decide_entry,
    decide_on_error,
    decide_stage_outcome,
)
from deploy_agent.core.outcome import Trigger
from deploy_agent.core.scrub import scrub_state
from deploy_agent.core.state import PipelineState, StageState
from deploy_agent.strategies import Progress, Run, strategy_for
from deploy_agent.strategies.registry import PIPELINE_ORDER
from deploy_agent.tasks import finish, metrics, retries, steps
from deploy_agent.tasks.fence import LOCK_LOST, LockLost
from deploy_agent.tasks.preflight import preflight
from deploy_agent.tasks.results import store_final_result
from deploy_agent.tasks.runtime import Runtime, get_runtime
from deploy_agent.tasks.wiring import make_run

log = logging.getLogger("deploy_agent.pipeline")

StepFn = Callable[[Runtime, Run[Any]], Progress]


@dataclass(frozen=True)
class _Turn:
    """The stage a task run steps now: its own, or one after it that it runs inline."""

    task_id: str  #: the agenda record's (and, for a stage run inline, the chain's) task id
    token: str
    stage: str
    signature: str


def run_stage(task: Task, deployment_id: str, stage: str, step: StepFn, token: str | None) -> str:
    """Advance ``stage`` one step under a lease, then the stages after it while each finishes at once;
    while one waits, put it on the agenda and ack."""
    rt = get_runtime()
    agenda, task_id, token = rt.agenda, str(task.request.id), token or ""
    signature = stage_signature(task)
    # The step mutex is taken with the lease and given back with the next due time: one round trip each.
    mutex = _new_mutex(deployment_id)
    begun = agenda.begin(task_id, deployment_id, PIPELINE_ORDER.index(stage), token, signature, mutex)
    if begun is Begun.STALE:
        log.warning(
            "dropped a stale copy of stage %s (a later copy or stage runs it)",
            stage,
            extra={"deployment_id": deployment_id, "stage": stage},
        )
        raise Ignore()
    if begun is Begun.BUSY:
        # Another copy steps this deployment (its chain published twice, a delivery still running
        # when redelivered): look again soon; the state loaded then includes its step.
        agenda.wait(task_id, deployment_id, token, rt.settings.poll_fast_seconds, signature)
        raise Ignore()
    # Celery sends what this run leaves in its request's chain when it returns.
    links = _Links(
        task.request.chain if task.request.chain is not None else [], task_id, task.request.root_id
    )
    turn, progress, state = _run_turns(
        rt, deployment_id, _Turn(task_id, token, stage, signature), step, mutex, links
    )
    if not progress.done:
        # A stage begun inline waits under its own signature, which carries the rest of the chain.
        _wait(agenda, deployment_id, turn, progress, mutex)
        raise Ignore()  # acknowledged; the agenda publishes it again when due or woken
    # Leased until Celery has sent the next stage's message (finalize: until the result is
    # stored), so a kill in between publishes this stage again, which finds itself done and moves on.
    agenda.hand_over(turn.task_id, deployment_id, turn.token, turn.signature, mutex)
    if turn.stage == "finalize" and turn.task_id != task_id:
        _finish_inline(rt, task.backend, deployment_id, turn, state)
    elif turn.stage != "finalize":
        _HANDING_OVER[task_id] = (turn.task_id, turn.token)
    return deployment_id


def _wait(agenda: Agenda, deployment_id: str, turn: _Turn, progress: Progress, mutex: Mutex) -> None:
    """Put ``turn``'s stage on the agenda as ``progress`` asks, giving back ``mutex`` with it."""
    agenda.wait(
        turn.task_id,
        deployment_id,
        turn.token,
        progress.wait_seconds,
        turn.signature,
        mutex,
        quiet_tasks=progress.quiet_tasks,
        known=progress.known,
    )


@dataclass(frozen=True)
class FirstStage:
    """The chain's first stage, begun in the entry task's run (``begin_chain_inline``)."""

    turn: _Turn
    mutex: Mutex


def begin_chain_inline(
    rt: Runtime, deployment_id: str, chain: list[dict[str, Any]], entry_id: str
) -> FirstStage | None:
    """Begin the first stage of ``chain`` (Celery's order: the first stage last) for the entry task
    ``entry_id`` to run: leased on the agenda under its own task id, with the deployment's step
    mutex, and popped off ``chain``. None when a copy of it began elsewhere."""
    mutex = _new_mutex(deployment_id)
    turn = _begin_next_inline(rt, _Links(chain, entry_id, entry_id), deployment_id, mutex)
    return None if turn is None else FirstStage(turn, mutex)


def run_chain_inline(
    rt: Runtime,
    app: Celery,
    deployment_id: str,
    chain: list[dict[str, Any]],
    entry_id: str,
    first: FirstStage,
) -> None:
    """Run ``first``, and the stages after it while each finishes at once, as a stage task's run
    would; then wait on the agenda, store the result (finalize) in ``app``'s backend, or send the
    next stage through ``app``'s broker.

    One broker delivery less per deployment: the first stage, published by the entry, was a
    message, its delivery and acknowledgement (ten Redis commands), a lease and a state read.
    """
    links = _Links(chain, entry_id, entry_id)
    turn, progress, state = _run_turns(
        rt, deployment_id, first.turn, STEPS[first.turn.stage], first.mutex, links
    )
    agenda, mutex = rt.agenda, first.mutex
    if not progress.done:
        _wait(agenda, deployment_id, turn, progress, mutex)
        return
    agenda.hand_over(turn.task_id, deployment_id, turn.token, turn.signature, mutex)
    if turn.stage == "finalize":
        _finish_inline(rt, app.backend, deployment_id, turn, state)
        return
    following = chain.pop()
    try:
        signature(following, app=app).apply_async(chain=chain, parent_id=turn.task_id, root_id=entry_id)
    except BROKER_PUBLISH_ERRORS as exc:
        # The hand-over lease lapses and the agenda publishes the finished stage again, which finds
        # itself done and sends the next one.
        log.warning(
            "could not send %s (%s: %s); the agenda sends it",
            following.get("task"),
            type(exc).__name__,
            exc,
            extra={"deployment_id": deployment_id},
        )
        return
    agenda.drop(turn.task_id, turn.token)


@dataclass
class _Links:
    """The rest of a chain as Celery keeps it (the next stage last), and the ids its stages carry."""

    chain: list[dict[str, Any]]
    parent_id: str
    root_id: str | None


def _new_mutex(deployment_id: str) -> Mutex:
    return Mutex(StepMutex.key_for(deployment_id), uuid.uuid4().hex)


def _run_turns(
    rt: Runtime,
    deployment_id: str,
    turn: _Turn,
    step: StepFn,
    mutex: Mutex,
    links: _Links,
    state: PipelineState | None = None,
) -> tuple[_Turn, Progress, PipelineState | None]:
    """Step ``turn``, then each following stage of ``links`` while the one before finished at once;
    return the last turn, its progress and the state it left. The step mutex is released on error."""
    # Celery's time limits are per task run: a run goes on into the next stage only within the
    # first half of them, so stages run together (a long build, then a push) never meet the limit.
    go_on_until = rt.now() + timedelta(seconds=rt.settings.task_time_limit_seconds / 2)
    # A stage run inline starts from the state the one before it saved: this run holds the step
    # mutex throughout, so nothing else wrote it since (one GET per stage saved).
    try:
        while True:
            with rt.lease_keeper.holding(turn.task_id, turn.token, mutex.key):
                progress, state = _advance(rt, deployment_id, turn.stage, step, state)
            going_on = progress.done and rt.now() < go_on_until
            following = _begin_next_inline(rt, links, deployment_id) if going_on else None
            if following is None:
                return turn, progress, state
            turn, step = following, STEPS[following.stage]
    except BaseException:
        StepMutex.release_owned(rt.redis, mutex.key, mutex.owner)
        raise


def _finish_inline(
    rt: Runtime, backend: Any, deployment_id: str, turn: _Turn, state: PipelineState | None
) -> None:
    """End the deployment from the run that ran ``finalize`` inline, as ``finalize_stage`` would.

    The result goes to the backend under finalize's task id (the entry task's, which clients
    await) before the agenda lets the record go: a kill before that publishes finalize again from
    the agenda, and ``finish`` returns the stored result the second time.
    """
    result = finish.finish(rt, deployment_id, None if state is None else _as_stored(state))
    store_final_result(backend, turn.task_id, result)
    rt.agenda.finish(turn.task_id, deployment_id, turn.token)


def _begin_next_inline(
    rt: Runtime, links: _Links, deployment_id: str, mutex: Mutex | None = None
) -> _Turn | None:
    """Take the chain's next stage into this run, leased under its own task id; None to let Celery send it.

    A stage that finished hands the deployment to the next one at once: running it here saves a
    broker round trip and a task run (about 45 Redis commands: delivery, acknowledgement, lease,
    hand-over) per stage. ``finalize`` too: this run then stores the deployment's result under
    finalize's task id (``_finish_inline``). The next stage's record replaces this one's on the
    agenda, so a kill from here on publishes that stage again (with the rest of the chain) once its
    lease lapses, and this run's own message, when Redis redelivers it, is a stale copy. ``mutex``:
    the deployment's step mutex to take with it (a run that steps a stage holds it already).
    """
    chain = links.chain
    if not chain:
        return None
    following = dict(chain[-1])
    stage = str(following.get("task", "")).removeprefix("deploy_agent.stage.")
    if stage not in STEPS or not following.get("immutable"):
        return None
    options = dict(following.get("options") or {})
    options.update(chain=list(chain[:-1]), parent_id=links.parent_id, root_id=links.root_id)
    following["options"] = options
    following["kwargs"] = {k: v for k, v in (following.get("kwargs") or {}).items() if k != "token"}
    task_id, signature_json = str(options["task_id"]), str(kombu_json.dumps(following))
    index = PIPELINE_ORDER.index(stage)
    if rt.agenda.begin(task_id, deployment_id, index, "", signature_json, mutex) is not Begun.RUN:
        return None  # a copy of it began elsewhere (a chain published twice): Celery sends ours, stale
    chain.pop()
    return _Turn(task_id, "", stage, signature_json)


#: this process's finished stage runs whose next stage Celery is about to send: the Celery task id
#: -> the agenda record (task id, token) that holds the hand-over lease
_HANDING_OVER: dict[str, tuple[str, str]] = {}


def next_stage_sent(parent_id: str | None, rt: Runtime | None = None) -> None:
    """Drop the hand-over lease of ``parent_id``: Celery sent its next stage, which Redis now keeps.

    Without this the lease would last until the next stage begins, and behind a long queue it
    lapses first, so the finished stage and everything after it would run twice.
    """
    held = _HANDING_OVER.pop(parent_id, None) if parent_id else None
    if held is None:
        return
    try:
        (rt or get_runtime()).agenda.drop(*held)
    except Exception:  # Redis unreachable: the lease lapses, the stage runs again, finds itself done
        log.warning("could not drop the hand-over lease of %s", parent_id, exc_info=True)


def stage_signature(task: Task) -> str:
    """Return the JSON of the Celery signature that runs this task again (what ``retry`` sends).

    Kombu's JSON, the broker's own: a message may carry what it encodes beyond plain JSON (bytes,
    as ``{"__type__": "base64"}``), and the copy the agenda publishes must be the message that came.
    """
    signature = dict(task.signature_from_request())
    signature["kwargs"] = {k: v for k, v in (signature.get("kwargs") or {}).items() if k != "token"}
    options = dict(signature.get("options") or {})
    for transient in ("retries", "eta", "expires", "countdown"):
        options.pop(transient, None)
    if task.request.ignore_result:  # not among Celery's execution options, yet part of the message
        options["ignore_result"] = True
    signature["options"] = options
    return str(kombu_json.dumps(signature))


def advance_stage(rt: Runtime, deployment_id: str, stage: str, step: StepFn) -> Progress:
    """Advance ``stage`` one step, one copy of the deployment at a time; return whether it is done."""
    with StepMutex(rt.redis, deployment_id, rt.settings.task_time_limit_seconds).held() as mine:
        if not mine:
            return Progress.wait(rt.settings.poll_fast_seconds)
        return _advance(rt, deployment_id, stage, step)[0]


def _advance(
    rt: Runtime, deployment_id: str, stage: str, step: StepFn, known: PipelineState | None = None
) -> tuple[Progress, PipelineState]:
    """Load the state (or take ``known``, the state as this process last saved it), advance
    ``stage`` one step and save it; return the progress and the state as it was left."""
    if known is None:
        state = _load(rt, deployment_id)
        return _step(rt, deployment_id, state, stage, step), state
    state = _as_stored(known)
    return _step(rt, deployment_id, state, stage, step, fence_first=False), state


def _as_stored(state: PipelineState) -> PipelineState:
    """The state as a load would return it after its save: what the store drops, dropped here too."""
    return PipelineState.model_validate(scrub_state(state.model_dump(mode="json")))


def _load(rt: Runtime, deployment_id: str) -> PipelineState:
    raw = rt.store.load(deployment_id)
    if raw is None:
        raise DeployError(f"deployment {deployment_id} has no recorded state")
    return PipelineState.model_validate(raw)


def _step(
    rt: Runtime, deployment_id: str, state: PipelineState, stage: str, step: StepFn, fence_first: bool = True
) -> Progress:
    run = make_run(rt, state, stage)
    record, created = state.begin_stage(stage, rt.now())
    entry = decide_entry(stage, record.outcome, state.failure is not None)
    if entry is Entry.SKIP:  # its start, end and the state: one round trip
        record.outcome, record.finished_at = "skipped", rt.now()
        with events_with_next_save():
            if created:
                run.emit("stage_started")
            _end_stage(run, "skipped")
        return Progress.finished()
    if created:
        run.emit("stage_started")
    if entry is Entry.DONE:  # a redelivered message for a finished stage
        return Progress.finished()
    try:
        if fence_first:  # a stage run inline follows within moments; each mutating call is fenced
            run.fence()
        progress = step(rt, run)
    except LockLost as lost:
        progress = _lock_lost(run, record, lost)
    except DeployError as exc:
        waiting = _on_error(rt, run, stage, exc)
        if waiting is not None:
            return waiting
        progress, record.outcome = Progress.finished(), "failed"
    except Exception as exc:  # an unexpected error still ends the deployment cleanly
        log.exception("stage %s crashed", stage, extra={"deployment_id": deployment_id, "stage": stage})
        state.fail("internal_error", f"{type(exc).__name__}: {exc}", Trigger.ERROR)
        progress, record.outcome = Progress.finished(), "failed"
    retries.clear_streak(state)
    if not progress.done:
        run.save()
        return progress
    _finish_record(rt, run, record, progress)
    return Progress.finished()


def _on_error(rt: Runtime, run: Run[Any], stage: str, exc: DeployError) -> Progress | None:
    """Apply ``decide_on_error``: return the wait to take, or None once the failure is recorded."""
    state = run.state
    started = state.rollback_started_at or (state.stage("rollback") or state.stages[-1]).started_at
    undo_late = (rt.now() - started).total_seconds() > rt.settings.rollback_timeout_seconds
    decision = decide_on_error(stage, is_transient(exc), state.past_deadline(rt.now()), undo_late)
    if decision is OnError.WAIT:  # a throttled or failing read slows the deployment, never fails it
        waiting = retries.wait_out_transient(rt, state, stage, exc)
        if waiting is not None:
            run.save()
            return waiting
    if decision is OnError.RETRY_UNDO:
        # Undoing must not give up on a transient AWS error: try again at the next poll.
        log.warning(
            "rollback step failed, retrying: %s", exc.message, extra={"deployment_id": state.deployment_id}
        )
        run.save()
        return Progress.wait(rt.settings.poll_interval_seconds)
    state.fail(exc.kind, exc.message, Trigger.ERROR)
    if stage == "rollback":
        state.rollback_failed = True
    return None


def _finish_record(rt: Runtime, run: Run[Any], record: StageState, progress: Progress) -> None:
    state = run.state
    if record.outcome == "running":
        record.outcome = decide_stage_outcome(
            record.name,
            progress.skipped,
            state.failure is not None,
            any(s.outcome == "failed" for s in state.stages if s.name != record.name),
            state.rollback_failed,
        )
        if record.name == "rollback" and record.outcome == "failed" and state.rollback_failed:
            record.detail = state.rollback_failure or "the rollback did not settle"
    record.finished_at = rt.now()
    if state.failure is not None and record.outcome == "failed" and record.detail is None:
        record.detail = state.failure.message
    metrics.STAGE_SECONDS.labels(record.name, state.strategy).observe(
        (record.finished_at - record.started_at).total_seconds()
    )
    _end_stage(run, record.outcome)


def _end_stage(run: Run[Any], outcome: str) -> None:
    """Note the stage's end and save the state it leaves, in one Redis round trip."""
    with events_with_next_save():
        run.emit("stage_finished", outcome=outcome)
        run.save()


def _lock_lost(run: Run[Any], record: StageState, lost: LockLost) -> Progress:
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


def _deploy(rt: Runtime, run: Run[Any]) -> Progress:
    return strategy_for(run.state.strategy).deploy(run)


def _rollback(rt: Runtime, run: Run[Any]) -> Progress:
    if run.state.failure is None:
        return Progress.skip()
    return strategy_for(run.state.strategy).rollback(run)


def _collect(rt: Runtime, run: Run[Any]) -> Progress:
    # Only a release that failed needs explaining: after a success the stopped tasks are the old
    # revision's, and their three AWS calls were most of what a deployment cost beyond its polls.
    if run.state.update_requested_at is not None and run.state.failure is not None:
        try:
            steps.collect_diagnostics(rt, run.state)
        except DeployError:
            log.warning("could not collect diagnostics", extra={"deployment_id": run.state.deployment_id})
    return Progress.finished()


#: each stage's step function, by stage name (the in-process runner uses these directly)
STEPS: dict[str, StepFn] = {
    "preflight": preflight,
    "build": steps.build,
    "push": steps.push,
    "register": steps.register,
    "deploy": _deploy,
    "healthcheck": steps.healthcheck,
    "rollback": _rollback,
    "finalize": _collect,
}
assert tuple(STEPS) == PIPELINE_ORDER


def _stage_task(stage: str, step: StepFn) -> Any:
    @shared_task(
        bind=True, name=f"deploy_agent.stage.{stage}", max_retries=None, acks_late=True, track_started=False
    )
    def stage_task(self: Task, deployment_id: str, token: str | None = None) -> str:
        return run_stage(self, deployment_id, stage, step, token)

    stage_task.__doc__ = f"The pipeline's {stage} stage."
    return stage_task


STAGE_TASKS = {name: _stage_task(name, STEPS[name]) for name in PIPELINE_ORDER if name != "finalize"}


@shared_task(
    bind=True, name="deploy_agent.stage.finalize", max_retries=None, acks_late=True, track_started=False
)
def finalize_stage(self: Task, deployment_id: str, token: str | None = None) -> dict[str, Any] | None:
    """Collect diagnostics, decide the outcome, store the result, release the lock; return the result."""
    run_stage(self, deployment_id, "finalize", STEPS["finalize"], token)
    rt = get_runtime()
    result = finish.finish(rt, deployment_id)
    rt.agenda.finish(str(self.request.id), deployment_id, token or "")
    return result
