"""How one worker host carries N concurrent rolling deployments: time, overhead, AWS calls, memory.

For each N in ``--counts``: N services are provisioned in the sandbox with *virtual* tasks (no
container; a task is RUNNING ``--start-delay`` seconds after ECS creates it and healthy at once),
desired count 1. A fresh ``deploy-agent worker -c CONCURRENCY`` starts on a private Redis, then N
``DeployToECSTask`` messages for N distinct services are published at once (``image.uri``: no build,
no push; no health-check URL) and every result is awaited. Printed per N:

- wall: first publish -> last result received; throughput = N / wall (deployments per second);
- ECS time (the sandbox scheduler's own time) of one deployment: from the moment the sandbox
  creates our PRIMARY deployment inside the worker's UpdateService call (rollout log: IN_PROGRESS)
  to the moment it sets rolloutState COMPLETED (rollout log: COMPLETED). It is what ECS itself takes
  (the start delay, plus up to one scheduler tick, plus scheduler lag under load);
- overhead = (result.finished_at - result.started_at) - ECS time: everything the worker adds to a
  deployment it has started (validation, DescribeServices/RegisterTaskDefinition, waiting for its
  next poll, state in Redis, finalising). Queueing before ``started_at`` is not in it; ``e2e`` is
  publish -> finished_at and includes it;
- detect: the deploy stage's ``finished_at`` - COMPLETED time (how late the worker notices; bounded
  by ``--poll-interval`` when nothing is saturated);
- AWS calls answered by the sandbox (every call the worker made) per second of wall and per
  deployment, and the most frequent ones;
- peak memory of the worker's process tree (main process + prefork children, sampled every 0.2 s)
  and its memory when idle before the run, as summed VmRSS (``MB``: a page the children share with
  the main process counts once per process) and as summed PSS (``PSS``: a shared page counts once in
  all, split among its sharers: what the worker takes from the machine);
- the sandbox's DescribeServices latency seen by this script during the run (a probe every 0.5 s):
  when it climbs, moto (one Python process, ~350 DescribeServices/s here) is the bottleneck, not
  the worker;
- CPU, in cores kept busy over the wall time: ``wCPU`` the worker's process tree, ``sCPU`` this
  script's process (moto server + ECS scheduler + the publisher). Their sum against the host's cores
  says whether the machine, the worker or the sandbox limits throughput; a verdict line says which;
- Celery task runs (entry, stages, each retry of a waiting stage: "received" lines in the worker's
  log) and Redis commands (broker + results + state, from the private Redis's commandstats; this
  script's own result polling, 10 MGET/s, is among them);
- where those Redis commands go (``redis_trace``, a ``redis-cli monitor`` in its own process): the
  commands clients sent (round trips) by purpose and by command, apart from those Lua scripts ran,
  by script; the result polling is left out there.

Every deployment must end ``succeeded``; failures are listed and make the exit code 1.
Run from the repository root: ``source .sandbox/env && python bench/concurrency.py --counts 10,50,200``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from call_rates import CallRates, format_rates, most_used_quota
from common import (
    BROKER_DB,
    RESULT_DB,
    Stack,
    calls_since,
    events_queue,
    median,
    open_stack,
    percentile,
    provision_many,
    tree_cpu_seconds,
)
from profiles import add_profile_arguments, describe_profile, profile_knobs
from redis_trace import RedisTrace, Trace, format_trace

from deploy_agent.core.quotas import parse_overrides
from deploy_agent.settings import Settings

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bench"
MOTO_DESCRIBE_CEILING = 350.0  # DescribeServices/s moto answers on this kind of machine


@dataclass
class RunReport:
    """What one N gave."""

    count: int
    wall: float
    overheads: list[float]
    e2e: list[float]
    ecs_times: list[float]
    detects: list[float]
    calls: Counter[tuple[str, str]]
    idle_rss_mb: float
    peak_rss_mb: float
    idle_pss_mb: float
    peak_pss_mb: float
    probe_ms: list[float]
    worker_cpu: float
    sandbox_cpu: float
    stage_runs: int
    redis_commands: int
    failures: list[str]
    #: Redis commands by name over the run (broker, results, state and this script's polling)
    redis_by_command: Counter[str] | None = None
    #: the sandbox endpoint's call rates over the run, per quota bucket
    rates: CallRates | None = None
    #: Redis commands sent (round trips) and run inside scripts, by purpose (a MONITOR of the run)
    trace: Trace | None = None
    #: the PSS (MB) of each of the worker's processes when their sum peaked, the main process first
    pss_at_peak: list[float] = field(default_factory=list)
    #: the overhead's two parts: started_at -> ECS created our deployment (inside UpdateService), and
    #: ECS's COMPLETED -> finished_at
    before_update: list[float] = field(default_factory=list)
    after_completed: list[float] = field(default_factory=list)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


class DescribeProbe:
    """Times one DescribeServices every ``interval`` seconds in a thread (the sandbox's responsiveness)."""

    def __init__(self, stack: Stack, cluster: str, service: str, interval: float = 0.5) -> None:
        self._ecs = stack.sandbox.client("ecs")
        self._cluster, self._service, self._interval = cluster, service, interval
        self.latencies_ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            started = time.perf_counter()
            self._ecs.describe_services(cluster=self._cluster, services=[self._service])
            self.latencies_ms.append((time.perf_counter() - started) * 1000)

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.latencies_ms


def _redis_by_command(stack: Stack) -> Counter[str]:
    stats = cast(dict[str, dict[str, Any]], stack.redis.client().info("commandstats"))
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()})


def _drain_events(stack: Stack, queue_url: str) -> None:
    """Read and delete what provisioning put in the events queue, saying how much that was.

    Provisioning N services sends ECS's events of their first deployments (5 each) before the
    worker starts; no deployment of the run is about them, and a worker reading them first woke
    every deployment of the first minute at 500 after its 15-s safety poll instead of at ECS's
    COMPLETED. The run starts with the queue a worker that consumed all along would leave. (Not
    PurgeQueue: SQS takes one a minute per queue, and runs of small N come closer than that.)
    """
    sqs = stack.sandbox.client("sqs")
    drained = 0
    receive = {"QueueUrl": queue_url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0}
    while messages := sqs.receive_message(**receive).get("Messages"):
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        drained += len(messages)
    print(f"events: drained {drained} message(s) of provisioning's ECS events", flush=True)


def run_once(stack: Stack, count: int, timeout: float) -> RunReport:
    """Provision ``count`` services, publish one deployment each at once, await all; return the numbers."""
    cluster = f"conc-{count}"
    names = provision_many(stack.sandbox, cluster, count, f"{IMAGE}:v1", desired_count=1, virtual=True)
    queue_url = stack.config.extra_env.get("DEPLOY_AGENT_EVENTS_QUEUE_URL")
    if queue_url:
        _drain_events(stack, queue_url)
    stack.restart_worker()
    assert stack.rss is not None
    time.sleep(1.0)  # let the prefork children settle before the idle reading
    idle, idle_pss = stack.rss.peak_mb(), stack.rss.peak_pss_mb()
    probe = DescribeProbe(stack, cluster, names[0])
    assert stack.worker is not None
    assert stack.worker.pid is not None
    worker_cpu = tree_cpu_seconds(stack.worker.pid)
    sandbox_cpu = time.process_time()
    redis_before = _redis_by_command(stack)
    before = stack.sandbox.moto.api_calls()
    rates = CallRates(stack.sandbox).__enter__()
    redis_trace = RedisTrace(
        stack.redis.port, stack.workdir / f"monitor-{count}.log", BROKER_DB, RESULT_DB
    ).__enter__()
    published = time.time()
    task_ids = [
        stack.publish(
            {
                "deployment_id": f"{cluster}-{name}-{int(published)}",
                "cluster_name": cluster,
                "service_name": name,
                "image": {"uri": f"{IMAGE}:v2"},
                "timeout_seconds": int(timeout),
            }
        )
        for name in names
    ]
    by_id = stack.await_results(task_ids, timeout)
    rates.__exit__(None, None, None)
    redis_trace.__exit__(None, None, None)
    results = [by_id[t] for t in task_ids]
    wall = time.time() - published
    worker_cpu = tree_cpu_seconds(stack.worker.pid) - worker_cpu
    sandbox_cpu = time.process_time() - sandbox_cpu
    redis_by_command = _redis_by_command(stack) - redis_before
    redis_commands = sum(redis_by_command.values())
    # Every Celery task run (entry, each stage, each retry of a waiting stage) logs "received".
    stage_runs = stack.worker.log_path.read_text().count("] received")
    latencies = probe.stop()
    calls = calls_since(stack.sandbox, before)
    # The probe's own calls are not the worker's.
    calls[("ecs", "DescribeServices")] -= len(latencies)
    peak, peak_pss = stack.rss.peak_mb(), stack.rss.peak_pss_mb()
    at_peak = list(stack.rss.at_peak_pss)
    stack.stop_worker()

    log = [e for e in stack.sandbox.scheduler.rollout_log() if e.cluster == cluster and e.at >= published]
    created = {e.service: e.at for e in log if e.state == "IN_PROGRESS"}
    completed = {e.service: e.at for e in log if e.state == "COMPLETED"}
    report = RunReport(
        count, wall, [], [], [], [], calls, idle, peak, idle_pss, peak_pss, latencies, worker_cpu,
        sandbox_cpu, stage_runs,
        redis_commands, failures=[], redis_by_command=redis_by_command, rates=rates, trace=redis_trace.trace,
        pss_at_peak=at_peak,
    )  # fmt: skip
    for name, result in zip(names, results, strict=True):
        if result["outcome"] != "succeeded":
            report.failures.append(f"{name}: {result['outcome']} {result.get('error')}")
            continue
        if name not in created or name not in completed:
            report.failures.append(f"{name}: no IN_PROGRESS/COMPLETED in the rollout log")
            continue
        ecs_time = completed[name] - created[name]
        took = _epoch(result["finished_at"]) - _epoch(result["started_at"])
        deploy = next(s for s in result["stages"] if s["name"] == "deploy")
        report.ecs_times.append(ecs_time)
        report.overheads.append(took - ecs_time)
        report.before_update.append(created[name] - _epoch(result["started_at"]))
        report.after_completed.append(_epoch(result["finished_at"]) - completed[name])
        report.e2e.append(_epoch(result["finished_at"]) - published)
        report.detects.append(_epoch(deploy["finished_at"]) - completed[name])
    return report


def _row(report: RunReport) -> str:
    total = sum(report.calls.values())
    return (
        f"{report.count:>5} {report.wall:>7.1f} {report.count / report.wall:>7.2f} "
        f"{median(report.ecs_times):>6.2f} "
        f"{median(report.overheads):>6.2f} {percentile(report.overheads, 95):>6.2f} "
        f"{median(report.detects):>6.2f} {percentile(report.detects, 95):>6.2f} "
        f"{median(report.e2e):>6.1f} {percentile(report.e2e, 95):>6.1f} "
        f"{total / report.wall:>7.1f} {total / report.count:>7.1f} "
        f"{report.idle_rss_mb:>6.0f} {report.peak_rss_mb:>6.0f} "
        f"{report.idle_pss_mb:>7.0f} {report.peak_pss_mb:>7.0f} "
        f"{median(report.probe_ms):>6.0f} {percentile(report.probe_ms, 95):>6.0f} "
        f"{report.worker_cpu / report.wall:>5.2f} {report.sandbox_cpu / report.wall:>5.2f} "
        f"{report.count - len(report.failures):>4}/{report.count}"
    )


HEADER = (
    "    N  wall s  dep/s  ecs s  ovh50  ovh95  det50  det95  e2e50  e2e95  calls/s  calls/d "
    "idleMB peakMB idlePSS peakPSS  dsc50  dsc95  wCPU  sCPU   ok\n"
    "                     (p50)  (s)    (s)    (s)    (s)    (s)    (s)                    "
    "                                (ms)   (ms)  (cores busy)"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--counts", default="10,50,200", help="comma-separated numbers of deployments")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (-c), default 2")
    parser.add_argument("--start-delay", type=float, default=2.0, help="seconds a task takes to be RUNNING")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="worker's poll interval (s)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for each result")
    parser.add_argument(
        "--quota-share",
        type=float,
        default=None,
        help="DEPLOY_AGENT_AWS_QUOTA_SHARE for the worker (default: the product's, 0.5)",
    )
    parser.add_argument(
        "--quotas",
        default=None,
        help='DEPLOY_AGENT_AWS_QUOTAS for the worker, e.g. \'{"ecs:task_definition_write": "50/100"}\' '
        "(the account's raised quotas)",
    )
    parser.add_argument(
        "--events",
        action="store_true",
        help="wake deployments on ECS's events (the sandbox's EventBridge rule -> SQS queue, made as "
        "`deploy-agent events setup` does; the cluster watcher is then off)",
    )
    parser.add_argument(
        "--worker-env", action="append", default=[], help="extra NAME=VALUE for the worker (repeatable)"
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the worker logs and sandbox files here")
    add_profile_arguments(parser)
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",") if c.strip()]

    print(
        f"one worker host: -c {args.concurrency}, poll {args.poll_interval:g} s; virtual tasks, "
        f"desired 1, start delay {args.start_delay:g} s; rolling, no health URL",
        flush=True,
    )
    print(describe_profile(args), flush=True)
    reports: list[RunReport] = []
    worker_env = dict(item.split("=", 1) for item in args.worker_env)
    if args.quota_share is not None:
        worker_env["DEPLOY_AGENT_AWS_QUOTA_SHARE"] = str(args.quota_share)
    if args.quotas:
        worker_env["DEPLOY_AGENT_AWS_QUOTAS"] = args.quotas
    share = args.quota_share if args.quota_share is not None else Settings().aws_quota_share
    overrides = {
        name: (quota.per_second * share, quota.burst * share)
        for name, quota in parse_overrides(json.loads(args.quotas) if args.quotas else {}).items()
    }
    if worker_env:
        print(f"worker settings: {worker_env}", flush=True)
    with open_stack(
        args.keep,
        concurrency=args.concurrency,
        poll_interval_seconds=args.poll_interval,
        worker_env=worker_env,
        start_worker=False,
        task_start_delay_seconds=args.start_delay,
        virtual_tasks=True,
        **profile_knobs(args),
    ) as stack:
        if args.events:
            url = events_queue(stack.config, stack.sandbox.aws_endpoint_url, stack.sandbox.region)
            stack.config.extra_env["DEPLOY_AGENT_EVENTS_QUEUE_URL"] = url
            print(f"events: {url}", flush=True)
        for count in counts:
            print(f"... N={count}", file=sys.stderr, flush=True)
            reports.append(run_once(stack, count, args.timeout))

    print(HEADER)
    for report in reports:
        print(_row(report))
    print()
    for report in reports:
        top = ", ".join(f"{action} {n}" for (_, action), n in report.calls.most_common(4))
        print(
            f"N={report.count}: AWS calls {sum(report.calls.values())} ({top}); "
            f"Celery task runs {report.stage_runs} ({report.stage_runs / report.count:.1f}/deployment); "
            f"Redis commands {report.redis_commands} ({report.redis_commands / report.count:.0f}/deployment)"
        )
        if report.before_update:
            before, after = report.before_update, report.after_completed
            print(
                f"N={report.count}: overhead = start -> UpdateService p50 {median(before):.2f} / "
                f"p95 {percentile(before, 95):.2f} s + ECS's COMPLETED -> result p50 "
                f"{median(after):.2f} / p95 {percentile(after, 95):.2f} s"
            )
        if report.redis_by_command:
            per = ", ".join(
                f"{name} {n / report.count:.0f}" for name, n in report.redis_by_command.most_common(10)
            )
            print(f"N={report.count}: Redis commands per deployment by name: {per}")
        if report.pss_at_peak:
            main, *children = report.pss_at_peak
            shown = ", ".join(f"{c:.0f}" for c in children)
            print(f"N={report.count}: PSS at its peak (MB): main process {main:.0f}, children {shown}")
        if report.trace is not None:
            print(f"N={report.count}: Redis commands from a MONITOR of the run:")
            for line in format_trace(report.trace, report.count):
                print(line)
        if report.rates is not None:
            print(
                f"N={report.count}: AWS calls at the sandbox endpoint by quota bucket "
                f"(peak: most in 1 s; this script's probe, {len(report.probe_ms)} DescribeServices, "
                "counted but left out of the verdict):"
            )
            own = {"ecs:service_read": len(report.probe_ms)}
            for line in format_rates(report.rates, share, overrides, own):
                print(line)
    failed = False
    for report in reports:
        for failure in report.failures:
            failed = True
            print(f"FAILED N={report.count}: {failure}")
        describe_rate = report.calls[("ecs", "DescribeServices")] / report.wall
        worker_busy, sandbox_busy = report.worker_cpu / report.wall, report.sandbox_cpu / report.wall
        cores = os.cpu_count() or 1
        own = {"ecs:service_read": len(report.probe_ms)}
        quota = most_used_quota(report.rates, share, overrides, own) if report.rates is not None else None
        if quota is not None and quota[1] > 0.85:
            name, used, rate, mean = quota
            limit = (
                f"AWS's quota for {name}: the workers' {mean:.1f} calls/s used {used:.0%} of what its "
                f"token bucket ({rate:g}/s) let through in {report.wall:.0f} s"
            )
        elif median(report.probe_ms) > 50 or describe_rate > 0.7 * MOTO_DESCRIBE_CEILING:
            limit = (
                f"the sandbox (moto): {describe_rate:.0f} DescribeServices/s "
                f"(ceiling ~{MOTO_DESCRIBE_CEILING:.0f}/s), p50 latency {median(report.probe_ms):.0f} ms"
            )
        elif worker_busy + sandbox_busy > 0.85 * cores:
            limit = (
                f"host CPU: worker {worker_busy:.2f} + sandbox {sandbox_busy:.2f} of {cores} cores busy "
                f"(the worker's share is {worker_busy / (worker_busy + sandbox_busy):.0%})"
            )
        elif worker_busy > 0.85 * args.concurrency:
            limit = f"the worker's {args.concurrency} processes ({worker_busy:.2f} cores busy)"
        elif median(report.overheads) > 2 * args.poll_interval + 1:
            per_run = 1000 * report.wall * args.concurrency / max(report.stage_runs, 1)
            limit = (
                f"the worker's {args.concurrency} processes taking one task run at a time: "
                f"{per_run:.0f} ms per run per process, mostly waiting on Redis/AWS round trips "
                f"({worker_busy:.2f} cores busy)"
            )
        else:
            limit = "nothing saturated: the poll interval and ECS's own time set the pace"
        print(f"N={report.count}: limited by {limit}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
