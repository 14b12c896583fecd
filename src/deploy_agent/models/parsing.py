"""Turn a raw message into a ``DeployToECSTask`` or a ``RequestRejected`` naming each bad field.

Problems never carry the offending input: a message may hold secrets, and errors end up in logs,
events and results.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, StringConstraints, ValidationError
from pydantic_core import ErrorDetails

from deploy_agent.core.errors import RequestRejected
from deploy_agent.models._base import EcsName, FieldProblem, MessageModel
from deploy_agent.models.request import DEPLOYMENT_ID_PATTERN, REGION_PATTERN, DeployToECSTask
from deploy_agent.strategies.registry import strategy_names

SCHEMA_ID = "https://deploy-agent.dev/schemas/deploy_to_ecs_task.v1.json"
MAX_PAYLOAD_BYTES = 1_048_576
_MAX_PROBLEMS_IN_MESSAGE = 10


def parse_request(payload: object) -> DeployToECSTask:
    """Return the validated message; raise ``RequestRejected`` listing one problem per bad field."""
    data = _decode(payload)
    try:
        return DeployToECSTask.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(error) for error in exc.errors(include_input=False, include_url=False)]
        # ``from None``: the chained ValidationError would print the input values in tracebacks.
        raise _rejected(problems) from None


class RollbackRequest(MessageModel):
    """The argument of ``deploy_agent.rollback``: which service to put back, and on what."""

    cluster_name: EcsName
    service_name: EcsName
    region: Annotated[str, StringConstraints(max_length=32, pattern=REGION_PATTERN)] | None = None
    deployment_id: Annotated[str, StringConstraints(pattern=DEPLOYMENT_ID_PATTERN)] | None = None
    #: a deployment id from the release ledger, a revision number, ``family:revision`` or an ARN
    to: (
        Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=r"^[A-Za-z0-9_.:/-]+$")]
        | None
    ) = None
    requested_by: Annotated[str, StringConstraints(max_length=256)] | None = None
    timeout_seconds: int | None = Field(default=None, ge=30, le=86_400)


def parse_rollback_request(payload: object) -> RollbackRequest:
    """Return the validated rollback request; raise ``RequestRejected`` naming each bad field."""
    data = _decode(payload, "rollback request")
    try:
        return RollbackRequest.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(error) for error in exc.errors(include_input=False, include_url=False)]
        raise _rejected(problems, "rollback request") from None


def request_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of ``DeployToECSTask`` (snake_case names; camelCase is accepted too)."""
    schema = DeployToECSTask.model_json_schema(by_alias=False)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "DeployToECSTask"
    schema["description"] = (
        "A request to deploy a container service to AWS ECS (schema_version 1): build and push an image "
        "or take a pushed one, register the task definition, roll out with a strategy, health-check, and "
        "roll back when the release is bad. Every field is also accepted in camelCase; unknown fields "
        "are rejected. The seed's healthCheckEndpoint and deploymentConfiguration are accepted too."
    )
    return schema


#: the deepest JSON a message needs is about 7 levels (task_definition.container_definitions.N.
#: log_configuration.secret_options.N); anything much deeper is refused before the model sees it
MAX_DEPTH = 32
_PREFIX = "the request must be a JSON object, got "


def _decode(payload: object, what: str = "DeployToECSTask") -> object:
    if isinstance(payload, (bytes, bytearray, str)):
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise _rejected(
                [{"field": "", "problem": f"the message is larger than {MAX_PAYLOAD_BYTES} bytes"}], what
            )
        try:
            payload = json.loads(payload)
        except RecursionError:
            raise _rejected([{"field": "", "problem": "the message is nested too deeply"}], what) from None
        except UnicodeDecodeError:
            raise _rejected(
                [{"field": "", "problem": _PREFIX + "bytes that are not UTF-8 text"}], what
            ) from None
        except ValueError as exc:
            where = (
                f" (at line {exc.lineno} column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
            )
            problem = f"{_PREFIX}a string that is not valid JSON{where}"
            raise _rejected([{"field": "", "problem": problem}], what) from None
    if not isinstance(payload, dict):
        raise _rejected([{"field": "", "problem": _PREFIX + _json_kind(payload)}], what)
    refused = _too_big_or_deep(payload, MAX_PAYLOAD_BYTES, MAX_DEPTH)
    if refused is not None:
        raise _rejected([{"field": "", "problem": refused}], what)
    return payload


def _json_kind(value: object) -> str:
    """Name a JSON value's type the way a publisher in any language knows it."""
    if isinstance(value, bool):
        return "JSON true" if value else "JSON false"
    if value is None:
        return "JSON null"
    if isinstance(value, (int, float)):
        return "a JSON number"
    if isinstance(value, str):
        return "a JSON string"
    if isinstance(value, (list, tuple)):
        return "a JSON array"
    return "a value that is not JSON"


def _too_big_or_deep(value: object, limit: int, max_depth: int) -> str | None:
    """Return why ``value`` is refused (over ``limit`` bytes as JSON, or deeper than ``max_depth``).

    A message that arrives already decoded (Celery hands the task a dict) is held to the same
    size limit as one that arrives as text. Its JSON size is estimated from below without
    serializing it, and the walk stops as soon as it is over the limit, so a 100 MB dict costs
    no more than a 1 MiB one.
    """
    size = 0
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict):
            if depth > max_depth:
                return f"the message is nested too deeply (more than {max_depth} levels)"
            size += 2 + 2 * len(node)
            for key, child in node.items():
                size += _text_size(key) if isinstance(key, str) else 8
                pending.append((child, depth + 1))
        elif isinstance(node, (list, tuple)):
            if depth > max_depth:
                return f"the message is nested too deeply (more than {max_depth} levels)"
            size += 2 + len(node)
            pending.extend((child, depth + 1) for child in node)
        elif isinstance(node, str):
            size += _text_size(node)
        elif isinstance(node, int) and not isinstance(node, bool):
            size += node.bit_length() // 4 + 1  # digits, from below, without str() of a huge int
        else:
            size += 4
        if size > limit:
            return f"the message is larger than {limit} bytes"
    return None


def _text_size(text: str) -> int:
    return 2 + (len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass")))


#: a field name (or a tag value pydantic quotes) comes from the sender: keep problems short
_MAX_TEXT = 200


def _problem(error: ErrorDetails) -> dict[str, str]:
    path = _path(error["loc"])
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, FieldProblem):
        path = [*path, *(part for part in cause.field.split(".") if part)]
        return {"field": _clip(".".join(path)), "problem": _clip(cause.problem)}
    problem = error["msg"].removeprefix("Value error, ")
    return {"field": _clip(".".join(path)), "problem": _clip(problem)}


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def _path(loc: tuple[int | str, ...]) -> list[str]:
    """Return ``loc`` as path parts, without the tag pydantic inserts after a discriminated ``strategy``."""
    parts = [str(part) for part in loc]
    if len(parts) > 1 and parts[0] == "strategy" and parts[1] in strategy_names():
        del parts[1]
    return parts


def _rejected(problems: list[dict[str, str]], what: str = "DeployToECSTask") -> RequestRejected:
    count = len(problems)
    shown = "; ".join(
        f"{p['field'] or '(message)'}: {p['problem']}" for p in problems[:_MAX_PROBLEMS_IN_MESSAGE]
    )
    more = f"; and {count - _MAX_PROBLEMS_IN_MESSAGE} more" if count > _MAX_PROBLEMS_IN_MESSAGE else ""
    noun = "problem" if count == 1 else "problems"
    return RequestRejected(f"invalid {what}: {count} {noun}: {shown}{more}", errors=problems)


def render_json_schema() -> str:
    """Return the schema as committed in ``schemas/deploy_to_ecs_task.v1.json``."""
    return json.dumps(request_json_schema(), indent=2, sort_keys=True) + "\n"
