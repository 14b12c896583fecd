"""The published JSON Schema and the public names of ``deploy_agent.models``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import deploy_agent.models
from deploy_agent.models import request_json_schema
from deploy_agent.models.parsing import render_json_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "deploy_to_ecs_task.v1.json"

PUBLIC_NAMES = {
    "DeployToECSTask",
    "BuildSpec",
    "ImageSpec",
    "EcrSpec",
    "TaskDefinitionSpec",
    "ContainerDefinition",
    "PortMapping",
    "ContainerHealthCheck",
    "RollingStrategy",
    "BlueGreenStrategy",
    "CanaryStrategy",
    "LinearStrategy",
    "CanaryStep",
    "LoadBalancerSpec",
    "Strategy",
    "HealthCheckSpec",
    "RollbackSpec",
    "parse_request",
    "request_json_schema",
    "DeploymentResult",
    "Outcome",
    "StageRecord",
    "RollbackInfo",
    "Diagnostics",
    "StoppedTask",
    "ErrorInfo",
    "ZeroDowntime",
    "AnalysisGate",
    "AnalysisMeasurement",
}


def test_the_committed_schema_matches_the_model() -> None:
    """schemas/deploy_to_ecs_task.v1.json is exactly what the model generates."""
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == render_json_schema(), (
        "the committed JSON Schema differs from the model; regenerate it with "
        "`python -m deploy_agent.models > schemas/deploy_to_ecs_task.v1.json` and commit it"
    )


def test_the_schema_names_itself() -> None:
    """The schema carries its $id, title and a description for publishers in other languages."""
    schema = request_json_schema()
    assert schema["$id"] == "https://deploy-agent.dev/schemas/deploy_to_ecs_task.v1.json"
    assert schema["title"] == "DeployToECSTask"
    assert "camelCase" in schema["description"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"cluster_name", "service_name", "image"}


def test_the_schema_accepts_what_the_model_accepts_and_refuses_unknown_fields() -> None:
    """A publisher validating against the schema agrees with the worker on a typical message."""
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    message = {
        "cluster_name": "prod",
        "service_name": "web",
        "build": {"context": "."},
        "image": {"repository": "web"},
        "strategy": {"type": "rolling", "maximum_percent": 150},
        "health_check": {"url": "http://web/health"},
        "task_definition": {
            "family": "web",
            "cpu": 256,
            "memory": "512",
            "container_definitions": [{"name": "app", "environment": [{"name": "A", "value": "1"}]}],
        },
    }
    assert list(validator.iter_errors(message)) == []
    assert list(validator.iter_errors({**message, "colour": "blue"})) != []


def test_the_public_names_are_exactly_the_contract() -> None:
    """deploy_agent.models exports what other packages import, and nothing else."""
    assert set(deploy_agent.models.__all__) == PUBLIC_NAMES
    assert all(hasattr(deploy_agent.models, name) for name in PUBLIC_NAMES)
