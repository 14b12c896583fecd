"""The message contract: what ``parse_request`` accepts, and how it names what it rejects."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from deploy_agent.core.errors import RequestRejected
from deploy_agent.models import (
    BlueGreenStrategy,
    CanaryStrategy,
    DeployToECSTask,
    RollingStrategy,
    parse_request,
)

from .messages import API_PARAM, DB_SECRET, LOAD_BALANCER, PUSHED, full, minimal, seed


class TestAccepted:
    def test_a_minimal_message_with_a_pushed_image_gets_defaults_and_an_id(self) -> None:
        """A message naming only the service and a pushed image deploys it rolling, with a fresh id."""
        request = parse_request(minimal())
        assert request.image.uri == PUSHED
        assert request.strategy == RollingStrategy()
        assert request.rollback.enabled is True
        assert len(request.deployment_id) == 32
        assert request.image_tag is None

    def test_the_same_message_as_a_json_string_or_bytes_parses_alike(self) -> None:
        """Publishers may hand over the JSON text instead of the decoded object."""
        text = json.dumps({**minimal(), "deployment_id": "d-1"})
        assert parse_request(text) == parse_request(text.encode()) == parse_request(json.loads(text))

    def test_a_full_message_keeps_every_part(self) -> None:
        """Build, two containers with secrets, a health check and a canary all survive parsing."""
        request = parse_request(full())
        assert request.image_tag == "1.4.2"
        assert isinstance(request.strategy, CanaryStrategy)
        assert [s.weight for s in request.strategy.steps] == [10, 50]
        assert request.task_definition is not None
        app, envoy = request.task_definition.container_definitions
        assert app.secrets == {"DB_PASSWORD": DB_SECRET, "API_KEY": API_PARAM}
        assert app.log_configuration == {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/web"}}
        assert envoy.image == "public.ecr.aws/envoy/envoy:v1.30"
        assert request.task_definition.cpu == "512"
        assert request.ecr.lifecycle_policy_text() is not None

    def test_the_seeds_camel_case_message_parses(self) -> None:
        """clusterName, an AWS-shaped taskDefinition, deploymentConfiguration and healthCheckEndpoint map."""
        request = parse_request(seed())
        assert (request.cluster_name, request.service_name, request.desired_count) == ("prod", "web", 2)
        assert request.strategy == RollingStrategy(
            maximum_percent=150,
            minimum_healthy_percent=50,
            circuit_breaker=True,
            circuit_breaker_rollback=False,
        )
        assert request.health_check is not None
        assert request.health_check.url == "http://web.internal:8080/health"
        assert request.task_definition is not None
        web = request.task_definition.container_definitions[0]
        assert web.environment == {"PORT": "8080"}
        assert web.secrets == {"DB_PASSWORD": DB_SECRET}
        assert web.health_check is not None
        assert web.health_check.start_period == 15
        assert request.container_name == "web"
        assert request.image.uri == PUSHED, "the target container's image stands in for a missing image"

    def test_the_seeds_health_endpoint_keeps_the_other_health_check_fields(self) -> None:
        """healthCheckEndpoint only fills in the URL of an otherwise given health_check."""
        request = parse_request({**seed(), "healthCheck": {"expectedStatus": 204}})
        assert request.health_check is not None
        assert request.health_check.url == "http://web.internal:8080/health"
        assert request.health_check.expected_status == 204

    def test_every_field_is_accepted_in_camel_case(self) -> None:
        """camelCase and snake_case spellings give the same message."""
        camel = {
            "clusterName": "prod",
            "serviceName": "web",
            "deploymentId": "d-1",
            "image": {"uri": PUSHED},
            "strategy": {
                "type": "blue_green",
                "loadBalancer": {
                    "listenerArn": LOAD_BALANCER["listener_arn"],
                    "blueTargetGroupArn": LOAD_BALANCER["blue_target_group_arn"],
                    "greenTargetGroupArn": LOAD_BALANCER["green_target_group_arn"],
                },
                "bakeSeconds": 30,
            },
            "healthCheck": {"url": "http://web/health", "healthyThreshold": 2},
        }
        snake = {
            **minimal(),
            "deployment_id": "d-1",
            "health_check": {"url": "http://web/health", "healthy_threshold": 2},
            "strategy": {"type": "blue_green", "load_balancer": LOAD_BALANCER, "bake_seconds": 30},
        }
        assert parse_request(camel) == parse_request(snake)
        assert isinstance(parse_request(camel).strategy, BlueGreenStrategy)

    def test_container_name_defaults_to_the_first_essential_container(self) -> None:
        """Without container_name the first essential container gets the image."""
        message = full()
        del message["container_name"]
        message["task_definition"]["container_definitions"].reverse()
        assert parse_request(message).container_name == "app"


def rejected(message: object) -> RequestRejected:
    with pytest.raises(RequestRejected) as caught:
        parse_request(message)
    return caught.value


def _with(
    change: Callable[[dict[str, Any]], None], base: Callable[[], dict[str, Any]] = full
) -> dict[str, Any]:
    message = base()
    change(message)
    return message


def _containers(message: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = message["task_definition"]["container_definitions"]
    return containers


REJECTIONS = [
    pytest.param({**minimal(), "colour": "blue"}, "colour", "Extra inputs", id="an unknown field is named"),
    pytest.param(
        {**minimal(), "desired_count": "many"}, "desired_count", "integer", id="a wrong type is named"
    ),
    pytest.param(
        _with(lambda m: m.pop("service_name"), minimal),
        "service_name",
        "required",
        id="a missing service_name is named",
    ),
    pytest.param(
        _with(lambda m: m["task_definition"].update(cpu=512, memory=8192)),
        "task_definition.memory",
        "not valid with Fargate cpu 512",
        id="a cpu and memory pair Fargate does not offer is named",
    ),
    pytest.param(
        _with(lambda m: _containers(m)[0].update(memory=2048)),
        "task_definition.container_definitions.0.memory",
        "over the task's memory",
        id="a container with more memory than its task is named",
    ),
    pytest.param(
        _with(lambda m: _containers(m)[0].update(cpu=500)),
        "task_definition.container_definitions.1.cpu",
        "adds up to 628",
        id="containers asking for more cpu than the task are named",
    ),
    pytest.param(
        _with(lambda m: _containers(m)[0]["port_mappings"][0].update(container_port=70000)),
        "task_definition.container_definitions.0.port_mappings.0.container_port",
        "65535",
        id="a port above 65535 is named",
    ),
    pytest.param(
        _with(lambda m: m["strategy"]["steps"][0].update(weight=150)),
        "strategy.steps.0.weight",
        "less than or equal to 100",
        id="a canary weight above 100 is named",
    ),
    pytest.param(
        _with(lambda m: m["strategy"]["steps"].reverse()),
        "strategy.steps.1.weight",
        "must not decrease",
        id="canary weights that fall are named",
    ),
    pytest.param(
        _with(lambda m: m["health_check"].update(url="ftp://web.example.com/health")),
        "health_check.url",
        "http:// or https://",
        id="an ftp health URL is named",
    ),
    pytest.param({**minimal(), "schema_version": 2}, "schema_version", "1", id="schema_version 2 is named"),
    pytest.param(
        _with(lambda m: m.update(image={"uri": PUSHED})),
        "build",
        "image.uri",
        id="a build with a pushed image uri is named",
    ),
    pytest.param(
        _with(lambda m: m.pop("build")),
        "build",
        "build is required when image.repository is given",
        id="a repository without a build is named",
    ),
    pytest.param(
        _with(lambda m: m["image"].update(repository="Team/Web")),
        "image.repository",
        "pattern",
        id="a repository name ECR refuses is named",
    ),
    pytest.param(
        {**minimal(), "image": {"uri": "web:latest"}},
        "image.uri",
        "registry-host",
        id="an image uri without a registry host is named",
    ),
    pytest.param(
        {**minimal(), "image": {}}, "image", "exactly one", id="an image with neither source is named"
    ),
    pytest.param(
        _with(lambda m: _containers(m)[1].pop("image")),
        "task_definition.container_definitions.1.image",
        "required",
        id="a sidecar without an image is named",
    ),
    pytest.param(
        _with(lambda m: m.update(container_name="worker")),
        "container_name",
        "names no container",
        id="a container_name the task definition lacks is named",
    ),
    pytest.param(
        _with(lambda m: m["task_definition"].update(network_mode="bridge")),
        "task_definition.network_mode",
        "awsvpc",
        id="Fargate outside awsvpc is named",
    ),
    pytest.param(
        _with(lambda m: m.update(strategy={"type": "big_bang"})),
        "strategy",
        "big_bang",
        id="an unknown strategy type is named",
    ),
    pytest.param(
        _with(lambda m: m.update(strategy={"type": "rolling", "maximumPercent": 120}), seed),
        "deploymentConfiguration",
        "also given in strategy",
        id="deploymentConfiguration conflicting with strategy is named",
    ),
    pytest.param(
        _with(lambda m: m.update(strategy={"type": "blue_green", "load_balancer": LOAD_BALANCER}), seed),
        "deploymentConfiguration",
        "rolling strategy",
        id="deploymentConfiguration with blue_green is named",
    ),
    pytest.param(
        _with(
            lambda m: m["taskDefinition"]["containerDefinitions"][0].update(environment=[{"k": "v"}]), seed
        ),
        "task_definition.container_definitions.0.environment",
        "'name' and 'value'",
        id="a malformed AWS environment list is named",
    ),
    pytest.param(
        {**minimal(), "deployment_id": "-bad id"},
        "deployment_id",
        "pattern",
        id="a deployment id with spaces is named",
    ),
    pytest.param(
        {**minimal(), "labels": {f"k{i}": "v" for i in range(51)}},
        "labels",
        "50",
        id="more than fifty labels are named",
    ),
    pytest.param(
        {**minimal(), "requested_by": "x" * 10_000_000},
        "",
        "larger than 1048576 bytes",
        id="a huge string in a dict is held to the size limit of text",
    ),
]


class TestRejected:
    @pytest.mark.parametrize(("message", "field", "problem"), REJECTIONS)
    def test_the_rejection_names_the_field(self, message: object, field: str, problem: str) -> None:
        """Each rejection lists the offending field by its snake_case dotted path, with a clear problem."""
        error = rejected(message)
        fields = {e["field"]: e["problem"] for e in error.errors}
        assert field in fields, error.errors
        assert problem in fields[field]
        assert error.message.startswith("invalid DeployToECSTask: ")
        assert field in error.message

    @pytest.mark.parametrize(
        ("payload", "problem"),
        [
            pytest.param([minimal()], "got a JSON array", id="a JSON array is not a message"),
            pytest.param(42, "got a JSON number", id="a number is not a message"),
            pytest.param('{"cluster_name": ', "not valid JSON", id="truncated JSON is not a message"),
            pytest.param(
                '{"labels": ' + "[" * 100_000 + "]" * 100_000 + "}",
                "nested too deeply",
                id="absurdly nested JSON is refused without a crash",
            ),
            pytest.param("x" * 2_000_000, "larger than", id="a payload over a mebibyte is refused unread"),
        ],
    )
    def test_a_payload_that_is_not_an_object_is_rejected_as_a_whole(
        self, payload: object, problem: str
    ) -> None:
        """A payload that is not a JSON object is reported against the whole message (field "")."""
        error = rejected(payload)
        assert [e["field"] for e in error.errors] == [""]
        assert problem in error.errors[0]["problem"]

    def test_a_plain_secret_value_is_never_repeated(self) -> None:
        """A secret given as a value instead of an ARN is rejected without echoing it anywhere."""
        leaked = "hunter2-s3cr3t"
        message = full()
        _containers(message)[0]["secrets"]["DB_PASSWORD"] = leaked
        error = rejected(message)
        assert error.errors[0]["field"] == "task_definition.container_definitions.0.secrets.DB_PASSWORD"
        assert "Secrets Manager" in error.errors[0]["problem"]
        assert leaked not in repr(error.errors) + error.message + str(error)
        assert error.__cause__ is None
        assert error.__suppress_context__, "the chained ValidationError would print the input in tracebacks"

    def test_every_problem_is_reported_at_once(self) -> None:
        """Independent field problems come back together, not one per attempt."""
        error = rejected({"service_name": "bad name!", "image": {"uri": PUSHED}, "desired_count": -1})
        assert {e["field"] for e in error.errors} == {"cluster_name", "service_name", "desired_count"}
        assert error.message.startswith("invalid DeployToECSTask: 3 problems: ")

    def test_models_are_frozen(self) -> None:
        """A parsed message cannot be changed behind the validator's back."""
        request = parse_request(minimal())
        with pytest.raises(ValueError, match="frozen"):
            request.service_name = "other"  # type: ignore[misc]

    def test_direct_construction_validates_like_parsing(self) -> None:
        """Code that builds the model itself gets the same rules."""
        with pytest.raises(ValueError, match="build is required"):
            DeployToECSTask.model_validate({**minimal(), "image": {"repository": "web"}})


class TestEcrSettings:
    def test_settings_left_out_are_none_so_the_repository_keeps_its_own(self) -> None:
        """No scan_on_push or tag_mutability in the message: both None, never MUTABLE/False."""
        request = parse_request(_with(lambda m: m.pop("ecr")))
        assert request.ecr.scan_on_push is None
        assert request.ecr.tag_mutability is None
        assert request.ecr.exclusion_filters() is None

    @pytest.mark.parametrize("mutability", ["IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION"])
    def test_the_newer_mutability_values_are_accepted_with_their_filters(self, mutability: str) -> None:
        """ECR's *_WITH_EXCLUSION values parse, and their filters come out in ECR's shape."""
        request = parse_request(
            _with(
                lambda m: m.update(
                    ecr={"tag_mutability": mutability, "tagMutabilityExclusionFilters": [{"filter": "dev-*"}]}
                )
            )
        )
        assert request.ecr.tag_mutability == mutability
        assert request.ecr.exclusion_filters() == [{"filterType": "WILDCARD", "filter": "dev-*"}]

    @pytest.mark.parametrize(
        ("ecr", "problem"),
        [
            pytest.param(
                {"tag_mutability": "IMMUTABLE_WITH_EXCLUSION"},
                "required with tag_mutability",
                id="a WITH_EXCLUSION value without filters is refused (ECR needs them)",
            ),
            pytest.param(
                {"tag_mutability": "IMMUTABLE", "tag_mutability_exclusion_filters": [{"filter": "x"}]},
                "only allowed with",
                id="filters with a plain value are refused",
            ),
            pytest.param(
                {
                    "tag_mutability": "IMMUTABLE_WITH_EXCLUSION",
                    "tag_mutability_exclusion_filters": [{"filter": "a b"}],
                },
                "should match pattern",
                id="a filter outside ECR's pattern is refused",
            ),
            pytest.param({"tag_mutability": "immutable"}, "Input should be", id="values are ECR's, exactly"),
        ],
    )
    def test_mutability_and_filters_must_agree(self, ecr: dict[str, Any], problem: str) -> None:
        """The message is rejected, naming the ecr field at fault."""
        error = rejected(_with(lambda m: m.update(ecr=ecr)))
        assert error.errors[0]["field"].startswith("ecr")
        assert problem in error.errors[0]["problem"]
