"""The rollout verdicts replayed on DescribeServices sequences real ECS gave (each fixture names its source).

Each fixture in ``fixtures/`` is one deployment: our revision, the previous one, what UpdateService's
reply told us (``hint``, ``earlier_ids``) and the looks that followed, each with the verdict it must
give. The looks are replayed the way the rolling strategy follows a deployment: a deployment id seen
in a look is carried into the next. Issue 9, "Evidence": ECS's long circuit-breaker rollback among them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deploy_agent.core.rollout import RolloutState, assess_rollout, is_settled_on

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    fixture: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return fixture


def replay(fixture: dict[str, Any]) -> list[tuple[str, RolloutState, bool, bool]]:
    """Return (look, state, ecs rolled back, settled on the previous revision) for each look."""
    confirmed: str | None = fixture.get("confirmed_id")
    seen = []
    for look in fixture["looks"]:
        service = {
            "deployments": look["deployments"],
            "deploymentConfiguration": fixture.get("deploymentConfiguration") or {},
        }
        verdict = assess_rollout(
            service,
            confirmed,
            fixture["ours"],
            fixture["previous"],
            hint=fixture.get("hint"),
            earlier_ids=fixture.get("earlier_ids") or (),
        )
        if confirmed is None and verdict.deployment_id and verdict.state is not RolloutState.PENDING:
            confirmed = verdict.deployment_id
        seen.append(
            (look["at"], verdict.state, verdict.ecs_rolled_back, is_settled_on(service, fixture["previous"]))
        )
    return seen


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_every_look_gives_the_verdict_real_ecs_meant(path: Path) -> None:
    fixture = load(path)
    assert fixture["source"], "every fixture names where its sequence comes from"
    expected = [
        (
            look["at"],
            RolloutState(look["expect"]["state"]),
            look["expect"]["ecs_rolled_back"],
            bool(look["expect"].get("settled_on_previous", False)),
        )
        for look in fixture["looks"]
    ]
    assert replay(fixture) == expected


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_ecs_rollback_is_never_read_as_replaced(path: Path) -> None:
    """No look of a real sequence, ECS's rollback included, reads as another deployment's takeover."""
    assert all(state is not RolloutState.REPLACED for _at, state, _rb, _settled in replay(load(path)))


def test_the_long_window_is_among_the_fixtures() -> None:
    """The field timeline has ours listed IN_PROGRESS under ECS's rollback, and reads it as rolled back."""
    fixture = load(Path(__file__).parent / "fixtures" / "cb_rollback_long_window_field_timeline.json")
    window = next(look for look in fixture["looks"] if look["at"] == "11m44s")
    ours = next(d for d in window["deployments"] if d["taskDefinition"] == fixture["ours"])
    assert (ours["status"], ours["rolloutState"]) == ("ACTIVE", "IN_PROGRESS")
    assert window["expect"] == {"state": "failed", "ecs_rolled_back": True}
