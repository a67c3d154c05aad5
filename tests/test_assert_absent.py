"""`action: assert_absent`: data that must never be stored, found and (with `then`) removed at
once, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from typer.testing import CliRunner

from retention.audit import AuditLog
from retention.cli import app
from retention.config import Config
from retention.errors import ConfigError
from retention.executor import Executor
from retention.explain import explain
from retention.metrics import Metrics
from retention.planner import make_plan
from retention.runevents import RUN_ACTION
from retention.statedb import open_state

from .conftest import Database
from .scenario import TICKETS, Scenario, at, rule, utc

NOW = utc("2026-06-01 00:00:00")


@pytest.fixture
def world(db: Database, tmp_path: Path) -> Scenario:
    scenario = Scenario(db, tmp_path)
    scenario.accounts({"id": 1}, {"id": 2})
    scenario.tickets(  # created a minute ago: no clock would have started on them
        {"id": 1, "account_id": 1, "created_at": at("2026-05-31 23:59:00"), "ip": "10.1.2.3"},
        {"id": 2, "account_id": 1, "created_at": at("2026-05-31 23:59:00")},
        {"id": 3, "account_id": 2, "created_at": at("2026-05-31 23:59:00"), "ip": "10.9.9.9"},
        {"id": 4, "account_id": 2, "created_at": None, "email": "x@example.com"},
    )
    return scenario


def absent(rule_id: str = "no-ip", **fields: Any) -> dict[str, Any]:
    return {
        "id": rule_id,
        "applies_to": {"dataset": "tickets"},
        "action": "assert_absent",
        "columns": ["ip"],
        **fields,
    }


def ips(world: Scenario) -> dict[int, str | None]:
    with world.db.engine.connect() as connection:
        rows = connection.execute(select(TICKETS.c.id, TICKETS.c.ip).order_by(TICKETS.c.id))
        return {row[0]: row[1] for row in rows}


def audited(config: Config) -> list[tuple[str, str, int]]:
    """The rules' audit entries (not the runs' events, nor the record of what a run kept)."""
    engine = open_state(config.settings.state_db.get_secret_value())
    try:
        log = AuditLog(engine, keys="plain", hmac_key=None)
        skipped = (RUN_ACTION, "keep")
        return [(e.rule, e.action, e.count) for e in log.entries() if e.action not in skipped]
    finally:
        engine.dispose()


def test_report_only_counts_samples_and_changes_nothing(world: Scenario) -> None:
    """Without `then`, plan and a live run report the records holding a value in the columns
    (count, sample keys) and change nothing; nothing waits on a clock (ticket 4 has none)."""
    config = world.config([absent(), absent("no-email", columns=["email", "name"])])
    plan = world.plan(config, NOW)
    assert (plan["no-ip"].violations, plan["no-ip"].samples) == (2, ("1", "3"))
    assert (plan["no-email"].violations, plan["no-email"].samples) == (1, ("4",))
    assert plan["no-ip"].as_dict()["violations"] == 2
    result = Executor(config, now=NOW, live=True).run()
    found = {o.rule: (o.action, o.violations, o.acted) for o in result.outcomes}
    assert found == {"no-ip": ("assert_absent", 2, 0), "no-email": ("assert_absent", 1, 0)}
    assert ips(world) == {1: "10.1.2.3", 2: None, 3: "10.9.9.9", 4: None}
    (first, *_) = explain(config, "tickets", "1", NOW).rules
    assert first.status == "present: must never be stored"
    assert explain(config, "tickets", "2", NOW).rules[0].status == "absent, as it must be"


def test_then_delete_removes_at_once_audited_and_holds_win(world: Scenario) -> None:
    """`then: delete` deletes every record holding the value in the same run, audited under
    the rule; a record on hold stays (and is still reported); a second run finds only it."""
    holds = {"holds": [{"id": "case", "subjects": {"account": [2]}}]}
    config = world.config([absent(then="delete")], holds=holds, audit={"keys": "plain"})
    plan = world.plan(config, NOW)["no-ip"]
    assert (plan.violations, plan.actionable, plan.held) == (2, 1, 1)
    result = Executor(config, now=NOW, live=True).run()
    (outcome,) = result.outcomes
    assert (outcome.violations, outcome.acted) == (2, 1)
    assert world.ticket_ids() == [2, 3, 4]
    assert audited(config) == [("no-ip", "delete", 1)]
    assert world.plan(config, NOW)["no-ip"].violations == 1


def test_then_anonymize_nulls_the_column_and_is_done(world: Scenario) -> None:
    """`then: anonymize` with `null` empties the column at once; nothing is left to report."""
    rules = [absent(then="anonymize", anonymize={"ip": "null"})]
    config = world.config(rules, audit={"keys": "plain"})
    Executor(config, now=NOW, live=True).run()
    assert ips(world) == {1: None, 2: None, 3: None, 4: None}
    assert world.ticket_ids() == [1, 2, 3, 4]
    assert audited(config) == [("no-ip", "anonymize", 2)]
    assert world.plan(config, NOW)["no-ip"].violations == 0


def test_no_columns_means_no_record_may_exist(world: Scenario) -> None:
    """Without `columns`, every record of the dataset (within `where`) is a violation."""
    config = world.config([absent(columns=None, where={"account_id": 2})])
    assert world.plan(config, NOW)["no-ip"].violations == 2


def test_plan_run_and_metrics_report_violations(world: Scenario) -> None:
    """plan and run print one warning naming the rule, the count and sample keys; --json has
    the count; the metric retention_assert_absent_violations follows the plan."""
    path = world.write([absent()])
    runner = CliRunner()
    for command in ("plan", "run"):
        result = runner.invoke(app, [command, "-c", str(path), "--now", NOW.isoformat()])
        assert result.exit_code == 0, result.output
        assert "warning: 2 records hold data that must never be stored" in result.stderr
        assert "no-ip on tickets: 2 (keys 1, 3)" in result.stderr
    result = runner.invoke(app, ["plan", "-c", str(path), "--json", "--now", NOW.isoformat()])
    (row,) = json.loads(result.stdout)["rules"]
    assert (row["assert_absent"], row["violations"], row["sample_keys"]) == (True, 2, ["1", "3"])
    metrics = Metrics()
    metrics.show_plan(make_plan(world.config([absent()]), NOW))
    families = text_string_to_metric_families(metrics.render().decode())
    (family,) = [f for f in families if f.name == "retention_assert_absent_violations"]
    assert [(s.labels["rule"], s.value) for s in family.samples] == [("no-ip", 2.0)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"after": "record.created"}, "assert_absent never waits on a clock"),
        ({"retain": "P1D"}, "assert_absent never waits on a clock"),
        ({"then": "keep"}, "then must be delete or anonymize"),
        ({"columns": []}, "columns must be a non-empty list"),
        ({"then": "anonymize", "columns": None}, "then: anonymize needs the `columns`"),
    ],
)
def test_bad_assert_absent_rules_are_refused(
    world: Scenario, fields: dict[str, Any], message: str
) -> None:
    """An assert_absent rule with a clock, a bad `then` or bad `columns` is a config error."""
    with pytest.raises(ConfigError, match=message):
        world.config([{k: v for k, v in absent(**fields).items() if v is not None}])


def test_columns_and_then_belong_to_assert_absent(world: Scenario) -> None:
    """`columns` or `then` on another action is a config error."""
    with pytest.raises(ConfigError, match="belongs to `action: assert_absent`"):
        world.config([rule(columns=["ip"])])


def test_validate_names_a_column_the_table_lacks(world: Scenario) -> None:
    """validate checks `columns` against the live schema, naming the rule."""
    path = world.write([absent(columns=["cvv"])])
    result = CliRunner().invoke(app, ["validate", "-c", str(path)])
    assert result.exit_code == 2
    assert "rule no-ip: columns" in result.output and "cvv" in result.output


def test_an_override_keeps_an_assert_absent_rule_what_it_is(world: Scenario) -> None:
    """rule_overrides on an assert_absent rule (`where`) keep it an assert_absent rule."""
    overrides = {"no-ip": {"where": {"account_id": 1}}}
    config = world.config([absent()], rule_overrides=overrides)
    assert world.plan(config, NOW)["no-ip"].samples == ("1",)
