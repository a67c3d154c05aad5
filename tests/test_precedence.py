"""Two delete rules due for one record: the earliest due one acts, in plan, explain, run and audit.

On SQLite, PostgreSQL and MariaDB. Rule `late` is declared first and keeps tickets two years
after they were opened; rule `early` deletes them 30 days after their account was closed.
Ticket 1 is due for `early` first, ticket 2 for `late` first, ticket 3 only for `late`,
ticket 4 for both at the same moment (the rule declared first acts).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from retention.audit import AuditLog
from retention.config import Config
from retention.executor import Executor
from retention.explain import explain
from retention.runevents import RUN_ACTION
from retention.statedb import open_state

from .conftest import Database
from .scenario import Scenario, at, rule, utc

NOW = utc("2026-06-01 00:00:00")


@pytest.fixture
def world(db: Database, tmp_path: Path) -> Scenario:
    return Scenario(db, tmp_path)


@pytest.fixture
def config(world: Scenario) -> Config:
    world.accounts(
        {"id": 1, "closed_at": at("2025-06-01")},  # `early` due 2025-07-01
        {"id": 2, "closed_at": at("2025-06-01")},
        {"id": 3, "closed_at": None},
        {"id": 4, "closed_at": at("2025-12-02")},  # `early` due 2026-01-01
    )
    world.tickets(
        {"id": 1, "account_id": 1, "created_at": at("2024-01-01")},  # `late` due 2026-01-01
        {"id": 2, "account_id": 2, "created_at": at("2023-01-01")},  # `late` due 2025-01-01
        {"id": 3, "account_id": 3, "created_at": at("2024-01-01")},
        {"id": 4, "account_id": 4, "created_at": at("2024-01-01")},
    )
    return world.config(
        [
            rule("late", retain="P2Y", within="P1Y"),
            rule("early", after="subject.closed", retain="P30D", within="P1M"),
        ],
        audit={"keys": "plain"},
    )


def credited(config: Config) -> dict[str, list[str]]:
    engine = open_state(config.settings.state_db.get_secret_value())
    try:
        entries = AuditLog(engine, keys="plain", hmac_key=None).entries()
    finally:
        engine.dispose()
    found: dict[str, list[str]] = {}
    for entry in entries:
        if entry.action != RUN_ACTION:
            found.setdefault(entry.rule, []).extend(json.loads(entry.keys))
    return found


def test_plan_credits_the_earliest_due_delete(world: Scenario, config: Config) -> None:
    plan = world.plan(config, NOW)
    late, early = plan["late"], plan["early"]
    assert (late.due, late.superseded, late.actionable) == (4, 1, 3)
    assert late.samples == ("2", "3", "4")
    assert (early.due, early.superseded, early.actionable, early.overdue) == (3, 2, 1, 1)
    assert early.samples == ("1",)


def test_explain_names_the_earliest_due_delete(config: Config) -> None:
    found = explain(config, "tickets", "1", NOW)
    assert found.verdict.startswith("due for deletion by rule early since 2025-07-01")
    statuses = {v.rule: v.status for v in found.rules}
    assert statuses == {"late": "superseded by a delete rule", "early": "overdue"}
    tie = {v.rule: v.status for v in explain(config, "tickets", "4", NOW).rules}
    assert tie == {"late": "due", "early": "superseded by a delete rule"}


@pytest.mark.parametrize("live", [False, True])
def test_run_and_audit_credit_the_earliest_due_delete(
    world: Scenario, config: Config, live: bool
) -> None:
    report: Any = Executor(config, now=NOW, live=live).run()
    assert report is not None
    assert credited(config) == {"late": ["2", "3", "4"], "early": ["1"]}
    if live:
        assert world.ticket_ids() == []
        assert world.plan(config, NOW)["late"].in_scope == 0


TICKETS = 150_000
HELD_ACCOUNT = 7


@pytest.mark.slow
@pytest.mark.postgres
def test_a_window_that_cedes_more_keys_than_a_statement_can_bind(
    postgres_db: Database, tmp_path: Path
) -> None:
    """PostgreSQL binds at most 65,535 parameters a statement. Rule `long` (declared first)
    would delete all 150,000 tickets but cedes the 19 in 20 of status `a` to rule `short`, due
    earlier: its windows grow to 75,000 tickets, over 71,000 of them ceded. The plan counts
    them, the run finishes, and exactly the unheld tickets are gone, each credited to the
    rule due first for it; account 7's tickets stay."""
    world = Scenario(postgres_db, tmp_path)
    world.accounts(*({"id": i} for i in range(100)))
    with postgres_db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO tickets (id, account_id, created_at, status) "
                "SELECT g, g % 100, timestamp '2025-01-01' + (g % 1000) * interval '1 minute', "
                "CASE WHEN g % 20 = 0 THEN 'b' ELSE 'a' END FROM generate_series(1, :n) g"
            ),
            {"n": TICKETS},
        )
    config = world.config(
        [rule("long", retain="P30D"), rule("short", retain="P10D", where={"status": "a"})],
        holds={"holds": [{"id": "case", "subjects": {"account": [HELD_ACCOUNT]}}]},
        audit={"keys": "plain"},
        batch_size=200_000,
        batch_seconds=3600,
        limits={"max_fraction": 1.0, "max_actions_per_run": 1_000_000},
    )
    ids = range(1, TICKETS + 1)
    held = [i for i in ids if i % 100 == HELD_ACCOUNT]
    by_b = [i for i in ids if i % 20 == 0 and i % 100 != HELD_ACCOUNT]
    by_a = [i for i in ids if i % 20 != 0 and i % 100 != HELD_ACCOUNT]
    long = world.plan(config, NOW)["long"]
    assert (long.superseded, long.actionable) == (len(by_a), len(by_b))
    assert long.samples == tuple(str(i) for i in by_b[:5])
    report = Executor(config, now=NOW, live=True).run()
    assert report.status == "complete", report.as_dict()
    assert world.ticket_ids() == held
    found = credited(config)
    assert sorted(map(int, found["long"])) == by_b
    assert sorted(map(int, found["short"])) == by_a
