"""Steps shared by blue_green and canary: a temporary service, listener weights, and their undoing.

Durable facts live in ``state.strategy_state`` and are written before the AWS call they describe:

    temp_service        name of the green/canary service (set before CreateService)
    temp_created        CreateService was sent
    temp_deleted        DeleteService was sent
    original_actions    the listener's DefaultActions before we touched it (restored exactly)
    original_rules      {rule ARN: Actions} of the listener rules forwarding to blue, shifted with
                        the default action and restored exactly (recorded in preflight)
    listener_changed    we modified the listener at least once
    listener_restored   the recorded actions were put back
    step                index of the recipe step in progress
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from deploy_agent.core.errors import AwsNotFound
from deploy_agent.core.outcome import Trigger
from deploy_agent.core.preflight import check_load_balancer_setup
from deploy_agent.core.rollout import RolloutState, assess_rollout
from deploy_agent.core.traffic import listener_forward_weights, plan_rule_shifts
from deploy_agent.strategies.base import Progress, Run
from deploy_agent.strategies.gates import alarm_names, probe_until_verdict, with_path

# the recipes (blue_green, canary) call the gates through this module
from deploy_agent.strategies.gates import check_gates as check_gates
from deploy_agent.strategies.gates import gate_pause as gate_pause
from deploy_agent.strategies.rolling import deadline_message, revert_service, update_and_follow

Step = tuple[str, Callable[[Run], Progress]]


#: how long DescribeServices may answer MISSING for a service we just created, in seconds: the ECS
#: API is eventually consistent (docs.aws.amazon.com/AmazonECS/latest/APIReference/
#: ECS_Eventual_Consistency.html); about 30 s covers what is reported
TEMP_MISSING_GRACE_SECONDS = 30.0


def run_recipe(run: Run, steps: Sequence[Step]) -> Progress:
    """Advance the recipe from its saved step; stop at the first step that waits or fails."""
    ss = run.state.strategy_state
    index = int(ss.get("step", 0))
    while index < len(steps):
        name, step = steps[index]
        if run.state.past_deadline(run.now()):
            run.state.fail("deadline_exceeded", deadline_message(run), Trigger.DEADLINE)
            return Progress.finished()
        progress = step(run)
        if run.state.failure is not None:
            ss["failed_step"] = name
            return Progress.finished()
        if not progress.done:
            return progress
        index += 1
        ss["step"] = index
        run.emit("step_finished", step=name)
    return Progress.finished()


def load_balancer(run: Run) -> dict[str, Any]:
    spec: dict[str, Any] = (run.request.get("strategy") or {}).get("load_balancer") or {}
    return spec


def temp_service_name(run: Run, kind: str) -> str:
    """Return the temporary service's name: ``<service>-<kind>-<deployment id>``, ECS-safe."""
    suffix = re.sub(r"[^A-Za-z0-9_-]", "-", run.state.deployment_id)[:32]
    return f"{run.state.service}-{kind}-{suffix}"[:255]


# --- pre-flight ---------------------------------------------------------------------------------
def preflight(run: Run) -> Progress:
    """Refuse the deployment (nothing touched) when the load-balancer setup it names is unusable."""
    lb = load_balancer(run)
    state = run.state
    listener = _maybe(lambda: run.elb.describe_listener(lb["listener_arn"]))
    blue = _maybe(lambda: run.elb.describe_target_group(lb["blue_target_group_arn"]))
    green = _maybe(lambda: run.elb.describe_target_group(lb["green_target_group_arn"]))
    test = (
        _maybe(lambda: run.elb.describe_listener(lb["test_listener_arn"]))
        if lb.get("test_listener_arn")
        else None
    )
    service = run.ecs.describe_service(state.cluster, state.service)
    balancers = list(service.get("loadBalancers") or [])
    rules = run.elb.describe_rules(lb["listener_arn"]) if listener is not None else []
    problems = check_load_balancer_setup(
        listener=listener,
        blue_tg=blue,
        green_tg=green,
        test_listener=test,
        container_port=next((int(b["containerPort"]) for b in balancers if b.get("containerPort")), None),
        service_load_balancers=balancers,
        blue_arn=lb["blue_target_group_arn"],
        green_arn=lb["green_target_group_arn"],
        test_listener_arn=lb.get("test_listener_arn"),
        rules=rules,
    )
    missing = run.alarms.missing_alarms(alarm_names(run)) if alarm_names(run) else []
    rejections = [p.as_dict() for p in problems] + [
        {"field": "rollback.alarm_names", "problem": f"alarm {name!r} does not exist"} for name in missing
    ]
    if rejections:
        state.rejections = rejections
        summary = "; ".join(f"{r['field']}: {r['problem']}" for r in rejections)
        state.fail("preflight_failed", f"the load-balancer setup cannot be used: {summary}", Trigger.ERROR)
        return Progress.finished()
    assert listener is not None
    state.strategy_state["original_actions"] = listener.get("DefaultActions") or []
    # the rules that forward to blue move with the default action; their actions, restored exactly
    state.strategy_state["original_rules"] = plan_rule_shifts(
        rules, lb["blue_target_group_arn"], lb["green_target_group_arn"]
    ).shifted
    state.strategy_state["desired"] = int(
        run.request.get("desired_count") or service.get("desiredCount") or 1
    )
    return Progress.finished()


def _maybe(fetch: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    try:
        return fetch()
    except AwsNotFound:
        return None


# --- the temporary service ---------------------------------------------------------------------
def create_temp_service(kind: str) -> Callable[[Run], Progress]:
    def step(run: Run) -> Progress:
        ss, state = run.state.strategy_state, run.state
        if ss.get("temp_created") and _temp_exists(run):
            return Progress.finished()
        ss["temp_service"] = ss.get("temp_service") or temp_service_name(run, kind)
        ss["temp_created"] = True
        state.update_requested_at = state.update_requested_at or run.now()
        run.save()  # recorded before CreateService: a crash leaves a name we can delete
        template = run.ecs.describe_service(state.cluster, state.service)
        assert state.task_definition_arn is not None
        blue = load_balancer(run)["blue_target_group_arn"]
        # Only the entries on blue move to green: an entry on another target group (a second load
        # balancer) would send that balancer's production traffic to an unverified release.
        template = {
            **template,
            "loadBalancers": [
                b for b in template.get("loadBalancers") or [] if b.get("targetGroupArn") == blue
            ],
        }
        ss["temp_created_at"] = run.now().isoformat()
        run.ecs.create_service(
            state.cluster,
            template,
            ss["temp_service"],
            state.task_definition_arn,
            load_balancer(run)["green_target_group_arn"],
            int(ss["desired"]),
        )
        run.emit(f"{kind}_service_created", service=ss["temp_service"], desired=ss["desired"])
        return Progress.finished()

    return step


def _temp_exists(run: Run) -> bool:
    """Did our CreateService reach ECS? (False after a crash between recording it and sending it.)"""
    ss = run.state.strategy_state
    try:
        run.ecs.describe_service(run.state.cluster, ss["temp_service"])
    except AwsNotFound:
        return False
    return True


def wait_temp_service(run: Run) -> Progress:
    """Wait until the temporary service's deployment completed; fail when ECS's circuit breaker says so.

    The service is created with the breaker on and rollback off, so ECS marks its deployment
    FAILED once its tasks keep failing (half the desired count, 3 to 200); ``failedTasks`` is no
    signal of ours, it resets to 0 when any task runs. Right after CreateService, DescribeServices
    may answer MISSING (ECS is eventually consistent): tolerated for ``TEMP_MISSING_GRACE_SECONDS``.
    """
    ss, state = run.state.strategy_state, run.state
    assert state.task_definition_arn is not None
    try:
        service = run.ecs.describe_service(state.cluster, ss["temp_service"])
    except AwsNotFound:
        created = datetime.fromisoformat(ss.get("temp_created_at") or run.now().isoformat())
        grace = float(run.extras.get("temp_missing_grace_seconds", TEMP_MISSING_GRACE_SECONDS))
        if (run.now() - created).total_seconds() < grace:
            return Progress.wait(run.poll_seconds)
        state.fail(
            "rollout_failed",
            f"the temporary service {ss['temp_service']} was created but ECS still does not list it "
            f"after {grace:.0f} s",
            Trigger.ERROR,
        )
        return Progress.finished()
    verdict = assess_rollout(service, None, state.task_definition_arn)
    if verdict.state is RolloutState.COMPLETED:
        return Progress.finished()
    if verdict.state is RolloutState.FAILED:
        state.fail(
            "rollout_failed",
            f"the new release's tasks in {ss['temp_service']} failed {verdict.failed_tasks} times "
            f"before becoming healthy {verdict.reason}".rstrip(),
            Trigger.HEALTH_CHECK,
        )
        return Progress.finished()
    return Progress.wait(run.poll_seconds)


def verify_temp_service(run: Run) -> Progress:
    """Check the new release before production traffic: target health, then the test URL if given."""
    ss, lb = run.state.strategy_state, load_balancer(run)
    health = run.elb.describe_target_health(lb["green_target_group_arn"])
    states = [str(t.get("TargetHealth", {}).get("State")) for t in health]
    if states.count("healthy") < int(ss["desired"]):
        if states.count("unhealthy") >= int(ss["desired"]):
            run.state.fail(
                "health_check_failed", "the new release's targets are unhealthy", Trigger.HEALTH_CHECK
            )
            return Progress.finished()
        return Progress.wait(run.poll_seconds)
    if not lb.get("test_url"):
        return Progress.finished()
    return probe_until_verdict(run, "test_probes", with_path(lb["test_url"], run), "test listener")


def delete_temp_service(run: Run) -> Progress:
    """Delete the temporary service; sent again after a crash (deleting a deleted service is a no-op)."""
    ss, state = run.state.strategy_state, run.state
    if ss.get("temp_created") and not ss.get("temp_delete_sent"):
        ss["temp_deleted"] = True
        run.save()
        run.ecs.delete_service(state.cluster, ss["temp_service"])
        ss["temp_delete_sent"] = True
        run.emit("temporary_service_deleted", service=ss["temp_service"])
    return Progress.finished()


# --- traffic ------------------------------------------------------------------------------------
def shift_traffic(run: Run, weights: dict[str, int], label: str) -> None:
    """Set the listener's forward weights, recording the original actions first; probe while it moves."""
    ss, lb = run.state.strategy_state, load_balancer(run)
    listener = run.elb.describe_listener(lb["listener_arn"])
    if "original_actions" not in ss:
        ss["original_actions"] = listener.get("DefaultActions") or []
    already = _positive(listener_forward_weights(listener)) == _positive(weights)
    if ss.get("shifting") == label and already:
        ss[f"shifted:{label}"] = True  # a redelivered step whose change already took effect
        return
    ss["listener_changed"] = True
    ss["shifting"] = label
    ss["weights"] = weights
    run.save()  # the exact actions to restore are durable before the listener changes
    with _zero_downtime(run, label):
        # rules first: a redelivered step that finds the default action shifted knows they are too
        for rule_arn, actions in (ss.get("original_rules") or {}).items():
            run.elb.set_rule_forward_weights(rule_arn, actions, weights)
        run.elb.set_forward_weights(lb["listener_arn"], weights)
    ss[f"shifted:{label}"] = True
    run.emit("traffic_shifted", weights={_short(k): v for k, v in weights.items()}, label=label)


def restore_listener(run: Run) -> Progress:
    """Put the listener's recorded DefaultActions back exactly (idempotent)."""
    ss, lb = run.state.strategy_state, load_balancer(run)
    if ss.get("listener_changed") and not ss.get("listener_restored"):
        with _zero_downtime(run, "restore"):
            for rule_arn, actions in (ss.get("original_rules") or {}).items():
                run.elb.restore_rule_actions(rule_arn, actions)
            run.elb.restore_default_actions(lb["listener_arn"], ss["original_actions"])
        ss["listener_restored"] = True
        run.emit("traffic_restored", listener=_short(lb["listener_arn"]))
    return Progress.finished()


class _zero_downtime:
    """Probe the production URL while a listener change takes effect; add the result to the state."""

    def __init__(self, run: Run, label: str) -> None:
        self.run, self.label = run, label
        url = load_balancer(run).get("production_url") or (run.request.get("health_check") or {}).get("url")
        self.probe = run.traffic_probe(url) if (url and run.traffic_probe is not None) else None

    def __enter__(self) -> None:
        if self.probe is not None:
            self.probe.start()

    def __exit__(self, *exc: object) -> None:
        if self.probe is None:
            return
        self.run.extras.get("settle", lambda: None)()  # keep probing while the change propagates
        report = self.probe.stop()
        total = self.run.state.zero_downtime or {"requests": 0, "failures": 0, "longest_gap_ms": 0.0}
        total = {
            "requests": total["requests"] + report.requests,
            "failures": total["failures"] + report.failures,
            "longest_gap_ms": max(float(total["longest_gap_ms"]), float(report.longest_gap_ms)),
        }
        self.run.state.zero_downtime = total
        self.run.emit(
            "zero_downtime_checked", label=self.label, requests=report.requests, failures=report.failures
        )
        hook = self.run.extras.get("on_zero_downtime")
        if hook is not None:
            hook(report)


def _positive(weights: dict[str, int]) -> dict[str, int]:
    return {arn: weight for arn, weight in weights.items() if weight > 0}


def _short(arn: str) -> str:
    return arn.rsplit("/", 2)[-2] if arn.count("/") >= 2 else arn


# --- promotion and undo -------------------------------------------------------------------------
def update_original_service(run: Run) -> Progress:
    """Roll the original service onto the new task definition and follow it (the rolling recipe)."""
    run.state.strategy_state["original_updated"] = True
    return update_and_follow(run)


def undo(run: Run) -> Progress:
    """Return everything to the state before the deployment: listener, original service, temp service."""
    ss, state = run.state.strategy_state, run.state
    if not (ss.get("temp_created") or ss.get("listener_changed") or ss.get("original_updated")):
        return Progress.skip()
    if not ss.get("undo_started"):
        ss["undo_started"] = True
        run.emit("rollback_started", trigger=str(state.failure.trigger) if state.failure else None)
    restore_listener(run)
    enabled = bool((state.request.get("rollback") or {}).get("enabled", True))
    if ss.get("original_updated") and enabled:
        progress = revert_service(run)
        if not progress.done:
            return progress
    delete_temp_service(run)
    reverted = not ss.get("original_updated") or (enabled and state.rollback_done)
    if reverted and not state.rollback_failed:
        state.rollback_requested = True
        state.rollback_done = True
    run.emit("rollback_finished", reverted=reverted)
    return Progress.finished()
