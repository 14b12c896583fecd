"""The listener's weights: shift them, put the recorded actions back, and watch each change.

A change is watched for dropped requests from before it is made until ``tunables.settle_seconds``
after (``core.ports.TrafficWatchPort``). The step makes the change and returns a wait; a later look
reads the watch's report, so no worker process sleeps while the change propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta

from deploy_agent.core.traffic import ZeroDowntimeReport, listener_forward_weights
from deploy_agent.strategies.base import Progress, Run
from deploy_agent.strategies.steps.memory import ListenerChange, TrafficMemory
from deploy_agent.strategies.steps.recipe import load_balancer

#: how long past the settle time a look waits for the watch's report before calling it lost
REPORT_GRACE_SECONDS = 10.0
RESTORE = "restore"


def shift_traffic(run: Run[TrafficMemory], weights: Mapping[str, int], label: str) -> Progress:
    """Set the listener's forward weights (rules first), recording the original actions first."""
    memory, lb = run.memory, load_balancer(run)
    if label in memory.shifted:
        return Progress.finished()
    if memory.watching is not None and memory.watching.label == label:
        return _settled(run, memory.watching)
    listener = run.ports.elb.describe_listener(lb.listener_arn)
    if memory.original_actions is None:
        memory.original_actions = list(listener.get("DefaultActions") or [])
    if memory.shifting == label and _positive(listener_forward_weights(listener)) == _positive(weights):
        # A redelivered step whose change took effect before the worker died: the watch died with
        # it, so the change stands unmeasured.
        memory.shifted.append(label)
        if _production_url(run) is not None:
            run.emit("zero_downtime_unmeasured", label=label)
        return Progress.finished()
    memory.listener_changed = True
    memory.shifting = label
    run.save()  # the exact actions to restore are durable before the listener changes

    def change() -> None:
        # rules first: a redelivered step that finds the default action shifted knows they are too
        for rule_arn, actions in memory.original_rules.items():
            run.ports.elb.set_rule_forward_weights(rule_arn, actions, weights)
        run.ports.elb.set_forward_weights(lb.listener_arn, weights)

    progress = _watched(run, label, change)
    run.emit("traffic_shifted", weights={_short(k): v for k, v in weights.items()}, label=label)
    return progress


def restore_listener(run: Run[TrafficMemory]) -> Progress:
    """Put the listener's recorded DefaultActions (and rules) back exactly (idempotent)."""
    memory, lb = run.memory, load_balancer(run)
    if not memory.listener_changed or memory.listener_restored:
        return Progress.finished()
    if memory.watching is not None and memory.watching.label == RESTORE:
        progress = _settled(run, memory.watching)
    else:
        original = memory.original_actions or []

        def change() -> None:
            for rule_arn, actions in memory.original_rules.items():
                run.ports.elb.restore_rule_actions(rule_arn, actions)
            run.ports.elb.restore_default_actions(lb.listener_arn, original)

        progress = _watched(run, RESTORE, change)
        run.emit("traffic_restored", listener=_short(lb.listener_arn))
    if progress.done:
        memory.listener_restored = True
    return progress


def _watched(run: Run[TrafficMemory], label: str, change: Callable[[], None]) -> Progress:
    """Make ``change`` under the zero-downtime watch; return a wait for its report (or finished)."""
    url = _production_url(run)
    seconds = run.tunables.settle_seconds
    if url is None or seconds <= 0:
        change()
        if label != RESTORE:
            run.memory.shifted.append(label)
        return Progress.finished()
    key = f"{run.state.deployment_id}:{label}"
    run.ports.traffic.begin(key, url)
    change()
    run.ports.traffic.end_after(key, seconds)
    run.memory.watching = ListenerChange(label=label, key=key, until=run.now() + timedelta(seconds=seconds))
    return Progress.wait(seconds)


def _settled(run: Run[TrafficMemory], change: ListenerChange) -> Progress:
    """Take the watch's report into the state once it is in; finished when taken (or lost)."""
    report = run.ports.traffic.report(change.key)
    late = (run.now() - change.until).total_seconds()
    if report is None and late < REPORT_GRACE_SECONDS:
        return Progress.wait(max(run.tunables.poll.fast, 0.05))
    if report is None:
        # The process that watched died before storing the report: the change stands, unmeasured.
        run.emit("zero_downtime_unmeasured", label=change.label)
    else:
        _add_report(run, change.label, report)
    run.memory.watching = None
    if change.label != RESTORE:
        run.memory.shifted.append(change.label)
    return Progress.finished()


def _add_report(run: Run[TrafficMemory], label: str, report: ZeroDowntimeReport) -> None:
    total = run.state.zero_downtime or {"requests": 0, "failures": 0, "longest_gap_ms": 0.0}
    run.state.zero_downtime = {
        "requests": int(total["requests"]) + report.requests,
        "failures": int(total["failures"]) + report.failures,
        "longest_gap_ms": max(float(total["longest_gap_ms"]), float(report.longest_gap_ms)),
    }
    run.emit("zero_downtime_checked", label=label, requests=report.requests, failures=report.failures)


def _production_url(run: Run[TrafficMemory]) -> str | None:
    lb = load_balancer(run)
    if lb.production_url:
        return lb.production_url
    health = run.request.health_check
    return health.url if health is not None else None


def _positive(weights: Mapping[str, int]) -> dict[str, int]:
    return {arn: weight for arn, weight in weights.items() if weight > 0}


def _short(arn: str) -> str:
    return arn.rsplit("/", 2)[-2] if arn.count("/") >= 2 else arn
