"""deploy-agent against ecs-deploy 1.17 (the peer), side by side on one sandbox, in one run.

The scenario: a rolling image swap of a 2-task service behind an ALB whose tasks take a fixed time
to start, with ECS's circuit breaker on (rollback by ECS). Each round (``--pairs``) deploys a fresh
image tag with (a) ``ecs deploy CLUSTER SERVICE --image app URI --timeout 300`` (its defaults
otherwise: a poll a second, the previous revision deregistered), (b) deploy-agent through the queue
(a dedicated worker process, ``-c 2``, its product defaults: polling, with the cluster watcher;
publish, then ``AsyncResult.get()``), (c) the same with ECS's events: a second worker on Redis
databases of its own, ``DEPLOY_AGENT_EVENTS_QUEUE_URL`` set to the queue ``deploy-agent events
setup`` makes (the sandbox sends ECS's EventBridge events, the rule delivers them to SQS) and (d)
``deploy-agent run FILE`` (no broker). The order within a round rotates from round to round.

Per deployment: wall time from the request to the verdict, AWS API calls counted at the emulated
endpoint, and detection latency: the verdict's time minus the time the sandbox set the deployment's
rolloutState to COMPLETED (or FAILED). Then the failure case: an image whose container exits at
start; ECS's circuit breaker fails the deployment and rolls it back. What did each tool say?

    source .sandbox/env && bench/setup_peer.sh && python bench/compare_ecs_deploy.py --pairs 5
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import inspect
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from common import events_queue, patched_environ
from profiles import add_profile_arguments, describe_profile, profile_knobs

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "123456789012"
ECR_HOST = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
CLUSTER, SERVICE, REPOSITORY = "bench", "web", "web"
ECS_TIMEOUT = 300
SETTLE_SECONDS = 1.0  # after a verdict, before the call counter is read: late calls are counted too
TOOLS = ("ecs-deploy", "deploy-agent worker", "deploy-agent events", "deploy-agent run")
#: the access key id each tool signs with (moto takes any): the endpoint counts each tool's own calls,
#: not the other workers' background calls (the events worker's SQS polling, a watcher's sweep)
CALLER = {
    "ecs-deploy": "BENCHECSDEPLOY",
    "deploy-agent worker": "BENCHWORKER",
    "deploy-agent events": "BENCHEVENTS",
    "deploy-agent run": "BENCHRUN",
}
VERDICT_LINE = re.compile(r"^(Deployment|Rollback) ")  # "Deployment successful", "Deployment Failed! ..."

# Nothing of the caller's may change either tool's defaults or point it elsewhere.
for _name in list(os.environ):
    if _name.startswith(("DEPLOY_AGENT_", "AWS_")) and _name != "DEPLOY_AGENT_BASE_IMAGE":
        del os.environ[_name]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Compare deploy-agent with ecs-deploy 1.17 on the sandbox: wall time, AWS calls, "
        "detection latency, and the verdict on a release ECS's circuit breaker rolled back.",
    )
    parser.add_argument("--pairs", type=int, default=5, help="success rounds, each tool once (default 5)")
    parser.add_argument(
        "--start-delay", type=float, default=8.0, help="seconds a task takes to start (default 8)"
    )
    parser.add_argument(
        "--virtual", action="store_true", help="virtual tasks (no containers; the failure case is skipped)"
    )
    parser.add_argument(
        "--failure",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after the pairs, deploy a crashing image with each tool (default on)",
    )
    parser.add_argument(
        "--failure-runs", type=int, default=3, help="crashing deployments per tool (default 3)"
    )
    add_profile_arguments(parser)
    parser.add_argument(
        "--tools",
        type=lambda text: tuple(t.strip() for t in text.split(",") if t.strip()),
        default=TOOLS,
        help=f"comma-separated, of: {', '.join(TOOLS)} (default: all)",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="print when each of a deployment's AWS calls came (read from the endpoint's counts every 50 ms)",
    )
    parser.add_argument("--ecs", type=Path, default=ROOT / ".bench-peer/bin/ecs", help="the ecs-deploy CLI")
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="sandbox, Redis and logs (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    unknown = [t for t in args.tools if t not in TOOLS]
    if unknown or not args.tools:
        parser.error(f"--tools: unknown {unknown}; known: {', '.join(TOOLS)}")
    return args


# ---------------------------------------------------------------------------------------- machine


def machine_lines(args: argparse.Namespace) -> list[str]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    peer = subprocess.run([str(args.ecs), "--version"], capture_output=True, text=True, check=False)
    import moto

    import deploy_agent

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    prefix = [f"PYTHONPATH={os.environ['PYTHONPATH']}"] if os.environ.get("PYTHONPATH") else []
    return [
        "command: " + shlex.join([*prefix, sys.executable.rsplit("/", 1)[-1], *sys.argv]),
        f"deploy-agent: code from {Path(deploy_agent.__file__).parents[1]} (repository HEAD {head or '?'})",
        f"machine: nproc={os.cpu_count()}, cpu={model}, load average at start {load}",
        f"python: {platform.python_version()} ({sys.executable}); moto {moto.__version__}",
        describe_profile(args),
        f"peer: {peer.stdout.strip() or peer.stderr.strip()} ({args.ecs})",
    ]


# ------------------------------------------------------------------------------------ measurement


@dataclass
class Run:
    """One deployment by one tool."""

    tool: str
    image: str
    started: float
    finished: float = 0.0
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    verdict: str = ""  # "success", "rolled back" (a verdict naming the rollback) or "other"
    detail: str = ""  # what the tool said
    before_td: str = ""
    after_td: str = ""
    previous_active: bool | None = None
    transitions: list[tuple[float, str, str]] = field(default_factory=list)  # (at, deployment id, state)
    moments: list[tuple[float, str]] = field(default_factory=list)  # (at, action) with --trace

    @property
    def wall(self) -> float:
        return self.finished - self.started

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def ended_at(self, states: tuple[str, ...], which: int = 0) -> float | None:
        """Return when the ``which``-th deployment created in this run reached one of ``states``."""
        created = [d for _, d, s in self.transitions if s == "IN_PROGRESS"]
        if len(created) <= which:
            return None
        target = created[which]
        return next((at for at, d, s in self.transitions if d == target and s in states), None)

    def ecs_story(self) -> str:
        """Return when ECS's deployments of this run changed state, from the request on."""
        created: list[str] = []
        marks = []
        for at, deployment, state in self.transitions:
            if deployment not in created:
                created.append(deployment)
            name = "ours" if created.index(deployment) == 0 else f"dep{created.index(deployment) + 1}"
            marks.append(f"{name} {state} +{at - self.started:.1f}")
        return ", ".join(marks)

    def call_story(self) -> str:
        """Return when each AWS call came, from the request on (``--trace``; 50-ms resolution)."""
        return ", ".join(f"{action} +{at - self.started:.1f}" for at, action in self.moments)

    def latency(self, states: tuple[str, ...] = ("COMPLETED", "FAILED"), which: int = 0) -> float | None:
        ended = self.ended_at(states, which)
        return None if ended is None else self.finished - ended


class BackendWatcher:
    """Fallback when the sandbox keeps no rollout log: poll moto's backend every 20 ms from a thread."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._seen: dict[str, str] = {}
        self._entries: list[tuple[float, str, str, str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rollout-watch", daemon=True)

    def start(self) -> BackendWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        from moto.backends import get_backend

        while not self._stop.wait(0.02):
            backend = get_backend("ecs")[ACCOUNT][self.region]
            now = time.time()
            for service in list(backend.services.values()):
                for deployment in list(service.deployments):
                    key, state = str(deployment["id"]), str(deployment.get("rolloutState", ""))
                    if self._seen.get(key) != state:
                        self._seen[key] = state
                        self._entries.append((now, service.cluster_name, service.name, key, state))

    def entries(self) -> list[tuple[float, str, str, str, str]]:
        return list(self._entries)


def settled(region: str, desired: int = 2) -> bool:
    """Whether the service has one COMPLETED deployment and exactly its desired tasks (no AWS call)."""
    from moto.backends import get_backend

    backend = get_backend("ecs")[ACCOUNT][region]
    service = backend.services.get(f"{CLUSTER}:{SERVICE}")
    if service is None or len(service.deployments) != 1:
        return False
    if service.deployments[0].get("rolloutState") != "COMPLETED":
        return False
    tasks = [
        t
        for t in backend.tasks.get(CLUSTER, {}).values()
        if t.group == f"service:{SERVICE}" and t.last_status != "STOPPED"
    ]
    return len(tasks) == desired and all(
        t.last_status == "RUNNING" and t.task_definition_arn == service.task_definition for t in tasks
    )


def wait_settled(region: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not settled(region):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{CLUSTER}/{SERVICE} did not settle within {timeout:.0f} s")
        time.sleep(0.05)


def service_td(region: str) -> str:
    from moto.backends import get_backend

    return str(get_backend("ecs")[ACCOUNT][region].services[f"{CLUSTER}:{SERVICE}"].task_definition)


# ------------------------------------------------------------------------------------------ bench


class Bench:
    def __init__(self, args: argparse.Namespace, state_dir: Path) -> None:
        self.args = args
        self.state_dir = state_dir
        self._counter = 0
        self._stack: contextlib.ExitStack = contextlib.ExitStack()
        self._results: list[Any] = []  # AsyncResults, dropped while their Redis still answers

    # -- setup
    def __enter__(self) -> Bench:
        import docker

        from ecs_sandbox.environment import Sandbox
        from ecs_sandbox.scheduler import EcsScheduler
        from sandbox_harness.redis_server import LocalRedis

        knobs: dict[str, Any] = {
            "task_start_delay_seconds": self.args.start_delay,
            **profile_knobs(self.args),
        }
        self.virtual_supported = "virtual_tasks" in inspect.signature(EcsScheduler.__init__).parameters
        if self.args.virtual:
            if not self.virtual_supported:
                raise SystemExit("--virtual: this sandbox has no virtual_tasks knob")
            knobs["virtual_tasks"] = True
        # Every Redis DB number 0-15 of the shared server is used by a test or the demo: a server of our own.
        self.redis = LocalRedis(root=self.state_dir / "redis", persistent=False).start()
        self._stack.callback(self.redis.stop)
        self._stack.callback(self._drop_results)
        self.box = Sandbox.start(self.state_dir / "sandbox", registry_port=0, **knobs)
        self._stack.callback(self.box.stop)
        self.region = self.box.region
        self.api = docker.APIClient(
            base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"), version="auto"
        )
        self.rollout_source = "sandbox.scheduler.rollout_log()"
        if not hasattr(self.box.scheduler, "rollout_log"):
            watcher = BackendWatcher(self.region).start()
            self._stack.callback(watcher.stop)
            self._log: Callable[[], list[Any]] = watcher.entries
            self.rollout_source = "a thread polling moto's backend every 20 ms (the sandbox keeps no log)"
        else:
            self._log = self.box.scheduler.rollout_log
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    def _drop_results(self) -> None:
        self._results.clear()
        gc.collect()

    def build(self, mode: str) -> str:
        """Build examples/web (VERSION=bench, MODE=mode) into the sandbox registry; return the local ref."""
        local = f"{self.box.registry_host}/{REPOSITORY}"
        for chunk in self.api.build(
            path=str(ROOT / "examples/web"),
            tag=f"{local}:base-{mode}",
            buildargs={"VERSION": "bench", "MODE": mode},
            network_mode="host",
            decode=True,
            rm=True,
        ):
            if "error" in chunk:
                raise RuntimeError(chunk)
        return f"{local}:base-{mode}"

    def fresh_uri(self, built: str, label: str) -> str:
        """Push ``built`` under a new tag; return its ECR-style URI (a new tag: a new task definition)."""
        self._counter += 1
        tag = f"{label}-{self._counter}-{uuid.uuid4().hex[:6]}"
        repository = built.rsplit(":", 1)[0]
        self.api.tag(built, repository, tag)
        for chunk in self.api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise RuntimeError(chunk)
        return f"{ECR_HOST}/{REPOSITORY}:{tag}"

    def provision(self, image: str) -> dict[str, Any]:
        from ecs_sandbox.environment import provision_service

        provision_service(self.box, CLUSTER, SERVICE, image=image, desired_count=2, timeout_seconds=120)
        described = self.box.client("ecs").describe_services(cluster=CLUSTER, services=[SERVICE])
        config: dict[str, Any] = described["services"][0]["deploymentConfiguration"]
        return config

    def start_worker(self) -> None:
        from deploy_agent.settings import Settings
        from deploy_agent.worker.app import create_app
        from sandbox_harness.stack import StackConfig, WorkerProcess

        class ProductDefaults(StackConfig):
            """The stack's environment without the poll interval: the worker keeps its own default."""

            def env(self) -> dict[str, str]:
                env = super().env()
                env.pop("DEPLOY_AGENT_POLL_INTERVAL_SECONDS", None)
                return env

        self.config = ProductDefaults(
            aws_endpoint_url=self.box.aws_endpoint_url,
            registry_host=self.box.registry_host,
            build_root=ROOT / "examples",
            redis_url=self.redis.url,
            broker_db=0,
            result_db=1,
            state_db=2,
            extra_env={"AWS_ACCESS_KEY_ID": CALLER["deploy-agent worker"]},
        )
        with patched_environ(self.config.env()):
            self.settings = Settings()
        worker = WorkerProcess(self.config, self.state_dir / "worker.log", concurrency=2, name="bench")
        worker.start()
        self._stack.callback(worker.stop)
        self.app = create_app(
            Settings(broker_url=f"{self.redis.url}/0", result_backend=f"{self.redis.url}/1"),
            set_as_current=False,
        )
        self.events_queue_url = self._events_queue()
        evented = replace(
            self.config,
            broker_db=3,
            result_db=4,
            state_db=5,
            extra_env={
                "AWS_ACCESS_KEY_ID": CALLER["deploy-agent events"],
                "DEPLOY_AGENT_EVENTS_QUEUE_URL": self.events_queue_url,
            },
        )
        events_worker = WorkerProcess(
            evented, self.state_dir / "worker-events.log", concurrency=2, name="evt"
        )
        events_worker.start()
        self._stack.callback(events_worker.stop)
        self.events_app = create_app(
            Settings(broker_url=f"{self.redis.url}/3", result_backend=f"{self.redis.url}/4"),
            set_as_current=False,
        )

    def _events_queue(self) -> str:
        """Make ECS's events rule and queue as ``deploy-agent events setup`` does; return the queue URL."""
        return events_queue(self.config, self.box.aws_endpoint_url, self.region)

    # -- one deployment
    @contextlib.contextmanager
    def measured(self, tool: str, image: str) -> Iterator[Run]:
        wait_settled(self.region)
        before = Counter(self.box.moto.api_calls(CALLER[tool]))
        run = Run(tool, image, started=time.time(), before_td=service_td(self.region))
        stop = threading.Event()
        if self.args.trace:
            sampler = threading.Thread(target=self._sample, args=(run, before, stop), daemon=True)
            sampler.start()
        yield run
        if not run.finished:
            run.finished = time.time()
        time.sleep(SETTLE_SECONDS)
        stop.set()
        run.calls = Counter(self.box.moto.api_calls(CALLER[tool])) - before
        run.transitions = [
            (e[0], e[3], e[4])
            for e in self._log()
            if e[1] == CLUSTER and e[2] == SERVICE and e[0] >= run.started
        ]
        wait_settled(self.region)
        run.after_td = service_td(self.region)
        status = self.box.client("ecs").describe_task_definition(taskDefinition=run.before_td)
        run.previous_active = status["taskDefinition"]["status"] == "ACTIVE"

    def _sample(self, run: Run, before: Counter[tuple[str, str]], stop: threading.Event) -> None:
        """Note each call of ``run``'s tool as it shows in the endpoint's counts (--trace)."""
        seen = Counter(before)
        while not stop.wait(0.05):
            now = Counter(self.box.moto.api_calls(CALLER[run.tool]))
            for (_, action), n in sorted((now - seen).items()):
                run.moments.extend((time.time(), action) for _ in range(n))
            seen = now

    def ecs_deploy(self, image: str) -> Run:
        command = [str(self.args.ecs), "deploy", CLUSTER, SERVICE, "--image", "app", image]
        command += ["--timeout", str(ECS_TIMEOUT)]
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": self.box.aws_endpoint_url,
            "AWS_ACCESS_KEY_ID": CALLER["ecs-deploy"],
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": self.region,
        }
        with self.measured("ecs-deploy", image) as run:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=ECS_TIMEOUT + 120)
            run.finished = time.time()
        output = done.stdout + done.stderr
        (self.state_dir / f"ecs-deploy-{run.started:.0f}.txt").write_text(output)
        lines = [line.strip().strip(".") for line in output.splitlines() if line.strip()]
        said = next((line for line in reversed(lines) if VERDICT_LINE.search(line)), "")
        run.verdict = "success" if done.returncode == 0 else "rolled back"  # exit 1: "Deployment Failed!"
        run.detail = f'exit {done.returncode}, last line "{lines[-1] if lines else ""}"'
        if said and said != lines[-1]:
            run.detail += f' (verdict line "{said}")'
        return run

    def _request(self, image: str) -> dict[str, Any]:
        return {"cluster_name": CLUSTER, "service_name": SERVICE, "image": {"uri": image}}

    def worker_deploy(self, image: str, tool: str = "deploy-agent worker") -> Run:
        app = self.events_app if tool == "deploy-agent events" else self.app
        with self.measured(tool, image) as run:
            result = app.send_task("deploy_agent.deploy", kwargs={"request": self._request(image)})
            final: dict[str, Any] = result.get(timeout=900)
            run.finished = time.time()
            self._results.append(result)
        return self._verdict(run, final)

    def cli_run(self, image: str) -> Run:
        message = self.state_dir / f"message-{uuid.uuid4().hex[:8]}.json"
        message.write_text(json.dumps(self._request(image)))
        command = [sys.executable, "-m", "deploy_agent.cli", "run", str(message)]
        with self.measured("deploy-agent run", image) as run:
            env = {**os.environ, **self.config.env(), "AWS_ACCESS_KEY_ID": CALLER["deploy-agent run"]}
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
            run.finished = time.time()
        (self.state_dir / f"run-{run.started:.0f}.txt").write_text(done.stdout + done.stderr)
        try:
            final = json.loads(done.stdout)
        except json.JSONDecodeError:
            final = {"outcome": f"exit {done.returncode}", "error": {"message": done.stderr[-300:]}}
        return self._verdict(run, final)

    @staticmethod
    def _verdict(run: Run, final: dict[str, Any]) -> Run:
        outcome = str(final.get("outcome"))
        run.verdict = {"succeeded": "success", "rolled_back": "rolled back"}.get(outcome, "other")
        rollback, error = final.get("rollback") or {}, final.get("error") or {}
        trigger = rollback.get("trigger")
        reason = str(rollback.get("reason") or error.get("message") or "")
        run.detail = f"outcome {outcome}" + (f", rollback trigger {trigger}" if trigger else "")
        if reason and outcome != "succeeded":
            run.detail += f": {reason[:110]}"
        return run

    def by_tool(self, tool: str) -> Callable[[str], Run]:
        if tool == "deploy-agent events":
            return lambda image: self.worker_deploy(image, tool)
        return {"ecs-deploy": self.ecs_deploy, "deploy-agent worker": self.worker_deploy}.get(
            tool, self.cli_run
        )

    def current_td_active(self) -> bool:
        ecs = self.box.client("ecs")
        described = ecs.describe_task_definition(taskDefinition=service_td(self.region))["taskDefinition"]
        return bool(described["status"] == "ACTIVE")

    def refresh(self, built_ok: str) -> None:
        """Put the service on a new, ACTIVE, good revision (ecs-deploy deregisters the one it leaves)."""
        from ecs_sandbox.blue_green import register_image_revision

        arn = register_image_revision(self.box, service_td(self.region), self.fresh_uri(built_ok, "good"))
        self.box.client("ecs").update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=arn)
        time.sleep(0.3)
        wait_settled(self.region)


# ----------------------------------------------------------------------------------------- report


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def spread(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    return f"{min(present):.2f}-{max(present):.2f}" if present else "-"


def print_run(run: Run, story: bool = False) -> None:
    latency = run.latency()
    print(
        f"  {run.tool:<20} wall {run.wall:6.2f} s  calls {run.total_calls:4d}  detection "
        f"{fmt(latency):>6} s  {run.detail}",
        flush=True,
    )
    if story:
        print(f"  {'':<20} ECS (s after the request): {run.ecs_story()}", flush=True)
    if run.moments:
        print(f"  {'':<20} calls (s after the request): {run.call_story()}", flush=True)


def breakdown(calls: Counter[tuple[str, str]]) -> str:
    ordered = sorted(calls.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{action} {n}" for (_, action), n in ordered)


def report_success(runs: list[Run], tools: tuple[str, ...]) -> None:
    print(f"\n== success: medians over {len(runs) // len(tools)} deployments per tool (min-max)", flush=True)
    heads = (("wall s", 8), ("(range)", 14), ("AWS calls", 11), ("(range)", 10))
    heads += (("detection s", 13), ("(range)", 13))
    print(f"{'tool':<21}" + "".join(f"{h:>{w}}" for h, w in heads))
    for tool in tools:
        mine = [r for r in runs if r.tool == tool]
        walls = [r.wall for r in mine]
        calls = [float(r.total_calls) for r in mine]
        latency = [r.latency() for r in mine]
        bad = sum(r.verdict != "success" for r in mine)
        note = f"   ({bad} not reported as success!)" if bad else ""
        print(
            f"{tool:<21}{fmt(median(walls)):>8}{spread(walls):>14}{fmt(median(calls), 0):>11}"
            f"{spread(calls).replace('.00', ''):>10}{fmt(median(latency)):>13}{spread(latency):>13}{note}"
        )
    print("\nAWS calls of one deployment per tool (the last pair's):")
    for tool in tools:
        last = [r for r in runs if r.tool == tool][-1]
        print(f"  {tool:<20} {last.total_calls:3d}: {breakdown(last.calls)}")


def report_failure(runs: list[Run], tools: tuple[str, ...]) -> None:
    print("\n== failure: the new image's container exits at start; ECS's circuit breaker fails, rolls back")
    for tool in tools:
        mine = [r for r in runs if r.tool == tool]
        if not mine:
            continue
        correct = sum(r.verdict == "rolled back" for r in mine)
        errors = sum(r.verdict == "other" for r in mine)
        on_previous = sum(r.after_td == r.before_td for r in mine)
        active = sum(bool(r.previous_active) for r in mine)
        walls = [r.wall for r in mine]
        since_failed = median([r.latency(("FAILED",)) for r in mine])
        since_rollback = median([r.latency(("COMPLETED",), 1) for r in mine])
        print(
            f"{tool:<21} verdict in median {fmt(median(walls))} s ({spread(walls)}); "
            f"after FAILED {fmt(since_failed)} s, after ECS's rollback COMPLETED {fmt(since_rollback)} s; "
            f"AWS calls median {fmt(median([float(r.total_calls) for r in mine]), 0)}"
        )
        print(
            f"{'':<21} correct verdict {correct}/{len(mine)} ({errors} errors), service ended on the "
            f"previous task definition {on_previous}/{len(mine)}, previous revision still ACTIVE "
            f"{active}/{len(mine)}"
        )
        for said in sorted({r.detail for r in mine}):
            print(f"{'':<21} said: {said}")
    print("\nAWS calls of one failed deployment per tool (the last one):")
    for tool in tools:
        mine = [r for r in runs if r.tool == tool]
        if mine:
            print(f"  {tool:<20} {mine[-1].total_calls:3d}: {breakdown(mine[-1].calls)}")


# ------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.ecs.exists():
        raise SystemExit(f"{args.ecs} is missing: run bench/setup_peer.sh")
    for line in machine_lines(args):
        print(line)
    temp = None if args.state_dir else tempfile.TemporaryDirectory(prefix="bench-compare-")
    state_dir = args.state_dir or Path(temp.name)  # type: ignore[union-attr]
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with Bench(args, state_dir) as bench:
        built_ok = bench.build("ok")
        config = bench.provision(bench.fresh_uri(built_ok, "initial"))
        bench.start_worker()
        s = bench.settings
        tasks = "virtual tasks" if args.virtual else "real containers"
        print(
            f"sandbox: task start delay {args.start_delay:g} s, {tasks}; service {CLUSTER}/{SERVICE}, "
            f"2 tasks, deploymentConfiguration {json.dumps(config, sort_keys=True)}"
        )
        print(f"rollout transitions from {bench.rollout_source}")
        print(
            f"ecs-deploy: `ecs deploy {CLUSTER} {SERVICE} --image app URI --timeout {ECS_TIMEOUT}` "
            "(defaults: --sleep-time 1, --deregister, --no-rollback)"
        )
        print(
            "deploy-agent: message {cluster_name, service_name, image.uri}, no health check; worker -c 2 "
            f"(DEPLOY_AGENT_POLL_INTERVAL_SECONDS unset: poll_interval_seconds={s.poll_interval_seconds:g}, "
            f"lock_wait_seconds={s.lock_wait_seconds:g}, default timeout {s.default_timeout_seconds} s); "
            "`python -m deploy_agent.cli run FILE` with the same settings; the events worker: the same "
            f"with DEPLOY_AGENT_EVENTS_QUEUE_URL={bench.events_queue_url} (safety poll "
            f"{s.event_safety_poll_seconds:g} s, no cluster watcher)"
        )
        print(
            f"AWS calls: those moto answered from the request to {SETTLE_SECONDS:g} s after the verdict, "
            "signed with the tool's own access key id (another worker's background calls are not counted)"
        )
        print(flush=True)

        success: list[Run] = []
        for pair in range(args.pairs):
            order = args.tools[pair % len(args.tools) :] + args.tools[: pair % len(args.tools)]
            print(f"pair {pair + 1}/{args.pairs}", flush=True)
            for tool in order:
                run = bench.by_tool(tool)(bench.fresh_uri(built_ok, "ok"))
                success.append(run)
                print_run(run)
        if success:
            report_success(success, args.tools)

        if args.failure and args.virtual:
            print("\n== failure case skipped: virtual tasks run no container, so none can crash")
        elif args.failure:
            built_crash = bench.build("crash")
            failures: list[Run] = []
            print(f"\nfailure runs ({args.failure_runs} per tool)", flush=True)
            for round_ in range(args.failure_runs):
                order = args.tools[round_ % len(args.tools) :] + args.tools[: round_ % len(args.tools)]
                for tool in order:
                    if not bench.current_td_active():
                        bench.refresh(built_ok)
                    run = bench.by_tool(tool)(bench.fresh_uri(built_crash, "crash"))
                    failures.append(run)
                    print_run(run, story=True)
            report_failure(failures, args.tools)
    if temp is not None:
        temp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
