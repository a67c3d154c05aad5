"""Enforcement on SQLite, PostgreSQL and MariaDB: what a live run changes, and what it must not."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    update,
)
from typer.testing import CliRunner

from retention.audit import AuditLog
from retention.cli import app
from retention.config import load_config
from retention.errors import ConfigError
from retention.executor import Executor
from retention.planner import make_plan
from retention.runevents import RUN_ACTION
from retention.sqldialects import dialect
from retention.stores.windows import FIRST_WINDOW
from retention.testing import FixedClock, OnPoint, replace_file

from .conftest import Database
from .scenario import (
    ACCOUNTS,
    MESSAGES,
    TICKETS,
    TICKETS_DATASET,
    TS,
    Scenario,
    at,
    rule,
    unreadable_clocks,
    utc,
)

NOW = utc("2026-06-01 00:00:00")


@pytest.fixture
def world(db: Database, tmp_path: Path) -> Scenario:
    return Scenario(db, tmp_path)


def run(config: Any, *, live: bool = True, now: dt.datetime = NOW, **kwargs: Any) -> Any:
    return Executor(config, now=now, live=live, **kwargs).run()


def audit_entries(config: Any) -> list[Any]:
    """The batch entries in chain order (the runs' start and end events left out)."""
    from retention.statedb import open_state

    engine = open_state(config.settings.state_db.get_secret_value())
    try:
        entries = AuditLog(engine, keys="plain", hmac_key=None).entries()
        return [e for e in entries if e.action != RUN_ACTION]
    finally:
        engine.dispose()


def rows(world: Scenario, table: Table = TICKETS) -> dict[Any, dict[str, Any]]:
    with world.db.engine.connect() as connection:
        return {r.id: dict(r._mapping) for r in connection.execute(select(table))}


def old_tickets(n: int, *, account: int | None = None, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"id": i, "account_id": account, "created_at": at("2020-01-01"), **extra}
        for i in range(1, n + 1)
    ]


def test_delete_in_batches_audited_and_second_run_idle(world: Scenario) -> None:
    """A live run deletes every due record in key-ordered batches, one audit entry per batch;
    a second run finds nothing and writes no action entry."""
    world.tickets(*old_tickets(7), {"id": 8, "created_at": at("2026-05-20")})
    config = world.config([rule(retain="P30D")], batch_size=3, audit={"keys": "plain"})
    result = run(config)
    assert result.outcomes[0].acted == 7 and result.outcomes[0].batches == 3
    assert list(rows(world)) == [8]
    entries = audit_entries(config)
    assert [json.loads(e.keys) for e in entries] == [["1", "2", "3"], ["4", "5", "6"], ["7"]]
    assert all(e.outcome == "done" and not e.dry_run for e in entries)
    again = run(config)
    assert again.outcomes[0].acted == 0
    assert len(audit_entries(config)) == 3


def test_windows_grow_from_the_first_size_toward_the_cap(world: Scenario) -> None:
    """With the default settings a run starts with a window of 5,000 keys and grows it while
    batches are quick: 40,000 due rows go in fewer batches than a fixed 5,000 would take, each
    audited, and nothing due is left. (A target of a minute a batch: every batch here is
    quick, however loaded the machine; tests/test_windows.py drives the sizer's clock.)"""
    world.tickets(*old_tickets(40_000))
    config = world.config([rule(retain="P30D")], audit={"keys": "plain"}, batch_seconds=60)
    result = run(config)
    (outcome,) = result.outcomes
    assert outcome.acted == 40_000 and rows(world) == {}
    sizes = [len(json.loads(e.keys)) for e in audit_entries(config)]
    assert sum(sizes) == 40_000 and len(sizes) == outcome.batches < 8
    assert sizes[0] == FIRST_WINDOW and max(sizes) > FIRST_WINDOW


def test_dry_run_changes_nothing_but_reports_the_same(world: Scenario) -> None:
    """A dry run walks the same batches, audits them as dry, and changes nothing."""
    world.tickets(*old_tickets(5))
    config = world.config([rule()], batch_size=2, audit={"keys": "plain"})
    before = rows(world)
    dry = run(config, live=False)
    assert rows(world) == before
    assert dry.outcomes[0].acted == 5 and dry.outcomes[0].batches == 3
    assert {e.outcome for e in audit_entries(config)} == {"would delete"}
    live = run(config)
    assert live.outcomes[0].acted == dry.outcomes[0].acted


@pytest.mark.parametrize(
    ("strategy", "column", "raw", "expected"),
    [
        ("null", "name", "Ada Lovelace", None),
        ("redact", "name", "Ada Lovelace", "[redacted]"),
        ("hash", "email", "ada@example.com", "h:"),
        ({"strategy": "mask", "keep": 4}, "name", "4111111111111111", "************1111"),
        ("truncate_ip", "ip", "192.168.17.42", "192.168.17.0"),
        ("email_domain", "email", "ada@Example.com", "example.com"),
    ],
)
def test_anonymize_strategies(
    world: Scenario, strategy: Any, column: str, raw: str, expected: str | None
) -> None:
    """Every strategy rewrites due records in place, fits the column, and is not redone."""
    world.tickets({"id": 1, "created_at": at("2020-01-01"), column: raw})
    world.tickets({"id": 2, "created_at": at("2026-05-30"), column: raw})
    personal = {"name": "name", "email": "email", "ip": "ip"}
    field = next(k for k, v in personal.items() if v == column)
    config = world.config(
        [rule(action="anonymize", anonymize={field: strategy})], audit={"keys": "plain"}
    )
    result = run(config)
    assert result.outcomes[0].acted == 1
    after = rows(world)
    value = after[1][column]
    if expected == "h:":
        assert value.startswith("h:") and len(value) <= 120 and value != raw
    else:
        assert value == expected
    assert after[2][column] == raw
    assert run(config).outcomes[0].acted == 0
    assert len(audit_entries(config)) == 1


def test_generalize_date(world: Scenario, db: Database) -> None:
    """generalize_date keeps only the month of a timestamp column."""
    world.tickets({"id": 1, "created_at": at("2020-03-17 12:34:56"), "status": "x"})
    datasets = {
        "tickets": {
            **TICKETS_DATASET,
            "timestamps": {"created": "created_at"},
            "personal": {**TICKETS_DATASET["personal"], "birth_date": "created_at"},
        }
    }
    config = world.config(
        [
            rule(
                action="anonymize",
                retain="P1Y",
                anonymize={"birth_date": {"strategy": "generalize_date", "to": "month"}},
            )
        ],
        datasets=datasets,
    )
    run(config)
    value = rows(world)[1]["created_at"]
    assert (value.year, value.month, value.day, value.hour) == (2020, 3, 1, 0)


def test_cascade_deletes_children_first_and_audits_them(world: Scenario) -> None:
    """Children declared in `cascade` go first, in the same transaction, with their own entries."""
    world.tickets(*old_tickets(2))
    world.messages(
        {"id": 10, "ticket_id": 1},
        {"id": 11, "ticket_id": 1},
        {"id": 12, "ticket_id": 2},
    )
    datasets = {
        "tickets": {**TICKETS_DATASET, "cascade": [{"dataset": "messages", "column": "ticket_id"}]},
        "messages": {"store": "app", "table": "messages", "key": "id", "category": "messages"},
    }
    config = world.config([rule()], datasets=datasets, batch_size=1, audit={"keys": "plain"})
    result = run(config)
    if not dialect(world.db.dialect).cascade_with_foreign_keys:  # DuckDB: refused, whole
        assert result.outcomes[0].acted == 0
        assert "cannot delete rows and the rows referring to them" in str(
            result.outcomes[0].message
        )
        assert sorted(rows(world)) == [1, 2] and sorted(rows(world, MESSAGES)) == [10, 11, 12]
        assert [(e.outcome, e.count) for e in audit_entries(config)] == [("refused", 0)]
        return
    assert result.outcomes[0].acted == 2
    assert result.outcomes[0].cascaded == {"messages": 3}
    assert rows(world) == {} and rows(world, MESSAGES) == {}
    entries = [(e.dataset, e.action, json.loads(e.keys)) for e in audit_entries(config)]
    assert entries == [
        ("messages", "delete (cascade)", ["10", "11"]),
        ("tickets", "delete", ["1"]),
        ("messages", "delete (cascade)", ["12"]),
        ("tickets", "delete", ["2"]),
    ]


def test_held_child_protects_its_parent(world: Scenario) -> None:
    """A parent whose cascade child is under a hold is not deleted (the child would go with it)."""
    world.tickets(*old_tickets(2))
    world.messages({"id": 10, "ticket_id": 1}, {"id": 12, "ticket_id": 2})
    datasets = {
        "tickets": {**TICKETS_DATASET, "cascade": [{"dataset": "messages", "column": "ticket_id"}]},
        "messages": {"store": "app", "table": "messages", "key": "id", "category": "messages"},
    }
    config = world.config(
        [rule()],
        datasets=datasets,
        holds={"holds": [{"id": "legal", "datasets": ["messages"]}]},
    )
    result = run(config)
    assert result.outcomes[0].acted == 0
    assert len(rows(world, MESSAGES)) == 2


def test_foreign_key_refusal_names_the_referencing_table(world: Scenario) -> None:
    """Without a cascade, a delete the foreign key refuses stops that rule, changes nothing of the
    batch, says which table and column refer to it, and exits 4."""
    world.tickets(*old_tickets(3))
    world.messages({"id": 10, "ticket_id": 2})
    config = world.config([rule()], batch_size=10)
    result = run(config)
    outcome = result.outcomes[0]
    assert outcome.status == "refused" and result.exit_code == 4
    assert "messages.ticket_id" in (outcome.message or "")
    assert len(rows(world)) == 3
    assert [e.outcome for e in audit_entries(config)] == ["refused"]


def test_composite_primary_key(db: Database, tmp_path: Path) -> None:
    """Datasets keyed by several columns are batched and audited by the whole key."""
    world = Scenario(db, tmp_path)
    meta = MetaData()
    events = Table(
        "events",
        meta,
        Column("tenant", Integer, primary_key=True, autoincrement=False),
        Column("seq", Integer, primary_key=True, autoincrement=False),
        Column("created_at", TS),
        Column("payload", String(20)),
    )
    meta.create_all(db.engine)
    with db.engine.begin() as connection:
        connection.execute(
            insert(events),
            [
                {"tenant": t, "seq": s, "created_at": at("2020-01-01" if s % 2 else "2026-05-30")}
                for t in (1, 2)
                for s in range(1, 6)
            ],
        )
    datasets = {
        "events": {
            "store": "app",
            "table": "events",
            "key": ["tenant", "seq"],
            "category": "logs",
            "timestamps": {"created": "created_at"},
        }
    }
    config = world.config(
        [rule(applies_to={"dataset": "events"})],
        datasets=datasets,
        batch_size=2,
        audit={"keys": "plain"},
        limits={"max_fraction": 1.0},
    )
    result = run(config)
    assert result.outcomes[0].acted == 6
    with db.engine.connect() as connection:
        left = sorted(tuple(r) for r in connection.execute(select(events.c.tenant, events.c.seq)))
    assert left == [(1, 2), (1, 4), (2, 2), (2, 4)]
    keys = [k for e in audit_entries(config) for k in json.loads(e.keys)]
    assert keys == ["1/1", "1/3", "1/5", "2/1", "2/3", "2/5"]


def test_circuit_breakers_refuse_and_force_overrides(world: Scenario) -> None:
    """A rule that would delete more than max_fraction stops before acting (exit 4, audited);
    --force goes ahead; max_actions_per_run caps a whole run."""
    world.tickets(*old_tickets(6), {"id": 7, "created_at": at("2026-05-30")})
    config = world.config([rule()], limits={"max_fraction": 0.5})
    refused = run(config)
    assert refused.exit_code == 4 and refused.outcomes[0].acted == 0
    assert "max_fraction" in (refused.outcomes[0].message or "")
    assert len(rows(world)) == 7
    assert audit_entries(config)[-1].outcome == "refused"
    capped = world.config([rule()], limits={"max_fraction": 1.0, "max_actions_per_run": 5})
    assert run(capped).exit_code == 4 and len(rows(world)) == 7
    forced = run(config, force=True)
    assert forced.exit_code == 0 and list(rows(world)) == [7]


def test_hold_added_during_a_run_protects_later_batches(world: Scenario) -> None:
    """The holds file is re-read before every batch: a hold placed while the first batch is
    deleted protects the records of every later one (on PostgreSQL the next batch is prepared
    meanwhile, and is prepared again when the file changed)."""
    world.accounts({"id": 1}, {"id": 2})
    world.tickets(
        *(
            {"id": i, "account_id": 1 if i <= 2 else 2, "created_at": at("2020-01-01")}
            for i in range(1, 7)
        )
    )
    config = world.config([rule()], batch_size=2, limits={"max_fraction": 1.0})
    holds_file = world.directory / "holds.yaml"

    def place_a_hold() -> None:
        held = {"holds": [{"id": "late", "subjects": {"account": [2]}}]}
        replace_file(holds_file, yaml.safe_dump(held))

    placing = OnPoint("write", place_a_hold)  # while the first batch's DELETE is sent
    result = Executor(config, now=NOW, live=True, probe=placing).run()
    assert result.outcomes[0].acted == 2
    assert sorted(rows(world)) == [3, 4, 5, 6]


def test_record_reactivated_between_select_and_delete_is_kept(world: Scenario) -> None:
    """The DELETE repeats the rule predicate: an account reopened after its tickets were selected
    keeps them."""
    world.accounts(
        {"id": 1, "closed_at": at("2025-01-01")}, {"id": 2, "closed_at": at("2025-01-01")}
    )
    world.tickets(
        {"id": 1, "account_id": 1, "created_at": at("2024-01-01")},
        {"id": 2, "account_id": 2, "created_at": at("2024-01-01")},
    )
    config = world.config([rule(after="subject.closed")], audit={"keys": "plain"})

    def reopen() -> None:
        with world.db.engine.begin() as connection:
            connection.execute(update(ACCOUNTS).where(ACCOUNTS.c.id == 2).values(closed_at=None))

    reopening = OnPoint("window", reopen, every=True)  # after each window's records are chosen
    result = Executor(config, now=NOW, live=True, probe=reopening).run()
    assert result.outcomes[0].acted == 1
    assert list(rows(world)) == [2]
    assert [json.loads(e.keys) for e in audit_entries(config)] == [["1"]]


def test_nothing_due_and_unheld_left_after_a_live_run(world: Scenario) -> None:
    """After a complete live run the plan has nothing left to act on."""
    world.accounts({"id": 1, "closed_at": at("2026-01-01")}, {"id": 2})
    world.tickets(
        *(
            {
                "id": i,
                "account_id": 1 + i % 2,
                "created_at": at("2025-01-01"),
                "email": f"u{i}@x.io",
            }
            for i in range(1, 30)
        )
    )
    config = world.config(
        [
            rule("del", where={"status": None}, retain="P2Y"),
            rule("anon", after="subject.closed", action="anonymize", anonymize={"email": "hash"}),
        ],
        batch_size=4,
        holds={"holds": [{"id": "h", "subjects": {"account": [2]}, "rules": ["del"]}]},
        limits={"max_fraction": 1.0},
    )
    first = run(config)
    assert sum(o.lingering for o in first.outcomes) == 0
    plan = make_plan(config, NOW)
    assert all(r.actionable == 0 for r in plan.rules)
    with world.db.engine.connect() as connection:
        hashed = connection.execute(
            select(func.count()).where(TICKETS.c.email.like("h:%"))
        ).scalar_one()
    assert hashed == 14  # the tickets of closed account 1 (even ids 2..28)


def test_a_killed_dry_run_is_marked_interrupted(world: Scenario) -> None:
    """A dry run whose process is gone from this host is marked interrupted by the next run."""
    import socket

    from retention.statedb import open_state
    from retention.statetables import runs

    world.tickets(*old_tickets(1))
    config = world.config([rule()])
    run(config, live=False)
    engine = open_state(config.settings.state_db.get_secret_value())
    with engine.begin() as connection:
        connection.execute(
            update(runs).values(
                status="running", finished_at=None, holder=f"{socket.gethostname()}:999999999:dead"
            )
        )
    run(config)
    with engine.connect() as connection:
        statuses = sorted(r.status for r in connection.execute(select(runs.c.status, runs.c.mode)))
    engine.dispose()
    assert statuses == ["complete", "interrupted"]


@pytest.mark.parametrize("state_url", ["file", "sqlite://"])
def test_audit_entries_follow_the_batches_on_any_state_db(
    world: Scenario, tmp_path: Path, state_url: str
) -> None:
    """A batch's entry is written with the next batch's intent, in one state-DB transaction, and
    the last one at the end of the rule: on a file and on an in-memory state DB every batch is
    audited, in batch order, the chain verifies and no intent is left."""
    from retention.statedb import open_state
    from retention.statetables import intents

    world.tickets(*old_tickets(10))
    config = world.config([rule()], batch_size=3, audit={"keys": "plain"})
    state = open_state(f"sqlite:///{tmp_path / 'other.db'}" if state_url == "file" else state_url)
    try:
        result = Executor(config, now=NOW, live=True, state=state).run()
        log = AuditLog(state, keys="plain", hmac_key=None)
        entries = [e for e in log.entries() if e.action != RUN_ACTION]
        with state.connect() as connection:
            left = connection.execute(select(intents.c.id)).all()
        verification = log.verify()
    finally:
        state.dispose()
    assert result.status == "complete" and result.outcomes[0].acted == 10
    assert [json.loads(e.keys) for e in entries] == [
        ["1", "2", "3"],
        ["4", "5", "6"],
        ["7", "8", "9"],
        ["10"],
    ]
    assert left == [] and verification.ok
    assert rows(world) == {}


def test_a_live_run_refuses_a_moment_later_than_the_present(world: Scenario) -> None:
    """`run --execute --now 2099-01-01` would delete everything due by 2099: refused with exit 2
    before anything changes; the same --now stays free for a dry run."""
    world.accounts({"id": 1})
    world.tickets(
        {"id": 1, "account_id": 1, "created_at": at("2020-01-01")},
        {"id": 2, "account_id": 1, "created_at": at("2098-12-01")},
    )
    path = world.write([rule()])
    runner = CliRunner()
    live = runner.invoke(app, ["run", "-c", str(path), "--execute", "--now", "2099-01-01"])
    assert live.exit_code == 2
    assert "--now" in live.stderr and "later than the present" in live.stderr
    assert sorted(rows(world)) == [1, 2]
    dry = runner.invoke(app, ["run", "-c", str(path), "--now", "2099-01-01", "--json"])
    assert dry.exit_code == 0
    assert json.loads(dry.stdout)["rules"][0]["acted"] == 2
    assert sorted(rows(world)) == [1, 2]
    with pytest.raises(ConfigError, match="later than the present"):
        Executor(load_config(path), now=utc("2099-01-01 00:00:00"), live=True).run()
    assert sorted(rows(world)) == [1, 2]


def test_a_live_run_as_of_a_past_moment_shows_it(world: Scenario) -> None:
    """A past --now can only do less than the present allows: allowed, and the summary and
    --json say which moment the rules were evaluated at."""
    world.accounts({"id": 1})
    world.tickets({"id": 1, "account_id": 1, "created_at": at("2020-01-01")})
    path = world.write([rule()])
    result = CliRunner().invoke(
        app, ["run", "-c", str(path), "--execute", "--now", "2021-01-01T00:00:00+00:00", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["as_of"] == "2021-01-01T00:00:00+00:00" and report["mode"] == "live"
    assert rows(world) == {}
    text = CliRunner().invoke(app, ["run", "-c", str(path), "--now", "2021-01-01T00:00:00+00:00"])
    assert "as of 2021-01-01 00:00:00 UTC" in " ".join(text.stdout.split())


def test_the_executor_takes_the_present_from_its_clock(world: Scenario) -> None:
    """A pinned clock (retention.testing.FixedClock) is the present a live run may not pass."""
    world.accounts({"id": 1})
    world.tickets({"id": 1, "account_id": 1, "created_at": at("2020-01-01")})
    config = world.config([rule()])
    later = utc("2030-01-01 00:00:00")
    with pytest.raises(ConfigError):
        Executor(config, now=later, live=True, clock=FixedClock(NOW)).run()
    assert (
        Executor(config, now=later, live=True, clock=FixedClock(later)).run().status == "complete"
    )


def test_a_live_run_counts_unreadable_clocks_and_leaves_them(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """A live run never touches a record whose clock text is no timestamp, and says how many
    there were (RuleOutcome.unreadable, per rule and in the totals of run --json)."""
    world = unreadable_clocks(Scenario(sqlite_db, tmp_path))
    config = world.config([rule("age"), rule("closed", after="subject.closed")])
    result = run(config)
    age, closed = result.outcomes
    assert (age.acted, age.unreadable) == (1, 2)
    assert (closed.acted, closed.unreadable) == (2, 1)  # 2 and 3 by their closed account
    assert result.as_dict()["totals"]["unreadable"] == 3
    assert [r["unreadable"] for r in result.as_dict()["rules"]] == [2, 1]
    assert world.ticket_ids() == [4, 5]
