"""`explain` on a deleted record: when, by which run and rule it went, from the audit log.

On SQLite, PostgreSQL and MariaDB, with the keys in the log as HMACs and as plain text; a key
that was never there (or a log that keeps no keys) is still "no record".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from retention.errors import RecordNotFound
from retention.executor import Executor
from retention.explain import explain

from .conftest import Database
from .scenario import Scenario, at, rule, utc

NOW = utc("2026-06-01 00:00:00")


@pytest.fixture
def world(db: Database, tmp_path: Path) -> Scenario:
    return Scenario(db, tmp_path)


@pytest.mark.parametrize("keys", ["hmac", "plain"])
def test_explain_a_deleted_record_names_its_run_and_rule(world: Scenario, keys: str) -> None:
    world.tickets(
        {"id": 1, "created_at": at("2020-01-01")}, {"id": 2, "created_at": at("2026-05-20")}
    )
    config = world.config([rule("tickets.old", retain="P1Y")], audit={"keys": keys})
    Executor(config, now=NOW, live=False).run()  # a dry run deletes nothing
    assert explain(config, "tickets", "1", NOW).deleted is None
    report = Executor(config, now=NOW, live=True).run()
    found = explain(config, "tickets", "1", NOW)
    assert found.deleted is not None
    assert (found.deleted.run_id, found.deleted.rule) == (report.run_id, "tickets.old")
    assert found.verdict.startswith("deleted on 2026-")
    assert f"by run {report.run_id} under rule tickets.old" in found.verdict
    assert found.as_dict()["deleted"]["dataset"] == "tickets"
    assert found.deleted.due is not None and found.deleted.due.date().isoformat() == "2021-01-01"
    assert found.verdict.endswith("; due since 2021-01-01 00:00:00 UTC, on time")
    assert explain(config, "tickets", "2", NOW).deleted is None  # still there
    with pytest.raises(RecordNotFound):
        explain(config, "tickets", "3", NOW)


def test_explain_says_how_late_a_deleted_record_went(world: Scenario) -> None:
    """A record deleted after its deadline (due + within) is explained as late, by how much."""
    world.tickets({"id": 1, "created_at": at("2026-01-01")})
    config = world.config([rule("tickets.old", retain="P30D", within="P10D")])
    Executor(config, now=NOW, live=True).run()
    found = explain(config, "tickets", "1", NOW)
    assert found.deleted is not None
    assert found.deleted.late_seconds == int((NOW - utc("2026-02-10 00:00:00")).total_seconds())
    assert found.verdict.endswith("late by 111 days")


def test_without_keys_in_the_log_a_deleted_record_is_not_found(world: Scenario) -> None:
    world.tickets({"id": 1, "created_at": at("2020-01-01")})
    config = world.config([rule(retain="P1Y")], audit={"keys": "none"})
    Executor(config, now=NOW, live=True).run()
    with pytest.raises(RecordNotFound):
        explain(config, "tickets", "1", NOW)
