"""The entry tasks: ``deploy_agent.deploy`` (a new release) and ``deploy_agent.rollback`` (by hand).

Each validates, records the deployment, then takes the per-service lock and hands the deployment
to its chain of stages, whose last one (``finalize``) takes the entry's task id, so
``AsyncResult(entry_id).get()`` returns the final ``DeploymentResult``. The entry runs the chain's
first stage itself (and the stages after it while each finishes at once), as a stage task's run
would: one broker delivery less per deployment. While another deployment holds the service, the
entry task waits on the agenda (no process or message held); when several wait, only the newest
runs and the older ones end ``superseded``.
The same ``deployment_id`` is never deployed twice: a duplicate message answers with (or waits
for) the first one's result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from celery import Task, chain, current_app, shared_task
from celery.exceptions import Ignore
from kombu.utils.uuid import uuid

from deploy_agent.adapters.build_context import resolve_build_context
from deploy_agent.adapters.redis_client import BROKER_PUBLISH_ERRORS
from deploy_agent.adapters.redis_locks import ClusterSlots
from deploy_agent.adapters.redis_store import ReleaseLedger, WaitingLine, events_with_next_save
from deploy_agent.core.errors import AwsNotFound, DeployError, RequestRejected, is_transient
from deploy_agent.core.outcome import Phase, Trigger
from deploy_agent.core.policy import Violation, check_request, check_rollback, check_target
from deploy_agent.core.releases import NoRollbackTarget, choose_rollback_target
from deploy_agent.core.state import PipelineState
from deploy_agent.models import DeploymentResult, parse_request
from deploy_agent.models.parsing import parse_rollback_request
from deploy_agent.strategies import strategy_for
from deploy_agent.tasks import finish, metrics
from deploy_agent.tasks.events import event_of, record_event
from deploy_agent.tasks.runtime import Runtime, get_runtime
from deploy_agent.tasks.stages import begin_chain_inline, run_chain_inline, stage_signature
from deploy_agent.tasks.wiring import chain_for

log = logging.getLogger("deploy_agent.pipeline")

#: a manual rollback's chain: preflight first, like every chain (another controller's service is refused)
ROLLBACK_STAGES = ("preflight", "deploy", "rollback", "finalize")


@shared_task(bind=True, name="deploy_agent.deploy", max_retries=None, acks_late=True)
def deploy(self: Task, request: Any = None, token: str | None = None) -> dict[str, Any] | None:
    """Validate the message and hand the deployment to its strategy's chain.

    ``token`` is set when the agenda published this run (after a wait for the service's lock).
    """
    rt = get_runtime()

    def run() -> dict[str, Any] | None:
        try:
            state = plan_deployment(rt, request)
        except RequestRejected as exc:
            return _rejected(rt, request, exc)
        return _accept_and_run(self, rt, state, strategy_for(state.strategy).stages, token or "")

    return _leased(self, rt, token, run)


def _leased(
    self: Task, rt: Runtime, token: str | None, run: Callable[[], dict[str, Any] | None]
) -> dict[str, Any] | None:
    """Return ``run()``, leased on the agenda from the first moment so a host that dies mid-way loses nothing.

    A wait for the lock stays on the agenda (due later); any other end takes the entry off, a
    published chain included (its messages are on the broker, and its last stage takes this id).
    """
    task_id, token = str(self.request.id), token or ""
    if not rt.agenda.lease_entry(task_id, token, stage_signature(self)):
        log.warning("dropped a stale copy of entry task %s (the agenda published a newer one)", task_id)
        raise Ignore()
    keep = False
    try:
        with rt.lease_keeper.holding(task_id, token):
            return run()
    except _Waiting:
        keep = True
        raise Ignore() from None  # acknowledged; the agenda publishes it again when due
    except _RanInline:
        # Off the agenda already: the finalize stage, which takes this task's id, may hold the
        # record under it now, and a drop would take its lease.
        keep = True
        raise Ignore() from None  # the result, when it came, is finalize's: stored under this id
    finally:
        if not keep:  # done with the agenda: it must not publish us again
            rt.agenda.drop(task_id, token)


class _Waiting(Exception):
    """The entry went on the agenda to look at the lock again later."""


class _RanInline(Exception):
    """The entry ran the chain's first stage (and those after it that finished at once) itself."""


def _wait(self: Task, rt: Runtime, deployment_id: str, token: str) -> _Waiting:
    """Put this entry run on the agenda, due after ``lock_wait_seconds``; return what to raise."""
    signature = stage_signature(self)
    rt.agenda.wait(str(self.request.id), deployment_id, token, rt.settings.lock_wait_seconds, signature)
    return _Waiting()


def _rejected(rt: Runtime, request: Any, exc: RequestRejected) -> dict[str, Any]:
    """Return (and count, once per message) the result of a message refused before anything ran."""
    log.warning("rejected: %s", exc.message)
    result = DeploymentResult.rejected(request, exc, rt.now())
    metrics.DEPLOYMENTS.labels(result.strategy or "unknown", "rejected").inc()
    return result.model_dump(mode="json")


def _policy_rejected(violations: list[Violation]) -> RequestRejected:
    shown = "; ".join(f"{v.field}: {v.problem} (policy: {v.rule})" for v in violations[:10])
    more = f"; and {len(violations) - 10} more" if len(violations) > 10 else ""
    return RequestRejected(f"outside the operator's policy: {shown}{more}", [v.as_dict() for v in violations])


def plan_deployment(rt: Runtime, request: Any) -> PipelineState:
    """Return the initial state of a deployment, or raise ``RequestRejected`` (nothing touched)."""
    now = rt.now()
    message = parse_request(request)
    region = message.region or rt.settings.aws_region
    policy = rt.policy
    if policy is not None and (violations := check_request(policy, message, region)):
        raise _policy_rejected(violations)
    if message.build is not None:
        resolve_build_context(rt.settings.build_root, message.build.context, message.build.dockerfile)
    strategy = strategy_for(message.strategy.type)
    timeout = message.timeout_seconds or rt.settings.default_timeout_seconds
    return PipelineState(
        deployment_id=str(message.deployment_id),
        request=message.model_dump(mode="json"),
        strategy=strategy.name,
        cluster=message.cluster_name,
        service=message.service_name,
        region=region,
        started_at=now,
        deadline=now + timedelta(seconds=timeout),
        image_uri=message.image.uri,  # a prebuilt image is deployed as given (no push stage)
    )


@shared_task(bind=True, name="deploy_agent.rollback", max_retries=None, acks_late=True)
def rollback(self: Task, request: Any = None, token: str | None = None) -> dict[str, Any] | None:
    """Put a service back on an earlier good release: the previous one, or the one named by ``to``.

    ``request``: ``{"cluster_name", "service_name", "to"?, "region"?, "deployment_id"?, "requested_by"?,
    "timeout_seconds"?}``; ``to`` is a deployment id from the release ledger, a revision number, a
    ``family:revision`` or a task-definition ARN.
    """
    rt = get_runtime()
    return _leased(self, rt, token, lambda: _plan_rollback(self, rt, request, token or ""))


def _plan_rollback(self: Task, rt: Runtime, request: Any, token: str) -> dict[str, Any] | None:
    """Return a rejection, or choose the release to go back to and hand the rollback to its chain."""
    now = rt.now()
    try:
        asked = parse_rollback_request(request)
    except RequestRejected as exc:
        return _rejected(rt, request, exc)
    cluster, service = asked.cluster_name, asked.service_name
    region = asked.region or rt.settings.aws_region
    deployment_id = asked.deployment_id or f"rollback-{self.request.id}"
    policy = rt.policy
    if policy is not None and (violations := check_target(policy, cluster, service, region)):
        return _rejected(rt, request, _policy_rejected(violations))  # before any AWS call
    ecs = rt.ecs(region)
    try:
        current = str(ecs.describe_service(cluster, service)["taskDefinition"])
        releases = ReleaseLedger(rt.redis, rt.settings.keep_releases, region).releases(cluster, service)
        target = choose_rollback_target(releases, current, asked.to)
        described = ecs.describe_task_definition(target)
    except (NoRollbackTarget, AwsNotFound) as exc:
        problem = str(exc) if isinstance(exc, NoRollbackTarget) else exc.message
        rejected = RequestRejected(f"cannot roll back: {problem}", [{"field": "to", "problem": problem}])
        return _rejected(rt, request, rejected)
    except DeployError as exc:
        if not is_transient(exc):
            raise
        # Only reads so far: a throttled or unreachable AWS is looked at again, never reported as
        # the rollback's outcome.
        log.warning("rollback of %s/%s waits for AWS: %s", cluster, service, exc.message)
        raise self.retry(countdown=rt.settings.aws_retry_base_seconds, max_retries=30) from exc
    if policy is not None and (violations := check_rollback(policy, cluster, service, region, described)):
        return _rejected(rt, request, _policy_rejected(violations))  # only reads so far
    timeout = asked.timeout_seconds or rt.settings.default_timeout_seconds
    state = PipelineState(
        deployment_id=deployment_id,
        request={
            "cluster_name": cluster,
            "service_name": service,
            "strategy": {"type": "rolling"},
            "rollback": {"enabled": True},
            "requested_by": asked.requested_by,
            "labels": {"deploy-agent/kind": "manual-rollback"},
        },
        strategy="rolling",
        cluster=cluster,
        service=service,
        region=region,
        phase=Phase.REGISTERED,
        started_at=now,
        deadline=now + timedelta(seconds=timeout),
        task_definition_arn=str(described["taskDefinitionArn"]),
        previous_task_definition_arn=current,
        image_uri=_image_of(described, releases),
        manual_rollback=True,
    )
    return _accept_and_run(self, rt, state, ROLLBACK_STAGES, token)


def _image_of(task_definition: dict[str, Any], releases: list[dict[str, Any]]) -> str | None:
    for release in releases:
        if release["task_definition_arn"] == task_definition["taskDefinitionArn"]:
            return release.get("image_uri")
    containers = task_definition.get("containerDefinitions") or []
    return str(containers[0]["image"]) if containers else None


def _accept_and_run(
    self: Task, rt: Runtime, state: PipelineState, order: Sequence[str], token: str
) -> dict[str, Any] | None:
    """Record (once), wait for the service's lock (or be superseded), then run the chain: its
    first stage here, or, when a copy of that stage began elsewhere, all of it through the broker."""
    store = rt.store
    deployment_id = state.deployment_id
    # A first delivery (no agenda token) is nearly always a new deployment: record it straight
    # away (one round trip, its "accepted" event included); a run the agenda published looks first.
    existing = None if not token else store.load(deployment_id)
    if existing is None:
        state.entry_task_id = self.request.id
        accepted = event_of(rt, state, "accepted", strategy=state.strategy)
        existing = store.create(deployment_id, state.model_dump(mode="json"), [accepted])
        if existing is not None:
            metrics.IN_PROGRESS.inc()
        else:  # recorded before: a duplicate message, or this entry's earlier run
            existing = store.load(deployment_id)
    assert existing is not None
    recorded = PipelineState.model_validate(existing)
    if recorded.phase is Phase.DONE:
        # A duplicate message for a deployment that ended, or this entry redelivered after the end
        # (Redis's visibility timeout): the result it came to, nothing decided again.
        return store.result(deployment_id)
    if recorded.entry_task_id != self.request.id:
        # A duplicate message for a deployment id we know: never deploy it twice.
        raise _wait(self, rt, deployment_id, token)
    if recorded.chain_started and _chain_published(rt, deployment_id):
        raise Ignore()  # this entry task was redelivered after it had already handed over
    lock = rt.lock(recorded.cluster, recorded.service, recorded.region)
    if recorded.chain_started and not lock.fence(deployment_id):
        # Killed between recording the start and publishing the chain, and the lock was someone
        # else's since: nothing of ours ran, and the service may be on a newer release now.
        return _supersede(rt, recorded, lock.holder() or "another deployment")
    line = WaitingLine(rt.redis, recorded.cluster, recorded.service, recorded.region)
    newest = line.join(deployment_id, recorded.started_at.timestamp())
    if newest != deployment_id:
        return _supersede(rt, recorded, newest)
    if not lock.acquire(deployment_id):
        metrics.LOCK_WAITS.inc()
        record_event(rt, recorded, "waiting_for_lock", holder=lock.holder())
        raise _wait(self, rt, deployment_id, token)
    if not _take_cluster_slot(rt, recorded, lock.key):
        # The cluster runs as many deployments as the policy allows: let the service go (a newer
        # request for it may supersede this one meanwhile) and look again later, holding no process.
        lock.release(deployment_id)
        record_event(rt, recorded, "waiting_for_cluster_slot", cluster=recorded.cluster)
        raise _wait(self, rt, deployment_id, token)
    line.leave(deployment_id)
    stages = chain_for(recorded, rt.now(), order)
    rt.services(recorded.region).track(recorded.cluster, recorded.service)
    with events_with_next_save():  # the "started" event and the state saying so: one round trip
        record_event(rt, recorded, "started", strategy=recorded.strategy, stages=stages)
        if not recorded.chain_started:  # else resumed: the state may be a running copy's by now
            recorded.chain_started = True
            store.save(deployment_id, recorded.model_dump(mode="json"))
    # Only the last stage's result is the deployment's (it takes this task's id, which clients
    # await); the others pass the deployment id along the chain, and storing each (GET, SETEX,
    # PUBLISH in a MULTI) was five Redis commands per stage run that nobody reads.
    signatures = [
        current_app.signature(
            f"deploy_agent.stage.{name}",
            args=(deployment_id,),
            immutable=True,
            ignore_result=name != stages[-1],
            task_id=self.request.id if name == stages[-1] else uuid(),
        )
        for name in stages
    ]
    links = [dict(sig) for sig in reversed(signatures)]  # as Celery carries a chain: the next stage last
    first = begin_chain_inline(rt, deployment_id, links, self.request.id)
    if first is not None:
        # This run goes on with the first stage: its lease covers the deployment from here, and its
        # record on the agenda says the chain was handed on (``_chain_published``).
        rt.agenda.drop(self.request.id, token)
        try:
            run_chain_inline(rt, self.app, deployment_id, links, self.request.id, first)
        except Exception:
            # As for a stage task's run that broke: its lease lapses and the agenda publishes the
            # stage again. The entry itself must not fail: its failure would be the result clients get.
            log.exception("a stage run by the entry task broke off", extra={"deployment_id": deployment_id})
        raise _RanInline()
    try:  # a copy of the first stage began elsewhere: publish the chain, as before inline runs
        raise self.replace(chain(*signatures))
    except Ignore:  # raised by Task.on_replace once the chain is on the broker
        _mark_chain_published(rt, deployment_id)
        raise
    except BROKER_PUBLISH_ERRORS as exc:
        # The broker went away mid-publish (a Sentinel failover). Unmarked, the chain is published
        # again from the agenda shortly; a copy that did reach the broker only repeats looks (see
        # ``_chain_published``).
        log.warning(
            "could not publish the stages (%s: %s); trying again",
            type(exc).__name__,
            exc,
            extra={"deployment_id": deployment_id},
        )
        raise _wait(self, rt, deployment_id, token) from exc


def _take_cluster_slot(rt: Runtime, state: PipelineState, lock_key: str) -> bool:
    """Return whether the deployment may run now under the policy's per-cluster limit.

    One that already handed over its chain (redelivered) keeps or takes its slot, full or not.
    """
    policy = rt.policy
    limit = policy.cluster_limit(state.cluster) if policy is not None else None
    if limit is None:
        return True
    slots = ClusterSlots(rt.redis, state.cluster, limit, state.region)
    return slots.take(state.deployment_id, lock_key, force=state.chain_started)


def _chain_published(rt: Runtime, deployment_id: str) -> bool:
    """Return whether this deployment's chain was handed on: a stage of it begun on the agenda (the
    entry runs the first one) or the chain on the broker (marked right after publishing).

    A kill after recording ``chain_started`` but before this left a deployment that never ran: its
    redelivered entry task hands the chain on. A kill in between hands it on twice; the stages step
    one copy at a time (``StepMutex``), a copy the agenda published since fences the older one out
    (its token), and a copy that finds its stage done moves on, so the second only repeats looks.
    """
    return rt.agenda.has_begun(deployment_id) or rt.store.is_chain_published(deployment_id)


def _mark_chain_published(rt: Runtime, deployment_id: str) -> None:
    rt.store.mark_chain_published(deployment_id)


def _supersede(rt: Runtime, state: PipelineState, newer: str) -> dict[str, Any] | None:
    """End a waiting deployment that a newer request for the same service replaces."""
    state.fail("superseded", f"a newer deployment of this service ({newer}) was requested", Trigger.ERROR)
    rt.store.save(state.deployment_id, state.model_dump(mode="json"))
    return finish.finish(rt, state.deployment_id)


__all__ = ["DeployError", "deploy", "rollback"]
