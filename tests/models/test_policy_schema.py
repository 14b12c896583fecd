"""The operator policy's committed JSON Schema, its loader, and the shipped example policy."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema
import pytest

from deploy_agent.models.policy import (
    Policy,
    PolicyError,
    load_policy,
    policy_json_schema,
    render_policy_schema,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schemas" / "policy.v1.json"
EXAMPLE = ROOT / "examples" / "policy.toml"


def test_the_committed_schema_matches_the_model() -> None:
    """schemas/policy.v1.json is exactly what the model generates."""
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render_policy_schema(), (
        "the committed policy schema differs from the model; regenerate it with "
        "`python -m deploy_agent.models.policy > schemas/policy.v1.json` and commit it"
    )


def test_the_schema_names_itself() -> None:
    schema = policy_json_schema()
    assert schema["$id"] == "https://deploy-agent.dev/schemas/policy.v1.json"
    assert schema["additionalProperties"] is False


def test_the_example_policy_loads_and_says_what_it_means() -> None:
    """examples/policy.toml is valid, passes the published schema, and means what its comments say."""
    policy = load_policy(EXAMPLE)

    jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).validate(
        tomllib.loads(EXAMPLE.read_text())
    )
    assert policy.cluster_limit("prod-payments") == 1
    assert policy.cluster_limit("prod-web") == 3
    rule = policy.approval_for("us-east-1", "prod-web", "web")
    assert rule is not None
    assert rule.name == "production"
    assert policy.approval_for("us-east-1", "staging", "web") is None
    assert policy.log_drivers == ["awslogs"]
    assert not policy.allow_host_network


def test_json_and_toml_load_alike(tmp_path: Path) -> None:
    data = {"clusters": ["prod-*"], "outbound": {"allow_loopback": True}}
    (tmp_path / "p.json").write_text(json.dumps(data))
    (tmp_path / "p.toml").write_text('clusters = ["prod-*"]\n[outbound]\nallow_loopback = true\n')
    assert load_policy(tmp_path / "p.json") == load_policy(tmp_path / "p.toml") == Policy.model_validate(data)


@pytest.mark.parametrize(
    ("text", "suffix", "problem"),
    [
        ('{"clusters": "prod"}', ".json", "clusters: Input should be a valid list"),
        ('{"clutsers": ["prod"]}', ".json", "clutsers: Extra inputs are not permitted"),
        ("{", ".json", "is not valid JSON"),
        ("clusters = [", ".toml", "is not valid TOML"),
        ('{"max_desired_count": -1}', ".json", "max_desired_count"),
    ],
)
def test_an_invalid_policy_is_refused_naming_the_key(
    tmp_path: Path, text: str, suffix: str, problem: str
) -> None:
    path = tmp_path / f"policy{suffix}"
    path.write_text(text)
    with pytest.raises(PolicyError, match="policy") as caught:
        load_policy(path)
    assert problem in str(caught.value)


def test_a_missing_policy_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path / "nope.json")
