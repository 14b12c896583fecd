"""prometheus/: the config, the recording rules and alerts, and their promtool unit tests."""

from __future__ import annotations

import subprocess
from typing import Any

import yaml

from tests.ops.tools import (
    PROMETHEUS_DIR,
    RULES_FILE,
    exposed_metric_names,
    our_names_in,
    recorded_names,
    require_tool,
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("promtool"), *args], capture_output=True, text=True, timeout=60)


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


class TestPromtool:
    def test_config_is_valid(self) -> None:
        """promtool check config accepts prometheus.yml and the rule files it loads, without warnings."""
        run = promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
        assert run.returncode == 0, run.stdout + run.stderr
        assert "WARNING" not in run.stdout + run.stderr
        assert "1 rule files found" in run.stdout

    def test_rules_are_valid(self) -> None:
        """promtool check rules accepts the recording rules and alerts."""
        run = promtool("check", "rules", str(RULES_FILE))
        assert run.returncode == 0, run.stdout + run.stderr

    def test_rule_unit_tests_pass(self) -> None:
        """The promtool unit tests of the rollback rate and the alerts pass."""
        run = promtool("test", "rules", str(PROMETHEUS_DIR / "tests" / "deploy-agent.test.yml"))
        assert run.returncode == 0, run.stdout + run.stderr
        assert "SUCCESS" in run.stdout


class TestRules:
    def test_declares_the_rollback_rate_deployment_rate_and_alerts(self) -> None:
        """The rules file records the rollback rate and deployment rate and defines the four alerts."""
        names = {rule.get("record") or rule.get("alert") for rule in rules()}
        assert {
            "deploy_agent:rollback_rate:ratio_1h",
            "deploy_agent:deployments:rate5m",
            "DeployAgentHighRollbackRate",
            "DeployAgentDeploymentStuck",
            "DeployAgentWorkerDown",
            "DeployAgentWorkersAbsent",
        } <= names

    def test_rules_read_only_metrics_the_worker_exposes(self) -> None:
        """Every deploy_agent name a rule reads is exposed by deploy_agent.tasks.metrics or recorded."""
        known = exposed_metric_names() | recorded_names()
        for rule in rules():
            assert our_names_in(rule["expr"]) <= known, (
                rule.get("record") or rule.get("alert"),
                rule["expr"],
            )

    def test_alerts_carry_severity_and_summary(self) -> None:
        """Each alert has a severity label and a summary annotation for the notification."""
        for rule in (r for r in rules() if "alert" in r):
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
