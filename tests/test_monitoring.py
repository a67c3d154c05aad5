"""The monitoring that ships in deploy/: the Grafana dashboard and the Prometheus alert rules
query only metrics that `/metrics` exposes, the alerts the operator needs exist, the
PrometheusRule manifest says the same as the plain rules file, and promtool accepts and unit-tests
the rules (when it is installed: Debian's `prometheus` package; .ci/run installs it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from retention import __version__
from retention.metrics import Metrics

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yaml"
OPERATOR_RULES = DEPLOY / "prometheus" / "prometheus-rule.yaml"
DASHBOARD = DEPLOY / "grafana" / "retention-dashboard.json"
METRIC = re.compile(r"\bretention_[a-z_]+")
PROMTOOL = shutil.which("promtool")
NO_PROMTOOL = "promtool not installed (apt-get install prometheus; .ci/run does)"


def _exposed() -> set[str]:
    """Every series name `/metrics` can carry: the families it declares, with the sample
    suffixes of their type."""
    names: set[str] = set()
    for line in Metrics().render().decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_every_metric_queried_is_exposed() -> None:
    """Each `retention_*` name in a dashboard panel or an alert expression is a series that
    `/metrics` exposes (a renamed metric would leave a panel blank or an alert silent)."""
    exposed = _exposed()
    queried = {
        name
        for expr in [*_dashboard_exprs(), *(rule["expr"] for rule in _rules())]
        for name in METRIC.findall(expr)
    }
    assert queried, "nothing queried?"
    assert queried <= exposed, sorted(queried - exposed)


def test_the_alerts_an_operator_needs_exist() -> None:
    """Overdue records, lingering after a run, a run that did no work where work was due, no
    successful run in 26 hours, lease flapping and holds past review each have an alert with a
    severity and a summary."""
    rules = {rule["alert"]: rule for rule in _rules()}
    for name in (
        "RetentionOverdueRecords",
        "RetentionLingeringAfterRun",
        "RetentionRunDidNoWork",
        "RetentionNoSuccessfulRun",
        "RetentionLeaseFlapping",
        "RetentionHoldReviewOverdue",
    ):
        assert name in rules, name
        assert rules[name]["labels"]["severity"] in ("info", "warning", "critical")
        assert rules[name]["annotations"]["summary"]


def test_prometheus_rule_manifest_matches_the_rules_file() -> None:
    """The PrometheusRule (for the Prometheus Operator) carries exactly alerts.yaml's groups."""
    manifest = yaml.safe_load(OPERATOR_RULES.read_text())
    assert (manifest["apiVersion"], manifest["kind"]) == (
        "monitoring.coreos.com/v1",
        "PrometheusRule",
    )
    assert manifest["spec"] == yaml.safe_load(RULES.read_text())


def test_dashboard_is_importable_grafana_json() -> None:
    """The dashboard has a title, a uid, a Prometheus datasource variable used by every panel,
    unique panel ids, and at least the overdue, lingering, runs, lease and holds panels."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "retention" and dashboard["schemaVersion"] >= 36
    (variable,) = dashboard["templating"]["list"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for word in ("overdue", "lingering", "runs", "lease", "holds", "version"):
        assert word in titles, word


def test_build_info_and_last_run_numbers_are_exposed() -> None:
    """`retention_build_info` is 1 with this release's version; a run's planned and acted
    numbers land in the last-run gauges the "did no work" alert reads."""
    metrics = Metrics()
    metrics.run_done("live", "refused", 1.0, planned=5, acted=0)
    text = metrics.render().decode()
    assert re.search(
        rf'retention_build_info{{python="[0-9.]+",version="{__version__}"}} 1\.0', text
    )
    assert 'retention_last_run_planned_records{mode="live"} 5.0' in text
    assert 'retention_last_run_acted_records{mode="live"} 0.0' in text


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_checks_and_unit_tests_the_rules() -> None:
    """`promtool check rules` accepts alerts.yaml and `promtool test rules` passes its unit
    tests (an alert that fires when it should, and not before)."""
    assert PROMTOOL is not None
    for args in (["check", "rules", str(RULES)], ["test", "rules", "alerts.test.yaml"]):
        result = subprocess.run(
            [PROMTOOL, *args], cwd=RULES.parent, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stdout + result.stderr
