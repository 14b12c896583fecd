"""What the benchmark scripts share: a sandbox + a private Redis + one worker process, and measuring.

API (kept small on purpose; ``bench/concurrency.py`` shows it in use)::

    with open_stack(workdir, concurrency=2, poll_interval_seconds=1.0, worker_env={...},
                    task_start_delay_seconds=2.0, virtual_tasks=True) as stack:
        names = provision_many(stack.sandbox, "bench", 50, IMAGE, desired_count=1, virtual=True)
        before = stack.sandbox.moto.api_calls()
        task_id = stack.publish({"cluster_name": "bench", "service_name": names[0], "image": {...}})
        results = stack.await_results([task_id], timeout_seconds=300)  # {task id: DeploymentResult}
        calls = calls_since(stack.sandbox, before)  # Counter[(service, action)]
        peak = stack.rss.peak_mb()                  # the worker's process tree

- ``open_stack``: a ``Sandbox`` (``**knobs`` go to ``EcsScheduler``: ``task_start_delay_seconds``,
  ``virtual_tasks``, ...), a private ``redis-server`` on a free loopback port (databases 0, 1, 2:
  every one of the shared Redis's 16 databases is already taken by a test or the demo), one
  ``WorkerProcess`` (``deploy-agent worker -c N``, soft shutdown off so it stops at once) and a
  publisher Celery app (``Stack.publisher``; ``Stack.publish`` + ``Stack.await_results`` send and
  collect results); ``Stack.restart_worker`` gives a fresh worker (and a fresh RSS peak) between runs.
- ``provision_many``: N COMPLETED services in one cluster, on one VPC/ALB per cluster.
- ``median`` / ``percentile``; ``tree_rss_mb`` / ``tree_pss_mb`` (VmRSS / PSS of a process and all
  its descendants, from /proc), ``RssSampler`` (their peaks, sampled in a thread),
  ``tree_cpu_seconds``; ``calls_since``
  (AWS calls answered by the sandbox's moto server since a snapshot, from any process).

Run scripts from the repository root with the sandbox environment (``source .sandbox/env``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from celery import Celery

from deploy_agent.settings import Settings
from deploy_agent.worker.app import create_app
from ecs_sandbox import Sandbox
from sandbox_harness.redis_server import LocalRedis
from sandbox_harness.stack import StackConfig, WorkerProcess

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
BROKER_DB, RESULT_DB, STATE_DB = 0, 1, 2  # databases of the benchmark's own redis-server


# ---------------------------------------------------------------- statistics


def percentile(values: Sequence[float], p: float) -> float:
    """Return the p-th percentile (0-100) of ``values``, linearly interpolated; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    """Return the median of ``values``; NaN when empty."""
    return percentile(values, 50)


# ---------------------------------------------------------------- memory


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0  # gone, or a zombie


def _pss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def tree_rss_mb(pid: int) -> float:
    """Return the resident memory (VmRSS, MB) of ``pid`` plus every descendant (shared pages counted
    once per process, as ``ps`` does)."""
    return sum(_rss_kb(current) for current in _tree(pid)) / 1024


def tree_pss_mb(pid: int) -> float:
    """Return the proportional set size (MB) of ``pid`` plus every descendant: each page shared by n
    of them counts 1/n in each, so the sum is what the tree takes from the machine (a prefork child
    shares its parent's pages until it writes them; summed VmRSS counts those pages once per process)."""
    return sum(tree_pss_by_process_mb(pid))


def tree_pss_by_process_mb(pid: int) -> list[float]:
    """Return the PSS (MB) of ``pid`` and of each of its descendants, ``pid``'s first."""
    return [_pss_kb(current) / 1024 for current in _tree(pid)]


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        if current not in found:
            found.append(current)
            todo += _children(current)
    return found


def tree_cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system, s) used so far by ``pid`` and its live descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for current in _tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / ticks


class RssSampler:
    """Samples ``tree_rss_mb(pid)`` and ``tree_pss_mb(pid)`` every ``interval_seconds`` in a daemon
    thread; keeps the peak of each."""

    def __init__(self, pid: int, interval_seconds: float = 0.2) -> None:
        self.pid = pid
        self.interval_seconds = interval_seconds
        self._peak = 0.0
        self._peak_pss = 0.0
        #: the PSS of each process (main first) when the tree's PSS peaked
        self.at_peak_pss: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._peak = max(self._peak, tree_rss_mb(self.pid))
            by_process = tree_pss_by_process_mb(self.pid)
            if sum(by_process) > self._peak_pss:
                self._peak_pss, self.at_peak_pss = sum(by_process), by_process
            if self._stop.wait(self.interval_seconds):
                return

    def peak_mb(self) -> float:
        """Return the highest process-tree RSS seen so far (MB)."""
        return max(self._peak, tree_rss_mb(self.pid))

    def peak_pss_mb(self) -> float:
        """Return the highest process-tree PSS seen so far (MB)."""
        return max(self._peak_pss, tree_pss_mb(self.pid))

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(timeout=5)


# ---------------------------------------------------------------- AWS calls


def calls_since(sandbox: Sandbox, before: dict[tuple[str, str], int]) -> Counter[tuple[str, str]]:
    """Return the AWS calls the sandbox answered since ``before = sandbox.moto.api_calls()``."""
    now = Counter(sandbox.moto.api_calls())
    now.subtract(before)
    return Counter({key: count for key, count in now.items() if count > 0})


# ---------------------------------------------------------------- the stack


@dataclass
class Stack:
    """A running sandbox, a private Redis, one worker process (``worker``) and a publisher app."""

    sandbox: Sandbox
    redis: LocalRedis
    config: StackConfig
    publisher: Celery
    workdir: Path
    concurrency: int
    worker: WorkerProcess | None = None
    rss: RssSampler | None = None
    _runs: int = field(default=0, repr=False)

    def restart_worker(self) -> WorkerProcess:
        """Stop the current worker (if any), empty Redis and start a fresh one; return it."""
        self.stop_worker()
        for db in (BROKER_DB, RESULT_DB, STATE_DB):
            self.redis.client(db).flushdb()
        self._runs += 1
        name = f"bench{self._runs}"
        self.worker = WorkerProcess(
            self.config, self.workdir / f"{name}.log", concurrency=self.concurrency, name=name
        ).start(timeout=120)
        assert self.worker.pid is not None
        self.rss = RssSampler(self.worker.pid)
        return self.worker

    def publish(self, request: dict[str, Any]) -> str:
        """Publish one ``DeployToECSTask`` (a dict) and return its Celery task id."""
        return str(self.publisher.send_task("deploy_agent.deploy", kwargs={"request": request}).id)

    def await_results(self, task_ids: Sequence[str], timeout_seconds: float) -> dict[str, dict[str, Any]]:
        """Return each task's ``DeploymentResult`` by task id, read from the result database.

        Reads ``celery-task-meta-<id>`` directly (MGET every 0.1 s) rather than through
        ``AsyncResult.get``, whose pub/sub subscriptions outlive the private Redis. Raises
        TimeoutError when some are missing after ``timeout_seconds``, RuntimeError when a task failed.
        """
        results: dict[str, dict[str, Any]] = {}
        store = self.redis.client(RESULT_DB)
        deadline = time.monotonic() + timeout_seconds
        try:
            while len(results) < len(task_ids):
                missing = [t for t in task_ids if t not in results]
                found = cast(list[bytes | None], store.mget([f"celery-task-meta-{t}" for t in missing]))
                for task_id, raw in zip(missing, found, strict=True):
                    if raw is None:
                        continue
                    meta = json.loads(raw)
                    if meta["status"] == "SUCCESS":
                        results[task_id] = meta["result"]
                    elif meta["status"] in ("FAILURE", "REVOKED"):
                        raise RuntimeError(f"task {task_id} ended {meta['status']}: {meta.get('result')}")
                if len(results) < len(task_ids):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{len(task_ids) - len(results)} results missing")
                    time.sleep(0.1)
        finally:
            store.close()  # type: ignore[no-untyped-call]  # untyped in redis-py
        return results

    def stop_worker(self) -> None:
        """Stop the worker and its RSS sampler."""
        if self.rss is not None:
            self.rss.stop()
            self.rss = None
        if self.worker is not None:
            self.worker.stop()
            self.worker = None


@contextlib.contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in this process's environment for the block, then put it back as it was."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def events_queue(config: StackConfig, endpoint_url: str, region: str) -> str:
    """Make ECS's events rule and queue in the sandbox as ``deploy-agent events setup`` does; return
    the queue URL (for a worker's ``DEPLOY_AGENT_EVENTS_QUEUE_URL``)."""
    from deploy_agent.adapters.aws import AwsClients
    from deploy_agent.adapters.ecs_events import EventQueueMaker

    # The worker's own environment (the sandbox's credentials), whatever this script's caller has.
    with patched_environ(config.env()):
        clients = AwsClients(region, endpoint_url=endpoint_url)
        made = EventQueueMaker(clients).setup("deploy-agent-bench-events", "deploy-agent-bench-events")
    return str(made.queue_url)


@contextlib.contextmanager
def open_stack(
    workdir: Path | None = None,
    concurrency: int = 2,
    poll_interval_seconds: float = 1.0,
    worker_env: dict[str, str] | None = None,
    start_worker: bool = True,
    **knobs: Any,
) -> Iterator[Stack]:
    """Start sandbox (``knobs`` -> EcsScheduler), Redis and a worker; yield the Stack; stop them all.

    ``worker_env`` overrides the worker's environment (``DEPLOY_AGENT_*``, ``AWS_MAX_ATTEMPTS``...).
    Without ``workdir`` a temporary directory is used and removed afterwards (logs included).
    """
    own = workdir is None
    root = Path(tempfile.mkdtemp(prefix="deploy-agent-bench-")) if workdir is None else workdir
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("AWS_MAX_ATTEMPTS", "1")  # this process's boto3 clients: fail fast
    sandbox = Sandbox.start(root / "sandbox", registry_port=0, **knobs)
    redis_server = LocalRedis(root=root / "redis", persistent=False).start()
    stack: Stack | None = None
    try:
        # A benchmark's worker is idle when stopped: no soft-shutdown wait (30 s by default).
        env = {"DEPLOY_AGENT_SOFT_SHUTDOWN_SECONDS": "0", **(worker_env or {})}
        config = StackConfig(
            aws_endpoint_url=sandbox.aws_endpoint_url,
            registry_host=sandbox.registry_host,
            build_root=EXAMPLES,
            redis_url=redis_server.url,
            broker_db=BROKER_DB,
            result_db=RESULT_DB,
            state_db=STATE_DB,
            poll_interval_seconds=poll_interval_seconds,
            extra_env=env,
        )
        publisher = create_app(
            Settings(
                broker_url=f"{redis_server.url}/{BROKER_DB}", result_backend=f"{redis_server.url}/{RESULT_DB}"
            ),
            set_as_current=False,
        )
        stack = Stack(sandbox, redis_server, config, publisher, root, concurrency)
        if start_worker:
            stack.restart_worker()
        yield stack
    finally:
        if stack is not None:
            stack.stop_worker()
        redis_server.stop()
        sandbox.stop()
        if own:
            shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- services


def provision_many(
    sandbox: Sandbox,
    cluster: str,
    count: int,
    image: str,
    desired_count: int = 1,
    virtual: bool = True,
    prefix: str = "svc",
    timeout_seconds: float = 300.0,
) -> list[str]:
    """Return the names of ``count`` new services ``{prefix}-{i}`` in ``cluster``, once all are COMPLETED.

    One VPC, ALB and listener per call (the listener forwards to the first service's target group);
    each service gets its own target group, task definition family and circuit breaker with rollback.
    ``virtual`` must match the sandbox's ``virtual_tasks`` knob: it only decides whether the image
    has to exist (with real tasks it is pulled from the sandbox registry).
    """
    if virtual != sandbox.scheduler.tasks.virtual:
        running = sandbox.scheduler.tasks.virtual
        raise ValueError(f"virtual={virtual} but the sandbox runs virtual_tasks={running}")
    ec2, ecs, elbv2 = sandbox.client("ec2"), sandbox.client("ecs"), sandbox.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{sandbox.region}{zone}")[
            "Subnet"
        ]["SubnetId"]
        for i, zone in ((1, "a"), (2, "b"))
    ]
    group = ec2.create_security_group(GroupName=f"{cluster}-sg", Description=cluster, VpcId=vpc)["GroupId"]
    ecs.create_cluster(clusterName=cluster)
    balancer = elbv2.create_load_balancer(
        Name=f"{cluster}-alb"[:32],
        Subnets=subnets,
        SecurityGroups=[group],
        Type="application",
        Scheme="internal",
    )["LoadBalancers"][0]["LoadBalancerArn"]
    names = [f"{prefix}-{i}" for i in range(count)]
    for index, name in enumerate(names):
        target_group = elbv2.create_target_group(
            Name=f"{cluster}-{name}"[:32],
            Protocol="HTTP",
            Port=8080,
            VpcId=vpc,
            TargetType="ip",
            HealthCheckPath="/health",
            Matcher={"HttpCode": "200"},
        )["TargetGroups"][0]["TargetGroupArn"]
        if index == 0:
            listener = elbv2.create_listener(
                LoadBalancerArn=balancer,
                Protocol="HTTP",
                Port=80,
                DefaultActions=[{"Type": "forward", "TargetGroupArn": target_group}],
            )["Listeners"][0]["ListenerArn"]
        else:
            # CreateService refuses a target group no load balancer uses (as AWS does): each service
            # gets a path rule. (A real ALB takes 100 rules by default; moto does not count them.)
            elbv2.create_rule(
                ListenerArn=listener,
                Priority=index,
                Conditions=[{"Field": "path-pattern", "Values": [f"/{name}/*"]}],
                Actions=[{"Type": "forward", "TargetGroupArn": target_group}],
            )
        task_definition = ecs.register_task_definition(
            family=f"{cluster}-{name}",
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=[
                {
                    "name": "app",
                    "image": image,
                    "essential": True,
                    "memory": 512,  # moto: tasks need container-level memory
                    "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
                }
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(
            cluster=cluster,
            serviceName=name,
            taskDefinition=task_definition,
            desiredCount=desired_count,
            launchType="FARGATE",
            loadBalancers=[{"targetGroupArn": target_group, "containerName": "app", "containerPort": 8080}],
            networkConfiguration={"awsvpcConfiguration": {"subnets": subnets, "securityGroups": [group]}},
            deploymentConfiguration={
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
                "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            },
        )
    wait_until_settled(sandbox, cluster, names, timeout_seconds)
    return names


def wait_until_settled(sandbox: Sandbox, cluster: str, names: Sequence[str], timeout_seconds: float) -> None:
    """Return once every named service has one deployment, COMPLETED; raise TimeoutError otherwise."""
    ecs = sandbox.client("ecs")
    waiting = list(names)
    deadline = time.monotonic() + timeout_seconds
    while waiting:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(waiting)} services of {cluster} not COMPLETED, e.g. {waiting[:3]}")
        still: list[str] = []
        for start in range(0, len(waiting), 10):  # DescribeServices takes at most 10 services
            batch = waiting[start : start + 10]
            answer = ecs.describe_services(cluster=cluster, services=batch)["services"]
            found = {service["serviceName"]: service for service in answer}
            for name in batch:
                deployments = found[name]["deployments"] if name in found else []  # MISSING: not yet
                if len(deployments) != 1 or deployments[0]["rolloutState"] != "COMPLETED":
                    still.append(name)
        waiting = still
        if waiting:
            time.sleep(0.2)
