"""The message's ``analysis`` gates: Prometheus queries judged at every gated hold (``core.analysis``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from deploy_agent.core.analysis import CONDITION_GRAMMAR, AnalysisRules, parse_condition
from deploy_agent.models._base import FieldProblem, HttpUrlText, MessageModel

GATE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
ConditionText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256),
    Field(description=f"{CONDITION_GRAMMAR}; e.g. 'result < 0.05'"),
]


class AnalysisGate(MessageModel):
    """A PromQL query measured every ``interval_seconds`` while a step is held, up to ``count`` times."""

    name: Annotated[str, StringConstraints(pattern=GATE_NAME_PATTERN)]
    kind: Literal["prometheus"] = "prometheus"
    #: the Prometheus server's base URL (``/api/v1/query`` is appended)
    url: HttpUrlText
    query: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    success_condition: ConditionText
    failure_condition: ConditionText | None = None
    interval_seconds: float = Field(ge=1.0, le=3600)
    count: int = Field(ge=1, le=1000)
    failure_limit: int = Field(default=0, ge=0, le=1000)
    consecutive_success_limit: int = Field(
        default=0, ge=0, le=1000, description="successes in a row that end the analysis early; 0: off"
    )
    inconclusive: Literal["fail", "pause"] = Field(
        default="fail",
        description="fail: an inconclusive measurement counts as failed; "
        "pause: hold the step and measure on until conclusive, failing past inconclusive_limit",
    )
    inconclusive_limit: int = Field(default=3, ge=0, le=1000)

    @field_validator("success_condition", "failure_condition")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_condition(value)  # ValueError names the grammar; pydantic names the field
        return value

    @field_validator("url")
    @classmethod
    def _no_query_string(cls, value: str) -> str:
        if "?" in value or "#" in value:
            raise ValueError("must be the Prometheus base URL, without a query or fragment")
        return value

    @model_validator(mode="after")
    def _limits_fit(self) -> AnalysisGate:
        if self.consecutive_success_limit > self.count:
            raise FieldProblem(
                "consecutive_success_limit", f"cannot exceed count ({self.count}): it could never be reached"
            )
        return self

    def rules(self) -> AnalysisRules:
        """Return the gate's limits with its conditions parsed (``core.analysis``)."""
        return AnalysisRules(
            success=parse_condition(self.success_condition),
            failure=parse_condition(self.failure_condition) if self.failure_condition else None,
            count=self.count,
            failure_limit=self.failure_limit,
            consecutive_success_limit=self.consecutive_success_limit,
            inconclusive=self.inconclusive,
            inconclusive_limit=self.inconclusive_limit,
        )


def check_unique_names(gates: list[AnalysisGate]) -> None:
    """Raise ``FieldProblem`` at the second gate that repeats a name (names key the records)."""
    seen: set[str] = set()
    for i, gate in enumerate(gates):
        if gate.name in seen:
            raise FieldProblem(f"analysis.{i}.name", f"{gate.name!r} names another gate already")
        seen.add(gate.name)
