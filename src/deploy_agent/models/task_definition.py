"""The task definition part of the message, checked against ECS's own rules before anything is touched.

``TaskDefinitionSpec`` accepts our snake_case shape and AWS's ``register_task_definition`` shape
(camelCase keys, ``environment``/``secrets`` as ``[{name, value|valueFrom}]`` lists) and gives back the
boto3 keyword arguments with :meth:`TaskDefinitionSpec.to_register_kwargs`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, StringConstraints, model_validator

from deploy_agent.models._base import EcsName, FieldProblem, IamRoleArn, MessageModel
from deploy_agent.models.container import ContainerDefinition, without_none

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


_UNITS_PATTERN = r"^[1-9][0-9]{0,6}$"
_UnitsInput = Annotated[int, Field(ge=1)] | Annotated[str, StringConstraints(max_length=16)]
TaskCpu = Annotated[
    str,
    StringConstraints(pattern=_UNITS_PATTERN),
    BeforeValidator(_units("vcpu", 1024), json_schema_input_type=_UnitsInput),
]
TaskMemory = Annotated[
    str,
    StringConstraints(pattern=_UNITS_PATTERN),
    BeforeValidator(_units("gb", 1024), json_schema_input_type=_UnitsInput),
]


def _fargate_only() -> list[Literal["FARGATE", "EC2", "EXTERNAL"]]:
    return ["FARGATE"]


class TaskDefinitionSpec(MessageModel):
    family: EcsName
    cpu: TaskCpu | None = None
    memory: TaskMemory | None = None
    network_mode: Literal["awsvpc", "bridge", "host", "none"] = "awsvpc"
    requires_compatibilities: list[Literal["FARGATE", "EC2", "EXTERNAL"]] = Field(
        default_factory=_fargate_only, min_length=1, max_length=3
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
        return next(
            (c.name for c in self.container_definitions if c.essential), self.container_definitions[0].name
        )

    def to_register_kwargs(self, *, images: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Return boto3 ``register_task_definition`` kwargs; ``images`` maps container name -> image."""
        images = images or {}
        return without_none(
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
            return FieldProblem(
                f"container_definitions.{i}.name", f"container name {container.name!r} is used twice"
            )
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
        return FieldProblem(
            "memory", f"{spec.memory} MiB is not valid with Fargate cpu {spec.cpu}; one of {allowed}"
        )
    return None


def _container_resource_problem(spec: TaskDefinitionSpec) -> FieldProblem | None:
    task_cpu = int(spec.cpu) if spec.cpu is not None else None
    task_memory = int(spec.memory) if spec.memory is not None else None
    cpu_total = 0
    for i, c in enumerate(spec.container_definitions):
        where = f"container_definitions.{i}"
        cpu_total += c.cpu or 0
        if task_cpu is not None and cpu_total > task_cpu:
            return FieldProblem(
                f"{where}.cpu", f"containers' cpu adds up to {cpu_total}, over the task's {task_cpu}"
            )
        for field, amount in (("memory", c.memory), ("memory_reservation", c.memory_reservation)):
            if task_memory is not None and amount is not None and amount > task_memory:
                return FieldProblem(
                    f"{where}.{field}", f"{amount} MiB is over the task's memory of {task_memory} MiB"
                )
        if c.memory is not None and c.memory_reservation is not None and c.memory_reservation > c.memory:
            return FieldProblem(f"{where}.memory_reservation", "must not exceed the container's memory")
        if task_memory is None and c.memory is None and c.memory_reservation is None:
            return FieldProblem(
                f"{where}.memory", "give memory or memory_reservation when the task has no memory"
            )
        for j, port in enumerate(c.port_mappings):
            if spec.network_mode == "awsvpc" and port.host_port not in (None, port.container_port):
                return FieldProblem(
                    f"{where}.port_mappings.{j}.host_port", "must equal container_port in awsvpc mode"
                )
    return None
