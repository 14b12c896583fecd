"""What the ops tests share: the repo's ops files, the tools that check them, metric names in PromQL."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics import MetricWrapperBase

from deploy_agent.tasks import metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "prometheus"
RULES_FILE = PROMETHEUS_DIR / "rules" / "deploy-agent.yml"
DASHBOARD_FILE = ROOT / "grafana" / "dashboards" / "deploy-agent.json"
COMPOSE_FILE = ROOT / "docker-compose.yml"

# A metric or recording-rule name of ours inside a PromQL expression.
_OUR_NAME = re.compile(r"(?<![A-Za-z0-9_:])deploy_agent[_:][A-Za-z0-9_:]*")
_SAMPLE_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def require_tool(name: str) -> str:
    """Return the tool's path; fail (never skip) when it is missing: scripts/bootstrap.sh installs it."""
    path = shutil.which(name)
    assert path is not None, f"{name} is not on PATH: run scripts/bootstrap.sh"
    return path


def exposed_metric_names() -> set[str]:
    """Return the sample names deploy_agent.tasks.metrics exposes (counters ``_total``, histograms ...)."""
    names: set[str] = set()
    for collector in vars(metrics).values():
        if isinstance(collector, MetricWrapperBase):
            for family in collector.describe():
                names.update(family.name + suffix for suffix in _SAMPLE_SUFFIXES[family.type])
    return names


def recording_rules() -> dict[str, str]:
    """Return each recording rule's name with its expression."""
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return {rule["record"]: rule["expr"] for group in groups for rule in group["rules"] if "record" in rule}


def recorded_names() -> set[str]:
    """Return the names the recording rules in prometheus/rules/deploy-agent.yml produce."""
    return set(recording_rules())


def our_names_in(expr: str) -> set[str]:
    """Return the ``deploy_agent_*`` metric and ``deploy_agent:*`` rule names an expression reads."""
    return set(_OUR_NAME.findall(expr))


def metrics_read_by(expr: str) -> set[str]:
    """Return the ``deploy_agent_*`` metrics an expression reads, through the recording rules it uses."""
    rules = recording_rules()
    names: set[str] = set()
    for name in our_names_in(expr):
        names |= metrics_read_by(rules[name]) if name in rules else {name}
    return names


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return loaded


def dashboard_panels() -> list[dict[str, Any]]:
    """Return every panel of the dashboard, those inside collapsed rows included."""
    panels: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard_panels() for t in p.get("targets", []) if "expr" in t]


def as_query(expr: str, window: str = "1h", rate_interval: str = "1m") -> str:
    """Return a dashboard expression with Grafana's variables filled in, ready for Prometheus."""
    return expr.replace("$__rate_interval", rate_interval).replace("$window", window)
