"""The plan's pure parts: the path-level task definition diff and the step texts."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from deploy_agent.core.orchestration import plan_chain
from deploy_agent.core.plan import plan_steps, step_text
from deploy_agent.core.plan_context import PlanContext
from deploy_agent.core.taskdef_diff import diff_task_definition
from deploy_agent.models.request import DeployToECSTask
from deploy_agent.strategies import strategy_for, strategy_names

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
        (changed(revision=4, taskDefinitionArn="x", tags=[]), []),
    ],
    ids=[
        "the same task definition has no changes",
        "a new image is one line with both values",
        "top-level fields are listed in order",
        "an environment change names its entries but never their values",
        "an added environment entry is named without its value",
        "a changed secret reads value changed",
        "a list of unnamed entries is shown whole",
        "a new nested object is shown as added",
        "a removed field shows what it was",
        "output-only fields and tags are not part of the diff",
    ],
)
def test_diff_task_definition(new: dict[str, Any], expected: list[str]) -> None:
    """The diff is one path-level line per change, in a stable order."""
    assert diff_task_definition(CURRENT, new) == expected


def test_diff_removed_container() -> None:
    """A container gone from the new revision is one line naming it."""
    new = copy.deepcopy(CURRENT)
    del new["containerDefinitions"][1]
    assert diff_task_definition(CURRENT, new) == ["containerDefinitions[sidecar] removed"]


def test_diff_added_container_and_nested_change() -> None:
    """An added container is shown whole; a change inside another is shown by its path."""
    new = copy.deepcopy(CURRENT)
    new["containerDefinitions"].append({"name": "log", "image": "fluent:1"})
    new["containerDefinitions"][1]["healthCheck"] = {"command": ["CMD", "true"], "interval": 10}
    assert diff_task_definition(CURRENT, new) == [
        "containerDefinitions[log] added: " + '{"image":"fluent:1","name":"log"}',
        'containerDefinitions[sidecar].healthCheck: added {"command":["CMD","true"],"interval":10}',
    ]


def test_diff_never_shows_environment_or_secret_values() -> None:
    """No environment or secret value reaches the diff, whether changed, added or in a new container."""
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


def message(**fields: Any) -> DeployToECSTask:
    """A valid message for service web of cluster c1 (a prebuilt image unless ``image`` is given)."""
    return DeployToECSTask.model_validate(
        {"cluster_name": "c1", "service_name": "web", "image": {"uri": IMAGE}, **fields}
    )


def ctx(msg: DeployToECSTask, **extra: Any) -> PlanContext:
    """The plan's context as ``tasks.plan`` builds it: the message and its strategy's weights."""
    strategy = strategy_for(msg.strategy.type)
    return PlanContext(
        cluster="c1",
        service="web",
        request=msg,
        image=msg.image.uri or "web:v2 (to be built)",
        family="web",
        desired_count=2,
        weights=[(p.weight, p.pause_seconds) for p in strategy.weights(msg)],
        **extra,
    )


IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:2"
ELB = "arn:aws:elasticloadbalancing:us-east-1:123456789012"
LISTENER = f"{ELB}:listener/app/web/1/80"
BLUE = f"{ELB}:targetgroup/web-blue/1"
GREEN = f"{ELB}:targetgroup/web-green/2"
LB = {
    "listener_arn": LISTENER,
    "blue_target_group_arn": BLUE,
    "green_target_group_arn": GREEN,
    "test_url": "http://127.0.0.1:9/test",
}
#: each strategy's options, with what it requires
OPTIONS: dict[str, dict[str, Any]] = {
    "rolling": {"type": "rolling"},
    "blue_green": {"type": "blue_green", "load_balancer": LB},
    "canary": {"type": "canary", "load_balancer": LB, "steps": [{"weight": 20}]},
    "linear": {"type": "linear", "load_balancer": LB, "step_percent": 25},
    "ecs_blue_green": {"type": "ecs_blue_green"},
    "ecs_linear": {"type": "ecs_linear", "step_percent": 50.0},
    "ecs_canary": {"type": "ecs_canary", "canary_percent": 10.0},
}


def steps_of(msg: DeployToECSTask, **extra: Any) -> list[tuple[str, str | None, str, bool]]:
    """The plan's steps as ``tasks.plan`` makes them: (stage, step, text, skipped)."""
    strategy = strategy_for(msg.strategy.type)
    every = list(strategy.stages)
    idle = plan_chain(every, msg).idle
    planned = plan_steps(every, idle, strategy.recipe(msg), ctx(msg, **extra))
    return [(s.stage, s.step, s.text, s.skipped) for s in planned]


def test_rolling_steps() -> None:
    """Rolling's plan lists every stage, skips the idle ones and expands deploy into its recipe."""
    msg = message(
        strategy={"type": "rolling", "maximum_percent": 150, "minimum_healthy_percent": 50},
        health_check={"url": "http://h/health", "healthy_threshold": 2},
    )
    steps = steps_of(
        msg,
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
    ids=[
        "turning the breaker on keeps the service's rollback setting (off)",
        "turning both off says so",
        "asking for rollback keeps the service's breaker (on)",
    ],
)
def test_rolling_breaker_text(strategy: dict[str, Any], breaker: str) -> None:
    """The update step says what the circuit breaker will be: asked for, else the service's own."""
    msg = message(strategy={"type": "rolling", **strategy})
    steps = steps_of(msg, service_config={"deploymentCircuitBreaker": {"enable": True}})
    text = next(t for _, n, t, _ in steps if n == "update_service")
    assert text.endswith(breaker)


def test_blue_green_steps_with_approval_and_build() -> None:
    """Blue-green's plan follows its recipe, each step's text naming the listener and target groups."""
    msg = message(
        build={"context": "web"},
        image={"repository": "web", "tag": "v2"},
        strategy={"type": "blue_green", "load_balancer": LB, "bake_seconds": 30},
        rollback={"alarm_names": ["5xx"]},
    )
    steps = steps_of(
        msg,
        temp_service="web-green-d1",
        approval_rule="production",
        approval_timeout_seconds=3600,
        log_groups_created=["/ecs/web"],
    )
    deploy = [(n, t) for s, n, t, _ in steps if s == "deploy"]
    assert [n for n, _ in deploy] == strategy_for("blue_green").recipe(msg)
    texts = dict(deploy)
    assert texts["create_green"] == (
        f"create green service web-green-d1 on the new revision with 2 tasks in target group {GREEN}"
    )
    assert texts["verify_green"] == (
        f"wait until 2 targets are healthy in target group {GREEN}, "
        "then probe the test URL http://127.0.0.1:9/test until healthy"
    )
    assert "rule production, up to 3600 s" in texts["await_approval"]
    assert texts["shift_to_green"].startswith(f"move listener {LISTENER} to green: {BLUE} 0%, {GREEN} 100%")
    assert texts["bake"] == "bake 30 s while the gates pass: alarms 5xx not in ALARM"
    assert texts["shift_to_blue"] == f"move listener {LISTENER} back to web (its original actions)"
    assert texts["delete_green"].startswith("delete web-green-d1")
    stage_texts = {s: t for s, n, t, _ in steps if n is None}
    assert stage_texts["build"] == "build web/Dockerfile as web:v2 (to be built)"
    assert stage_texts["push"] == "push to ECR repository web (created when missing)"
    assert stage_texts["register"].endswith("create log group /ecs/web")
    assert stage_texts["healthcheck"] == "skipped: no health_check.url"
    assert f"{GREEN} (green)" in stage_texts["preflight"]


def test_canary_weight_steps_in_order() -> None:
    """Each canary weight step gets its own text, in order, with its weight, hold and gates."""
    msg = message(
        strategy={
            "type": "canary",
            "load_balancer": LB,
            "steps": [
                {"weight": 10, "pause_seconds": 60},
                {"weight": 50},
                {"weight": 100, "pause_seconds": 5},
            ],
        },
        health_check={"url": "http://h/health", "max_latency_ms": 250},
    )
    steps = steps_of(msg, temp_service="web-canary-d1")
    weights = [(n, t) for s, n, t, _ in steps if n and n.startswith("weight_")]
    assert [n for n, _ in weights] == ["weight_10", "weight_50", "weight_100"]
    assert weights[0][1] == (
        f"weight listener {LISTENER}: web 90%, new release 10%; hold 60 s while the gates pass: "
        "health http://h/health (status 200, latency <= 250 ms)"
    )
    assert weights[1][1].startswith(f"weight listener {LISTENER}: web 50%, new release 50%; hold 0 s")
    assert weights[2][1].startswith(f"weight listener {LISTENER}: web 0%, new release 100%; hold 5 s")


def test_linear_steps_name_its_temporary_service_and_weights() -> None:
    """Linear's temporary-service steps are found by prefix, and its equal weights are shown in order."""
    msg = message(
        strategy={"type": "linear", "load_balancer": LB, "step_percent": 40, "step_pause_seconds": 30}
    )
    steps = steps_of(msg, temp_service="web-linear-d1")
    texts = {n: t for s, n, t, _ in steps if s == "deploy"}
    assert texts["create_linear"] == (
        f"create linear service web-linear-d1 on the new revision with 2 tasks in target group {GREEN}"
    )
    assert texts["wait_linear"].startswith("wait until web-linear-d1's deployment is COMPLETED")
    assert texts["delete_linear"].startswith("delete web-linear-d1")
    weights = [t for n, t in texts.items() if n and n.startswith("weight_")]
    assert [t.split(";")[0] for t in weights] == [
        f"weight listener {LISTENER}: web 60%, new release 40%",
        f"weight listener {LISTENER}: web 20%, new release 80%",
        f"weight listener {LISTENER}: web 0%, new release 100%",
    ]
    assert all("hold 30 s" in t for t in weights[:2])


@pytest.mark.parametrize("strategy", sorted(OPTIONS))
def test_every_recipe_step_has_a_text(strategy: str) -> None:
    """A step added to a strategy's recipe without a plan text fails here (the plan cannot drift)."""
    msg = message(strategy=OPTIONS[strategy])
    names = strategy_for(strategy).recipe(msg)
    weighted = [n for n in names if n.startswith("weight_")]
    assert len(weighted) == len(strategy_for(strategy).weights(msg))
    unknown = [n for n in names if not n.startswith("weight_") and step_text(n, ctx(msg)) is None]
    assert unknown == []
    assert names


def test_every_strategy_is_in_the_recipe_table() -> None:
    """A new strategy must be added to ``OPTIONS`` so its recipe is checked above."""
    assert sorted(OPTIONS) == strategy_names()


def test_analysis_gates_are_shown_with_the_other_gates() -> None:
    """A hold's text names each analysis gate with its query, server, cadence and conditions."""
    analysis = {
        "name": "error-rate",
        "url": "http://prometheus.internal:9090",
        "query": "sum(rate(errors[1m]))",
        "success_condition": "result < 0.01",
        "failure_condition": "result >= 0.05",
        "interval_seconds": 30,
        "count": 5,
    }
    msg = message(
        strategy={"type": "canary", "load_balancer": LB, "steps": [{"weight": 10}]}, analysis=[analysis]
    )
    steps = steps_of(msg, temp_service="web-canary-d1")
    text = next(t for _, n, t, _ in steps if n == "weight_10")
    assert text.endswith(
        "hold 0 s while the gates pass: analysis error-rate (sum(rate(errors[1m])) at "
        "http://prometheus.internal:9090, every 30 s, 5 times, success result < 0.01, failure result >= 0.05)"
    )
