"""``deploy-agent``: run a worker, publish a deployment and follow it, read a status, print the schema."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from deploy_agent.progress import follow, format_event


def _cmd_schema(_: argparse.Namespace) -> int:
    from deploy_agent.models import request_json_schema

    print(json.dumps(request_json_schema(), indent=2, sort_keys=True))
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from deploy_agent.settings import Settings
    from deploy_agent.worker.metrics_dir import MetricsDirInUse, claim_metrics_dir, default_metrics_dir

    if args.metrics_port is not None:
        os.environ["DEPLOY_AGENT_METRICS_PORT"] = str(args.metrics_port)
    # --metrics-dir, else the environment's, else one of this worker's own (a shared one would be
    # wiped by each worker that starts: worker.metrics_dir). Set before prometheus_client is imported.
    port = int(os.environ.get("DEPLOY_AGENT_METRICS_PORT", "0") or 0) or None
    metrics_dir = args.metrics_dir or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    metrics_dir = Path(metrics_dir or default_metrics_dir(args.hostname, Settings().queue, port))
    try:
        claim = claim_metrics_dir(metrics_dir)
    except MetricsDirInUse as exc:
        print(f"deploy-agent worker: {exc}", file=sys.stderr)
        return 2
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    from deploy_agent.worker.app import app

    settings = Settings()
    argv = [
        "worker",
        "-Q",
        f"{settings.stage_queue},{settings.queue}",  # in this order: see worker.app's task_routes
        "--concurrency",
        str(args.concurrency),
        "--loglevel",
        args.loglevel,
        "--hostname",
        args.hostname,
        # no -E: task events carry the message's arguments to every Redis subscriber (worker.app)
    ]
    try:
        app.worker_main(argv)
    finally:
        claim.release()
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    from deploy_agent.worker.app import app

    payload = json.loads(Path(args.file).read_text()) if args.file != "-" else json.load(sys.stdin)
    result = app.send_task("deploy_agent.deploy", kwargs={"request": payload})
    deployment_id = payload.get("deployment_id") or payload.get("deploymentId")
    print(json.dumps({"task_id": result.id, "deployment_id": deployment_id}))
    if not args.wait:
        return 0
    final = follow(result, deployment_id, args.timeout)
    print(json.dumps(final, indent=2))
    return 0 if final.get("outcome") == "succeeded" else 1


def _cmd_rollback(args: argparse.Namespace) -> int:
    from deploy_agent.worker.app import app

    request: dict[str, Any] = {
        "cluster_name": args.cluster,
        "service_name": args.service,
        "requested_by": args.requested_by or os.environ.get("USER") or "cli",
    }
    if args.to:
        request["to"] = args.to
    if args.region:
        request["region"] = args.region
    result = app.send_task("deploy_agent.rollback", kwargs={"request": request})
    print(json.dumps({"task_id": result.id}))
    if not args.wait:
        return 0
    final: dict[str, Any] = result.get(timeout=args.timeout)
    print(json.dumps(final, indent=2))
    return 0 if final.get("outcome") == "succeeded" else 1


def _cmd_run(args: argparse.Namespace) -> int:
    from deploy_agent.tasks.local import run_locally

    payload = json.loads(Path(args.file).read_text()) if args.file != "-" else json.load(sys.stdin)
    result = run_locally(payload, on_event=lambda e: print(format_event(e), file=sys.stderr, flush=True))
    print(json.dumps(result, indent=2))
    return 0 if result.get("outcome") == "succeeded" else 1


def _cmd_plan(args: argparse.Namespace) -> int:
    from deploy_agent.tasks.plan import exit_code, format_plan, plan_request

    payload = json.loads(Path(args.file).read_text()) if args.file != "-" else json.load(sys.stdin)
    if args.via_worker:
        from deploy_agent.worker.app import app

        result: dict[str, Any] = app.send_task("deploy_agent.plan", kwargs={"request": payload}).get(
            timeout=args.timeout
        )
    else:
        result = plan_request(payload)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        format_plan(result, print)
    return exit_code(result)


def _cmd_status(args: argparse.Namespace) -> int:
    from deploy_agent.tasks.runtime import get_runtime

    store = get_runtime().store
    result = store.result(args.deployment_id)
    state = store.load(args.deployment_id)
    if state is None and result is None:
        print(f"unknown deployment {args.deployment_id}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"result": result, "events": store.events(args.deployment_id)}, indent=2))
        return 0
    for event in store.events(args.deployment_id):
        print(format_event(event))
    if result is not None:
        print(f"outcome: {result['outcome']}")
    else:
        print(f"phase: {(state or {}).get('phase')}")
        approval = (state or {}).get("approval") or {}
        if approval and approval.get("decision") is None:
            print(
                f"state: awaiting_approval (rule {approval.get('rule')}, "
                f"asked {approval.get('requested_at')}, deadline {approval.get('deadline')}): "
                f"deploy-agent approve|deny {args.deployment_id}"
            )
    return 0


def _default_approver() -> str:
    import socket

    return f"{os.environ.get('USER') or 'unknown'}@{socket.gethostname()}"


def _cmd_decide(args: argparse.Namespace) -> int:
    """Record an approval or a denial and print the answer; exit 1 on an error.

    Written to Redis directly, in the same atomic step as the ``deploy_agent.approve`` / ``deny``
    tasks: it needs no running worker (a ``deploy-agent run`` in another terminal waits on it too).
    """
    from deploy_agent.tasks.approval import decide
    from deploy_agent.tasks.runtime import get_runtime

    request: dict[str, Any] = {
        "deployment_id": args.deployment_id,
        "approver": args.approver or _default_approver(),
    }
    if args.command == "approve":
        if args.comment is not None:
            request["comment"] = args.comment
    else:
        request["reason"] = args.reason
    answer = decide(get_runtime(), "approved" if args.command == "approve" else "denied", request)
    print(json.dumps(answer, indent=2))
    return 1 if "error" in answer else 0


def _cmd_sandbox(args: argparse.Namespace) -> int:
    # The emulation is not part of the wheel (it lives in the source checkout's src/ecs_sandbox), so
    # it is imported only when this command runs, and its absence is a message, not a traceback.
    try:
        from ecs_sandbox.__main__ import run_sandbox
    except ModuleNotFoundError as missing:
        absent = (missing.name or "").split(".")[0]
        if absent not in ("ecs_sandbox", "moto"):
            raise
        print(
            f"deploy-agent sandbox: {absent} is not installed. The sandbox comes with the source "
            "checkout, not with the deploy-agent package: run scripts/demo.sh there, or "
            "`pip install -e '.[sandbox]'` and `python -m ecs_sandbox`.",
            file=sys.stderr,
        )
        return 2
    return run_sandbox(args.rest)


def _cmd_events_setup(args: argparse.Namespace) -> int:
    from deploy_agent.adapters.aws import AwsClients
    from deploy_agent.adapters.ecs_events import EventQueueMaker
    from deploy_agent.core.errors import DeployError
    from deploy_agent.settings import Settings

    settings = Settings()
    # Run once by an operator: no Redis needed, so no fleet quota bucket either (six calls).
    clients = AwsClients(args.region or settings.aws_region, max_attempts=settings.aws_max_attempts)
    try:
        made = EventQueueMaker(clients).setup(args.queue, args.rule)
    except DeployError as exc:
        print(f"deploy-agent events setup: {exc}", file=sys.stderr)
        return 1
    print(f"queue: {made.queue_url}\nrule: {made.rule_arn}\nset in the workers' environment:")
    print(f"DEPLOY_AGENT_EVENTS_QUEUE_URL={made.queue_url}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deploy-agent", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("worker", help="run a Celery worker consuming the deploy queue")
    p.add_argument("--concurrency", "-c", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--loglevel", default="INFO")
    p.add_argument("--hostname", default="deploy-agent@%h")
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
    p.add_argument(
        "--metrics-dir",
        type=Path,
        default=None,
        help="prometheus multiprocess directory, one per worker (default: $PROMETHEUS_MULTIPROC_DIR, "
        "else $TMPDIR/deploy-agent-metrics/NODE.QUEUE.PORT)",
    )
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser("submit", help="publish a DeployToECSTask message (JSON file, or - for stdin)")
    p.add_argument("file")
    p.add_argument("--wait", action="store_true", help="follow the deployment; exit 1 unless it succeeded")
    p.add_argument("--timeout", type=float, default=3600)
    p.set_defaults(func=_cmd_submit)

    p = sub.add_parser(
        "rollback",
        help="put a service back on an earlier good release",
        description="Put a service back on its previous good release, or on the one --to names "
        "(a deployment id from the release ledger, a revision number, family:revision or an ARN).",
    )
    p.add_argument("cluster")
    p.add_argument("service")
    p.add_argument("--to", help="deployment id, revision number, family:revision or task-definition ARN")
    p.add_argument("--region")
    p.add_argument("--requested-by")
    p.add_argument("--wait", action="store_true", help="wait for the outcome; exit 1 unless it succeeded")
    p.add_argument("--timeout", type=float, default=3600)
    p.set_defaults(func=_cmd_rollback)

    p = sub.add_parser("status", help="show a deployment's events and outcome")
    p.add_argument("deployment_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("approve", help="let a deployment awaiting approval go on")
    p.add_argument("deployment_id")
    p.add_argument("--approver", help="who approves (default: $USER@hostname)")
    p.add_argument("--comment", help="a note kept with the approval in the result and the events")
    p.set_defaults(func=_cmd_decide)

    p = sub.add_parser("deny", help="end a deployment awaiting approval: denied, nothing left behind")
    p.add_argument("deployment_id")
    p.add_argument("--reason", required=True, help="why (kept in the result and the events)")
    p.add_argument("--approver", help="who denies (default: $USER@hostname)")
    p.set_defaults(func=_cmd_decide)

    p = sub.add_parser(
        "run",
        help="run one deployment in this process (no broker, no worker)",
        description="Run the whole pipeline for one DeployToECSTask message in this process, printing each "
        "event as it happens; exits 1 unless the outcome is succeeded. State and events still go to Redis.",
    )
    p.add_argument("file", help="the message as a JSON file, or - for stdin")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "plan",
        help="show what a deployment would do, changing nothing",
        description="Dry-run a DeployToECSTask message: validation and policy verdicts, the preflight, the "
        "task definition diff, the strategy's steps and whether it needs approval. Only reads reach AWS; "
        "runs in this process unless --via-worker. Exits 0 when it would deploy, 1 when not.",
    )
    p.add_argument("file", help="the message as a JSON file, or - for stdin")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--via-worker", action="store_true", help="ask a worker (the deploy_agent.plan task)")
    p.add_argument("--timeout", type=float, default=120, help="with --via-worker: seconds to wait")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("events", help="ECS's events through EventBridge and SQS (event-driven verdicts)")
    events = p.add_subparsers(dest="events_command", required=True)
    p = events.add_parser("setup", help="create the SQS queue and the EventBridge rule (idempotent)")
    p.add_argument("--region", help="the Region of the rule and the queue (default: DEPLOY_AGENT_AWS_REGION)")
    p.add_argument("--queue", default="deploy-agent-ecs-events", help="queue name")
    p.add_argument("--rule", default="deploy-agent-ecs-events", help="rule name (default event bus)")
    p.set_defaults(func=_cmd_events_setup)

    p = sub.add_parser("schema", help="print the JSON Schema of DeployToECSTask")
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser(
        "sandbox",
        help="run the local sandbox (moto, ECS scheduler, load balancer, registry; source checkout only)",
    )
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_sandbox)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
