"""The status page's data (what is shown of a deployment) and its HTML, without network."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from deploy_agent.core.outcome import Phase
from deploy_agent.core.state import PipelineState, StageState
from deploy_agent.worker.status_page import (
    MAX_DEPLOYMENTS,
    format_duration,
    plan_bar,
    render_status_page,
    summarize_deployment,
)

T0 = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def deployment(
    id_: str = "dep-1", outcome: str = "succeeded", service: str = "web", stages: list[Any] | None = None
) -> dict[str, Any]:
    return {
        "id": id_,
        "cluster": "prod",
        "service": service,
        "strategy": "rolling",
        "phase": "done",
        "outcome": outcome,
        "started_at": at(0),
        "finished_at": at(10),
        "duration_seconds": 10.0,
        "stages": stages
        if stages is not None
        else [
            {"name": "build", "started_at": at(0), "finished_at": at(4), "outcome": "succeeded"},
            {"name": "deploy", "started_at": at(4), "finished_at": at(10), "outcome": "failed"},
        ],
    }


def state(**changes: Any) -> PipelineState:
    base: dict[str, Any] = {
        "deployment_id": "dep-1",
        "request": {"build": {"build_args": {"TOKEN": "s3cret"}}},
        "strategy": "rolling",
        "cluster": "prod",
        "service": "web",
        "region": "us-east-1",
        "started_at": T0,
        "deadline": T0 + timedelta(minutes=20),
    }
    return PipelineState(**{**base, **changes})


class TestRender:
    def test_hostile_names_are_escaped(self) -> None:
        """A service name carrying markup is shown as text, never as a tag or attribute."""
        hostile = '<script>alert("x")</script>'
        page = render_status_page(
            [deployment(id_='"><img src=x onerror=alert(1)>', service=hostile, outcome="<b>")]
        )
        assert "<script>alert" not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
        assert "<img" not in page
        assert 'class="badge o-other"' in page  # an unknown outcome never becomes a class name

    def test_running_deployments_come_first(self) -> None:
        """Running deployments are listed before finished ones, which keep their newest-first order."""
        page = render_status_page(
            [deployment("new-done"), deployment("running-1", outcome="running"), deployment("old-done")]
        )
        order = re.findall(r'data-id="([^"]+)"', page)
        assert order == ["running-1", "new-done", "old-done"]

    def test_one_bar_per_stage_sized_by_duration(self) -> None:
        """Each stage gets a named bar whose offset and width are its share of the deployment's time."""
        page = render_status_page([deployment()])
        assert re.findall(r'data-stage="([^"]+)"', page) == ["build", "deploy"]
        bars = re.findall(r'class="bar (o-[a-z_]+)" style="left:([\d.]+)%;width:([\d.]+)%"', page)
        assert bars == [("o-succeeded", "0.00", "40.00"), ("o-failed", "40.00", "60.00")]

    def test_outcome_badges_are_coloured_by_outcome(self) -> None:
        """Each known outcome gets its own badge class."""
        outcomes = ["succeeded", "rolled_back", "failed", "timed_out", "rejected", "superseded", "running"]
        page = render_status_page([deployment(f"d{i}", outcome=o) for i, o in enumerate(outcomes)])
        for outcome in outcomes:
            assert f'<span class="badge o-{outcome}">{outcome}</span>' in page
            assert f".o-{outcome} {{ background:" in page

    def test_at_most_fifty_deployments(self) -> None:
        """The page shows the newest 50 deployments only."""
        page = render_status_page([deployment(f"d{i}") for i in range(MAX_DEPLOYMENTS + 5)])
        assert page.count('<article class="deployment"') == MAX_DEPLOYMENTS

    def test_no_deployments_says_so(self) -> None:
        """An empty store renders a page that says nothing is deploying."""
        page = render_status_page([])
        assert "Nothing is deploying right now." in page
        assert "No finished deployments yet." in page

    def test_page_is_self_contained(self) -> None:
        """The page loads nothing from elsewhere: no external scripts, styles, images or fonts."""
        page = render_status_page([deployment()])
        assert not re.search(r"""(src|href)\s*=|@import|url\(""", page)


ROLLED_BACK_CANARY: dict[str, Any] = {
    **deployment("canary-1", outcome="rolled_back"),
    "strategy": "canary",
    "ended_because": {
        "outcome": "rolled_back",
        "trigger": "analysis",
        "type": "analysis_failed",
        "reason": "analysis error-rate failed: 2 of 2 measurements failed",
        "gate": "analysis",
        "gate_name": "error-rate",
        "step": "step 2 (50%)",
        "rolled_back": True,
        "rollback_failure": None,
        "ecs_rollback_reason": None,
    },
    "gates": [
        {"gate": "error-rate", "step": "step 1 (10%)", "value": 0.01, "verdict": "successful", "at": at(3)},
        {"gate": "error-rate", "step": "step 2 (50%)", "value": 0.3, "verdict": "failed", "at": at(6)},
    ],
    "traffic_steps": [
        {"label": "step 1 (10%)", "weights": {"web-blue": 90, "web-green": 10}, "at": at(2)},
        {"label": "step 2 (50%)", "weights": {"web-blue": 50, "web-green": 50}, "at": at(5)},
        {"label": "restored", "weights": {}, "at": at(8)},
    ],
}


def native_deployment(**changes: Any) -> dict[str, Any]:
    return {
        **deployment("native-1", outcome="rolled_back"),
        "strategy": "ecs_linear",
        "traffic_steps": [
            {"point": "POST_TEST_TRAFFIC_SHIFT", "traffic_percent": 0.0, "action": "CONTINUE", "at": at(2)},
            {
                "point": "PRODUCTION_TRAFFIC_SHIFT#2",
                "traffic_percent": 40.0,
                "action": "ROLLBACK",
                "at": at(6),
            },
        ],
        "service_deployment": {
            "status": "ROLLBACK_SUCCESSFUL",
            "status_reason": "stopped by deploy-agent",
            "rollback_reason": None,
            "lifecycle_stages": [
                {"stage": "PRE_SCALE_UP", "at": at(1)},
                {"stage": "PRODUCTION_TRAFFIC_SHIFT", "at": at(4)},
                {"stage": "ROLLBACK_IN_PROGRESS", "at": at(7)},
            ],
        },
        **changes,
    }


class TestDetails:
    def test_a_rolled_back_canary_says_why_it_ended(self) -> None:
        """The "why it ended" line names the outcome, the trigger, the gate, the step and the reason."""
        page = render_status_page([ROLLED_BACK_CANARY])
        assert (
            '<span class="why">Why it ended:</span> rolled back (trigger analysis): the analysis gate '
            "error-rate failed at step 2 (50%) \u2014 analysis error-rate failed: 2 of 2 measurements failed"
        ) in page
        assert 'data-trigger="analysis"' in page

    def test_measurements_are_listed_coloured_by_verdict(self) -> None:
        """Each gate measurement is a row with its step and value, its verdict in that verdict's colour."""
        page = render_status_page([ROLLED_BACK_CANARY])
        rows = re.findall(
            r'<tr class="measurement"><td><code>([^<]*)</code></td><td>([^<]*)</td>'
            r'<td class="num">([^<]*)</td><td><span class="verdict (v-[a-z]+)">([^<]*)</span>',
            page,
        )
        assert rows == [
            ("error-rate", "step 1 (10%)", "0.01", "v-successful", "successful"),
            ("error-rate", "step 2 (50%)", "0.3", "v-failed", "failed"),
        ]
        assert ".v-failed { background: var(--bad); }" in page

    def test_traffic_steps_show_their_weights(self) -> None:
        """Each traffic step shows its weights as numbers under named target groups, and as a split bar."""
        page = render_status_page([ROLLED_BACK_CANARY])
        assert re.findall(r'<tr class="step" data-label="([^"]+)"', page) == [
            "step 1 (10%)",
            "step 2 (50%)",
            "restored",
        ]
        assert re.findall(r'<td (?:colspan="2" )?class="shares">([^<]*)</td>', page) == [
            "90 / 10",
            "50 / 50",
            "original actions put back",
        ]
        legend = '<span class="swatch w0"></span>web-blue <span class="swatch w1"></span>web-green'
        assert legend in page  # the target groups are named once, in the order of the weights
        assert 'title="web-blue 90 \u00b7 web-green 10"' in page
        assert (
            '<span class="w0" style="width:50.00%"></span><span class="w1" style="width:50.00%"></span>'
            in page
        )

    def test_a_native_deployment_shows_its_hooks_and_stages(self) -> None:
        """A native deployment lists its hooks (share, action) and ECS's lifecycle stages and status."""
        page = render_status_page([native_deployment()])
        assert "Traffic steps (PAUSE hooks)" in page
        assert '<td class="a-ROLLBACK">ROLLBACK</td>' in page
        assert "new 40%" in page
        assert "ECS service deployment: <b>ROLLBACK_SUCCESSFUL</b> (stopped by deploy-agent)" in page
        stages = re.findall(r'<span class="stage-name">([^<]+)</span>', page)
        assert stages == ["PRE_SCALE_UP", "PRODUCTION_TRAFFIC_SHIFT", "ROLLBACK_IN_PROGRESS"]

    def test_a_succeeded_deployment_has_no_ending_line(self) -> None:
        """Only a deployment that did not succeed gets a "why it ended" line."""
        assert "Why it ended" not in render_status_page([deployment()])

    def test_hostile_details_are_escaped(self) -> None:
        """Markup in a reason, a step, a gate, a weight's name, a verdict or an action stays text."""
        hostile = '<img src=x onerror=alert(1)>"'
        ending = {
            **ROLLED_BACK_CANARY["ended_because"],
            "reason": hostile,
            "step": hostile,
            "trigger": hostile,
        }
        page = render_status_page(
            [
                {
                    **ROLLED_BACK_CANARY,
                    "ended_because": ending,
                    "gates": [
                        {"gate": hostile, "step": hostile, "value": hostile, "verdict": hostile, "at": 1}
                    ],
                    "traffic_steps": [
                        {"label": hostile, "weights": {hostile: 50, "b": "x"}, "at": hostile},
                        {"label": "odd", "weights": hostile},
                    ],
                },
                native_deployment(
                    traffic_steps=[{"point": hostile, "traffic_percent": hostile, "action": hostile}],
                    service_deployment={"status": hostile, "lifecycle_stages": [{"stage": hostile}]},
                ),
            ]
        )
        assert "<img" not in page
        assert page.count("&lt;img src=x onerror=alert(1)&gt;") >= 8
        assert 'class="verdict v-other"' in page  # an unknown verdict never becomes a class name
        assert not re.search(r"""(src|href)\s*=|@import|url\(""", page.replace("&lt;img src=", ""))


class TestSummary:
    def test_shows_only_listed_fields_never_the_request(self) -> None:
        """A summary holds the listed fields; the request (build args, env values) is left out."""
        summary = summarize_deployment(state(), now=T0 + timedelta(seconds=5))
        assert set(summary) == {
            "id",
            "cluster",
            "service",
            "strategy",
            "phase",
            "outcome",
            "started_at",
            "finished_at",
            "duration_seconds",
            "stages",
            "ended_because",
            "gates",
            "traffic_steps",
            "service_deployment",
        }
        assert "s3cret" not in repr(summary)

    def test_an_unfinished_deployment_is_running_and_measured_to_now(self) -> None:
        """Without an outcome a deployment is running, and its duration runs to now."""
        summary = summarize_deployment(state(), now=T0 + timedelta(seconds=7.5))
        assert (summary["outcome"], summary["finished_at"], summary["duration_seconds"]) == (
            "running",
            None,
            7.5,
        )

    def test_a_finished_deployment_keeps_its_outcome_and_stages(self) -> None:
        """A finished deployment reports its outcome, its end, and each stage's times and outcome."""
        finished = state(
            phase=Phase.DONE,
            outcome="rolled_back",
            finished_at=T0 + timedelta(seconds=30),
            stages=[StageState(name="deploy", started_at=T0, finished_at=T0 + timedelta(seconds=20))],
        )
        summary = summarize_deployment(finished, now=T0 + timedelta(hours=1))
        assert summary["outcome"] == "rolled_back"
        assert summary["duration_seconds"] == 30.0
        assert summary["stages"] == [
            {"name": "deploy", "started_at": at(0), "finished_at": at(20), "outcome": "running"}
        ]


@pytest.mark.parametrize(
    ("stage", "total", "bar"),
    [
        ({"started_at": at(2), "finished_at": at(5)}, 10.0, (2.0, 3.0)),
        ({"started_at": at(6), "finished_at": None}, 10.0, (6.0, 4.0)),
        ({"started_at": at(3), "finished_at": at(3)}, 10.0, (3.0, 0.0)),
        ({"started_at": None, "finished_at": None}, 10.0, (0.0, 0.0)),
    ],
    ids=[
        "a finished stage spans its own start to end",
        "an open stage runs to the end of the deployment",
        "a skipped stage has no length",
        "a stage without a start is not drawn",
    ],
)
def test_plan_bar(stage: dict[str, Any], total: float, bar: tuple[float, float]) -> None:
    """A stage's bar is placed by its offset from the deployment's start and sized by its length."""
    assert plan_bar(stage, T0, total) == bar


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.42, "0.4s"), (12, "12.0s"), (187, "3m 07s"), (3720, "1h 02m")],
    ids=["under a second", "seconds", "minutes and seconds", "hours and minutes"],
)
def test_format_duration(seconds: float, shown: str) -> None:
    """Durations read in the largest two units that matter."""
    assert format_duration(seconds) == shown
