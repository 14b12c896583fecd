"""The seed's multi-container message end to end, and one worker process carrying 20 deployments."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
import requests

from deploy_agent.settings import Settings
from deploy_agent.worker.app import create_app
from ecs_sandbox.environment import Sandbox, provision_service
from sandbox_harness.stack import StackConfig, WorkerProcess
from tests.integration.conftest import REDIS_URL, unique
from tests.integration.test_rolling import publish, served_version

pytestmark = pytest.mark.integration

SECRET_VALUE = "s3cr3t-db-password-planted"


def test_seed_multi_container_message(sandbox: Sandbox, worker: WorkerProcess, push_app: Any) -> None:
    """The seed's camelCase message with an app and a sidecar: only the app gets the new image."""
    cluster, service = "itest", unique("seed")
    svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=2)
    secret_arn = boto3.client("secretsmanager").create_secret(Name=unique("db"), SecretString=SECRET_VALUE)[
        "ARN"
    ]
    sidecar_image = push_app("side", repository="sidecar")
    deployment_id = unique("seed")
    message = {
        "deploymentId": deployment_id,
        "clusterName": cluster,
        "serviceName": service,
        "desiredCount": 2,
        "build": {"context": "web", "buildArgs": {"VERSION": "v8"}, "target": "app"},
        "image": {"repository": "web", "tag": "v8-seed"},
        "containerName": "app",
        "taskDefinition": {
            "family": service,
            "cpu": "512",
            "memory": "1024",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "containerDefinitions": [
                {
                    "name": "app",
                    "essential": True,
                    "memory": 512,
                    "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
                    "environment": [{"name": "GREETING", "value": "hello"}],
                    "secrets": [{"name": "DB_PASSWORD", "valueFrom": secret_arn}],
                },
                {"name": "sidecar", "image": sidecar_image, "essential": False, "memory": 128},
            ],
        },
        "deploymentConfiguration": {"maximumPercent": 200, "minimumHealthyPercent": 100},
        "healthCheckEndpoint": f"{svc.url}/health",
    }
    result = publish(message)

    assert result["outcome"] == "succeeded", result
    td = boto3.client("ecs").describe_task_definition(taskDefinition=result["task_definition_arn"])[
        "taskDefinition"
    ]
    containers = {c["name"]: c for c in td["containerDefinitions"]}
    assert containers["app"]["image"] == result["image_uri"]
    assert "@sha256:" in result["image_uri"]
    assert containers["sidecar"]["image"] == sidecar_image
    assert containers["app"]["secrets"] == [{"name": "DB_PASSWORD", "valueFrom": secret_arn}]
    assert containers["app"]["logConfiguration"]["logDriver"] == "awslogs"
    assert served_version(svc) == "v8"
    # The secret's value is injected by ECS at run time; it never passes through the worker's output.
    state = redis.Redis.from_url(f"{REDIS_URL}/15")
    events = state.lrange(f"deploy-agent:events:{deployment_id}", 0, -1)
    assert SECRET_VALUE not in json.dumps(result)
    assert all(SECRET_VALUE.encode() not in e for e in events)
    log = worker.log_path.read_text()
    assert SECRET_VALUE not in log
    # ECR's authorization token (moto's is base64 of "AWS:123456789012-auth-token") is never logged.
    assert "auth-token" not in log
    assert "QVdTOjEyMzQ1Njc4OTAxMi1hdXRoLXRva2Vu" not in log


def _max_overlap(results: list[dict[str, Any]]) -> int:
    marks = []
    for r in results:
        marks.append((datetime.fromisoformat(r["started_at"]), 1))
        marks.append((datetime.fromisoformat(r["finished_at"]), -1))
    current = best = 0
    for _, delta in sorted(marks, key=lambda m: (m[0], m[1])):
        current += delta
        best = max(best, current)
    return best


def test_one_worker_process_tracks_twenty_deployments(
    sandbox: Sandbox, push_app: Any, tmp_path: Path
) -> None:
    """One worker process (-c 1) carries many deployments of different services at once (a waiting one
    does not hold it), and finishes those it started before starting the last ones; all finish."""
    count = 20
    services = [
        provision_service(sandbox, "scale", unique(f"s{i}"), image=push_app("v1"), desired_count=1)
        for i in range(count)
    ]
    new_image = push_app("v9")
    config = StackConfig(
        aws_endpoint_url=sandbox.aws_endpoint_url,
        registry_host=sandbox.registry_host,
        build_root=Path(__file__).resolve().parents[2] / "examples",
        redis_url=REDIS_URL,
        broker_db=10,
        result_db=11,
        state_db=12,
        poll_interval_seconds=0.5,
        extra_env={"AWS_MAX_ATTEMPTS": "2", "DEPLOY_AGENT_HEALTH_INTERVAL_DEFAULT_SECONDS": "0.2"},
    )
    for db in (10, 11, 12):
        redis.Redis.from_url(f"{REDIS_URL}/{db}").flushdb()
    app = create_app(
        Settings(broker_url=f"{REDIS_URL}/10", result_backend=f"{REDIS_URL}/11"), set_as_current=False
    )
    with WorkerProcess(config, tmp_path / "worker.log", concurrency=1, name="solo").start():
        pending = [
            app.send_task(
                "deploy_agent.deploy",
                kwargs={
                    "request": {
                        "cluster_name": "scale",
                        "service_name": svc.service_arn.rsplit("/", 1)[-1],
                        "image": {"uri": new_image},
                        "health_check": {"url": f"{svc.url}/version", "healthy_threshold": 1},
                    }
                },
            )
            for svc in services
        ]
        results = [p.get(timeout=300) for p in pending]

    assert [r["outcome"] for r in results] == ["succeeded"] * count, [r["error"] for r in results]
    assert {requests.get(f"{svc.url}/version", timeout=5).text.strip() for svc in services} == {"v9"}
    # Several were in flight together on one worker process: a deployment waiting on ECS holds no
    # process (waiting in the process, one at a time, the overlap would be 1). Not all twenty: the
    # worker takes a started deployment's next stage (queue deploy.stages) before a new deployment.
    assert _max_overlap(results) >= 3
    first_finished = min(datetime.fromisoformat(r["finished_at"]) for r in results)
    last_started = max(datetime.fromisoformat(r["started_at"]) for r in results)
    assert first_finished < last_started
