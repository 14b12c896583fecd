"""Translate the seed's field names into ours, before the model validates a raw message.

The seed published ``healthCheckEndpoint`` (now ``health_check.url``), ECS's own
``deploymentConfiguration`` (now a rolling ``strategy``) and, in an AWS-shaped ``taskDefinition``,
the image of the container to deploy (now ``image.uri`` when ``image`` is absent).
"""

from __future__ import annotations

from typing import Any

from pydantic.alias_generators import to_snake

from deploy_agent.models._base import FieldProblem

_DEPLOYMENT_CONFIGURATION_FIELDS = {
    "maximumPercent": "maximum_percent",
    "maximum_percent": "maximum_percent",
    "minimumHealthyPercent": "minimum_healthy_percent",
    "minimum_healthy_percent": "minimum_healthy_percent",
}
_CIRCUIT_BREAKER_FIELDS = {"enable": "circuit_breaker", "rollback": "circuit_breaker_rollback"}


def translate_seed_names(data: Any) -> Any:
    """Return ``data`` with the seed's names moved to ours; anything else is left for validation."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    _move_health_check_endpoint(data)
    _move_deployment_configuration(data)
    _take_image_from_task_definition(data)
    return data


def _pop_either(data: dict[str, Any], snake: str, camel: str) -> tuple[bool, Any]:
    if snake in data and camel in data:
        raise FieldProblem(camel, f"given twice, as {snake} and as {camel}")
    for key in (snake, camel):
        if key in data:
            return True, data.pop(key)
    return False, None


def _key_of(data: dict[str, Any], snake: str, camel: str) -> str:
    return camel if camel in data and snake not in data else snake


def _move_health_check_endpoint(data: dict[str, Any]) -> None:
    present, endpoint = _pop_either(data, "health_check_endpoint", "healthCheckEndpoint")
    if not present:
        return
    key = _key_of(data, "health_check", "healthCheck")
    health = data.get(key) or {}
    if not isinstance(health, dict):
        raise FieldProblem("health_check", "must be an object")
    if "url" in health:
        raise FieldProblem(
            "healthCheckEndpoint", "give the URL once: in health_check.url or in healthCheckEndpoint"
        )
    data[key] = {**health, "url": endpoint}


def _move_deployment_configuration(data: dict[str, Any]) -> None:
    present, config = _pop_either(data, "deployment_configuration", "deploymentConfiguration")
    if not present:
        return
    if not isinstance(config, dict):
        raise FieldProblem("deploymentConfiguration", "must be an object")
    fields: dict[str, Any] = {}
    for key, value in config.items():
        if key in _DEPLOYMENT_CONFIGURATION_FIELDS:
            fields[_DEPLOYMENT_CONFIGURATION_FIELDS[key]] = value
        elif key in ("deploymentCircuitBreaker", "deployment_circuit_breaker"):
            if not (isinstance(value, dict) and set(value) <= set(_CIRCUIT_BREAKER_FIELDS)):
                raise FieldProblem(
                    f"deploymentConfiguration.{key}", "must be an object with enable and rollback"
                )
            fields.update({_CIRCUIT_BREAKER_FIELDS[k]: v for k, v in value.items()})
        else:
            allowed = "maximumPercent, minimumHealthyPercent, deploymentCircuitBreaker"
            raise FieldProblem(f"deploymentConfiguration.{str(key)[:64]}", f"unknown; allowed: {allowed}")
    strategy = data.get("strategy") or {"type": "rolling"}
    if not isinstance(strategy, dict) or strategy.get("type") != "rolling":
        raise FieldProblem(
            "deploymentConfiguration",
            "applies only to the rolling strategy; give these settings in strategy instead",
        )
    twice = sorted(set(fields) & {to_snake(str(k)) for k in strategy})
    if twice:
        raise FieldProblem("deploymentConfiguration", f"{', '.join(twice)} also given in strategy")
    data["strategy"] = {**strategy, **fields}


def _take_image_from_task_definition(data: dict[str, Any]) -> None:
    """Use the target container's own image as ``image.uri`` when the message gives no ``image``."""
    if "image" in data:
        return
    task_definition = data.get(_key_of(data, "task_definition", "taskDefinition"))
    if not isinstance(task_definition, dict):
        return
    containers = task_definition.get(
        _key_of(task_definition, "container_definitions", "containerDefinitions")
    )
    if not isinstance(containers, list):
        return
    containers = [c for c in containers if isinstance(c, dict)]
    wanted = data.get(_key_of(data, "container_name", "containerName"))
    if wanted is None:
        target = next((c for c in containers if c.get("essential", True) is not False), None)
    else:
        target = next((c for c in containers if c.get("name") == wanted), None)
    if target is not None and isinstance(target.get("image"), str):
        data["image"] = {"uri": target["image"]}
