"""Prometheus metrics of the pipeline (``deploy_agent_*``).

Under the prefork pool these live in multiprocess mode: the worker sets
``PROMETHEUS_MULTIPROC_DIR`` before the pool forks and serves the aggregate once per host.
Labels never carry deployment ids, digests or other unbounded values.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from deploy_agent.core.ecs_events import DETAIL_TYPES as ECS_DETAIL_TYPES
from deploy_agent.core.ecs_events import EVENT_RESULTS
from deploy_agent.core.outcome import Trigger
from deploy_agent.strategies import registry

# Deployments take seconds in the sandbox and up to an hour on a big service.
DURATION_BUCKETS = (1, 2.5, 5, 10, 20, 30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 2700, 3600)
SHORT_BUCKETS = (0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

DEPLOYMENTS = Counter(
    "deploy_agent_deployments", "Deployments finished, by strategy and outcome.", ["strategy", "outcome"]
)
ROLLBACKS = Counter("deploy_agent_rollbacks", "Rollbacks, by what triggered them.", ["strategy", "trigger"])
DEPLOYMENT_SECONDS = Histogram(
    "deploy_agent_deployment_duration_seconds",
    "Time from accepting a deployment to its final outcome.",
    ["strategy", "outcome"],
    buckets=DURATION_BUCKETS,
)
STAGE_SECONDS = Histogram(
    "deploy_agent_stage_duration_seconds",
    "Time spent in each pipeline stage, waits included.",
    ["stage", "strategy"],
    buckets=DURATION_BUCKETS,
)
BUILD_SECONDS = Histogram("deploy_agent_build_duration_seconds", "Docker build time.", buckets=SHORT_BUCKETS)
PUSH_SECONDS = Histogram("deploy_agent_push_duration_seconds", "Image push time.", buckets=SHORT_BUCKETS)
HEALTH_SECONDS = Histogram(
    "deploy_agent_health_check_response_seconds",
    "Response time of the release's HTTP health checks.",
    buckets=LATENCY_BUCKETS,
)
IN_PROGRESS = Gauge(
    "deploy_agent_deployments_in_progress",
    "Deployments accepted and not yet finished (as seen by this host).",
    multiprocess_mode="livesum",
)
LOCK_WAITS = Counter("deploy_agent_lock_waits", "Times a deployment waited for another on its service.")
AWS_THROTTLES = Counter("deploy_agent_aws_throttles", "AWS calls throttled.", ["service", "operation"])
AWS_RATE_LIMIT_WAIT = Histogram(
    "deploy_agent_aws_rate_limit_wait_seconds",
    "Time an AWS request attempt waited for a token of the fleet's shared quota (0 when none).",
    ["service", "operation"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ZERO_DOWNTIME = Counter(
    "deploy_agent_zero_downtime_checks", "Traffic shifts checked for dropped requests, by result.", ["result"]
)
GATE_VERDICTS = Counter(
    "deploy_agent_gate_verdicts",
    "Verdicts of the gates of held steps (health, alarm, latency, prometheus), by result.",
    ["kind", "result"],
)
ECS_EVENTS = Counter(
    "deploy_agent_ecs_events",
    "ECS events read from the events queue, by detail type and what became of them (woken, running, "
    "ignored, unmatched, malformed).",
    ["detail_type", "result"],
)

WATCHER_LOOK_SECONDS = Histogram(
    "deploy_agent_watcher_look_seconds",
    "Time one cluster watcher look at every in-flight service took (ten services per DescribeServices, "
    "waits for the fleet's quota included); looks far above the watch interval mean ECS's events would "
    "wake deployments sooner.",
    buckets=(*LATENCY_BUCKETS, 20, 30, 60),
)

OUTCOMES = ("succeeded", "rolled_back", "failed", "timed_out", "rejected", "superseded", "denied")
GATE_KINDS = ("health", "alarm", "latency", "prometheus")
GATE_RESULTS = ("passed", "failed", "inconclusive")


def initialize_labels() -> None:
    """Create every label combination at 0, so rates and quantiles exist before the first event.

    The strategies, their stages and the rollback triggers each can report come from the registry.
    """
    for name in registry.strategy_names():
        strategy = registry.strategy_for(name)
        for outcome in OUTCOMES:
            DEPLOYMENTS.labels(name, outcome)
            DEPLOYMENT_SECONDS.labels(name, outcome)
        for trigger in {*map(str, strategy.triggers), str(Trigger.MANUAL)}:
            ROLLBACKS.labels(name, trigger)
        for stage in strategy.stages:
            STAGE_SECONDS.labels(stage, name)
    for result in ("ok", "failed"):
        ZERO_DOWNTIME.labels(result)
    for kind in GATE_KINDS:
        for result in GATE_RESULTS:
            GATE_VERDICTS.labels(kind, result)
    for detail_type in ECS_DETAIL_TYPES:
        for result in EVENT_RESULTS:
            if result != "malformed":
                ECS_EVENTS.labels(detail_type, result)
    ECS_EVENTS.labels("unknown", "malformed")
