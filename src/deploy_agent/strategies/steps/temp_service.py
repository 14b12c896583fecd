"""The temporary (green or canary) service beside the original, and the load-balancer preflight.

The facts are written to the memory before the AWS call they describe: ``temp_service`` and
``temp_created`` before CreateService (a crash leaves a name we can delete), ``temp_delete_sent``
after DeleteService (sent again after a crash: deleting a deleted service is a no-op).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from deploy_agent.core.errors import AwsNotFound
from deploy_agent.core.outcome import Trigger
from deploy_agent.core.preflight import check_load_balancer_setup
from deploy_agent.core.rollout import RolloutState, assess_rollout
from deploy_agent.core.traffic import plan_rule_shifts
from deploy_agent.strategies.base import Progress, Run
from deploy_agent.strategies.steps.gates import alarm_names, probe_until_verdict, with_path
from deploy_agent.strategies.steps.memory import TrafficMemory
from deploy_agent.strategies.steps.recipe import load_balancer


def temp_service_name(service: str, deployment_id: str, kind: str) -> str:
    """Return the temporary service's name: ``<service>-<kind>-<deployment id>``, ECS-safe."""
    suffix = re.sub(r"[^A-Za-z0-9_-]", "-", deployment_id)[:32]
    return f"{service}-{kind}-{suffix}"[:255]


# --- pre-flight ---------------------------------------------------------------------------------
def check_traffic_setup(run: Run[TrafficMemory]) -> Progress:
    """Refuse the deployment (nothing touched) when the load-balancer setup it names is unusable."""
    lb, state, elb = load_balancer(run), run.state, run.ports.elb
    listener = _maybe(lambda: elb.describe_listener(lb.listener_arn))
    blue = _maybe(lambda: elb.describe_target_group(lb.blue_target_group_arn))
    green = _maybe(lambda: elb.describe_target_group(lb.green_target_group_arn))
    test_arn = lb.test_listener_arn
    test = _maybe(lambda: elb.describe_listener(test_arn)) if test_arn else None
    service = run.ports.ecs.describe_service(state.cluster, state.service)
    balancers = list(service.get("loadBalancers") or [])
    rules = elb.describe_rules(lb.listener_arn) if listener is not None else []
    problems = check_load_balancer_setup(
        listener=listener,
        blue_tg=blue,
        green_tg=green,
        test_listener=test,
        container_port=next((int(b["containerPort"]) for b in balancers if b.get("containerPort")), None),
        service_load_balancers=balancers,
        blue_arn=lb.blue_target_group_arn,
        green_arn=lb.green_target_group_arn,
        test_listener_arn=lb.test_listener_arn,
        rules=rules,
    )
    names = alarm_names(run)
    missing = run.ports.alarms.missing_alarms(names) if names else []
    rejections = [p.as_dict() for p in problems] + [
        {"field": "rollback.alarm_names", "problem": f"alarm {name!r} does not exist"} for name in missing
    ]
    if rejections:
        state.rejections = rejections
        summary = "; ".join(f"{r['field']}: {r['problem']}" for r in rejections)
        return run.fail(
            "preflight_failed", f"the load-balancer setup cannot be used: {summary}", Trigger.ERROR
        )
    assert listener is not None
    memory = run.memory
    memory.original_actions = list(listener.get("DefaultActions") or [])
    # the rules that forward to blue move with the default action; their actions, restored exactly
    memory.original_rules = plan_rule_shifts(
        rules, lb.blue_target_group_arn, lb.green_target_group_arn
    ).shifted
    memory.desired = int(run.request.desired_count or service.get("desiredCount") or 1)
    return Progress.finished()


def _maybe(fetch: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    try:
        return fetch()
    except AwsNotFound:
        return None


# --- the temporary service ---------------------------------------------------------------------
def create_temp_service(kind: str) -> Callable[[Run[TrafficMemory]], Progress]:
    """Return the step that creates the ``kind`` service on the new revision in the green group."""

    def step(run: Run[TrafficMemory]) -> Progress:
        memory, state, ecs = run.memory, run.state, run.ports.ecs
        if memory.temp_created and _temp_exists(run):
            return Progress.finished()
        name = memory.temp_service or temp_service_name(state.service, state.deployment_id, kind)
        memory.temp_service, memory.temp_created = name, True
        state.update_requested_at = state.update_requested_at or run.now()
        run.save()  # recorded before CreateService: a crash leaves a name we can delete
        template = ecs.describe_service(state.cluster, state.service)
        assert state.task_definition_arn is not None
        lb = load_balancer(run)
        # Only the entries on blue move to green: an entry on another target group (a second load
        # balancer) would send that balancer's production traffic to an unverified release.
        template = {
            **template,
            "loadBalancers": [
                b
                for b in template.get("loadBalancers") or []
                if b.get("targetGroupArn") == lb.blue_target_group_arn
            ],
        }
        memory.temp_created_at = run.now()
        ecs.create_service(
            state.cluster,
            template,
            name,
            state.task_definition_arn,
            lb.green_target_group_arn,
            memory.desired,
        )
        run.emit(f"{kind}_service_created", service=name, desired=memory.desired)
        return Progress.finished()

    return step


def _temp_exists(run: Run[TrafficMemory]) -> bool:
    """Did our CreateService reach ECS? (False after a crash between recording it and sending it.)"""
    assert run.memory.temp_service is not None
    try:
        run.ports.ecs.describe_service(run.state.cluster, run.memory.temp_service)
    except AwsNotFound:
        return False
    return True


def wait_temp_service(run: Run[TrafficMemory]) -> Progress:
    """Wait until the temporary service's deployment completed; fail when ECS's circuit breaker says so.

    The service is created with the breaker on and rollback off, so ECS marks its deployment
    FAILED once its tasks keep failing (half the desired count, 3 to 200); ``failedTasks`` is no
    signal of ours, it resets to 0 when any task runs. Right after CreateService, DescribeServices
    may answer MISSING (ECS is eventually consistent: docs.aws.amazon.com/AmazonECS/latest/
    APIReference/ECS_Eventual_Consistency.html): tolerated for ``temp_missing_grace_seconds``.
    """
    memory, state = run.memory, run.state
    name = memory.temp_service
    assert state.task_definition_arn is not None
    assert name is not None
    try:
        service = run.ports.ecs.describe_service(state.cluster, name)
    except AwsNotFound:
        created = memory.temp_created_at or run.now()
        grace = run.tunables.temp_missing_grace_seconds
        if (run.now() - created).total_seconds() < grace:
            return Progress.wait(run.poll_seconds)
        return run.fail(
            "rollout_failed",
            f"the temporary service {name} was created but ECS still does not list it after {grace:.0f} s",
            Trigger.ERROR,
        )
    verdict = assess_rollout(service, None, state.task_definition_arn)
    if verdict.state is RolloutState.COMPLETED:
        return Progress.finished()
    if verdict.state is RolloutState.FAILED:
        return run.fail(
            "rollout_failed",
            f"the new release's tasks in {name} failed {verdict.failed_tasks} times "
            f"before becoming healthy {verdict.reason}".rstrip(),
            Trigger.HEALTH_CHECK,
        )
    return Progress.wait(run.poll_seconds)


def verify_temp_service(run: Run[TrafficMemory]) -> Progress:
    """Check the new release before production traffic: target health, then the test URL if given."""
    memory, lb = run.memory, load_balancer(run)
    health = run.ports.elb.describe_target_health(lb.green_target_group_arn)
    states = [str(t.get("TargetHealth", {}).get("State")) for t in health]
    if states.count("healthy") < memory.desired:
        if states.count("unhealthy") >= memory.desired:
            return run.fail(
                "health_check_failed", "the new release's targets are unhealthy", Trigger.HEALTH_CHECK
            )
        return Progress.wait(run.poll_seconds)
    if not lb.test_url:
        return Progress.finished()
    return probe_until_verdict(run, with_path(lb.test_url, run), "test listener")


def delete_temp_service(run: Run[TrafficMemory]) -> Progress:
    """Delete the temporary service; sent again after a crash (deleting a deleted service is a no-op)."""
    memory = run.memory
    if memory.temp_created and memory.temp_service and not memory.temp_delete_sent:
        run.save()
        run.ports.ecs.delete_service(run.state.cluster, memory.temp_service)
        memory.temp_delete_sent = True
        run.emit("temporary_service_deleted", service=memory.temp_service)
    return Progress.finished()
