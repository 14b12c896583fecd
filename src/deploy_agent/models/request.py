"""The message agents publish: ``DeployToECSTask`` (schema_version 1), see DESIGN section 2.

Field names are accepted in snake_case and camelCase; unknown fields are errors. The seed's names
(``healthCheckEndpoint``, ``deploymentConfiguration``) are translated by :mod:`.seed_names`.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, cast

from pydantic import Field, StringConstraints, field_validator, model_validator

from deploy_agent.models._base import (
    IMAGE_TAG_PATTERN,
    EcsName,
    FieldProblem,
    HttpUrlText,
    Labels,
    MessageModel,
    has_pattern,
)
from deploy_agent.models.analysis import AnalysisGate, check_unique_names
from deploy_agent.models.ecr import EcrSpec
from deploy_agent.models.seed_names import translate_seed_names
from deploy_agent.models.strategy import StrategyOptions
from deploy_agent.models.task_definition import TaskDefinitionSpec
from deploy_agent.strategies import registry

if TYPE_CHECKING:
    Strategy = StrategyOptions
else:
    # One options model per registered strategy module, told apart by ``type`` (strategies.registry).
    Strategy = Annotated[Union[registry.options_models()], Field(discriminator="type")]  # noqa: UP007

DEPLOYMENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-\d$"
ECR_REPOSITORY_PATTERN = r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# The first part must look like a registry host (has a dot or a port, or is localhost), as Docker reads it.
IMAGE_URI_PATTERN = (
    r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?::\d{1,5})?|[A-Za-z0-9-]+:\d{1,5}|localhost)"
    rf"/{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)

DeploymentId = Annotated[str, StringConstraints(pattern=DEPLOYMENT_ID_PATTERN)]
ImageTag = Annotated[str, StringConstraints(pattern=IMAGE_TAG_PATTERN)]
Text = Annotated[str, StringConstraints(max_length=4096)]
BuildMapping = Annotated[
    dict[Annotated[str, StringConstraints(min_length=1, max_length=256)], Text], Field(max_length=100)
]
ImageRef = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
BUILD_TARGET_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
PLATFORM_PATTERN = r"^[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?$"
#: build-arg names refused: they would put a secret into the pushed image's history
SECRET_BUILD_ARG = re.compile(r"TOKEN|SECRET|PASS|KEY", re.IGNORECASE)


def new_deployment_id() -> str:
    """Return a fresh deployment id for a message that did not choose one."""
    return uuid.uuid4().hex


class BuildSpec(MessageModel):
    """What to build; the worker resolves ``context`` against its allowed build root."""

    context: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    dockerfile: Annotated[str, StringConstraints(min_length=1, max_length=1024)] = "Dockerfile"
    build_args: BuildMapping = Field(default_factory=dict)
    target: Annotated[str, StringConstraints(pattern=BUILD_TARGET_PATTERN)] | None = None
    cache_from: list[ImageRef] = Field(default_factory=list, max_length=20)
    labels: BuildMapping = Field(default_factory=dict)
    platform: Annotated[str, StringConstraints(pattern=PLATFORM_PATTERN)] | None = None

    @model_validator(mode="after")
    def _no_secret_build_args(self) -> BuildSpec:
        # Build args are written into the image's history, which is pushed to ECR for anyone who
        # can pull it: a secret must never travel as one.
        for name in self.build_args:
            if SECRET_BUILD_ARG.search(name):
                raise FieldProblem(
                    f"build_args.{name}",
                    "is named like a secret (TOKEN, SECRET, PASS, KEY); build args stay in the pushed "
                    "image's history: use a container secret (a Secrets Manager or SSM ARN) instead",
                )
        return self

    @field_validator("dockerfile")
    @classmethod
    def _dockerfile_inside_context(cls, value: str) -> str:
        # Confined like the context: an absolute path or '..' would make the engine read (and quote
        # back in its error) any file of the worker's host. The worker also refuses symlinks out.
        if "\x00" in value:
            raise ValueError("must not contain NUL bytes")
        if value.startswith(("/", "\\")):
            raise ValueError("must be a path relative to the build context")
        if ".." in re.split(r"[/\\]", value):
            raise ValueError("must not contain '..' (it must name a file inside the build context)")
        return value


class ImageSpec(MessageModel):
    """Either an ECR ``repository`` (+ ``tag``) to build and push to, or the ``uri`` of a pushed image."""

    repository: (
        Annotated[str, StringConstraints(min_length=2, max_length=256, pattern=ECR_REPOSITORY_PATTERN)] | None
    ) = None
    #: None means: tag the build with the deployment id
    tag: ImageTag | None = None
    uri: (
        Annotated[
            str,
            StringConstraints(max_length=1024),
            has_pattern(
                IMAGE_URI_PATTERN, "must be a pushed image: registry-host/repository[:tag][@sha256:digest]"
            ),
            Field(json_schema_extra={"pattern": IMAGE_URI_PATTERN}),
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _one_source(self) -> ImageSpec:
        if (self.repository is None) == (self.uri is None):
            raise FieldProblem(
                "", "give exactly one of repository (to build and push) or uri (a pushed image)"
            )
        if self.uri is not None and self.tag is not None:
            raise FieldProblem("tag", "give the tag inside uri, not beside it")
        return self


class HealthCheckSpec(MessageModel):
    """The HTTP check the worker makes against the release before calling it good."""

    url: HttpUrlText
    expected_status: int = Field(default=200, ge=100, le=599)
    timeout_seconds: float = Field(default=5, ge=0.1, le=60)
    #: None means the worker's default; the floor keeps a message from probing a target flat out
    interval_seconds: float | None = Field(default=None, ge=1.0, le=300)
    healthy_threshold: int = Field(default=3, ge=1, le=10)
    unhealthy_threshold: int = Field(default=3, ge=1, le=10)
    max_latency_ms: int | None = Field(default=None, ge=1, le=60_000)


class RollbackSpec(MessageModel):
    enabled: bool = True
    alarm_names: list[Annotated[str, StringConstraints(min_length=1, max_length=255)]] = Field(
        default_factory=list, max_length=10
    )


class NotifySpec(MessageModel):
    """Where to tell about this deployment, besides the worker's own webhooks."""

    webhooks: list[HttpUrlText] = Field(default_factory=list, max_length=5)


class DeployToECSTask(MessageModel):
    """Deploy a container service to AWS ECS: build, push, register, roll out, check, roll back.

    Field names are accepted in snake_case and camelCase; unknown fields are rejected. The seed's
    ``healthCheckEndpoint`` and ``deploymentConfiguration`` are accepted as well.
    """

    schema_version: Literal[1] = 1
    deployment_id: DeploymentId = Field(default_factory=new_deployment_id)
    cluster_name: EcsName
    service_name: EcsName
    region: Annotated[str, StringConstraints(max_length=32, pattern=REGION_PATTERN)] | None = None
    build: BuildSpec | None = None
    image: ImageSpec
    ecr: EcrSpec = EcrSpec()
    task_definition: TaskDefinitionSpec | None = None
    container_name: EcsName | None = None
    desired_count: int | None = Field(default=None, ge=0, le=5000)
    strategy: Strategy = Field(
        default=cast(StrategyOptions, registry.strategy_for(registry.DEFAULT).options()),
        description="how the new release replaces the old one; default: rolling",
    )
    health_check: HealthCheckSpec | None = None
    rollback: RollbackSpec = RollbackSpec()
    analysis: list[AnalysisGate] = Field(
        default_factory=list,
        max_length=10,
        description="Prometheus analysis gates held at every gated step (blue-green bake, canary, linear)",
    )
    timeout_seconds: int | None = Field(default=None, ge=30, le=86_400)
    requested_by: Annotated[str, StringConstraints(max_length=256)] | None = None
    labels: Labels = Field(default_factory=dict)
    notify: NotifySpec = NotifySpec()

    @model_validator(mode="before")
    @classmethod
    def _accept_seed_names(cls, data: Any) -> Any:
        return translate_seed_names(data)

    @field_validator("schema_version", mode="before")
    @classmethod
    def _no_bool_version(cls, value: object) -> object:
        # JSON true equals 1 in Python; the schema says the integer 1.
        if isinstance(value, bool):
            raise ValueError("must be the integer 1")
        return value

    @field_validator("deployment_id", mode="before", json_schema_input_type=DeploymentId | None)
    @classmethod
    def _generate_missing_id(cls, value: object) -> object:
        return new_deployment_id() if value is None else value

    @model_validator(mode="after")
    def _parts_agree(self) -> DeployToECSTask:
        if self.build is not None and self.image.uri is not None:
            raise FieldProblem(
                "build", "cannot be combined with image.uri; give image.repository to build and push"
            )
        if self.image.repository is not None:
            if self.build is None:
                raise FieldProblem(
                    "build",
                    "build is required when image.repository is given; give image.uri for a prebuilt image",
                )
            if self.image.tag is None and ":" in self.deployment_id:
                raise FieldProblem(
                    "image.tag", "required when deployment_id holds ':', which image tags cannot"
                )
        if self.task_definition is not None:
            self._check_target_container(self.task_definition)
        if self.analysis:
            check_unique_names(self.analysis)
            if self.strategy.type == "rolling":
                raise FieldProblem(
                    "analysis", "rolling holds no gated step; use blue_green, canary or linear for analysis"
                )
        return self

    def _check_target_container(self, task_definition: TaskDefinitionSpec) -> None:
        names = [c.name for c in task_definition.container_definitions]
        if self.container_name is None:
            # Frozen model: the default is filled in once, here, so every reader sees the same target.
            object.__setattr__(self, "container_name", task_definition.default_container_name())
        elif self.container_name not in names:
            raise FieldProblem("container_name", f"names no container of task_definition; one of {names}")
        for i, container in enumerate(task_definition.container_definitions):
            if container.image is None and container.name != self.container_name:
                raise FieldProblem(
                    f"task_definition.container_definitions.{i}.image",
                    "required for every container but container_name, which gets the built or given image",
                )

    @property
    def image_tag(self) -> str | None:
        """Return the tag a build is pushed with (``image.tag``, else the deployment id), or None for uri."""
        if self.image.repository is None:
            return None
        return self.image.tag or self.deployment_id
