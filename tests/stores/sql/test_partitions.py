"""Partition drops on PostgreSQL: a partition whose every row is due and free is truncated in
one transaction with its keys audited; any other partition goes by row batches; held rows
survive whatever the layout."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from retention.executor import Executor
from retention.sqldialects import DIALECTS
from retention.testing import CrashAt, OnPoint, SimulatedCrash, examples, replace_file

from ...conftest import Database
from ...samples import load_pagila, require_sample
from ...scenario import Scenario, rule, utc, verified_entries

pytestmark = pytest.mark.postgres

NOW = utc("2026-06-01 00:00:00")
EVENTS = {
    "store": "app",
    "table": "events",
    "key": ["id", "created_at"],
    "category": "events",
    "subject": {"type": "account", "column": "account_id"},
    "timestamps": {"created": "created_at"},
}
YEARS = (2023, 2024, 2025, 2026)  # one partition each; 2026's rows are recent, never due


def partitioned(db: Database, tmp_path: Path) -> Scenario:
    """Accounts 1..4, and `events` partitioned by year of `created_at`."""
    world = Scenario(db, tmp_path)
    world.accounts(*({"id": a} for a in range(1, 5)))
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE events (id integer, created_at timestamp, account_id integer, "
                "PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at)"
            )
        )
        for year in YEARS:
            connection.execute(
                text(
                    f"CREATE TABLE events_{year} PARTITION OF events FOR VALUES FROM "
                    f"('{year}-01-01') TO ('{year + 1}-01-01')"
                )
            )
    return world


def add(db: Database, rows: list[tuple[int, dt.datetime, int]]) -> None:
    with db.engine.begin() as connection:
        for key, created, account in rows:
            connection.execute(
                text("INSERT INTO events VALUES (:id, :created, :account)"),
                {"id": key, "created": created, "account": account},
            )


def present(db: Database) -> dict[str, set[int]]:
    """The ids left, per partition."""
    with db.engine.connect() as connection:
        query = text("SELECT tableoid::regclass::text, id FROM events")
        found: dict[str, set[int]] = {}
        for partition, key in connection.execute(query):
            found.setdefault(partition, set()).add(key)
        return found


def config_for(world: Scenario, holds: dict[str, Any] | None = None) -> Any:
    return world.config(
        [rule("purge", applies_to={"dataset": "events"}, retain="P1Y")],
        datasets={"events": EVENTS},
        holds=holds,
        audit={"keys": "plain"},
        batch_size=2,
    )


@pytest.mark.parametrize("pipelined", [True, False])
def test_a_due_unheld_partition_is_truncated_with_its_keys_audited(
    postgres_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pipelined: bool
) -> None:
    """2023's and 2024's partitions are wholly due: each goes in one truncate, audited with every
    key it held; 2025 holds one row not yet due, so its due rows go by row batches. The same
    with the next partition checked while one is audited (pipelined) or one after the other."""
    flags = replace(DIALECTS["postgresql"], pipelined=pipelined)
    monkeypatch.setitem(DIALECTS, "postgresql", flags)
    world = partitioned(postgres_db, tmp_path)
    add(postgres_db, [(i, dt.datetime(2023, 3, i), 1) for i in range(1, 6)])
    add(postgres_db, [(i, dt.datetime(2024, 2, i), 2) for i in range(6, 9)])
    add(postgres_db, [(9, dt.datetime(2025, 1, 9), 3), (10, dt.datetime(2025, 12, 1), 3)])
    config = config_for(world)
    Executor(config, now=NOW, live=True).run()
    assert present(postgres_db) == {"events_2025": {10}}
    truncated: dict[str, list[str]] = {}
    for e in verified_entries(config):
        if "truncated" in (e.detail or ""):
            truncated.setdefault(e.detail, []).extend(json.loads(e.keys))
    # the keys of a partition are audited in batches of at most batch_size (2) records
    assert {detail: len(keys) for detail, keys in truncated.items()} == {
        "partition events_2023 truncated": 5,
        "partition events_2024 truncated": 3,
    }
    rest = [
        json.loads(e.keys) for e in verified_entries(config) if "truncated" not in (e.detail or "")
    ]
    assert rest == [["9/2025-01-09 00:00:00"]]


def test_a_partition_with_one_held_row_is_not_dropped(
    postgres_db: Database, tmp_path: Path
) -> None:
    """A hold on account 2 covers one row of 2023's partition: the partition stays, its other
    rows are deleted by row batches, the held row survives."""
    world = partitioned(postgres_db, tmp_path)
    add(postgres_db, [(i, dt.datetime(2023, 3, i), 1 + (i == 3)) for i in range(1, 6)])
    config = config_for(world, {"holds": [{"id": "case", "subjects": {"account": [2]}}]})
    Executor(config, now=NOW, live=True).run()
    assert present(postgres_db) == {"events_2023": {3}}
    found = verified_entries(config)
    assert not any("truncated" in (e.detail or "") for e in found)
    assert sorted(k.split("/")[0] for e in found for k in json.loads(e.keys)) == [
        "1",
        "2",
        "4",
        "5",
    ]


def test_a_table_other_tables_refer_to_goes_by_row_batches(
    postgres_db: Database, tmp_path: Path
) -> None:
    """A foreign key to the partitioned table, from a partitioned table: no partition is
    truncated (the rows other tables need are found by the row batches' refusal), and the
    refusal names both partitioned tables, never a partition, even in the driver's words."""
    world = partitioned(postgres_db, tmp_path)
    add(postgres_db, [(i, dt.datetime(2023, 3, i), 1) for i in range(1, 4)])
    with postgres_db.engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE notes (id integer, event_id integer, event_at timestamp, "
                "PRIMARY KEY (id, event_at), FOREIGN KEY (event_id, event_at) "
                "REFERENCES events (id, created_at)) PARTITION BY RANGE (event_at)"
            )
        )
        connection.execute(
            text(
                "CREATE TABLE notes_2023 PARTITION OF notes "
                "FOR VALUES FROM ('2023-01-01') TO ('2024-01-01')"
            )
        )
        connection.execute(text("INSERT INTO notes VALUES (1, 2, '2023-03-02')"))
    config = config_for(world)
    result = Executor(config, now=NOW, live=True).run()
    outcome = result.outcomes[0]
    assert outcome.acted == 0 and present(postgres_db) == {"events_2023": {1, 2, 3}}
    message = str(outcome.message)
    assert "deleting from events is refused by a foreign key from notes.event_id" in message
    assert 'on table "events"' in message and 'on table "notes"' in message
    assert "events_2023" not in message and "notes_2023" not in message


LAYOUTS = st.lists(
    st.tuples(st.sampled_from(YEARS[:3]), st.integers(1, 4)), min_size=1, max_size=12
)


@settings(
    max_examples=examples(15),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(layout=LAYOUTS, held=st.sets(st.integers(1, 4), max_size=2))
def test_held_rows_survive_whatever_the_partition_layout(
    postgres_db: Database, tmp_path_factory: pytest.TempPathFactory, layout: Any, held: set[int]
) -> None:
    """Rows spread over partitions in any way, any accounts held: every held row survives, every
    free due row is gone, and the audit names each deleted key once."""
    world = partitioned_fresh(postgres_db, tmp_path_factory.mktemp("layout"))
    rows = [
        (i, dt.datetime(year, 5, 1) + dt.timedelta(hours=i), a)
        for i, (year, a) in enumerate(layout)
    ]
    add(postgres_db, rows)
    holds = {"holds": [{"id": "case", "subjects": {"account": sorted(held)}}]} if held else None
    config = config_for(world, holds)
    Executor(config, now=NOW, live=True).run()
    left = {key for keys in present(postgres_db).values() for key in keys}
    assert left == {i for i, _, a in rows if a in held}
    audited = [
        k.split("/")[0]
        for e in verified_entries(config)
        if e.outcome == "done"
        for k in json.loads(e.keys)
    ]
    assert sorted(audited) == sorted(str(i) for i, _, a in rows if a not in held)


def partitioned_fresh(db: Database, directory: Path) -> Scenario:
    """`partitioned`, after dropping what an earlier example left."""
    with db.engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS events"))
        connection.execute(text("DROP TABLE IF EXISTS tickets, messages, accounts CASCADE"))
    return partitioned(db, directory)


def test_a_crash_after_a_truncates_intent_is_settled_once(
    postgres_db: Database, tmp_path: Path
) -> None:
    """Killed after the partition's intent is durable and before the truncate commits: nothing
    was truncated; the next run truncates it, and every key is audited exactly once."""
    world = partitioned(postgres_db, tmp_path)
    add(postgres_db, [(i, dt.datetime(2023, 3, i), 1) for i in range(1, 4)])
    config = config_for(world)
    with pytest.raises(SimulatedCrash):
        Executor(config, now=NOW, live=True, probe=CrashAt("intent", 1)).run()
    assert present(postgres_db) == {"events_2023": {1, 2, 3}}
    Executor(config, now=NOW, live=True).run()
    assert present(postgres_db) == {}
    done = [k for e in verified_entries(config) if e.outcome == "done" for k in json.loads(e.keys)]
    assert sorted(k.split("/")[0] for k in done) == ["1", "2", "3"]


# --- Pagila: a real partitioned table (payment, by month of 2022) -------------------------

PAGILA_NOW = utc("2023-03-01 00:00:00")  # P1Y: January's and February's payments are due
HELD_CUSTOMER = 70  # one payment before March, in payment_p2022_01


def pagila_config(db: Database, tmp_path: Path, **settings: Any) -> Any:
    """Payments as a dataset of customers, a P1Y delete rule on them, customer 70 held."""
    schema = load_pagila(db.url)
    world = Scenario(db, tmp_path)
    subjects = {
        "customer": {
            "store": "app",
            "table": f"{schema}.customer",
            "key": "customer_id",
            "events": {"created": "create_date"},
        }
    }
    payment = {
        "store": "app",
        "table": f"{schema}.payment",
        "key": ["payment_date", "payment_id"],
        "category": "payments",
        "subject": {"type": "customer", "column": "customer_id"},
        "timestamps": {"created": "payment_date"},
    }
    return world.config(
        [rule("purge", applies_to={"dataset": "payment"}, retain="P1Y")],
        datasets={"payment": payment},
        subjects=subjects,
        holds={"holds": [{"id": "case", "subjects": {"customer": [HELD_CUSTOMER]}}]},
        audit={"keys": "plain"},
        **settings,
    )


def payments(db: Database) -> dict[str, int]:
    """Payments left per partition, and ``due`` (those before March) not held."""
    with db.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT tableoid::regclass::text, count(*) FROM payment GROUP BY 1 UNION ALL "
                "SELECT 'due', count(*) FROM payment WHERE payment_date < '2022-03-01 00:00Z' "
                "AND customer_id <> :held"
            ),
            {"held": HELD_CUSTOMER},
        )
        return {str(name): int(count) for name, count in rows}


@require_sample("pagila", "pagila-data.sql")
def test_pagila_payments_a_due_partition_is_truncated_and_a_held_row_keeps_its_own(
    postgres_db: Database, tmp_path: Path
) -> None:
    """February's partition is wholly due and unheld: truncated, its 2,401 keys audited.
    January's holds customer 70's one payment: not truncated, its 722 other payments deleted by
    row batches, the held one kept. Later months are not due and stay whole."""
    config = pagila_config(postgres_db, tmp_path, batch_size=500)
    before = payments(postgres_db)
    assert before["payment_p2022_01"] == 723 and before["payment_p2022_02"] == 2401
    Executor(config, now=PAGILA_NOW, live=True).run()
    after = payments(postgres_db)
    assert after["due"] == 0  # nothing due and unheld remains
    assert after["payment_p2022_01"] == 1 and "payment_p2022_02" not in after
    assert {name: n for name, n in after.items() if name > "payment_p2022_02"} == {
        name: n for name, n in before.items() if name > "payment_p2022_02"
    }
    found = verified_entries(config)
    truncated = [e for e in found if "truncated" in (e.detail or "")]
    assert {e.detail for e in truncated} == {"partition payment_p2022_02 truncated"}
    assert sum(len(json.loads(e.keys)) for e in truncated) == 2401
    assert all(e.count <= 500 for e in truncated)  # batches of at most batch_size keys
    by_rows = [k for e in found if e not in truncated for k in json.loads(e.keys)]
    assert len(by_rows) == len(set(by_rows)) == 722
    with postgres_db.engine.connect() as connection:
        kept = connection.execute(
            text("SELECT payment_date, payment_id FROM payment_p2022_01")
        ).one()
    assert f"{kept[0]}/{kept[1]}" not in by_rows


@require_sample("pagila", "pagila-data.sql")
@pytest.mark.parametrize("crash", [CrashAt("intent", 2), CrashAt("audit", 1)])
def test_pagila_a_crash_around_a_truncate_loses_nothing_and_does_nothing_twice(
    postgres_db: Database, tmp_path: Path, crash: CrashAt
) -> None:
    """Killed after the second of a partition's intents (its truncate not committed), or after
    the truncate committed but before its audit entries: the next run ends with nothing due
    and unheld left, and every deleted payment audited exactly once."""
    config = pagila_config(postgres_db, tmp_path, batch_size=1000)
    with pytest.raises(SimulatedCrash):
        Executor(config, now=PAGILA_NOW, live=True, probe=crash).run()
    left = payments(postgres_db)
    assert left["payment_p2022_01"] == 723  # January goes by row batches, after the partitions
    assert left.get("payment_p2022_02", 0) == (2401 if crash.point == "intent" else 0)
    Executor(config, now=PAGILA_NOW, live=True).run()
    assert payments(postgres_db)["due"] == 0
    done = [k for e in verified_entries(config) if e.outcome == "done" for k in json.loads(e.keys)]
    assert len(done) == len(set(done)) == 722 + 2401


def test_a_row_whose_clock_is_null_keeps_its_partition(
    postgres_db: Database, tmp_path: Path
) -> None:
    """A partition (by key range) holding a due row and one whose clock is NULL: the NULL one
    is never due (the row batches leave it too), so the partition is not truncated."""
    world = Scenario(postgres_db, tmp_path)
    world.accounts({"id": 1})
    with postgres_db.engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE logs (id integer PRIMARY KEY, created_at timestamp, "
                "account_id integer) PARTITION BY RANGE (id)"
            )
        )
        connection.execute(
            text("CREATE TABLE logs_low PARTITION OF logs FOR VALUES FROM (1) TO (100)")
        )
        connection.execute(text("INSERT INTO logs VALUES (1, '2023-03-01', 1), (2, NULL, 1)"))
    logs = {**EVENTS, "table": "logs", "key": ["id"]}
    config = world.config(
        [rule("purge", applies_to={"dataset": "logs"}, retain="P1Y")],
        datasets={"logs": logs},
        audit={"keys": "plain"},
    )
    Executor(config, now=NOW, live=True).run()
    with postgres_db.engine.connect() as connection:
        assert connection.execute(text("SELECT id FROM logs")).scalars().all() == [2]
    assert not any("truncated" in (e.detail or "") for e in verified_entries(config))


def test_a_hold_placed_as_a_partition_is_truncated_keeps_it(
    postgres_db: Database, tmp_path: Path
) -> None:
    """A hold on account 2 placed just as 2023's partition is truncated (on the data thread,
    before the commit): the truncate is rolled back, and the row batches, with the new holds,
    delete only account 1's rows."""
    world = partitioned(postgres_db, tmp_path)
    add(postgres_db, [(i, dt.datetime(2023, 3, i), 1 + (i == 3)) for i in range(1, 6)])
    config = config_for(world)
    assert config.holds_path is not None
    holds_path = config.holds_path
    late = {"holds": [{"id": "late", "subjects": {"account": [2]}}]}

    def place() -> None:
        replace_file(holds_path, yaml.safe_dump(late))

    Executor(config, now=NOW, live=True, probe=OnPoint("write", place)).run()
    assert present(postgres_db) == {"events_2023": {3}}
    assert not any("truncated" in (e.detail or "") for e in verified_entries(config))
