"""One container of a task definition, in our snake_case shape or AWS's own.

``environment`` and ``secrets`` are name -> value maps here; AWS's ``[{name, value|valueFrom}]`` lists
are accepted and converted. Secrets are ARNs only, and a problem with one never repeats its value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    with_config,
)
from typing_extensions import TypedDict

from deploy_agent.models._base import EcsName, MessageModel, has_pattern

VALUE_FROM_ARN_PATTERN = (
    r"^arn:aws[a-z-]*:(?:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+|ssm:[a-z0-9-]+:\d{12}:parameter/.+)$"
)
# Never echo the value: a plain value in ``secrets`` is most likely the secret itself.
_VALUE_FROM_PROBLEM = (
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
            if not (
                isinstance(item, dict) and set(item) == {"name", value_key} and isinstance(item["name"], str)
            ):
                raise ValueError(
                    f"item {index} must be an object with exactly the keys 'name' and '{value_key}'"
                )
            if item["name"] in mapping:
                raise ValueError(f"item {index} repeats the name {item['name'][:128]!r}")
            mapping[item["name"]] = item[value_key]
        return mapping

    return convert


EnvName = Annotated[str, StringConstraints(min_length=1, max_length=255)]
SecretArn = Annotated[
    str,
    StringConstraints(max_length=2048),
    has_pattern(VALUE_FROM_ARN_PATTERN, _VALUE_FROM_PROBLEM),
    Field(json_schema_extra={"pattern": VALUE_FROM_ARN_PATTERN}),
]
EnvValue = Annotated[str, StringConstraints(max_length=32_768)]


@with_config(ConfigDict(extra="forbid"))
class AwsEnvironmentEntry(TypedDict):
    """AWS's list form of one environment variable."""

    name: EnvName
    value: EnvValue


@with_config(ConfigDict(extra="forbid"))
class AwsSecretEntry(TypedDict):
    """AWS's list form of one secret: the name and the ARN the value comes from."""

    name: EnvName
    valueFrom: SecretArn  # AWS's own spelling: this shape is only ever given in AWS's form


Environment = Annotated[
    dict[EnvName, EnvValue],
    Field(max_length=1000),
    BeforeValidator(
        _pairs_to_mapping("value"), json_schema_input_type=dict[EnvName, EnvValue] | list[AwsEnvironmentEntry]
    ),
]
Secrets = Annotated[
    dict[EnvName, SecretArn],
    Field(max_length=1000),
    BeforeValidator(
        _pairs_to_mapping("valueFrom"), json_schema_input_type=dict[EnvName, SecretArn] | list[AwsSecretEntry]
    ),
]
Argv = Annotated[list[Annotated[str, StringConstraints(max_length=8192)]], Field(max_length=256)]
Port = Annotated[int, Field(ge=1, le=65535)]


def _check_log_configuration(value: dict[str, Any]) -> dict[str, Any]:
    """Return the log configuration in AWS's camelCase keys, after checking its shape."""
    renamed = {
        {"log_driver": "logDriver", "secret_options": "secretOptions"}.get(k, k): v for k, v in value.items()
    }
    unknown = sorted(k[:64] for k in set(renamed) - {"logDriver", "options", "secretOptions"})
    if unknown:
        raise ValueError(f"unknown keys {unknown}; allowed: logDriver, options, secretOptions")
    if renamed.get("logDriver") not in LOG_DRIVERS:
        raise ValueError(f"logDriver must be one of {sorted(LOG_DRIVERS)}")
    options = renamed.get("options", {})
    if not (isinstance(options, dict) and all(isinstance(v, str) for v in options.values())):
        raise ValueError("options must map names to strings")
    secret_options = renamed.get("secretOptions", [])
    if not (isinstance(secret_options, list) and all(_is_value_from(item) for item in secret_options)):
        raise ValueError(
            f"secretOptions must list {{name, valueFrom}} objects; valueFrom {_VALUE_FROM_PROBLEM}"
        )
    return renamed


def _is_value_from(item: object) -> bool:
    value_from = item.get("valueFrom") if isinstance(item, dict) else None
    return isinstance(value_from, str) and re.fullmatch(VALUE_FROM_ARN_PATTERN, value_from) is not None


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
        return without_none(
            {
                "name": self.name,
                "image": image or self.image,
                "essential": self.essential,
                "cpu": self.cpu,
                "memory": self.memory,
                "memoryReservation": self.memory_reservation,
                "portMappings": [
                    without_none(
                        {"containerPort": p.container_port, "hostPort": p.host_port, "protocol": p.protocol}
                    )
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


def without_none(mapping: dict[str, Any]) -> dict[str, Any]:
    """Return ``mapping`` without its None values (boto3 rejects explicit nulls)."""
    return {k: v for k, v in mapping.items() if v is not None}
