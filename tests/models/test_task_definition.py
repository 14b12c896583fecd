"""Task definitions: ECS's own rules, and the boto3 ``register_task_definition`` kwargs we give back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from deploy_agent.models import EcrSpec, TaskDefinitionSpec

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"


def spec(**task: Any) -> dict[str, Any]:
    return {
        "family": "web",
        "cpu": "256",
        "memory": "512",
        "container_definitions": [{"name": "app"}],
        **task,
    }


class TestRegisterKwargs:
    def test_the_kwargs_are_what_boto3_register_task_definition_takes(self) -> None:
        """Our snake_case spec comes back in AWS's camelCase shape, lists for environment and secrets."""
        task = TaskDefinitionSpec.model_validate(
            spec(
                task_role_arn="arn:aws:iam::123456789012:role/web",
                container_definitions=[
                    {
                        "name": "app",
                        "memory_reservation": 256,
                        "port_mappings": [{"container_port": 8080}],
                        "environment": {"PORT": "8080"},
                        "secrets": {"DB": SECRET},
                        "health_check": {"command": ["CMD", "true"], "retries": 5},
                        "log_configuration": {"logDriver": "awslogs", "options": {"awslogs-group": "g"}},
                        "entry_point": ["/bin/app"],
                    },
                    {
                        "name": "sidecar",
                        "image": "public.ecr.aws/x/y:1",
                        "essential": False,
                        "command": ["run"],
                    },
                ],
            )
        )
        assert task.to_register_kwargs(images={"app": "repo@sha256:" + "a" * 64}) == {
            "family": "web",
            "cpu": "256",
            "memory": "512",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "taskRoleArn": "arn:aws:iam::123456789012:role/web",
            "containerDefinitions": [
                {
                    "name": "app",
                    "image": "repo@sha256:" + "a" * 64,
                    "essential": True,
                    "memoryReservation": 256,
                    "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
                    "environment": [{"name": "PORT", "value": "8080"}],
                    "secrets": [{"name": "DB", "valueFrom": SECRET}],
                    "healthCheck": {
                        "command": ["CMD", "true"],
                        "interval": 30,
                        "timeout": 5,
                        "retries": 5,
                        "startPeriod": 0,
                    },
                    "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "g"}},
                    "entryPoint": ["/bin/app"],
                },
                {
                    "name": "sidecar",
                    "image": "public.ecr.aws/x/y:1",
                    "essential": False,
                    "portMappings": [],
                    "environment": [],
                    "secrets": [],
                    "command": ["run"],
                },
            ],
        }

    def test_an_aws_shaped_definition_round_trips_through_the_kwargs(self) -> None:
        """AWS's own register_task_definition shape parses, and the kwargs parse back to the same spec."""
        task = TaskDefinitionSpec.model_validate(
            spec(container_definitions=[{"name": "app", "image": "r.io/a:1"}])
        )
        assert TaskDefinitionSpec.model_validate(task.to_register_kwargs()) == task


FARGATE_PAIRS = [
    pytest.param("256", "512", True, id="the smallest Fargate task is valid"),
    pytest.param("256", "2048", True, id="a quarter vCPU may have two GiB"),
    pytest.param("256", "4096", False, id="a quarter vCPU may not have four GiB"),
    pytest.param("512", "512", False, id="half a vCPU needs at least one GiB"),
    pytest.param("1024", "1536", False, id="one vCPU takes memory in whole GiB steps"),
    pytest.param("4096", "30720", True, id="four vCPU may have thirty GiB"),
    pytest.param("8192", "20480", True, id="eight vCPU step by four GiB from sixteen"),
    pytest.param("8192", "18432", False, id="eight vCPU may not have eighteen GiB"),
    pytest.param("16384", "122880", True, id="sixteen vCPU may have a hundred and twenty GiB"),
    pytest.param("16384", "36864", False, id="sixteen vCPU step by eight GiB"),
    pytest.param("128", "512", False, id="an eighth of a vCPU is not a Fargate size"),
    pytest.param("0.25 vCPU", "0.5 GB", True, id="AWS's spelled-out units are understood"),
]


class TestEcsRules:
    @pytest.mark.parametrize(("cpu", "memory", "valid"), FARGATE_PAIRS)
    def test_fargate_accepts_only_its_cpu_and_memory_pairs(self, cpu: str, memory: str, valid: bool) -> None:
        """Fargate's table of task sizes is enforced before AWS sees the definition."""
        try:
            TaskDefinitionSpec.model_validate(spec(cpu=cpu, memory=memory))
        except ValidationError:
            assert not valid
        else:
            assert valid

    def test_spelled_out_units_are_stored_as_plain_numbers(self) -> None:
        """ "0.25 vCPU" and "0.5 GB" are registered as "256" and "512"."""
        task = TaskDefinitionSpec.model_validate(spec(cpu="0.25 vCPU", memory="0.5 GB"))
        assert (task.cpu, task.memory) == ("256", "512")

    def test_an_ec2_task_without_task_memory_needs_container_memory(self) -> None:
        """ECS requires memory or memory_reservation on each container when the task sets none."""
        with pytest.raises(ValidationError, match="memory_reservation"):
            TaskDefinitionSpec.model_validate(
                {
                    "family": "web",
                    "requires_compatibilities": ["EC2"],
                    "network_mode": "bridge",
                    "container_definitions": [{"name": "app"}],
                }
            )

    def test_awsvpc_host_ports_must_equal_container_ports(self) -> None:
        """In awsvpc mode ECS refuses a host port that differs from the container port."""
        with pytest.raises(ValidationError, match="must equal container_port"):
            TaskDefinitionSpec.model_validate(
                spec(
                    container_definitions=[
                        {"name": "app", "port_mappings": [{"container_port": 80, "host_port": 81}]}
                    ]
                )
            )

    def test_container_names_are_unique(self) -> None:
        """Two containers of one task may not share a name."""
        with pytest.raises(ValidationError, match="used twice"):
            TaskDefinitionSpec.model_validate(spec(container_definitions=[{"name": "app"}, {"name": "app"}]))

    def test_a_container_health_check_runs_cmd_or_cmd_shell(self) -> None:
        """ECS needs the health check command to start with CMD or CMD-SHELL."""
        with pytest.raises(ValidationError, match="CMD-SHELL"):
            TaskDefinitionSpec.model_validate(
                spec(
                    container_definitions=[
                        {"name": "app", "health_check": {"command": ["curl", "localhost"]}}
                    ]
                )
            )


class TestLifecyclePolicy:
    def test_keep_last_gives_one_expire_rule(self) -> None:
        """keep_last N becomes a single rule expiring all but the newest N images."""
        text = EcrSpec.model_validate({"lifecycle_policy": {"keep_last": 7}}).lifecycle_policy_text()
        assert text is not None
        (rule,) = json.loads(text)["rules"]
        assert rule["rulePriority"] == 1
        assert rule["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 7}
        assert rule["action"] == {"type": "expire"}

    def test_a_raw_policy_is_passed_through_unchanged(self) -> None:
        """policy_text is the caller's own ECR lifecycle policy, used as given."""
        raw = '{"rules": []}'
        assert EcrSpec.model_validate({"lifecyclePolicy": {"policyText": raw}}).lifecycle_policy_text() == raw

    def test_no_policy_means_none(self) -> None:
        """Without lifecycle_policy the repository gets no policy."""
        assert EcrSpec().lifecycle_policy_text() is None

    @pytest.mark.parametrize(
        "policy",
        [
            pytest.param(
                {"keep_last": 5, "policy_text": '{"rules": []}'}, id="both forms at once are refused"
            ),
            pytest.param({"policy_text": "{not json"}, id="policy text that is not JSON is refused"),
            pytest.param({"keep_last": 0}, id="keeping no images is refused"),
        ],
    )
    def test_a_bad_policy_is_refused(self, policy: dict[str, Any]) -> None:
        """A lifecycle policy that ECR would refuse or that is ambiguous fails validation."""
        with pytest.raises(ValidationError):
            EcrSpec.model_validate({"lifecycle_policy": policy})
