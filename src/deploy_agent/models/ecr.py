"""The message's ``ecr`` object: the repository's settings and its lifecycle policy."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from deploy_agent.models._base import FieldProblem, MessageModel


class LifecyclePolicySpec(MessageModel):
    """Either ``keep_last`` N images or the raw ECR lifecycle ``policy_text``."""

    keep_last: int | None = Field(default=None, ge=1, le=1000)
    policy_text: Annotated[str, StringConstraints(min_length=1, max_length=30_720)] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> LifecyclePolicySpec:
        if (self.keep_last is None) == (self.policy_text is None):
            raise FieldProblem("", "give exactly one of keep_last or policy_text")
        if self.policy_text is not None:
            try:
                policy = json.loads(self.policy_text)
            except ValueError:
                raise FieldProblem("policy_text", "must be a JSON document") from None
            if not (isinstance(policy, dict) and isinstance(policy.get("rules"), list)):
                raise FieldProblem("policy_text", 'must be a JSON object with a "rules" list')
        return self

    def to_policy_text(self) -> str:
        """Return the ECR lifecycle policy JSON text."""
        if self.policy_text is not None:
            return self.policy_text
        rule = {
            "rulePriority": 1,
            "description": f"keep the last {self.keep_last} images",
            "selection": {
                "tagStatus": "any",
                "countType": "imageCountMoreThan",
                "countNumber": self.keep_last,
            },
            "action": {"type": "expire"},
        }
        return json.dumps({"rules": [rule]}, sort_keys=True)


#: ECR's ImageTagMutability values (botocore's ecr model, 2025: the *_WITH_EXCLUSION pair was added)
TagMutability = Literal["MUTABLE", "IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION"]
#: ECR's ImageTagMutabilityExclusionFilterValue pattern (botocore's ecr model)
TAG_FILTER_PATTERN = r"^[0-9a-zA-Z._*-]{1,128}$"


class TagMutabilityExclusionFilter(MessageModel):
    """One tag pattern exempt from the repository's tag mutability (ECR's only type is WILDCARD)."""

    filter_type: Literal["WILDCARD"] = "WILDCARD"
    filter: Annotated[str, StringConstraints(pattern=TAG_FILTER_PATTERN)]


class EcrSpec(MessageModel):
    """The repository settings to apply. A setting left out (None) leaves an existing repository's
    value as it is, and a new repository gets ECR's default (scan on push off, MUTABLE tags): the
    worker never weakens a repository's IMMUTABLE tags or scan on push unless the message says so.
    """

    create_repository: bool = True
    lifecycle_policy: LifecyclePolicySpec | None = None
    scan_on_push: bool | None = None
    tag_mutability: TagMutability | None = None
    #: required with, and only with, a ``*_WITH_EXCLUSION`` tag_mutability (PutImageTagMutability
    #: needs the filters for those values); 1 to 5 filters, as ECR allows
    tag_mutability_exclusion_filters: list[TagMutabilityExclusionFilter] | None = Field(
        default=None, min_length=1, max_length=5
    )

    @model_validator(mode="after")
    def _filters_fit_mutability(self) -> EcrSpec:
        with_exclusion = (self.tag_mutability or "").endswith("_WITH_EXCLUSION")
        if with_exclusion and not self.tag_mutability_exclusion_filters:
            raise FieldProblem(
                "tag_mutability_exclusion_filters", f"required with tag_mutability {self.tag_mutability}"
            )
        if not with_exclusion and self.tag_mutability_exclusion_filters:
            raise FieldProblem(
                "tag_mutability_exclusion_filters",
                "only allowed with tag_mutability IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION",
            )
        return self

    def exclusion_filters(self) -> list[dict[str, str]] | None:
        """Return the filters in ECR's shape (``filterType``/``filter``), or None when none are given."""
        if self.tag_mutability_exclusion_filters is None:
            return None
        return [
            {"filterType": f.filter_type, "filter": f.filter} for f in self.tag_mutability_exclusion_filters
        ]

    def lifecycle_policy_text(self) -> str | None:
        """Return the lifecycle policy JSON text to put on the repository, or None for none."""
        return None if self.lifecycle_policy is None else self.lifecycle_policy.to_policy_text()
