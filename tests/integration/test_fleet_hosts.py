"""Three worker hosts carry a fleet of deployments; one is SIGKILLed mid-flight; the other two finish it.

The hosts are separate ``deploy-agent worker`` processes (``--concurrency 2``, a node name and a
metrics port each) on one private Redis, with the product's default lease (20 s) and visibility
timeout (7200 s): nothing here shortens them. A stage the dead host was running comes back through
the agenda once its lease lapses, not through Redis's redelivery, which would take two hours; the
dead host's deliveries are still unacknowledged in Redis when the test ends.

The kill comes once every deployment runs its chain (so each stage is on the agenda) and a few have
sent UpdateService, before any has finished, at a moment the victim runs a stage under a lease (it is
frozen while its log and the agenda are read), so each run exercises the lease's lapse. A stage the
dead host was running starts again from its beginning: its ``stage_started`` may show twice, nothing
else may, and no deployment's stages interleave.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import statistics
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import requests
from celery.result import AsyncResult
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from deploy_agent.adapters.agenda import AGENDA, TASK
from deploy_agent.strategies.registry import PIPELINE_ORDER
from ecs_sandbox import Sandbox, provision_service
from ecs_sandbox.blue_green import provision_blue_green
from sandbox_harness.stack import StackConfig, WorkerProcess
from tests.integration.chaos import (
    ChaosStack,
    chaos_stack,
    count_calls,
    is_alive,
    kill_group,
    service_task_definition,
)
from tests.integration.conftest import unique
from tests.integration.test_rolling import served_version
from tests.integration.test_traffic_strategies import bg_request
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

HOSTS = ("fleet-a", "fleet-b", "fleet-c")
ROLLING, BLUE_GREEN = 9, 3
#: deployments that have sent UpdateService before the kill (the rest are earlier or later)
UPDATED_AT_KILL = 3
#: the most a deployment unfinished at the kill may go without a new progress event
RESUME_LIMIT_SECONDS = 60.0
#: kombu's Redis transport: unacknowledged deliveries, by delivery tag
UNACKED = "unacked"
#: Celery's log lines for a task a worker received, and for its end (ignored, succeeded in, raised...)
TASK_LINE = re.compile(r'"message": "Task (deploy_agent\.[\w.]+)\[([0-9a-f-]{36})\] (\w+)')


@dataclass
class Host:
    """A worker host of the fleet and the port its metrics answer on."""

    worker: WorkerProcess
    metrics_port: int

    @property
    def name(self) -> str:
        return str(self.worker.hostname).split("@")[0]


@dataclass
class Member:
    """One deployment of the fleet: its service and what was published for it."""

    cluster: str
    service: str
    svc: Any
    request: dict[str, Any]
    pending: AsyncResult | None = None

    @property
    def deployment_id(self) -> str:
        return str(self.request["deployment_id"])


def start_host(stack: ChaosStack, name: str) -> Host:
    """Start a worker host on ``stack`` with concurrency 2 and a metrics port of its own."""
    port = free_port()
    env = {**stack.config.extra_env, "DEPLOY_AGENT_METRICS_PORT": str(port)}
    config: StackConfig = replace(stack.config, extra_env=env)
    worker = WorkerProcess(config, stack.log_dir / f"{name}.log", concurrency=2, name=name)
    stack.workers.append(worker)
    worker.start()
    return Host(worker, port)


def provision_fleet(sandbox: Sandbox, push_app: Any) -> list[Member]:
    """Provision ROLLING rolling and BLUE_GREEN blue-green services, each with its v2 request."""
    old, new = push_app("v1"), push_app("v2")
    fleet = []
    for i in range(ROLLING):
        cluster, service = "fleet", unique(f"roll{i}")
        svc = provision_service(sandbox, cluster, service, image=old, desired_count=1)
        request = {
            "deployment_id": unique("fleet"),
            "cluster_name": cluster,
            "service_name": service,
            "image": {"uri": new},
            "health_check": {"url": f"{svc.url}/health", "healthy_threshold": 2, "timeout_seconds": 2},
            "timeout_seconds": 150,
        }
        fleet.append(Member(cluster, service, svc, request))
    for i in range(BLUE_GREEN):
        cluster, service = "fleet", unique(f"bg{i}")
        setup = provision_blue_green(sandbox, cluster, service, image=old, desired_count=1)
        request = bg_request(setup, cluster, service, new)
        request["timeout_seconds"] = 150
        fleet.append(Member(cluster, service, setup, request))
    return fleet


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events]


def is_mid_flight(histories: dict[str, list[dict[str, Any]]]) -> bool:
    """Return whether every chain has begun and UPDATED_AT_KILL deployments sent UpdateService.

    Raises when a deployment finished first: the kill would come too late to strike the fleet.
    """
    finished = [d for d, events in histories.items() if "finished" in kinds(events)]
    assert not finished, f"{finished} finished before the fleet was mid-flight"
    begun = all("stage_started" in kinds(events) for events in histories.values())
    updated = sum("service_updated" in kinds(events) for events in histories.values())
    return begun and updated >= UPDATED_AT_KILL


def unacked_deliveries(stack: ChaosStack) -> dict[str, str]:
    """Return the deployment id of every delivery Redis holds unacknowledged, by task id."""
    held = {}
    raw_deliveries: list[bytes] = stack.broker.hvals(UNACKED)  # type: ignore[assignment]
    for raw in raw_deliveries:
        payload = json.loads(raw)[0]
        args, kwargs, _embed = json.loads(base64.b64decode(payload["body"]))
        deployment = args[0] if args else (kwargs.get("request") or {}).get("deployment_id", "?")
        held[str(payload["headers"]["id"])] = str(deployment)
    return held


def open_stages(log_path: Path) -> dict[str, str]:
    """Return the task runs a worker's log shows received and not yet ended that step stages: the
    stage tasks (stage, by task id) and the entry tasks (``deploy``: an entry runs its chain's first
    stages itself)."""
    balance: Counter[str] = Counter()
    stages = {}
    for name, task_id, what in TASK_LINE.findall(log_path.read_text(errors="replace")):
        if name.startswith("deploy_agent.stage.") or name == "deploy_agent.deploy":
            balance[task_id] += 1 if what == "received" else -1
            stages[task_id] = name.removeprefix("deploy_agent.stage.")
    return {task_id: stages[task_id] for task_id, n in balance.items() if n > 0}


def kill_while_it_holds_a_stage(stack: ChaosStack, host: Host, timeout: float = 30) -> dict[str, str]:
    """SIGKILL the host while it runs a stage under a lease; return the stages it held, by task id.

    The host is frozen (SIGSTOP) while its log and the agenda are read, so what they show is what it
    holds when it dies; when it holds no leased stage it is let go (SIGCONT) and looked at again a
    moment later. Celery logs a task's end before the worker acknowledges it, so an open task is
    unacknowledged; one whose agenda entry is ``running`` or ``dispatched`` comes back only when
    its lease lapses (one already put back to ``waiting`` is due again at once).
    """
    pid = host.worker.pid
    assert pid is not None
    deadline = time.monotonic() + timeout
    while True:
        os.killpg(pid, signal.SIGSTOP)
        held = open_stages(host.worker.log_path)
        modes = {stack.state.hget(TASK + task_id, "mode") for task_id in held}
        if modes & {b"running", b"dispatched"}:
            kill_group(host.worker)
            return held
        os.killpg(pid, signal.SIGCONT)
        assert time.monotonic() < deadline, f"{host.name} held no leased stage for {timeout:g} s"
        time.sleep(0.05)


def deployments_counted(port: int) -> float:
    """Return the host's ``deploy_agent_deployments_total``, summed over strategies and outcomes."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "deploy_agent_deployments_total"
    )


def deployments_counted_on_disk(metrics_dir: Path) -> float:
    """Return ``deploy_agent_deployments_total`` from a (dead) worker's multiprocess files."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))
    return sum(
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "deploy_agent_deployments_total"
    )


def assert_stages_ran_one_at_a_time(
    deployment: str, events: list[dict[str, Any]], interrupted: set[str]
) -> None:
    """Assert the deployment's stages ran in pipeline order, each once (the dead host's may restart).

    Two copies of a chain running at once would interleave their stages' events, or finish a stage twice.
    """
    order = [PIPELINE_ORDER.index(e["stage"]) for e in events if e.get("stage")]
    assert order == sorted(order), f"{deployment}: stages interleaved in {kinds(events)}"
    bounds = [e for e in events if e["event"] in ("stage_started", "stage_finished")]
    tally = Counter((e["event"], e["stage"]) for e in bounds)
    repeated = {(kind, stage) for (kind, stage), n in tally.items() if n > 1}
    # The stage the dead host was running is run again from its start (its state was not saved):
    # whichever the run was stepping (a run goes on into the stages that follow at once).
    assert {kind for kind, _stage in repeated} <= {"stage_started"}, f"{deployment}: {repeated} twice"
    assert not repeated or deployment in interrupted, f"{deployment}: {repeated} twice"


def test_a_host_killed_mid_fleet_is_covered_by_the_others_within_a_lease(
    sandbox: Sandbox, stack_config: StackConfig, push_app: Any, tmp_path: Path
) -> None:
    """A host SIGKILLed mid-fleet: every deployment succeeds once, each resumes within 60 s of the kill."""
    fleet = provision_fleet(sandbox, push_app)
    updates_before = count_calls(sandbox, "UpdateService")

    with chaos_stack(stack_config, tmp_path) as stack:
        assert stack.settings.lease_seconds == 20
        assert stack.settings.visibility_timeout_seconds == 7200
        hosts = [start_host(stack, name) for name in HOSTS]
        victim, survivors = hosts[0], hosts[1:]
        started = time.monotonic()
        for member in fleet:
            member.pending = stack.publish(member.request)

        def histories() -> dict[str, list[dict[str, Any]]]:
            return {m.deployment_id: stack.events(m.deployment_id) for m in fleet}

        wait_until(lambda: is_mid_flight(histories()), what="the fleet mid-flight", timeout=90, interval=0.1)
        held_at_kill = kill_while_it_holds_a_stage(stack, victim)
        killed_at = time.monotonic()
        at_kill = histories()
        victim_log_size = victim.worker.log_path.stat().st_size
        unfinished = {d: len(events) for d, events in at_kill.items() if "finished" not in kinds(events)}

        resumed: dict[str, float] = {}

        def all_resumed() -> bool:
            for deployment, seen in unfinished.items():
                if deployment not in resumed and len(stack.events(deployment)) > seen:
                    resumed[deployment] = time.monotonic() - killed_at
            return len(resumed) == len(unfinished)

        wait_until(all_resumed, what="a new event of every unfinished deployment", timeout=90, interval=0.1)
        results = {m.deployment_id: stack.result(m.pending, timeout=150) for m in fleet if m.pending}
        elapsed = time.monotonic() - started
        locks = {m.service: stack.lock_holder(m.cluster, m.service) for m in fleet}
        final = histories()
        held_by_the_dead = unacked_deliveries(stack)
        counted = {h.name: deployments_counted(h.metrics_port) for h in survivors}
        counted[victim.name] = deployments_counted_on_disk(tmp_path / f"metrics-{victim.name}")
        agenda_left = stack.state.zcard(AGENDA)

    updates = count_calls(sandbox, "UpdateService") - updates_before
    figures = sorted(resumed.values())
    rerun = {(held_by_the_dead[t], stage) for t, stage in held_at_kill.items() if t in held_by_the_dead}
    interrupted = {deployment for deployment, _stage in rerun}
    print(
        f"\n[fleet] {len(fleet)} deployments on {len(HOSTS)} hosts, {elapsed:.1f} s; killed {victim.name} "
        f"{killed_at - started:.1f} s in with {len(unfinished)} unfinished; resumed after: worst "
        f"{figures[-1]:.1f} s, median {statistics.median(figures):.1f} s; it held {len(held_at_kill)} "
        f"stage(s), {sorted(rerun)}, resumed after "
        f"{[round(resumed[d], 1) for d in sorted(interrupted) if d in resumed]} s; UpdateService x{updates}; "
        f"deployments counted {counted}"
    )
    outcomes = {d: (r["outcome"], r["error"]) for d, r in results.items()}
    assert all(outcome == "succeeded" for outcome, _error in outcomes.values()), outcomes
    assert len(unfinished) >= len(fleet) // 2, f"only {len(unfinished)} were unfinished at the kill"
    assert figures[-1] <= RESUME_LIMIT_SECONDS, resumed
    # What the dead host held is still unacknowledged: Redis would hand it out again in two hours.
    assert set(held_at_kill) <= set(held_by_the_dead), (held_at_kill, held_by_the_dead)
    assert interrupted <= set(unfinished), (interrupted, unfinished)
    assert locks == {m.service: None for m in fleet}, locks
    for member in fleet:
        result = results[member.deployment_id]
        assert service_task_definition(member.cluster, member.service) == result["task_definition_arn"]
        assert served_version(member.svc) == "v2"
    assert updates == len(fleet), f"UpdateService sent {updates} times for {len(fleet)} deployments"
    for deployment, events in final.items():
        assert_stages_ran_one_at_a_time(deployment, events, interrupted)
    assert agenda_left == 0
    # The dead host ran nothing after the kill; the survivors answer and each counted deployments.
    assert not is_alive(victim.worker)
    assert victim.worker.log_path.stat().st_size == victim_log_size
    assert all(counted[h.name] > 0 for h in survivors), counted
    assert sum(counted.values()) <= len(fleet), counted
