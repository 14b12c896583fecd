"""Task definition plans and diffs: dict in, dict or list out."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from deploy_agent.core.errors import RequestRejected
from deploy_agent.core.taskdef import (
    REGISTER_FIELDS,
    LogGroupPlan,
    default_log_configuration,
    diff_task_definitions,
    image_of,
    plan_from_spec,
    plan_log_groups,
    plan_task_definition,
)

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:web/db-AbCdEf"
LOGS = {"logDriver": "awslogs", "options": {"awslogs-group": "/custom", "awslogs-region": "eu-west-1"}}

#: what describe_task_definition gives back (output-only fields included)
DESCRIBED: dict[str, Any] = {
    "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/web:4",
    "family": "web",
    "revision": 4,
    "status": "ACTIVE",
    "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.docker-remote-api.1.18"}],
    "compatibilities": ["EC2", "FARGATE"],
    "registeredAt": "2024-01-01T00:00:00Z",
    "registeredBy": "arn:aws:iam::123456789012:user/ci",
    "deregisteredAt": None,
    "networkMode": "awsvpc",
    "requiresCompatibilities": ["FARGATE"],
    "cpu": "256",
    "memory": "512",
    "executionRoleArn": "arn:aws:iam::123456789012:role/exec",
    "volumes": [],
    "containerDefinitions": [
        {"name": "envoy", "image": "envoy:1.29", "essential": False},
        {
            "name": "web",
            "image": "repo/web:1",
            "environment": [{"name": "MODE", "value": "ok"}],
            "secrets": [{"name": "DB_PASSWORD", "valueFrom": SECRET}],
            "logConfiguration": LOGS,
        },
        {"name": "worker", "image": "repo/worker:1", "essential": True},
    ],
}


class TestPlanTaskDefinition:
    def test_output_only_fields_are_dropped(self) -> None:
        """Only fields RegisterTaskDefinition accepts are kept."""
        kwargs = plan_task_definition(DESCRIBED, "repo/web:2")
        assert set(kwargs) <= set(REGISTER_FIELDS)
        for gone in ("taskDefinitionArn", "revision", "status", "requiresAttributes", "compatibilities"):
            assert gone not in kwargs
        assert "registeredAt" not in kwargs
        assert "deregisteredAt" not in kwargs
        assert kwargs["cpu"] == "256"
        assert kwargs["executionRoleArn"] == DESCRIBED["executionRoleArn"]

    def test_default_target_is_the_first_essential_container(self) -> None:
        """Without container_name the first essential container (essential absent counts) gets the image."""
        kwargs = plan_task_definition(DESCRIBED, "repo/web@sha256:abc")
        assert [c["image"] for c in kwargs["containerDefinitions"]] == [
            "envoy:1.29",
            "repo/web@sha256:abc",
            "repo/worker:1",
        ]

    def test_named_container_gets_the_image_and_the_others_keep_theirs(self) -> None:
        """container_name picks the target; every other container keeps its own image."""
        kwargs = plan_task_definition(DESCRIBED, "repo/worker:2", "worker")
        assert [c["image"] for c in kwargs["containerDefinitions"]] == [
            "envoy:1.29",
            "repo/web:1",
            "repo/worker:2",
        ]

    def test_secrets_stay_arns(self) -> None:
        """Secrets are carried as valueFrom ARNs, never resolved."""
        kwargs = plan_task_definition(DESCRIBED, "repo/web:2")
        assert kwargs["containerDefinitions"][1]["secrets"] == [{"name": "DB_PASSWORD", "valueFrom": SECRET}]

    def test_the_current_definition_is_not_modified(self) -> None:
        """Planning copies; the described definition is left as it was."""
        before = copy.deepcopy(DESCRIBED)
        plan_task_definition(DESCRIBED, "repo/web:2", tags=[{"key": "a", "value": "b"}])
        assert before == DESCRIBED

    @pytest.mark.parametrize(
        ("described_tags", "given", "expected"),
        [
            pytest.param(
                [{"key": "a", "value": "1"}], None, [{"key": "a", "value": "1"}], id="described tags are kept"
            ),
            pytest.param(
                [{"key": "a", "value": "1"}],
                [{"key": "b", "value": "2"}],
                [{"key": "b", "value": "2"}],
                id="given tags replace them",
            ),
            pytest.param([], None, None, id="empty tags are left out"),
            pytest.param(None, None, None, id="no tags stay absent"),
        ],
    )
    def test_tags(self, described_tags: Any, given: Any, expected: Any) -> None:
        kwargs = plan_task_definition({**DESCRIBED, "tags": described_tags}, "repo/web:2", tags=given)
        assert kwargs.get("tags") == expected

    def test_unknown_container_is_rejected(self) -> None:
        """A container_name the definition lacks is RequestRejected naming the known ones."""
        with pytest.raises(RequestRejected, match="container api is not in the task definition") as rejected:
            plan_task_definition(DESCRIBED, "x", "api")
        assert rejected.value.errors[0]["field"] == "container_name"
        assert "envoy, web, worker" in rejected.value.message


class TestPlanFromSpec:
    SPEC: dict[str, Any] = {
        "family": "api",
        "containerDefinitions": [
            {"name": "api", "essential": True},
            {"name": "log-router", "image": "fluent-bit:2", "essential": False},
        ],
    }

    def test_target_container_gets_the_image(self) -> None:
        """The default (first essential) container is filled; the sidecar keeps its image."""
        kwargs = plan_from_spec(self.SPEC, "repo/api@sha256:1")
        assert [c.get("image") for c in kwargs["containerDefinitions"]] == [
            "repo/api@sha256:1",
            "fluent-bit:2",
        ]
        assert "image" not in self.SPEC["containerDefinitions"][0]

    def test_named_container_gets_the_image(self) -> None:
        kwargs = plan_from_spec(self.SPEC, "fluent-bit:3", "log-router")
        assert kwargs["containerDefinitions"][1]["image"] == "fluent-bit:3"

    @pytest.mark.parametrize(
        ("spec", "container", "field"),
        [
            pytest.param(SPEC, "nope", "container_name", id="an unknown container is rejected"),
            pytest.param({"family": "x"}, None, "task_definition.containerDefinitions", id="no containers"),
            pytest.param(
                {"family": "x", "containerDefinitions": [{"name": "a", "essential": False}]},
                None,
                "container_name",
                id="no essential container and no name is rejected",
            ),
            pytest.param(
                {**SPEC, "revision": 3},
                None,
                "task_definition.revision",
                id="output-only fields are rejected",
            ),
        ],
    )
    def test_rejections(self, spec: dict[str, Any], container: str | None, field: str) -> None:
        with pytest.raises(RequestRejected) as rejected:
            plan_from_spec(spec, "img", container)
        assert rejected.value.errors[0]["field"] == field


class TestImageOf:
    @pytest.mark.parametrize(
        ("container", "image"),
        [
            pytest.param(None, "repo/web:1", id="default is the first essential container"),
            pytest.param("envoy", "envoy:1.29", id="a named non-essential container"),
            pytest.param("worker", "repo/worker:1", id="a named essential container"),
        ],
    )
    def test_image_of(self, container: str | None, image: str) -> None:
        assert image_of(DESCRIBED, container) == image


class TestDefaultLogConfiguration:
    def test_containers_without_logs_get_awslogs(self) -> None:
        """Containers lacking logConfiguration get awslogs to /ecs/<family>; configured ones keep theirs."""
        kwargs = default_log_configuration(plan_task_definition(DESCRIBED, "i"), "us-east-1")
        logs = [c["logConfiguration"] for c in kwargs["containerDefinitions"]]
        assert logs[0] == {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": "/ecs/web",
                "awslogs-region": "us-east-1",
                "awslogs-stream-prefix": "envoy",
            },
        }
        assert logs[1] == LOGS
        assert logs[2]["options"]["awslogs-stream-prefix"] == "worker"

    def test_prefix_is_configurable_and_input_untouched(self) -> None:
        """log_group_prefix names the group; the given kwargs are not modified."""
        spec = {"family": "api", "containerDefinitions": [{"name": "api", "image": "i"}]}
        kwargs = default_log_configuration(spec, "eu-west-1", log_group_prefix="/apps/")
        assert (
            kwargs["containerDefinitions"][0]["logConfiguration"]["options"]["awslogs-group"] == "/apps/api"
        )
        assert "logConfiguration" not in spec["containerDefinitions"][0]


def _with_container(name: str, **changes: Any) -> dict[str, Any]:
    td = plan_task_definition(DESCRIBED, "repo/web:1")
    for container in td["containerDefinitions"]:
        if container["name"] == name:
            container.update(changes)
    return td


BASE = plan_task_definition(DESCRIBED, "repo/web:1")


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        pytest.param(BASE, [], id="identical definitions have no changes"),
        pytest.param(
            _with_container("web", image="repo/web:2"),
            ["container web: image repo/web:1 -> repo/web:2"],
            id="an image change names both images",
        ),
        pytest.param(
            _with_container(
                "web", environment=[{"name": "MODE", "value": "ok"}, {"name": "DEBUG", "value": "1"}]
            ),
            ["container web: environment DEBUG added"],
            id="an added variable is named",
        ),
        pytest.param(
            _with_container("web", environment=[]),
            ["container web: environment MODE removed"],
            id="a removed variable is named",
        ),
        pytest.param(
            _with_container("web", environment=[{"name": "MODE", "value": "hunter2"}]),
            ["container web: environment MODE changed"],
            id="a changed variable is named without its values",
        ),
        pytest.param(
            _with_container("web", secrets=[{"name": "DB_PASSWORD", "valueFrom": SECRET + "-2"}]),
            ["container web: secret DB_PASSWORD changed"],
            id="a changed secret ARN is named",
        ),
        pytest.param({**BASE, "cpu": "512"}, ["cpu: 256 -> 512"], id="a task-level scalar shows old and new"),
        pytest.param(
            _with_container("worker", portMappings=[{"containerPort": 80}]),
            ["container worker: portMappings changed"],
            id="a structured container field is named",
        ),
        pytest.param(
            {**BASE, "containerDefinitions": [*BASE["containerDefinitions"], {"name": "xray", "image": "x"}]},
            ["container xray added"],
            id="an added container is named",
        ),
        pytest.param(
            {**BASE, "containerDefinitions": BASE["containerDefinitions"][1:]},
            ["container envoy removed"],
            id="a removed container is named",
        ),
        pytest.param({**BASE, "volumes": None}, [], id="an empty list and an absent field are the same"),
    ],
)
def test_diff_task_definitions(new: dict[str, Any], expected: list[str]) -> None:
    assert diff_task_definitions(BASE, new) == expected


def test_diff_from_described_to_plan_shows_only_the_image() -> None:
    """Output-only fields of the described definition never show up as changes."""
    assert diff_task_definitions(DESCRIBED, plan_task_definition(DESCRIBED, "repo/web:9")) == [
        "container web: image repo/web:1 -> repo/web:9"
    ]


def _td(*logs: dict[str, Any] | None) -> dict[str, Any]:
    containers = [
        {"name": f"c{i}", "image": "i"} | ({"logConfiguration": lc} if lc else {})
        for i, lc in enumerate(logs)
    ]
    return {"family": "web", "containerDefinitions": containers}


def _awslogs(group: str, **extra: str) -> dict[str, Any]:
    return {
        "logDriver": "awslogs",
        "options": {"awslogs-group": group, "awslogs-region": "us-east-1", **extra},
    }


def test_groups_the_running_revision_writes_to_are_neither_created_nor_checked() -> None:
    """The running revision logs to /team/web (the user's) and /ecs/web (ours, from the last
    deployment): both are in use. A sidecar's group it does not name is still created, and the same
    name in another Region proves nothing."""
    user = _td(_awslogs("/team/web"), None)
    planned = default_log_configuration(user, "us-east-1")
    running = {**planned, "containerDefinitions": planned["containerDefinitions"][:1]}
    assert plan_log_groups(user, planned, "us-east-1", running) == [
        LogGroupPlan("/team/web", "us-east-1", create=False, in_use=True),
        LogGroupPlan("/ecs/web", "us-east-1", create=True),
    ]
    assert plan_log_groups(user, planned, "us-east-1", planned) == [
        LogGroupPlan("/team/web", "us-east-1", create=False, in_use=True),
        LogGroupPlan("/ecs/web", "us-east-1", create=True, in_use=True),
    ]
    elsewhere = default_log_configuration(_td(None, None), "eu-west-1")
    assert not any(p.in_use for p in plan_log_groups(user, planned, "us-east-1", elsewhere))


@pytest.mark.parametrize(
    ("user", "plans"),
    [
        pytest.param(
            _td(None),
            [LogGroupPlan("/ecs/web", "eu-west-1", create=True)],
            id="the group the worker names is created",
        ),
        pytest.param(
            _td(_awslogs("/team/web")),
            [LogGroupPlan("/team/web", "us-east-1", create=False)],
            id="a group the user names is checked, in its own region",
        ),
        pytest.param(
            _td(_awslogs("/team/web", **{"awslogs-create-group": "true"})),
            [],
            id="a user group with awslogs-create-group is left to ECS",
        ),
        pytest.param(
            _td(_awslogs("/team/web"), None),
            [
                LogGroupPlan("/team/web", "us-east-1", create=False),
                LogGroupPlan("/ecs/web", "eu-west-1", create=True),
            ],
            id="a sidecar without logs gets ours while the app keeps the user's",
        ),
        pytest.param(
            _td({"logDriver": "awsfirelens", "options": {}}),
            [],
            id="another log driver needs no group",
        ),
        pytest.param(
            _td(None, None), [LogGroupPlan("/ecs/web", "eu-west-1", create=True)], id="one group, once"
        ),
    ],
)
def test_log_groups_are_created_when_ours_and_checked_when_the_users(
    user: dict[str, Any], plans: list[LogGroupPlan]
) -> None:
    """plan_log_groups: create the groups default_log_configuration adds, check the ones the user gave."""
    planned = default_log_configuration(user, "eu-west-1")
    assert plan_log_groups(user, planned, "eu-west-1") == plans
