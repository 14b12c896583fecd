"""The task definition part of the message, checked against ECS's own rules before anything is touched.

``TaskDefinitionSpec`` accepts our snake_case shape and AWS's ``register_task_definition`` shape
(camelCase keys, ``environment``/``secrets`` as ``[{name, value|valueFrom}]`` lists) and gives back the
boto3 keyword arguments with :meth:`TaskDefinitionSpec.to_register_kwargs`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, field_validator, model_validator

from deploy_agent.models._base import EcsName, FieldProblem, IamRoleArn, MessageModel, has_pattern

#: Fargate's valid (task cpu units -> task memory MiB) pairs.
FARGATE_MEMORY: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}

SECRET_ARN_PATTERN = (
    r"^arn:aws[a-z-]*:(?:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+|ssm:[a-z0-9-]+:\d{12}:parameter/.+)$"
)
# Never echo the value: a plain value in ``secrets`` is most likely the secret itself.
_SECRET_PROBLEM = (
    "must be a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME) or an SSM "
    "parameter ARN (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME); the value given is not repeated here"
)
LOG_DRIVERS = frozenset(
    {"awslogs", "awsfirelens", "fluentd", "gelf", "journald", "json-file", "logentries", "splunk", "syslog"}
)


def _pairs_to_mapping(value_key: str) -> Callable[[object], object]:
    """Give a converter from AWS's ``[{"name": ..., value_key: ...}]`` list form to a name -> value dict."""

    def convert(value: object) -> object:
        if not isinstance(value, list):
            return value
        mapping: dict[str, object] = {}
        for index, item in enumerate(value):
            if not (isinstance(item, dict) and set(item) == {"name", value_key} and isinstance(item["name"], str)):
                raise ValueError(f"item {index} must be an object with exactly the keys 'name' and '{value_key}'")
            if item["name"] in mapping:
                raise ValueError(f"item {index} repeats the name {item['name'][:128]!r}")
            mapping[item["name"]] = item[value_key]
        return mapping

    return convert


def _units(unit: str, per_unit: int) -> Callable[[object], object]:
    """Give a converter of ints and AWS's ``"0.25 vCPU"`` / ``"2 GB"`` forms to a string of whole units."""
    spelled = re.compile(rf"^\s*(\d{{1,4}}(?:\.\d{{1,3}})?)\s*{unit}\s*$", re.IGNORECASE)

    def convert(value: object) -> object:
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return str(value)
        if isinstance(value, str) and (match := spelled.match(value)):
            return str(round(float(match.group(1)) * per_unit))
        return value

    return convert


EnvName = Annotated[str, StringConstraints(min_length=1, max_length=255)]
SecretArn = Annotated[
    str,
    StringConstraints(max_length=2048),
    has_pattern(SECRET_ARN_PATTERN, _SECRET_PROBLEM),
    Field(json_schema_extra={"pattern": SECRET_ARN_PATTERN}),
]
Environment = Annotated[
    dict[EnvName, Annotated[str, StringConstraints(max_length=32_768)]],
    Field(max_length=1000),
    BeforeValidator(_pairs_to_mapping("value"), json_schema_input_type=dict[str, str] | list[dict[str, str]]),
]
Secrets = Annotated[
    dict[EnvName, SecretArn],
    Field(max_length=1000),
    BeforeValidator(_pairs_to_mapping("valueFrom"), json_schema_input_type=dict[str, str] | list[dict[str, str]]),
]
_UNITS_PATTERN = r"^[1-9][0-9]{0,6}$"
TaskCpu = Annotated[
    str,
    StringConstraints(pattern=_UNITS_PATTERN),
    BeforeValidator(_units("vcpu", 1024), json_schema_input_type=int | str),
]
TaskMemory = Annotated[
    str,
    StringConstraints(pattern=_UNITS_PATTERN),
    BeforeValidator(_units("gb", 1024), json_schema_input_type=int | str),
]
Argv = Annotated[list[Annotated[str, StringConstraints(max_length=8192)]], Field(max_length=256)]
Port = Annotated[int, Field(ge=1, le=65535)]


def _check_log_configuration(value: dict[str, Any]) -> dict[str, Any]:
    """Return the log configuration in AWS's camelCase keys, after checking its shape."""
    renamed = {{"log_driver": "logDriver", "secret_options": "secretOptions"}.get(k, k): v for k, v in value.items()}
    unknown = set(renamed) - {"logDriver", "options", "secretOptions"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; allowed: logDriver, options, secretOptions")
    if renamed.get("logDriver") not in LOG_DRIVERS:
        raise ValueError(f"logDriver must be one of {sorted(LOG_DRIVERS)}")
    options = renamed.get("options", {})
    if not (isinstance(options, dict) and all(isinstance(v, str) for v in options.values())):
        raise ValueError("options must map names to strings")
    for item in renamed.get("secretOptions", []) if isinstance(renamed.get("secretOptions"), list) else [None]:
        value_from = item.get("valueFrom") if isinstance(item, dict) else None
        if not (isinstance(value_from, str) and re.fullmatch(SECRET_ARN_PATTERN, value_from)):
            raise ValueError(f"secretOptions must be a list of {{name, valueFrom}}; valueFrom {_SECRET_PROBLEM}")
    return renamed


class PortMapping(MessageModel):
    container_port: Port
    host_port: Port | None = None
    protocol: Literal["tcp", "udp"] = "tcp"


class ContainerHealthCheck(MessageModel):
    """ECS's container health check (run by the agent inside the task, not by us)."""

    command: Annotated[Argv, Field(min_length=1)]
    interval: int = Field(default=30, ge=5, le=300)
    timeout: int = Field(default=5, ge=2, le=120)
    retries: int = Field(default=3, ge=1, le=10)
    start_period: int = Field(default=0, ge=0, le=300)

    @field_validator("command")
    @classmethod
    def _starts_with_cmd(cls, command: list[str]) -> list[str]:
        if command[0] not in ("CMD", "CMD-SHELL"):
            raise ValueError('must start with "CMD" or "CMD-SHELL", as ECS requires')
        return command


class ContainerDefinition(MessageModel):
    name: EcsName
    #: None only for the container that gets the built or given image (``container_name``).
    image: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^\S+$")] | None = None
    essential: bool = True
    cpu: int | None = Field(default=None, ge=0, le=16384 * 8)
    memory: int | None = Field(default=None, ge=6, le=1_000_000)
    memory_reservation: int | None = Field(default=None, ge=6, le=1_000_000)
    port_mappings: list[PortMapping] = Field(default_factory=list, max_length=100)
    environment: Environment = Field(default_factory=dict)
    secrets: Secrets = Field(default_factory=dict)
    health_check: ContainerHealthCheck | None = None
    log_configuration: Annotated[dict[str, Any], AfterValidator(_check_log_configuration)] | None = None
    command: Argv | None = None
    entry_point: Argv | None = None

    def to_aws(self, image: str | None = None) -> dict[str, Any]:
        """Return this container in ``register_task_definition``'s shape; ``image`` overrides ours."""
        health = self.health_check
        return _without_none(
            {
                "name": self.name,
                "image": image or self.image,
                "essential": self.essential,
                "cpu": self.cpu,
                "memory": self.memory,
                "memoryReservation": self.memory_reservation,
                "portMappings": [
                    _without_none({"containerPort": p.container_port, "hostPort": p.host_port, "protocol": p.protocol})
                    for p in self.port_mappings
                ],
                "environment": [{"name": k, "value": v} for k, v in self.environment.items()],
                "secrets": [{"name": k, "valueFrom": v} for k, v in self.secrets.items()],
                "healthCheck": None
                if health is None
                else {
                    "command": list(health.command),
                    "interval": health.interval,
                    "timeout": health.timeout,
                    "retries": health.retries,
                    "startPeriod": health.start_period,
                },
                "logConfiguration": self.log_configuration,
                "command": self.command,
                "entryPoint": self.entry_point,
            }
        )


class TaskDefinitionSpec(MessageModel):
    family: EcsName
    cpu: TaskCpu | None = None
    memory: TaskMemory | None = None
    network_mode: Literal["awsvpc", "bridge", "host", "none"] = "awsvpc"
    requires_compatibilities: list[Literal["FARGATE", "EC2", "EXTERNAL"]] = Field(
        default_factory=lambda: ["FARGATE"], min_length=1, max_length=3
    )
    execution_role_arn: IamRoleArn | None = None
    task_role_arn: IamRoleArn | None = None
    container_definitions: list[ContainerDefinition] = Field(min_length=1, max_length=10)

    @model_validator(mode="after")
    def _follows_ecs_rules(self) -> TaskDefinitionSpec:
        problem = _first_ecs_problem(self)
        if problem is not None:
            raise problem
        return self

    def default_container_name(self) -> str:
        """Return the name of the container that gets the image when ``container_name`` is not given."""
        return next((c.name for c in self.container_definitions if c.essential), self.container_definitions[0].name)

    def to_register_kwargs(self, *, images: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Return boto3 ``register_task_definition`` kwargs; ``images`` maps container name -> image."""
        images = images or {}
        return _without_none(
            {
                "family": self.family,
                "cpu": self.cpu,
                "memory": self.memory,
                "networkMode": self.network_mode,
                "requiresCompatibilities": list(self.requires_compatibilities),
                "executionRoleArn": self.execution_role_arn,
                "taskRoleArn": self.task_role_arn,
                "containerDefinitions": [c.to_aws(images.get(c.name)) for c in self.container_definitions],
            }
        )


def _first_ecs_problem(spec: TaskDefinitionSpec) -> FieldProblem | None:
    """Return the first way ``spec`` breaks ECS's rules, or None when ECS would accept it."""
    containers = spec.container_definitions
    seen: set[str] = set()
    for i, container in enumerate(containers):
        if container.name in seen:
            return FieldProblem(f"container_definitions.{i}.name", f"container name {container.name!r} is used twice")
        seen.add(container.name)
    if not any(c.essential for c in containers):
        return FieldProblem("container_definitions", "at least one container must be essential")
    if len(set(spec.requires_compatibilities)) != len(spec.requires_compatibilities):
        return FieldProblem("requires_compatibilities", "each compatibility may be given once")
    if "FARGATE" in spec.requires_compatibilities:
        problem = _fargate_problem(spec)
        if problem is not None:
            return problem
    return _container_resource_problem(spec)


def _fargate_problem(spec: TaskDefinitionSpec) -> FieldProblem | None:
    if spec.cpu is None:
        return FieldProblem("cpu", f"required for FARGATE; one of {sorted(FARGATE_MEMORY)}")
    if spec.memory is None:
        return FieldProblem("memory", "required for FARGATE (MiB)")
    if spec.network_mode != "awsvpc":
        return FieldProblem("network_mode", "must be awsvpc for FARGATE")
    choices = FARGATE_MEMORY.get(int(spec.cpu))
    if choices is None:
        return FieldProblem("cpu", f"{spec.cpu} is not a Fargate cpu size; one of {sorted(FARGATE_MEMORY)}")
    if int(spec.memory) not in choices:
        allowed = ", ".join(str(m) for m in choices)
        return FieldProblem("memory", f"{spec.memory} MiB is not valid with Fargate cpu {spec.cpu}; one of {allowed}")
    return None


def _container_resource_problem(spec: TaskDefinitionSpec) -> FieldProblem | None:
    task_cpu = int(spec.cpu) if spec.cpu is not None else None
    task_memory = int(spec.memory) if spec.memory is not None else None
    cpu_total = 0
    for i, c in enumerate(spec.container_definitions):
        where = f"container_definitions.{i}"
        cpu_total += c.cpu or 0
        if task_cpu is not None and cpu_total > task_cpu:
            return FieldProblem(f"{where}.cpu", f"containers' cpu adds up to {cpu_total}, over the task's {task_cpu}")
        for field, amount in (("memory", c.memory), ("memory_reservation", c.memory_reservation)):
            if task_memory is not None and amount is not None and amount > task_memory:
                return FieldProblem(f"{where}.{field}", f"{amount} MiB is over the task's memory of {task_memory} MiB")
        if c.memory is not None and c.memory_reservation is not None and c.memory_reservation > c.memory:
            return FieldProblem(f"{where}.memory_reservation", "must not exceed the container's memory")
        if task_memory is None and c.memory is None and c.memory_reservation is None:
            return FieldProblem(f"{where}.memory", "give memory or memory_reservation when the task has no memory")
        for j, port in enumerate(c.port_mappings):
            if spec.network_mode == "awsvpc" and port.host_port not in (None, port.container_port):
                return FieldProblem(f"{where}.port_mappings.{j}.host_port", "must equal container_port in awsvpc mode")
    return None


def _without_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if v is not None}
