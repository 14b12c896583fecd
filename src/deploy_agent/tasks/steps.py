"""The strategy-independent stages: build, push, register, healthcheck, finalize.

Each function advances a ``PipelineState`` and returns ``Progress``; they raise ``DeployError``
for failures, which the Celery wrapper records on the state (it never escapes the chain).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from deploy_agent.adapters.build_context import resolve_build_context
from deploy_agent.adapters.ecr import Repository, registry_for_push
from deploy_agent.adapters.redis_store import ReleaseLedger
from deploy_agent.core.errors import PreflightFailed, PushFailed
from deploy_agent.core.health import Probe, assess_health
from deploy_agent.core.image_tags import decide_tag_push, is_tag_immutable
from deploy_agent.core.orchestration import plan_result
from deploy_agent.core.outcome import Phase, Trigger
from deploy_agent.core.polling import expected_duration
from deploy_agent.core.redact import mask_url
from deploy_agent.core.rollout import ecs_time, started_since, stopped_order
from deploy_agent.core.scrub import has_environment_values
from deploy_agent.core.state import PipelineState, ProbeState
from deploy_agent.core.taskdef import (
    default_log_configuration,
    plan_from_spec,
    plan_log_groups,
    plan_task_definition,
)
from deploy_agent.models import DeploymentResult
from deploy_agent.strategies import strategy_for
from deploy_agent.strategies.base import Progress, Run
from deploy_agent.tasks import metrics
from deploy_agent.tasks.messages import request_of
from deploy_agent.tasks.revisions import register_kwargs_of
from deploy_agent.tasks.runtime import Runtime

log = logging.getLogger("deploy_agent.pipeline")

PROBES_KEPT = 20
#: every revision we register carries the deployment that made it
DEPLOYMENT_TAG = "deploy-agent:deployment-id"


def build(rt: Runtime, run: Run[Any]) -> Progress:
    state = run.state
    request = run.request
    if request.build is None or request.image.repository is None:
        return Progress.skip()
    spec = request.build
    context = resolve_build_context(rt.settings.build_root, spec.context, spec.dockerfile)
    tag = request.image.tag or state.deployment_id
    local = f"{request.image.repository}:{tag}"

    def on_log(line: str) -> None:
        log.info("build: %s", line, extra={"deployment_id": state.deployment_id, "stage": "build"})
        if line.startswith("Step "):
            run.emit("build_step", line=line)

    started = time.monotonic()
    built = rt.docker.build(
        context,
        spec.dockerfile,
        local,
        build_args=dict(spec.build_args),
        target=spec.target,
        cache_from=list(spec.cache_from),
        labels={**spec.labels, "deploy-agent.deployment-id": state.deployment_id},
        platform=spec.platform,
        on_log=on_log,
    )
    metrics.BUILD_SECONDS.observe(time.monotonic() - started)
    state.local_image = built.image_id
    state.phase = Phase.BUILT
    try:
        rt.docker.remove_old_images(request.image.repository, rt.settings.keep_images, {built.image_id})
    except Exception:  # cleanup is best effort; a deployment never fails on it
        log.warning("could not remove old images of %s", request.image.repository, exc_info=True)
    return Progress.finished()


def push(rt: Runtime, run: Run[Any]) -> Progress:
    state = run.state
    request = run.request
    if request.image.uri is not None:
        state.image_uri = request.image.uri
        return Progress.skip()
    assert request.image.repository is not None
    assert state.local_image is not None
    ecr = rt.ecr(state.region)
    # Settings the message leaves out are None: the repository keeps its own (never weakened).
    repo = ecr.ensure_repository(
        request.image.repository,
        scan_on_push=request.ecr.scan_on_push,
        tag_mutability=request.ecr.tag_mutability,
        create=request.ecr.create_repository,
        exclusion_filters=request.ecr.exclusion_filters(),
    )
    if repo.created:
        run.emit("repository_created", repository=repo.uri)
    for change in repo.changes:
        run.emit("repository_changed", repository=repo.uri, change=change)
    if request.ecr.lifecycle_policy is not None:
        policy = request.ecr.lifecycle_policy_text()
        if policy is not None:
            ecr.put_lifecycle_policy(repo.name, policy)
    tag = request.image.tag or state.deployment_id
    reused = _reuse_immutable_tag(rt, run, repo, tag)
    if reused is not None:
        state.image_uri = f"{repo.uri}@{reused}"
        state.phase = Phase.PUSHED
        run.emit("image_reused", image_uri=state.image_uri, tag=tag)
        return Progress.finished()
    auth = ecr.authorization(repo.registry_id)
    target = registry_for_push(repo.uri, rt.settings.registry_override)
    rt.docker.tag(state.local_image, target, tag)
    started = time.monotonic()
    digest = rt.docker.push(target, tag, auth, on_progress=lambda _line: None)
    metrics.PUSH_SECONDS.observe(time.monotonic() - started)
    state.image_uri = f"{repo.uri}@{digest}"
    state.phase = Phase.PUSHED
    run.emit("image_pushed", image_uri=state.image_uri)
    return Progress.finished()


def _reuse_immutable_tag(rt: Runtime, run: Run[Any], repo: Repository, tag: str) -> str | None:
    """Return the digest to reuse when an immutable tag already holds our build, else None (push).

    Raises ``PushFailed`` when the tag holds another image: ECR would refuse the push
    (ImageTagAlreadyExistsException), and nothing on ECS has been touched yet.
    """
    if not is_tag_immutable(repo.tag_mutability, repo.exclusion_filters, tag):
        return None  # a mutable tag is overwritten by the push, as the user's repository allows
    remote = rt.ecr(run.state.region).image_by_tag(repo.name, tag, repo.registry_id)
    if remote is None:
        return None
    assert run.state.local_image is not None
    local = rt.docker.inspect(run.state.local_image)
    decision = decide_tag_push(
        remote, True, str(local.get("Id", run.state.local_image)), list(local.get("RepoDigests") or [])
    )
    if decision == "reuse":
        return remote.digest
    raise PushFailed(
        f"tag {tag} already exists in ECR repository {repo.name} ({repo.tag_mutability}) and holds "
        f"another image ({remote.digest}); ECR refuses to overwrite it. Give image.tag a new tag, "
        "or leave it out to tag the build with the deployment id"
    )


def _ensure_log_groups(
    rt: Runtime,
    user_kwargs: dict[str, Any],
    planned: dict[str, Any],
    region: str,
    running: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return ``planned`` after creating the log groups it names for us and checking the user's,
    but those the service's running revision (``running``, when known) writes to already.

    See ``plan_log_groups`` for why: a missing group stops every task of the rollout.
    """
    for plan in plan_log_groups(user_kwargs, planned, region, running):
        if plan.in_use:
            continue
        logs = rt.logs(plan.region)
        if plan.create:
            logs.ensure_log_group(plan.group)
        elif not logs.log_group_exists(plan.group):
            # PreflightFailed: the setup is unusable and nothing is touched yet (outcome rejected)
            raise PreflightFailed(
                f"the task definition's awslogs log group {plan.group} does not exist in {plan.region}; "
                "its tasks could not start (ResourceInitializationError). Create it, or set the "
                'awslogs-create-group option to "true" (the execution role needs logs:CreateLogGroup)'
            )
    return planned


def register(rt: Runtime, run: Run[Any]) -> Progress:
    state = run.state
    if state.task_definition_arn is not None:
        return Progress.finished()  # a redelivered stage: the revision is registered already
    request = run.request
    ecs = rt.ecs(state.region)
    # Through the reader: the preflight's look, moments ago, is reused while no write has come since.
    service = rt.services(state.region).describe_service(state.cluster, state.service)
    state.previous_task_definition_arn = str(service["taskDefinition"])
    assert state.image_uri is not None
    current: dict[str, Any] | None = None
    if request.task_definition is not None:
        kwargs = plan_from_spec(
            request.task_definition.to_register_kwargs(), state.image_uri, request.container_name
        )
    else:
        current = ecs.describe_task_definition(state.previous_task_definition_arn)
        kwargs = plan_task_definition(current, state.image_uri, request.container_name)
    planned = default_log_configuration(kwargs, state.region)
    kwargs = _ensure_log_groups(rt, kwargs, planned, state.region, current)
    tags = [t for t in kwargs.get("tags") or [] if t.get("key") != DEPLOYMENT_TAG]
    kwargs["tags"] = [*tags, {"key": DEPLOYMENT_TAG, "value": state.deployment_id}]
    registered = ecs.register_task_definition(kwargs)
    state.task_definition_arn = str(registered["taskDefinitionArn"])
    if not has_environment_values(kwargs):  # the state keeps no environment values (core.scrub)
        state.registered_definition = register_kwargs_of({**registered, "tags": kwargs["tags"]})
    ledger = ReleaseLedger(rt.redis, rt.settings.keep_releases, state.region)
    ledger.remember_registered(str(registered["family"]), state.task_definition_arn)
    # How long this service's recent rollouts took: the deploy stage aims its first look there.
    state.expected_rollout_seconds = expected_duration(
        [
            float(r["rollout_seconds"])
            for r in ledger.releases(state.cluster, state.service)
            if r.get("rollout_seconds")
        ]
    )
    state.phase = Phase.REGISTERED
    run.emit(
        "task_definition_registered",
        task_definition_arn=state.task_definition_arn,
        previous_task_definition_arn=state.previous_task_definition_arn,
    )
    return Progress.finished()


def healthcheck(rt: Runtime, run: Run[Any]) -> Progress:
    state, spec = run.state, run.request.health_check
    if spec is None or not spec.url:
        return Progress.skip()
    if state.past_deadline(run.now()):
        return run.fail(
            "deadline_exceeded",
            "the deployment did not pass its health check before its deadline",
            Trigger.DEADLINE,
        )
    probe = run.ports.prober.probe(spec.url, spec.expected_status, spec.timeout_seconds, spec.max_latency_ms)
    metrics.HEALTH_SECONDS.observe(probe.latency_ms / 1000.0)
    state.probes = [
        *state.probes,
        ProbeState(ok=probe.ok, status=probe.status, latency_ms=probe.latency_ms, error=probe.error),
    ][-PROBES_KEPT:]
    run.emit(
        "health_probe",
        ok=probe.ok,
        status=probe.status,
        latency_ms=round(probe.latency_ms, 1),
        error=probe.error,
    )
    verdict = assess_health(
        [
            Probe(ok=p.ok, status=p.status, latency_ms=p.latency_ms, error=p.error, at=0.0)
            for p in state.probes
        ],
        spec.healthy_threshold,
        spec.unhealthy_threshold,
    )
    if verdict == "healthy":
        return Progress.finished()
    if verdict == "unhealthy":
        last = state.probes[-1]
        why = last.error or f"status {last.status}, expected {spec.expected_status}"
        return run.fail(
            "health_check_failed",
            f"health check of {mask_url(spec.url)} failed {spec.unhealthy_threshold} times in a row: {why}",
            Trigger.HEALTH_CHECK,
        )
    return Progress.wait(float(spec.interval_seconds or rt.settings.health_interval_default_seconds))


#: the stopped tasks a failed deployment's result names, most recently stopped first
STOPPED_TASKS_SHOWN = 20


def collect_diagnostics(rt: Runtime, state: PipelineState) -> None:
    """Gather stopped tasks and service events since the deployment started (best effort).

    The service events come through the stages' reader: the look that just settled the rollback (moments
    ago, in this run) serves them unless a write moved the service since, one DescribeServices less.
    """
    service = rt.services(state.region).describe_service(state.cluster, state.service)
    # With ECS's events the tasks that stopped are in the deployment's book already; without them
    # (or when they were lost) ListTasks and DescribeTasks find them.
    booked = [t for t in rt.agenda.stopped_tasks(state.deployment_id) if started_since(t, state.started_at)]
    stopped = sorted(booked, key=stopped_order, reverse=True)[:STOPPED_TASKS_SHOWN]
    if not stopped:
        stopped = rt.ecs(state.region).list_stopped_tasks(
            state.cluster, state.service, started_after=state.started_at, limit=STOPPED_TASKS_SHOWN
        )
    state.diagnostics["stopped_tasks"] = [
        {
            "task_arn": t.get("taskArn", ""),
            "stopped_reason": t.get("stoppedReason", ""),
            "stop_code": t.get("stopCode"),
            "exit_codes": {c.get("name", ""): c.get("exitCode") for c in t.get("containers", [])},
        }
        for t in stopped
    ]
    events = []
    for event in service.get("events") or []:
        created = ecs_time(event.get("createdAt"))  # a snapshot's times are ISO strings
        if created is not None and created < state.started_at:
            continue
        events.append(str(event.get("message", "")))
    state.diagnostics["service_events"] = events[:50]


def build_result(state: PipelineState) -> DeploymentResult:
    """Return the final DeploymentResult for a state whose stages have all run."""
    order = strategy_for(state.strategy).stages
    return DeploymentResult.model_validate(plan_result(state, request_of(state), order))
