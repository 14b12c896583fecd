"""The plan's pure parts: the path-level task definition diff and the step texts."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from deploy_agent.core.outcome import plan_stages
from deploy_agent.core.plan import STEP_TEXTS, PlanContext, diff_task_definition, plan_steps
from deploy_agent.strategies import blue_green, canary, strategy_for
from deploy_agent.tasks.plan import recipe_of

SECRET = "hunter2-planted-value"

CURRENT: dict[str, Any] = {
    "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/web:3",
    "revision": 3,
    "status": "ACTIVE",
    "family": "web",
    "cpu": "256",
    "memory": "512",
    "networkMode": "awsvpc",
    "tags": [{"key": "team", "value": "a"}],
    "containerDefinitions": [
        {
            "name": "web",
            "image": "repo/web:1",
            "essential": True,
            "environment": [{"name": "MODE", "value": SECRET}, {"name": "KEEP", "value": "same"}],
            "secrets": [{"name": "DB", "valueFrom": "arn:aws:secretsmanager:us-east-1:1:secret:db"}],
            "portMappings": [{"containerPort": 8080}],
        },
        {"name": "sidecar", "image": "envoy:1", "essential": False},
    ],
}


def changed(**edits: Any) -> dict[str, Any]:
    new = copy.deepcopy(CURRENT)
    for path, value in edits.items():
        target: Any = new
        *parents, leaf = path.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is None:
            del target[leaf]
        else:
            target[leaf] = value
    return new


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (copy.deepcopy(CURRENT), []),
        (
            changed(containerDefinitions__0__image="repo/web:2"),
            ["containerDefinitions[web].image: repo/web:1 -> repo/web:2"],
        ),
        (changed(cpu="512", memory="1024"), ["cpu: 256 -> 512", "memory: 512 -> 1024"]),
        (
            changed(containerDefinitions__0__environment=[{"name": "MODE", "value": "other"}]),
            [
                "containerDefinitions[web].environment[KEEP] removed",
                "containerDefinitions[web].environment[MODE]: (value changed)",
            ],
        ),
        (
            changed(
                containerDefinitions__0__environment=[
                    *CURRENT["containerDefinitions"][0]["environment"],
                    {"name": "NEW", "value": SECRET},
                ]
            ),
            ["containerDefinitions[web].environment[NEW] added"],
        ),
        (
            changed(containerDefinitions__0__secrets=[{"name": "DB", "valueFrom": "arn:aws:ssm:x"}]),
            ["containerDefinitions[web].secrets[DB]: (value changed)"],
        ),
        (
            changed(containerDefinitions__0__portMappings=[{"containerPort": 9090}]),
            ['containerDefinitions[web].portMappings: [{"containerPort":8080}] -> [{"containerPort":9090}]'],
        ),
        (
            changed(containerDefinitions__0__logConfiguration={"logDriver": "awslogs"}),
            ['containerDefinitions[web].logConfiguration: added {"logDriver":"awslogs"}'],
        ),
        (changed(networkMode=None), ["networkMode: removed (was awsvpc)"]),
        # output-only fields and tags are not part of the diff
        (changed(revision=4, taskDefinitionArn="x", tags=[]), []),
    ],
)
def test_diff_task_definition(new: dict[str, Any], expected: list[str]) -> None:
    assert diff_task_definition(CURRENT, new) == expected


def test_diff_removed_container() -> None:
    new = copy.deepcopy(CURRENT)
    del new["containerDefinitions"][1]
    assert diff_task_definition(CURRENT, new) == ["containerDefinitions[sidecar] removed"]


def test_diff_added_container_and_nested_change() -> None:
    new = copy.deepcopy(CURRENT)
    new["containerDefinitions"].append({"name": "log", "image": "fluent:1"})
    new["containerDefinitions"][1]["healthCheck"] = {"command": ["CMD", "true"], "interval": 10}
    assert diff_task_definition(CURRENT, new) == [
        "containerDefinitions[log] added: " + '{"image":"fluent:1","name":"log"}',
        'containerDefinitions[sidecar].healthCheck: added {"command":["CMD","true"],"interval":10}',
    ]


def test_diff_never_shows_environment_or_secret_values() -> None:
    new = copy.deepcopy(CURRENT)
    new["containerDefinitions"][0]["environment"] = [
        {"name": "MODE", "value": "x"},
        {"name": "ADDED", "value": SECRET},
    ]
    new["containerDefinitions"].append(
        {"name": "extra", "image": "i", "environment": [{"name": "TOKEN", "value": SECRET}]}
    )
    lines = diff_task_definition({**CURRENT, "containerDefinitions": []}, new)
    lines += diff_task_definition(CURRENT, new)
    lines += diff_task_definition(None, new)
    assert (
        'containerDefinitions[extra] added: {"environment":[{"name":"TOKEN","value":"(hidden)"}]'
        in "".join(lines)
    )
    assert not [line for line in lines if SECRET in line]


def ctx(request: dict[str, Any], **extra: Any) -> PlanContext:
    return PlanContext(
        cluster="c1",
        service="web",
        strategy=request.get("strategy") or {},
        request=request,
        image=(request.get("image") or {}).get("uri") or "web:v2 (to be built)",
        family="web",
        desired_count=2,
        **extra,
    )


LB = {
    "listener_arn": "L-arn",
    "blue_target_group_arn": "TG-blue",
    "green_target_group_arn": "TG-green",
    "test_url": "http://127.0.0.1:9/test",
}


def steps_of(request: dict[str, Any], **extra: Any) -> list[tuple[str, str | None, str, bool]]:
    name = (request.get("strategy") or {}).get("type", "rolling")
    every = strategy_for(name).stages()
    _, idle = plan_stages(every, request)
    planned = plan_steps(every, idle, recipe_of(name, request), ctx(request, **extra))
    return [(s.stage, s.step, s.text, s.skipped) for s in planned]


def test_rolling_steps() -> None:
    request = {
        "image": {"uri": "repo/web:2"},
        "strategy": {"type": "rolling", "maximum_percent": 150, "minimum_healthy_percent": 50},
        "health_check": {"url": "http://h/health", "healthy_threshold": 2},
    }
    steps = steps_of(
        request,
        service_config={"deploymentCircuitBreaker": {"enable": True, "rollback": False}},
        timeout_seconds=900,
    )
    assert [(s, n, skipped) for s, n, _, skipped in steps] == [
        ("preflight", None, False),
        ("build", None, True),
        ("push", None, True),
        ("register", None, False),
        ("deploy", "await_approval", True),
        ("deploy", "update_service", False),
        ("deploy", "wait_rollout", False),
        ("healthcheck", None, False),
        ("rollback", None, False),
        ("finalize", None, False),
    ]
    texts = {n or s: t for s, n, t, _ in steps}
    assert texts["update_service"] == (
        "UpdateService c1/web to the new revision: desired count kept (2), maximumPercent 150, "
        "minimumHealthyPercent 50, circuit breaker kept (on, rollback off)"
    )
    assert "900 s" in texts["wait_rollout"]
    assert texts["push"] == "skipped: image.uri is deployed as given"
    assert texts["healthcheck"].startswith("probe http://h/health until 2 in a row answer 200")


@pytest.mark.parametrize(
    ("strategy", "breaker"),
    [
        ({"circuit_breaker": True}, "circuit breaker on, rollback off"),
        ({"circuit_breaker": False, "circuit_breaker_rollback": False}, "circuit breaker off, rollback off"),
        ({"circuit_breaker_rollback": True}, "circuit breaker on, rollback on"),
    ],
)
def test_rolling_breaker_text(strategy: dict[str, Any], breaker: str) -> None:
    request = {"image": {"uri": "r:2"}, "strategy": {"type": "rolling", **strategy}}
    steps = steps_of(request, service_config={"deploymentCircuitBreaker": {"enable": True}})
    text = next(t for _, n, t, _ in steps if n == "update_service")
    assert text.endswith(breaker)


def test_blue_green_steps_with_approval_and_build() -> None:
    request = {
        "build": {"context": "web"},
        "image": {"repository": "web", "tag": "v2"},
        "strategy": {"type": "blue_green", "load_balancer": LB, "bake_seconds": 30},
        "rollback": {"alarm_names": ["5xx"]},
    }
    steps = steps_of(
        request,
        temp_service="web-green-d1",
        approval_rule="production",
        approval_timeout_seconds=3600,
        log_groups_created=["/ecs/web"],
    )
    deploy = [(n, t) for s, n, t, _ in steps if s == "deploy"]
    assert [n for n, _ in deploy] == [name for name, _ in blue_green.STEPS]
    texts = dict(deploy)
    assert texts["create_green"] == (
        "create green service web-green-d1 on the new revision with 2 tasks in target group TG-green"
    )
    assert texts["verify_green"] == (
        "wait until 2 targets are healthy in target group TG-green, "
        "then probe the test URL http://127.0.0.1:9/test until healthy"
    )
    assert "rule production, up to 3600 s" in texts["await_approval"]
    assert texts["shift_to_green"].startswith("move listener L-arn to green: TG-blue 0%, TG-green 100%")
    assert texts["bake"] == "bake 30 s while the gates pass: alarms 5xx not in ALARM"
    assert texts["shift_to_blue"] == "move listener L-arn back to web (its original actions)"
    assert texts["delete_green"].startswith("delete web-green-d1")
    stage_texts = {s: t for s, n, t, _ in steps if n is None}
    assert stage_texts["build"] == "build web/Dockerfile as web:v2 (to be built)"
    assert stage_texts["push"] == "push to ECR repository web (created when missing)"
    assert stage_texts["register"].endswith("create log group /ecs/web")
    assert stage_texts["healthcheck"] == "skipped: no health_check.url"
    assert "TG-green (green)" in stage_texts["preflight"]


def test_canary_weight_steps_in_order() -> None:
    request = {
        "image": {"uri": "r:2"},
        "strategy": {
            "type": "canary",
            "load_balancer": LB,
            "steps": [
                {"weight": 10, "pause_seconds": 60},
                {"weight": 50},
                {"weight": 100, "pause_seconds": 5},
            ],
        },
        "health_check": {"url": "http://h/health", "max_latency_ms": 250},
    }
    steps = steps_of(request, temp_service="web-canary-d1")
    weights = [(n, t) for s, n, t, _ in steps if n and n.startswith("weight_")]
    assert [n for n, _ in weights] == ["weight_10", "weight_50", "weight_100"]
    assert weights[0][1] == (
        "weight listener L-arn: web 90%, canary 10%; hold 60 s while the gates pass: "
        "health http://h/health (status 200, latency <= 250 ms)"
    )
    assert weights[1][1].startswith("weight listener L-arn: web 50%, canary 50%; hold 0 s")
    assert weights[2][1].startswith("weight listener L-arn: web 0%, canary 100%; hold 5 s")


@pytest.mark.parametrize("strategy", ["rolling", "blue_green", "canary"])
def test_every_recipe_step_has_a_text(strategy: str) -> None:
    """A step added to a strategy's recipe without a plan text fails here (the plan cannot drift)."""
    request = {"strategy": {"type": strategy, "load_balancer": LB, "steps": [{"weight": 20}]}}
    names = recipe_of(strategy, request)
    if strategy == "canary":
        assert names == [name for name, _ in canary.steps_for(request)]
    unknown = [n for n in names if n not in STEP_TEXTS and not n.startswith("weight_")]
    assert unknown == []
    assert names
