"""The operator's policy applied to messages and manual rollbacks: one row per rule, allowed and broken."""

from __future__ import annotations

import json
from typing import Any

import pytest

from deploy_agent.core.policy import (
    DOCKER_HUB,
    check_request,
    check_rollback,
    ecr_repository_of,
    registry_of,
)
from deploy_agent.models import parse_request
from deploy_agent.models.policy import Policy

ACCOUNT = "123456789012"
FOREIGN = "999999999999"
ECR = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
SECRET = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod/web/db-AbCdEf"
OUTSIDE_SECRET = f"arn:aws:secretsmanager:us-east-1:{FOREIGN}:secret:loot-AbCdEf"
ELB = f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}"
LOAD_BALANCER = {
    "listener_arn": f"{ELB}:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2",
    "blue_target_group_arn": f"{ELB}:targetgroup/b/73e2d6bc24d8a067",
    "green_target_group_arn": f"{ELB}:targetgroup/g/2453ed029918f21f",
    "test_url": "http://test.web.internal/health",
    "production_url": "http://web.internal/health",
}

#: a policy under which BASE is allowed; each case tightens one rule or breaks BASE in one way
POLICY: dict[str, Any] = {
    "regions": ["us-east-1"],
    "clusters": ["prod-*"],
    "services": ["web", "api"],
    "repositories": ["team/*"],
    "registries": [ECR, "public.ecr.aws"],
    "task_role_arns": [f"arn:aws:iam::{ACCOUNT}:role/app-*"],
    "execution_role_arns": [f"arn:aws:iam::{ACCOUNT}:role/ecs-exec"],
    "secret_arn_prefixes": [f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod/web/"],
    "log_drivers": ["awslogs"],
    "max_desired_count": 10,
    "max_cpu": 1024,
    "max_memory": 2048,
    "outbound": {"url_hosts": ["*.internal", "web.internal"], "webhook_hosts": ["hooks.example.com"]},
}


def base() -> dict[str, Any]:
    return {
        "cluster_name": "prod-eu",
        "service_name": "web",
        "image": {"uri": f"{ECR}/team/web:1.2.3"},
        "desired_count": 4,
        "task_definition": {
            "family": "web",
            "cpu": "512",
            "memory": "1024",
            "task_role_arn": f"arn:aws:iam::{ACCOUNT}:role/app-web",
            "execution_role_arn": f"arn:aws:iam::{ACCOUNT}:role/ecs-exec",
            "container_definitions": [
                {
                    "name": "app",
                    "port_mappings": [{"container_port": 8080}],
                    "secrets": {"DB_PASSWORD": SECRET},
                    "log_configuration": {"log_driver": "awslogs", "options": {"awslogs-group": "/ecs/web"}},
                },
                {"name": "envoy", "image": "public.ecr.aws/envoy/envoy:v1.30", "essential": False},
            ],
        },
        "strategy": {"type": "blue_green", "load_balancer": dict(LOAD_BALANCER)},
        "health_check": {"url": "http://web.internal:8080/health"},
        "notify": {"webhooks": ["https://hooks.example.com/deploys"]},
    }


def _app(message: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = message["task_definition"]["container_definitions"][0]
    return container


def _set(path: str, value: Any) -> Any:
    def change(message: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = message
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value

    return change


def _host_network(message: dict[str, Any]) -> None:
    definition = message["task_definition"]
    definition.update(network_mode="host", requires_compatibilities=["EC2"])
    for container in definition["container_definitions"]:
        container.pop("port_mappings", None)


def _splunk(message: dict[str, Any]) -> None:
    _app(message)["log_configuration"] = {
        "log_driver": "splunk",
        "options": {"splunk-url": "https://splunk.attacker.example:8088"},
        "secret_options": [{"name": "splunk-token", "valueFrom": SECRET}],
    }


def _log_secret_outside(message: dict[str, Any]) -> None:
    _app(message)["log_configuration"]["secret_options"] = [{"name": "token", "valueFrom": OUTSIDE_SECRET}]


def _build(message: dict[str, Any]) -> None:
    message["image"] = {"repository": "other/web", "tag": "1"}
    message["build"] = {"context": "web"}


def _gate(url: str, name: str = "a") -> dict[str, Any]:
    """An analysis gate querying the Prometheus at ``url``."""
    return {
        "name": name,
        "url": url,
        "query": "up",
        "success_condition": "result == 1",
        "interval_seconds": 1,
        "count": 1,
    }


TD = "task_definition"
APP = f"{TD}.container_definitions.0"
#: id -> (policy changes, message change or None, the (field, rule) broken or None when allowed)
CASES: dict[str, tuple[dict[str, Any], Any, tuple[str, str] | None]] = {
    "the base message is allowed": ({}, None, None),
    "region allowed": ({}, _set("region", "us-east-1"), None),
    "region not allowed": ({}, _set("region", "eu-west-1"), ("region", "regions")),
    "cluster not allowed": ({}, _set("cluster_name", "staging"), ("cluster_name", "clusters")),
    "service not allowed": ({}, _set("service_name", "billing"), ("service_name", "services")),
    "repository of an ECR uri not allowed": (
        {},
        _set("image.uri", f"{ECR}/other/web:1"),
        ("image.uri", "repositories"),
    ),
    "repository to build into not allowed": ({}, _build, ("image.repository", "repositories")),
    "repository to build into allowed": ({"repositories": ["other/*", "team/*"]}, _build, None),
    "image from any registry": ({}, _set("image.uri", "evil.example.com/web:1"), ("image.uri", "registries")),
    "a sidecar from Docker Hub": (
        {},
        _set(f"{APP.replace('.0', '.1')}.image", "nginx:latest"),
        (f"{TD}.container_definitions.1.image", "registries"),
    ),
    "Docker Hub allowed by name": (
        {"registries": [ECR, "public.ecr.aws", DOCKER_HUB]},
        _set(f"{TD}.container_definitions.1.image", "nginx:latest"),
        None,
    ),
    "foreign-account task role": (
        {},
        _set(f"{TD}.task_role_arn", f"arn:aws:iam::{FOREIGN}:role/app-admin"),
        (f"{TD}.task_role_arn", "task_role_arns"),
    ),
    "execution role not allowed": (
        {},
        _set(f"{TD}.execution_role_arn", f"arn:aws:iam::{ACCOUNT}:role/admin"),
        (f"{TD}.execution_role_arn", "execution_role_arns"),
    ),
    "secret outside the prefixes": (
        {},
        _set(f"{APP}.secrets", {"DB_PASSWORD": OUTSIDE_SECRET}),
        (f"{APP}.secrets.DB_PASSWORD", "secret_arn_prefixes"),
    ),
    "log secret outside the prefixes": (
        {},
        _log_secret_outside,
        (f"{APP}.log_configuration.secret_options.token", "secret_arn_prefixes"),
    ),
    "network_mode host": ({}, _host_network, (f"{TD}.network_mode", "allow_host_network")),
    "network_mode host allowed": ({"allow_host_network": True}, _host_network, None),
    "splunk log driver": ({}, _splunk, (f"{APP}.log_configuration.log_driver", "log_drivers")),
    "splunk allowed": ({"log_drivers": ["awslogs", "splunk"]}, _splunk, None),
    "ECR lifecycle policy": (
        {},
        _set("ecr", {"lifecycle_policy": {"policy_text": json.dumps({"rules": []})}}),
        ("ecr.lifecycle_policy", "allow_ecr_lifecycle_policy"),
    ),
    "ECR lifecycle policy allowed": (
        {"allow_ecr_lifecycle_policy": True},
        _set("ecr", {"lifecycle_policy": {"keep_last": 5}}),
        None,
    ),
    "desired count too big": ({}, _set("desired_count", 11), ("desired_count", "max_desired_count")),
    "desired count at the limit": ({}, _set("desired_count", 10), None),
    "task cpu too big": ({"max_cpu": 256}, None, (f"{TD}.cpu", "max_cpu")),
    "task cpu spelled in vCPU too big": (
        {"max_cpu": 512},
        lambda m: m[TD].update(cpu="1 vCPU", memory="2 GB"),
        (f"{TD}.cpu", "max_cpu"),
    ),
    "task memory too big": ({"max_memory": 512}, None, (f"{TD}.memory", "max_memory")),
    "health URL host not allowed (metadata service)": (
        {},
        _set("health_check.url", "http://169.254.169.254/latest/meta-data/"),
        ("health_check.url", "outbound.url_hosts"),
    ),
    "test URL host not allowed": (
        {},
        _set("strategy.load_balancer.test_url", "http://127.0.0.1:2375/"),
        ("strategy.load_balancer.test_url", "outbound.url_hosts"),
    ),
    "production URL host not allowed": (
        {},
        _set("strategy.load_balancer.production_url", "http://[::1]:6379/"),
        ("strategy.load_balancer.production_url", "outbound.url_hosts"),
    ),
    "analysis URL host not allowed": (
        {},
        _set("analysis", [_gate("http://metrics.internal:9090"), _gate("http://169.254.169.254:9090", "b")]),
        ("analysis.1.url", "outbound.url_hosts"),
    ),
    "analysis URL host allowed": ({}, _set("analysis", [_gate("http://prometheus.internal:9090")]), None),
    "webhook host not allowed": (
        {},
        _set("notify.webhooks", ["https://hooks.example.com/x", "http://10.0.0.8/steal"]),
        ("notify.webhooks.1", "outbound.webhook_hosts"),
    ),
    "an empty list allows nothing": ({"services": []}, None, ("service_name", "services")),
}


@pytest.mark.parametrize(("changes", "mutate", "broken"), CASES.values(), ids=CASES.keys())
def test_each_rule(changes: dict[str, Any], mutate: Any, broken: tuple[str, str] | None) -> None:
    """A message breaking one rule gets exactly that (field, rule); the allowed variant gets none."""
    policy = Policy.model_validate({**POLICY, **changes})
    message = base()
    if mutate is not None:
        mutate(message)
    violations = check_request(policy, parse_request(message), message.get("region", "us-east-1"))
    assert [(v.field, v.rule) for v in violations] == ([broken] if broken else []), violations


def test_no_restriction_when_left_out() -> None:
    """An empty policy restricts only the dangerous switches (awslogs only, no host network)."""
    message = base()
    message["image"]["uri"] = "anything.example.com/x/y:1"
    message["cluster_name"] = "whatever"
    assert check_request(Policy(), parse_request(message), "ap-south-1") == []
    _splunk(message)
    assert [v.rule for v in check_request(Policy(), parse_request(message), "ap-south-1")] == ["log_drivers"]


def test_problems_never_repeat_a_secret_arn() -> None:
    """A secret outside the prefixes is named by its variable, not its ARN."""
    policy = Policy.model_validate(POLICY)
    message = base()
    _app(message)["secrets"] = {"DB_PASSWORD": OUTSIDE_SECRET}
    (violation,) = check_request(policy, parse_request(message), "us-east-1")
    assert OUTSIDE_SECRET not in violation.problem
    assert FOREIGN not in violation.problem


def test_every_violation_is_reported_at_once() -> None:
    policy = Policy.model_validate(POLICY)
    message = base()
    message.update(cluster_name="staging", desired_count=50)
    message["health_check"]["url"] = "http://169.254.169.254/"
    rules = {v.rule for v in check_request(policy, parse_request(message), "eu-west-1")}
    assert rules == {"regions", "clusters", "max_desired_count", "outbound.url_hosts"}


DESCRIBED: dict[str, Any] = {
    "taskDefinitionArn": f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/web:7",
    "family": "web",
    "networkMode": "awsvpc",
    "cpu": "512",
    "memory": "1024",
    "taskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/app-web",
    "containerDefinitions": [
        {
            "name": "app",
            "image": f"{ECR}/team/web@sha256:{'a' * 64}",
            "secrets": [{"name": "DB_PASSWORD", "valueFrom": SECRET}],
            "logConfiguration": {"logDriver": "awslogs", "options": {}},
        }
    ],
}

ROLLBACKS: dict[str, tuple[Any, tuple[str, str] | None]] = {
    "a good earlier revision": (lambda d: None, None),
    "privileged container": (
        lambda d: d["containerDefinitions"][0].update(privileged=True),
        ("to.container_definitions.0.privileged", "allow_privileged"),
    ),
    "host network": (lambda d: d.update(networkMode="host"), ("to.network_mode", "allow_host_network")),
    "foreign task role": (
        lambda d: d.update(taskRoleArn=f"arn:aws:iam::{FOREIGN}:role/app-x"),
        ("to.task_role_arn", "task_role_arns"),
    ),
    "image from another registry": (
        lambda d: d["containerDefinitions"][0].update(image="ghcr.io/evil/web:1"),
        ("to.container_definitions.0.image", "registries"),
    ),
    "repository credentials outside the prefixes": (
        lambda d: d["containerDefinitions"][0].update(
            repositoryCredentials={"credentialsParameter": OUTSIDE_SECRET}
        ),
        ("to.container_definitions.0.repository_credentials.credentials_parameter", "secret_arn_prefixes"),
    ),
    "fluentd logs": (
        lambda d: d["containerDefinitions"][0].update(logConfiguration={"logDriver": "fluentd"}),
        ("to.container_definitions.0.log_configuration.log_driver", "log_drivers"),
    ),
    "memory over the limit": (lambda d: d.update(memory="4096"), ("to.memory", "max_memory")),
}


@pytest.mark.parametrize(("mutate", "broken"), ROLLBACKS.values(), ids=ROLLBACKS.keys())
def test_rollback_rules(mutate: Any, broken: tuple[str, str] | None) -> None:
    """A manual rollback's target task definition obeys the same rules as a message's."""
    policy = Policy.model_validate(POLICY)
    described = json.loads(json.dumps(DESCRIBED))
    mutate(described)
    violations = check_rollback(policy, "prod-eu", "web", "us-east-1", described)
    assert [(v.field, v.rule) for v in violations] == ([broken] if broken else []), violations


def test_rollback_target_rules() -> None:
    policy = Policy.model_validate(POLICY)
    violations = check_rollback(policy, "staging", "billing", "eu-west-1", DESCRIBED)
    assert [(v.field, v.rule) for v in violations] == [
        ("region", "regions"),
        ("cluster_name", "clusters"),
        ("service_name", "services"),
    ]


@pytest.mark.parametrize(
    ("image", "registry", "repository"),
    [
        ("nginx", DOCKER_HUB, None),
        ("library/nginx:1", DOCKER_HUB, None),
        ("ghcr.io/org/app:1", "ghcr.io", None),
        ("localhost:5000/app", "localhost:5000", None),
        (f"{ECR}/team/web:1.2", ECR, "team/web"),
        (f"{ECR}/team/web@sha256:{'b' * 64}", ECR, "team/web"),
        (f"{ECR}/web:1@sha256:{'b' * 64}", ECR, "web"),
        (f"{ECR}/web", ECR, "web"),
    ],
)
def test_registry_and_repository_of_an_image(image: str, registry: str, repository: str | None) -> None:
    assert registry_of(image) == registry
    assert ecr_repository_of(image) == repository
