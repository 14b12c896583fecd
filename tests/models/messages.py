"""Example messages shared by the model tests: minimal, full, and the seed's own camelCase shape."""

from __future__ import annotations

from typing import Any

ACCOUNT = "123456789012"
PUSHED = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/web:1.4.2"
DB_SECRET = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod/db-AbCdEf"
API_PARAM = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/prod/api-key"
ELB = f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}"
LOAD_BALANCER = {
    "listener_arn": f"{ELB}:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2",
    "blue_target_group_arn": f"{ELB}:targetgroup/web-blue/73e2d6bc24d8a067",
    "green_target_group_arn": f"{ELB}:targetgroup/web-green/2453ed029918f21f",
}


def minimal() -> dict[str, Any]:
    return {"cluster_name": "prod", "service_name": "web", "image": {"uri": PUSHED}}


def full() -> dict[str, Any]:
    """Build + push, an app with a sidecar, secrets, an HTTP health check and a canary."""
    return {
        "deployment_id": "web-2024.06.01:42",
        "cluster_name": "prod",
        "service_name": "web",
        "region": "eu-west-1",
        "build": {"context": "services/web", "build_args": {"VERSION": "1.4.2"}, "platform": "linux/amd64"},
        "image": {"repository": "team/web", "tag": "1.4.2"},
        "ecr": {"lifecycle_policy": {"keep_last": 20}, "tag_mutability": "IMMUTABLE"},
        "task_definition": {
            "family": "web",
            "cpu": 512,
            "memory": "1024",
            "execution_role_arn": f"arn:aws:iam::{ACCOUNT}:role/web-exec",
            "container_definitions": [
                {
                    "name": "app",
                    "cpu": 384,
                    "memory": 768,
                    "port_mappings": [{"container_port": 8080}],
                    "environment": {"LOG_LEVEL": "info"},
                    "secrets": {"DB_PASSWORD": DB_SECRET, "API_KEY": API_PARAM},
                    "health_check": {"command": ["CMD-SHELL", "wget -qO- localhost:8080/health"]},
                    "log_configuration": {"log_driver": "awslogs", "options": {"awslogs-group": "/ecs/web"}},
                },
                {
                    "name": "envoy",
                    "image": "public.ecr.aws/envoy/envoy:v1.30",
                    "essential": False,
                    "cpu": 128,
                },
            ],
        },
        "container_name": "app",
        "desired_count": 4,
        "strategy": {
            "type": "canary",
            "load_balancer": LOAD_BALANCER,
            "steps": [{"weight": 10, "pause_seconds": 60}, {"weight": 50, "pause_seconds": 60}],
        },
        "health_check": {"url": "https://web.example.com/health", "max_latency_ms": 500},
        "rollback": {"alarm_names": ["web-5xx"]},
        "timeout_seconds": 1800,
        "requested_by": "release-bot",
        "labels": {"git_sha": "abc123"},
    }


def seed() -> dict[str, Any]:
    """The seed's camelCase message, its task definition in AWS's register_task_definition shape."""
    return {
        "clusterName": "prod",
        "serviceName": "web",
        "desiredCount": 2,
        "healthCheckEndpoint": "http://web.internal:8080/health",
        "deploymentConfiguration": {
            "maximumPercent": 150,
            "minimumHealthyPercent": 50,
            "deploymentCircuitBreaker": {"enable": True, "rollback": False},
        },
        "taskDefinition": {
            "family": "web",
            "cpu": "256",
            "memory": "512",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "containerDefinitions": [
                {
                    "name": "web",
                    "image": PUSHED,
                    "essential": True,
                    "portMappings": [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}],
                    "environment": [{"name": "PORT", "value": "8080"}],
                    "secrets": [{"name": "DB_PASSWORD", "valueFrom": DB_SECRET}],
                    "healthCheck": {"command": ["CMD", "true"], "interval": 10, "startPeriod": 15},
                },
                {
                    "name": "log-router",
                    "image": "amazon/aws-for-fluent-bit:2",
                    "essential": False,
                    "memory": 64,
                },
            ],
        },
    }
