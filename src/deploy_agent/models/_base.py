"""Shared model configuration, name rules and the ``FieldProblem`` convention.

Every message model accepts snake_case and camelCase field names, rejects unknown fields and reports
error locations by snake_case name. Cross-field validators raise :class:`FieldProblem` so the error
names the field at fault rather than the model that noticed it.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel


class MessageModel(BaseModel):
    """Base of every part of ``DeployToECSTask``: frozen, strict about unknown fields, bilingual names."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=False,
        loc_by_alias=False,
        # JSON types as the schema says them: "5" is not a count, 0 is not false.
        strict=True,
    )


class FieldProblem(ValueError):
    """A cross-field problem pinned to ``field``: a dotted path relative to the model that raised it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem


def has_pattern(pattern: str, problem: str) -> AfterValidator:
    """Give a validator that checks ``pattern`` and, on failure, says ``problem`` without the value."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(problem)
        return value

    return AfterValidator(check)


ECS_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,255}$"
EcsName = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=ECS_NAME_PATTERN)]
IAM_ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$"
IamRoleArn = Annotated[str, StringConstraints(max_length=2048, pattern=IAM_ROLE_ARN_PATTERN)]
IMAGE_TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"

# Free text carried as metadata: bounded so a hostile message cannot bloat events and results.
LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]
LabelValue = Annotated[str, StringConstraints(max_length=256)]
Labels = Annotated[dict[LabelKey, LabelValue], Field(max_length=50)]


def _check_http_url(value: str) -> str:
    if any(ch.isspace() for ch in value):
        raise ValueError("must not contain whitespace")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    return value


HttpUrlText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2048),
    AfterValidator(_check_http_url),
    Field(json_schema_extra={"pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://\S+$"}),
]
