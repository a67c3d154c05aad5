"""The lake delete predicate on its own: given every key of a table, the table itself deletes only
the rows that are due, unheld and not kept, whatever the judgement before the batch said."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retention.config import Config
from retention.stores.lake.delta import delete_keys
from retention.stores.lake.predicate import NEVER, delete_predicate, guard, member
from retention.testing import examples

from ...conftest import Database
from ...scenario import TICKETS_DATASET, Scenario, rule, utc

NOW = utc("2026-06-01 00:00:00")


def config_of(db: Database, tmp_path: Path, holds: dict[str, Any], **fields: Any) -> Config:
    after: Any = "record.created"
    if fields.get("rounded"):
        after = {"event": "record.created", "round_to": "month_end"}
    rules = [rule("purge", applies_to={"dataset": "records"}, retain="P30D", after=after)]
    if fields.get("keep"):
        rules.append(rule("min", applies_to={"dataset": "records"}, retain="P60D", action="keep"))
    return Scenario(db, tmp_path).config(
        rules,
        holds=holds,
        datasets={
            "records": {**TICKETS_DATASET, "store": "lake", "table": "records", "personal": {}}
        },
        stores={
            "app": {"kind": "sql", "url": db.url},
            "lake": {"kind": "delta", "root": str(tmp_path / "lake")},
        },
    )


def table_of(path: Path, rows: list[tuple[int, int, int]], naive: bool) -> DeltaTable:
    """Rows (id, account, age in days) with `created_at` naive (UTC wall time) or UTC."""
    stamp = pa.timestamp("us") if naive else pa.timestamp("us", tz="UTC")
    created = [NOW - dt.timedelta(days=age) for _, _, age in rows]
    write_deltalake(
        str(path),
        pa.table(
            {
                "id": pa.array([r[0] for r in rows], pa.int64()),
                "account_id": pa.array([r[1] for r in rows], pa.int64()),
                "created_at": pa.array(
                    [c.replace(tzinfo=None) if naive else c for c in created], stamp
                ),
            }
        ),
        mode="overwrite",
    )
    return DeltaTable(str(path))


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    ages=st.lists(st.integers(0, 120), min_size=1, max_size=20),
    held=st.sets(st.integers(1, 4), max_size=3),
    keep=st.booleans(),
    naive=st.booleans(),
    via_merge=st.booleans(),
    rounded=st.booleans(),
)
def test_the_predicate_deletes_only_due_unheld_unkept_rows(
    sqlite_db: Database,
    tmp_path_factory: Any,
    ages: list[int],
    held: set[int],
    keep: bool,
    naive: bool,
    via_merge: bool,
    rounded: bool,
) -> None:
    """Asked to delete every key, the predicate (or the store's merge of the keys with the same
    condition) removes exactly the rows past 30 days (past 60 with the keep rule), of no held
    account, in a naive or a zoned timestamp column; with the clock rounded to the month's end,
    exactly the rows the store's own evaluator finds due."""
    tmp_path = tmp_path_factory.mktemp("lake")
    holds = {"holds": [{"id": "h", "subjects": {"account": [str(a) for a in sorted(held)]}}]}
    config = config_of(
        sqlite_db, tmp_path, holds if held else {"holds": []}, keep=keep, rounded=rounded
    )
    rows = [(i, 1 + i % 4, age) for i, age in enumerate(ages)]
    table = table_of(tmp_path / "lake" / "records", rows, naive)
    dataset = config.datasets["records"]
    (purge,) = [r for r in dataset.rules if r.id == "purge"]
    schema = table.to_pyarrow_dataset().schema
    keys = [str(r[0]) for r in rows]
    holds_now = config.holds_as_of(NOW)
    if via_merge:
        delete_keys(table, dataset, keys, guard(purge, dataset, NOW, holds_now, schema), schema)
    else:
        table.delete(delete_predicate(keys, purge, dataset, NOW, holds_now, schema))
    left = set(DeltaTable(str(tmp_path / "lake" / "records")).to_pyarrow_table()["id"].to_pylist())
    floor = 60 if keep else 30
    due = dataset.due_set(purge.after, purge.delay, NOW)
    expected = {
        i
        for i, account, age in rows
        if age < floor or account in held or NOW - dt.timedelta(days=age) not in due
    }
    assert left == expected


def test_a_freeze_or_an_unscoped_hold_deletes_nothing(sqlite_db: Database, tmp_path: Path) -> None:
    """Under `freeze`, or a hold with no subject scope, the predicate matches no row."""
    for holds in ({"freeze": True, "holds": []}, {"holds": [{"id": "all"}]}):
        config = config_of(sqlite_db, tmp_path, holds)
        table = table_of(tmp_path / "lake" / "records", [(1, 1, 100)], naive=False)
        dataset = config.datasets["records"]
        schema = table.to_pyarrow_dataset().schema
        predicate = delete_predicate(
            ["1"], dataset.rules[0], dataset, NOW, config.holds_as_of(NOW), schema
        )
        assert NEVER in predicate


def test_ids_that_an_integer_column_cannot_hold_are_left_out() -> None:
    """A hold id such as ``abc`` never matches an integer column, and quotes in text are
    escaped: the predicate names only values the column can hold."""
    assert member("account_id", ["abc", "5"], pa.int64()) == '"account_id" IN (5)'
    assert member("account_id", ["abc"], pa.int64()) is None
    assert member('na"me', ["o'brien"], pa.string()) == "\"na\"\"me\" IN ('o''brien')"


def test_the_predicate_rounds_the_clock_like_the_judgement(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """A rule rounded to year_end: the table deletes a row of 2025 one year after the end of
    2025, not one year after its own date (the re-check agrees with the evaluator)."""
    rounded = rule(
        "purge",
        applies_to={"dataset": "records"},
        after={"event": "record.created", "round_to": "year_end"},
        retain="P1Y",
    )
    config = Scenario(sqlite_db, tmp_path).config(
        [rounded],
        datasets={"records": {**TICKETS_DATASET, "store": "lake", "table": "records"}},
        stores={
            "app": {"kind": "sql", "url": sqlite_db.url},
            "lake": {"kind": "delta", "root": str(tmp_path / "lake")},
        },
    )
    dataset = config.datasets["records"]
    created = pa.array([dt.datetime(2025, 3, 1, tzinfo=dt.UTC)], pa.timestamp("us", tz="UTC"))
    schema = pa.table({"id": pa.array([1], pa.int64()), "created_at": created}).schema
    for now, expected in ((utc("2026-12-31 23:59:59"), 1), (utc("2027-01-01 00:00:00"), 0)):
        table = pa.table({"id": pa.array([1], pa.int64()), "created_at": created})
        path = tmp_path / f"t{expected}"
        write_deltalake(str(path), table, mode="overwrite")
        delta = DeltaTable(str(path))
        holds = config.holds_as_of(now)
        predicate = delete_predicate(["1"], dataset.rules[0], dataset, now, holds, schema)
        delta.delete(predicate)
        assert DeltaTable(str(path)).to_pyarrow_table().num_rows == expected
