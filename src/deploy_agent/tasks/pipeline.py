"""The Celery tasks: the entry task ``deploy_agent.deploy`` and one task per stage.

The entry task validates the message, records the deployment, takes the per-service lock and
replaces itself with the chain its strategy selects, so ``AsyncResult(entry_id).get()`` returns the
chain's last value: the final ``DeploymentResult``. Stages pass only the deployment id along; the
state lives in Redis. A stage that waits on AWS returns and is retried after a countdown, so it
does not hold a worker process while it waits. A stage's failure is recorded on the state and the
chain goes on to ``rollback`` and ``finalize``; nothing escapes the chain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from celery import Task, chain, shared_task

from deploy_agent.core.errors import DeployError, RequestRejected
from deploy_agent.core.outcome import Phase, Trigger
from deploy_agent.core.state import PipelineState
from deploy_agent.models import DeploymentResult, parse_request
from deploy_agent.strategies import Progress, Run, strategy_for, traffic
from deploy_agent.tasks import metrics, steps
from deploy_agent.tasks.runtime import Runtime, get_runtime

log = logging.getLogger("deploy_agent.pipeline")

STAGE_TASK = "deploy_agent.stage.{}"


@shared_task(bind=True, name="deploy_agent.deploy", max_retries=None, acks_late=True)
def deploy(self: Task, request: Any = None) -> dict[str, Any] | None:
    """Validate, record, lock, then replace this task with the strategy's chain."""
    rt = get_runtime()
    now = rt.now()
    try:
        message = parse_request(request)
        if message.build is not None:
            steps.resolve_build_context(rt.settings.build_root, message.build.context)
    except RequestRejected as exc:
        result = DeploymentResult.rejected(request, exc, now)
        log.warning("rejected: %s", exc.message)
        return result.model_dump(mode="json")
    store = rt.store
    deployment_id = str(message.deployment_id)
    strategy = strategy_for(message.strategy.type)
    region = message.region or rt.settings.aws_region
    timeout = message.timeout_seconds or rt.settings.default_timeout_seconds
    state = PipelineState(
        deployment_id=deployment_id,
        request=message.model_dump(mode="json"),
        strategy=strategy.name,
        cluster=message.cluster_name,
        service=message.service_name,
        region=region,
        started_at=now,
        deadline=now + timedelta(seconds=timeout),
    )
    existing = store.load(deployment_id)
    if existing is None:
        store.create(deployment_id, state.model_dump(mode="json"))
        store.append_event(deployment_id, _event(rt, deployment_id, "accepted", strategy=strategy.name))
        metrics.IN_PROGRESS.inc()
    else:
        state = PipelineState.model_validate(existing)
        if state.phase is Phase.DONE:
            # The same id is never deployed twice: answer with the first result.
            return store.result(deployment_id)
        if self.request.id != existing.get("entry_task_id") and existing.get("chain_started"):
            raise self.retry(countdown=rt.settings.lock_wait_seconds)
    lock = rt.lock(state.cluster, state.service)
    if not lock.acquire(deployment_id):
        metrics.LOCK_WAITS.inc()
        store.append_event(deployment_id, _event(rt, deployment_id, "waiting_for_lock", holder=lock.holder()))
        raise self.retry(countdown=rt.settings.lock_wait_seconds)
    record = state.model_dump(mode="json") | {"chain_started": True, "entry_task_id": self.request.id}
    store.save(deployment_id, record)
    signatures = [_signature(name, deployment_id) for name in strategy.stages()]
    raise self.replace(chain(*signatures))


def _signature(stage: str, deployment_id: str) -> Any:
    from celery import current_app

    return current_app.signature(STAGE_TASK.format(stage), args=(deployment_id,), immutable=True)


def _event(rt: Runtime, deployment_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"at": rt.now().isoformat(), "deployment_id": deployment_id, "event": kind, **fields}


def run_stage(task: Task, deployment_id: str, stage: str, step: Callable[[Runtime, Run], Progress]) -> str:
    """Load the state, advance ``stage`` one step, save; retry later while the step waits."""
    rt = get_runtime()
    store = rt.store
    raw = store.load(deployment_id)
    if raw is None:
        raise DeployError(f"deployment {deployment_id} has no recorded state")
    extras = {k: raw.pop(k) for k in ("chain_started", "entry_task_id") if k in raw}
    state = PipelineState.model_validate(raw)

    def save() -> None:
        store.save(deployment_id, state.model_dump(mode="json") | extras)

    def emit(kind: str, **fields: Any) -> None:
        event = _event(rt, deployment_id, kind, stage=stage, **fields)
        store.append_event(deployment_id, event)
        log.info(
            "%s %s",
            kind,
            {k: v for k, v in fields.items() if v is not None},
            extra={"deployment_id": deployment_id, "stage": stage},
        )

    run = Run(
        state=state,
        ecs=rt.ecs(state.region),
        now=rt.now,
        emit=emit,
        poll_seconds=rt.settings.poll_interval_seconds,
        extras={
            "save": save,
            "rollback_timeout": rt.settings.rollback_timeout_seconds,
            "settle": lambda: time.sleep(rt.settings.zero_downtime_settle_seconds),
            "on_zero_downtime": lambda report: metrics.ZERO_DOWNTIME.labels(
                "failed" if report.failures else "ok"
            ).inc(),
        },
        elb=rt.elb(state.region),
        alarms=rt.alarms(state.region),
        prober=rt.prober,
        traffic_probe=rt.traffic_probe,
    )
    record, created = state.begin_stage(stage, rt.now())
    if created:
        emit("stage_started")
    if record.outcome != "running":  # a redelivered message for a finished stage
        return deployment_id
    if state.failure is not None and stage not in ("rollback", "finalize"):
        record.outcome, record.finished_at = "skipped", rt.now()
        emit("stage_finished", outcome="skipped")
        save()
        return deployment_id
    rt.lock(state.cluster, state.service).extend(deployment_id)
    try:
        progress = step(rt, run)
    except DeployError as exc:
        state.fail(exc.kind, exc.message, Trigger.ERROR)
        progress = Progress.finished()
        record.outcome = "failed"
    except Exception as exc:  # an unexpected error still ends the deployment cleanly
        log.exception("stage %s crashed", stage, extra={"deployment_id": deployment_id, "stage": stage})
        state.fail("internal_error", f"{type(exc).__name__}: {exc}", Trigger.ERROR)
        progress = Progress.finished()
        record.outcome = "failed"
    if not progress.done:
        save()
        raise task.retry(countdown=progress.wait_seconds, max_retries=None)
    if record.outcome == "running" and progress.skipped:
        record.outcome = "skipped"
    if record.outcome == "running":
        failed_here = (
            state.failure is not None
            and stage not in ("rollback", "finalize")
            and not _failed_before(state, stage)
        )
        record.outcome = "failed" if failed_here else "succeeded"
    record.finished_at = rt.now()
    if state.failure is not None and record.outcome == "failed" and record.detail is None:
        record.detail = state.failure.message
    metrics.STAGE_SECONDS.labels(stage, state.strategy).observe(
        (record.finished_at - record.started_at).total_seconds()
    )
    emit("stage_finished", outcome=record.outcome)
    save()
    return deployment_id


def _failed_before(state: PipelineState, stage: str) -> bool:
    return any(s.outcome == "failed" for s in state.stages if s.name != stage)


def _strategy_step(method: str) -> Callable[[Runtime, Run], Progress]:
    def step(rt: Runtime, run: Run) -> Progress:
        strategy = strategy_for(run.state.strategy)
        if method == "rollback" and run.state.failure is None:
            return Progress.skip()
        result: Progress = getattr(strategy, method)(run)
        return result

    return step


def _finalize(rt: Runtime, run: Run) -> Progress:
    state = run.state
    if state.update_requested_at is not None:
        try:
            steps.collect_diagnostics(rt, state)
        except DeployError:
            log.warning("could not collect diagnostics", extra={"deployment_id": state.deployment_id})
    return Progress.finished()


@shared_task(bind=True, name="deploy_agent.stage.preflight", max_retries=None, acks_late=True)
def preflight_stage(self: Task, deployment_id: str) -> str:
    return run_stage(self, deployment_id, "preflight", lambda _rt, run: traffic.preflight(run))


@shared_task(bind=True, name="deploy_agent.stage.build", max_retries=None, acks_late=True)
def build_stage(self: Task, deployment_id: str) -> str:
    return run_stage(self, deployment_id, "build", steps.build)


@shared_task(bind=True, name="deploy_agent.stage.push", max_retries=None, acks_late=True)
def push_stage(self: Task, deployment_id: str) -> str:
    return run_stage(self, deployment_id, "push", steps.push)


@shared_task(bind=True, name="deploy_agent.stage.register", max_retries=None, acks_late=True)
def register_stage(self: Task, deployment_id: str) -> str:
    return run_stage(self, deployment_id, "register", steps.register)


@shared_task(bind=True, name="deploy_agent.stage.deploy", max_retries=None, acks_late=True)
def deploy_stage(self: Task, deployment_id: str) -> str:
    return run_stage(self, deployment_id, "deploy", _strategy_step("deploy"))


@shared_task(bind=True, name="deploy_agent.stage.healthcheck", max_retries=None, acks_late=True)
def healthcheck_stage(self: Task, deployment_id: str) -> str:
    return run_stage(self, deployment_id, "healthcheck", steps.healthcheck)


@shared_task(bind=True, name="deploy_agent.stage.rollback", max_retries=None, acks_late=True)
def rollback_stage(self: Task, deployment_id: str) -> str:
    return run_stage(self, deployment_id, "rollback", _strategy_step("rollback"))


@shared_task(bind=True, name="deploy_agent.stage.finalize", max_retries=None, acks_late=True)
def finalize_stage(self: Task, deployment_id: str) -> dict[str, Any] | None:
    """Collect diagnostics, decide the outcome, store the result, release the lock; return the result."""
    run_stage(self, deployment_id, "finalize", _finalize)
    rt = get_runtime()
    store = rt.store
    raw = store.load(deployment_id)
    assert raw is not None
    extras = {k: raw.pop(k) for k in ("chain_started", "entry_task_id") if k in raw}
    state = PipelineState.model_validate(raw)
    if state.phase is Phase.DONE:
        return store.result(deployment_id)
    state.finished_at = rt.now()
    result = steps.build_result(state)
    state.outcome = str(result.outcome)
    state.phase = Phase.DONE
    payload = result.model_dump(mode="json")
    store.save_result(deployment_id, payload)
    store.save(deployment_id, state.model_dump(mode="json") | extras)
    rt.lock(state.cluster, state.service).release(deployment_id)
    store.append_event(
        deployment_id,
        _event(rt, deployment_id, "finished", outcome=payload["outcome"], error=payload["error"]),
    )
    metrics.DEPLOYMENTS.labels(state.strategy, payload["outcome"]).inc()
    metrics.DEPLOYMENT_SECONDS.labels(state.strategy, payload["outcome"]).observe(result.duration_seconds)
    if result.rollback is not None:
        metrics.ROLLBACKS.labels(state.strategy, result.rollback.trigger).inc()
    metrics.IN_PROGRESS.dec()
    log.info("finished: %s", payload["outcome"], extra={"deployment_id": deployment_id, "stage": "finalize"})
    return payload
