"""The main job on the local sandbox: a real worker deploys two releases published as messages.

1. start the sandbox (moto, the ECS scheduler, the load balancer, the registry) and a worker process;
2. provision a service ``demo/web`` running version v1 (2 tasks behind a load balancer);
3. publish a release v2 built from ``examples/web``: it is built, pushed, deployed, health-checked;
4. publish a release v3 whose container crashes at start: ECS's circuit breaker fails it and the
   service is back on v2; the result says why.

Each deployment's progress events are printed as they happen. Exit status 0 when both outcomes are
the expected ones.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import requests

from ecs_sandbox.environment import Sandbox, provision_service
from ecs_sandbox.realism import add_profile_arguments, profile_options
from sandbox_harness.stack import StackConfig, WorkerProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ECR_HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _push_initial(box: Sandbox, api: docker.APIClient) -> str:
    local = f"{box.registry_host}/web"
    for chunk in api.build(
        path=str(EXAMPLES / "web"),
        tag=f"{local}:v1",
        buildargs={"VERSION": "v1"},
        network_mode="host",
        decode=True,
        rm=True,
    ):
        if "error" in chunk:
            raise RuntimeError(chunk["error"])
    for chunk in api.push(local, tag="v1", stream=True, decode=True):
        if "error" in chunk:
            raise RuntimeError(chunk["error"])
    return f"{ECR_HOST}/web:v1"


def _follow(deployment_id: str, async_result: Any, timeout: float) -> dict[str, Any]:
    from deploy_agent.progress import format_event
    from deploy_agent.tasks.runtime import get_runtime

    store = get_runtime().store
    seen = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in store.events(deployment_id, seen):
            seen += 1
            print("   " + format_event(event), flush=True)
        if async_result.ready():
            result: dict[str, Any] = async_result.get(timeout=5)
            for event in store.events(deployment_id, seen):
                print("   " + format_event(event), flush=True)
            return result
        time.sleep(0.2)
    raise TimeoutError(f"deployment {deployment_id} did not finish within {timeout:.0f} s")


def _release(url: str, version: str, mode: str, cluster: str, service: str) -> dict[str, Any]:
    return {
        "deployment_id": f"demo-{version}-{uuid.uuid4().hex[:6]}",
        "cluster_name": cluster,
        "service_name": service,
        "build": {"context": "web", "build_args": {"VERSION": version, "MODE": mode}, "target": "app"},
        "image": {"repository": "web", "tag": version},
        "health_check": {"url": f"{url}/health", "interval_seconds": 1.0, "healthy_threshold": 3},
        "timeout_seconds": 300,
        "requested_by": "demo",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox_harness.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--state-dir", type=Path, default=Path(".sandbox/demo"))
    parser.add_argument(
        "--redis-url", default="redis://127.0.0.1:" + os.environ.get("DEPLOY_AGENT_REDIS_PORT", "6379")
    )
    add_profile_arguments(parser)
    args = parser.parse_args(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    broker_db, result_db, state_db = 7, 8, 9  # kept apart from a default worker's 0-2
    os.environ.update(
        DEPLOY_AGENT_BROKER_URL=f"{args.redis_url}/{broker_db}",
        DEPLOY_AGENT_RESULT_BACKEND=f"{args.redis_url}/{result_db}",
        DEPLOY_AGENT_STATE_REDIS_URL=f"{args.redis_url}/{state_db}",
    )
    _say("starting the sandbox: moto (AWS APIs), the ECS scheduler, a load balancer, a registry")
    box = Sandbox.start(args.state_dir, registry_port=0, **profile_options(args))
    os.environ.update(
        AWS_ENDPOINT_URL=box.aws_endpoint_url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106  (moto accepts any credentials)
        AWS_DEFAULT_REGION="us-east-1",
    )
    worker: WorkerProcess | None = None
    try:
        api = docker.APIClient(
            base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"), version="auto"
        )
        _say("provisioning service demo/web at v1 (2 tasks behind a load balancer)")
        svc = provision_service(box, "demo", "web", image=_push_initial(box, api), desired_count=2)
        print(f"   {svc.url}/version -> {requests.get(svc.url + '/version', timeout=5).text.strip()}")
        config = StackConfig(
            aws_endpoint_url=box.aws_endpoint_url,
            registry_host=box.registry_host,
            build_root=EXAMPLES,
            redis_url=args.redis_url,
            poll_interval_seconds=0.5,
            broker_db=broker_db,
            result_db=result_db,
            state_db=state_db,
        )
        _say("starting a worker: deploy-agent worker (log: %s)" % (args.state_dir / "worker.log"))
        worker = WorkerProcess(config, args.state_dir / "worker.log", concurrency=2).start()
        from deploy_agent.worker.app import app

        expectations = [("v2", "ok", "succeeded"), ("v3", "crash", "rolled_back")]
        ok = True
        for version, mode, expected in expectations:
            request = _release(svc.url, version, mode, "demo", "web")
            _say(
                f"publishing deployment {request['deployment_id']}: release {version}"
                + (" (its container crashes at start)" if mode == "crash" else "")
            )
            async_result = app.send_task("deploy_agent.deploy", kwargs={"request": request})
            result = _follow(request["deployment_id"], async_result, timeout=300)
            summary = {
                k: result[k]
                for k in (
                    "outcome",
                    "image_uri",
                    "task_definition_arn",
                    "duration_seconds",
                    "rollback",
                    "error",
                )
            }
            if result["diagnostics"]["stopped_tasks"]:
                summary["stopped_task"] = result["diagnostics"]["stopped_tasks"][0]
            print(json.dumps(summary, indent=2))
            serving = requests.get(svc.url + "/version", timeout=5).text.strip()
            print(f"   outcome {result['outcome']} (expected {expected}); the service now serves {serving}")
            ok = ok and result["outcome"] == expected and serving == "v2"
        _say("demo " + ("passed" if ok else "FAILED"))
        return 0 if ok else 1
    finally:
        if worker is not None:
            worker.stop()
        box.stop()


if __name__ == "__main__":
    sys.exit(main())
