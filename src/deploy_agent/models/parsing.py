"""Turn a raw message into a ``DeployToECSTask`` or a ``RequestRejected`` naming each bad field.

Problems never carry the offending input: a message may hold secrets, and errors end up in logs,
events and results.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from deploy_agent.core.errors import RequestRejected
from deploy_agent.models._base import FieldProblem
from deploy_agent.models.request import DeployToECSTask
from deploy_agent.models.strategy import STRATEGY_TYPES

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


def _decode(payload: object) -> object:
    if isinstance(payload, (bytes, bytearray, str)):
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise _rejected(
                [{"field": "", "problem": f"the message is larger than {MAX_PAYLOAD_BYTES} bytes"}]
            )
        try:
            payload = json.loads(payload)
        except RecursionError:
            raise _rejected([{"field": "", "problem": "the message is nested too deeply"}]) from None
        except ValueError as exc:
            where = (
                f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            )
            raise _rejected([{"field": "", "problem": f"the message is not valid JSON{where}"}]) from None
    if not isinstance(payload, dict):
        kind = "a JSON array" if isinstance(payload, list) else type(payload).__name__
        raise _rejected([{"field": "", "problem": f"the message must be a JSON object, not {kind}"}])
    return payload


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
    if len(parts) > 1 and parts[0] == "strategy" and parts[1] in STRATEGY_TYPES:
        del parts[1]
    return parts


def _rejected(problems: list[dict[str, str]]) -> RequestRejected:
    count = len(problems)
    shown = "; ".join(
        f"{p['field'] or '(message)'}: {p['problem']}" for p in problems[:_MAX_PROBLEMS_IN_MESSAGE]
    )
    more = f"; and {count - _MAX_PROBLEMS_IN_MESSAGE} more" if count > _MAX_PROBLEMS_IN_MESSAGE else ""
    noun = "problem" if count == 1 else "problems"
    return RequestRejected(f"invalid DeployToECSTask: {count} {noun}: {shown}{more}", errors=problems)


def render_json_schema() -> str:
    """Return the schema as committed in ``schemas/deploy_to_ecs_task.v1.json``."""
    return json.dumps(request_json_schema(), indent=2, sort_keys=True) + "\n"
