"""The Prometheus metrics of `retention serve`, as set from a plan."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from retention.metrics import Metrics
from retention.planner import make_plan

from .conftest import Database
from .scenario import Scenario, rule, unreadable_clocks, utc


def samples(metrics: Metrics, name: str) -> dict[tuple[str, str], float]:
    families = text_string_to_metric_families(metrics.render().decode())
    return {
        (s.labels["rule"], s.labels["dataset"]): s.value
        for family in families
        if family.name == name
        for s in family.samples
    }


def test_unreadable_clock_records_gauge_follows_the_plan(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """`retention_unreadable_clock_records{rule,dataset}` is the plan's unreadable count, for
    every rule (keep rules too), replaced by each new plan."""
    world = unreadable_clocks(Scenario(sqlite_db, tmp_path))
    config = world.config([rule("age"), rule("statutory", action="keep", retain="P1Y")])
    metrics = Metrics()
    metrics.show_plan(make_plan(config, utc("2026-06-01")))
    gauge = samples(metrics, "retention_unreadable_clock_records")
    assert gauge == {("age", "tickets"): 2.0, ("statutory", "tickets"): 2.0}
    world.clear()
    metrics.show_plan(make_plan(config, utc("2026-06-01")))
    gauge = samples(metrics, "retention_unreadable_clock_records")
    assert gauge == {("age", "tickets"): 0.0, ("statutory", "tickets"): 0.0}
