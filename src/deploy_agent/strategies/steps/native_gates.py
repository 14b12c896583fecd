"""The gates at each of ECS's PAUSE hooks: what is checked at which point of a native deployment.

- after test traffic: the new revision through the test listener rule (``test_url``), then a human's
  approval when the operator's policy asks for one (the approval is this PAUSE hook);
- before production traffic and after each step: the zero-downtime report of the step just taken
  (``production_url`` probed from one hook to the next), then every gate of ``hold_gates``
  (health and latency, CloudWatch alarms, Prometheus analysis), held until the analysis decided.
"""

from __future__ import annotations

from pydantic import Field

from deploy_agent.core.ecs_native import TEST_POINT
from deploy_agent.core.outcome import Trigger
from deploy_agent.models.strategy import NativeStrategyOptions
from deploy_agent.strategies.base import Progress, Run
from deploy_agent.strategies.steps.approval import await_approval
from deploy_agent.strategies.steps.gates import hold_gates, probe_until_verdict, with_path
from deploy_agent.strategies.steps.memory import TrafficMemory

#: how long a look waits for a watch's report before calling the step unmeasured
REPORT_GRACE_SECONDS = 10.0


class NativeGateMemory(TrafficMemory):
    """The zero-downtime watch running from one hook to the next."""

    #: the watch's key and the point it began at
    watch_key: str | None = None
    watch_from: str | None = None
    watch_ended: bool = False
    #: points whose step was judged free of dropped requests (or unmeasured)
    watched: list[str] = Field(default_factory=list)


def judge_point(run: Run[NativeGateMemory], point: str) -> Progress:
    """Run the gates of one hook point; finished = all passed, a failure is recorded on the run."""
    options = run.request.strategy
    assert isinstance(options, NativeStrategyOptions)
    if point == TEST_POINT:
        if options.test_url:
            checked = probe_until_verdict(run, with_path(options.test_url, run), "test listener")
            if not checked.done or run.state.failure is not None:
                return checked
        return await_approval(run)
    watched = _step_watched(run, point, options.production_url)
    if not watched.done or run.state.failure is not None:
        return watched
    return hold_gates(run, point, 0.0)


def begin_watch(run: Run[NativeGateMemory], point: str) -> None:
    """Start probing the production URL for the traffic shift that follows this hook's answer."""
    options, memory = run.request.strategy, run.memory
    if not isinstance(options, NativeStrategyOptions) or not options.production_url or point == TEST_POINT:
        return
    key = f"{run.state.deployment_id}:native:{point}"
    run.ports.traffic.begin(key, options.production_url)
    memory.watch_key, memory.watch_from, memory.watch_ended = key, point, False


def _step_watched(run: Run[NativeGateMemory], point: str, url: str | None) -> Progress:
    """End the watch begun at the previous hook and judge its report (dropped requests fail the step)."""
    memory = run.memory
    if url is None or memory.watch_key is None or point in memory.watched:
        return Progress.finished()
    key = memory.watch_key
    if not memory.watch_ended:
        run.ports.traffic.end_after(key, 0.0)
        memory.watch_ended = True
        memory.pause_started[f"watch:{point}"] = run.now()
    report = run.ports.traffic.report(key)
    waited = (run.now() - memory.pause_started[f"watch:{point}"]).total_seconds()
    if report is None and waited < REPORT_GRACE_SECONDS:
        return Progress.wait(max(run.tunables.poll.fast, 0.05))
    memory.watched.append(point)
    memory.watch_key = None
    if report is None:
        run.emit("zero_downtime_unmeasured", label=point)
        return Progress.finished()
    total = run.state.zero_downtime or {"requests": 0, "failures": 0, "longest_gap_ms": 0.0}
    run.state.zero_downtime = {
        "requests": int(total["requests"]) + report.requests,
        "failures": int(total["failures"]) + report.failures,
        "longest_gap_ms": max(float(total["longest_gap_ms"]), float(report.longest_gap_ms)),
    }
    run.emit("zero_downtime_checked", label=point, requests=report.requests, failures=report.failures)
    if report.had_downtime:
        return run.fail(
            "zero_downtime_gate_failed",
            f"{point}: {report.failures} of {report.requests} requests to the production URL failed "
            f"while ECS shifted traffic (longest gap {report.longest_gap_ms:.0f} ms)",
            Trigger.HEALTH_CHECK,
        )
    return Progress.finished()
