"""grafana/: the provisioned data source and the deploy-agent dashboard."""

from __future__ import annotations

import yaml

from tests.ops.tools import (
    COMPOSE_FILE,
    ROOT,
    dashboard,
    dashboard_exprs,
    dashboard_panels,
    exposed_metric_names,
    metrics_read_by,
    our_names_in,
    recorded_names,
)

PROVISIONING = ROOT / "grafana" / "provisioning"
REQUIRED_PANELS = {
    "Deployments finished by outcome and strategy",
    "Rollback rate by strategy (1h)",
    "Deployment duration p50 / p95 by strategy",
    "Stage duration p95 by stage",
    "Build and push time",
    "Zero-downtime checks (ok vs failed)",
    "Health-check response time p95",
    "Deployments in progress",
    "Lock waits",
    "AWS throttles",
}


class TestDashboard:
    def test_parses_with_a_uid_and_unique_panel_ids(self) -> None:
        """The dashboard JSON parses, has a stable uid and no two panels share an id."""
        board = dashboard()
        assert board["uid"] == "deploy-agent"
        ids = [panel["id"] for panel in dashboard_panels()]
        assert len(ids) == len(set(ids))

    def test_has_the_panels_operators_need(self) -> None:
        """The dashboard has the panels operators asked for (outcomes, rollback rate, durations, AWS ...)."""
        assert {panel["title"] for panel in dashboard_panels()} >= REQUIRED_PANELS

    def test_every_query_reads_existing_metrics(self) -> None:
        """Each panel query names only metrics deploy_agent.tasks.metrics exposes or the rules record."""
        known = exposed_metric_names() | recorded_names()
        for expr in dashboard_exprs():
            names = our_names_in(expr)
            assert names or expr.startswith("sum(up{"), f"query reads no deploy_agent metric: {expr}"
            assert names <= known, (sorted(names - known), expr)

    def test_every_metric_family_is_shown(self) -> None:
        """Every metric family of deploy_agent.tasks.metrics appears in at least one panel."""
        read = {name for expr in dashboard_exprs() for name in metrics_read_by(expr)}
        families = {name.removesuffix("_total") for name in exposed_metric_names()}
        families = {f.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for f in families}
        for family in families:
            assert any(name.startswith(family) for name in read), family

    def test_panels_query_the_provisioned_data_source(self) -> None:
        """Panels use the datasource variable, whose default is the provisioned Prometheus uid."""
        variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
        provisioned = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
        uid = provisioned["datasources"][0]["uid"]
        assert variables["datasource"]["current"]["value"] == uid
        for panel in dashboard_panels():
            if panel["type"] != "row":
                assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]


class TestProvisioning:
    def test_data_source_points_at_the_compose_prometheus(self) -> None:
        """The data source URL is the compose service prometheus on its port."""
        provisioned = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
        assert provisioned["datasources"][0]["url"] == "http://prometheus:9090"

    def test_dashboard_provider_reads_the_mounted_folder(self) -> None:
        """The provider's path is where docker-compose.yml mounts grafana/dashboards."""
        provider = yaml.safe_load((PROVISIONING / "dashboards" / "deploy-agent.yml").read_text())
        path = provider["providers"][0]["options"]["path"]
        grafana = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["grafana"]
        assert f"./grafana/dashboards:{path}:ro" in grafana["volumes"]
