"""The Iceberg delete filter on its own: given every key of a table, the table itself deletes
only the rows that are due, unheld and not kept, whatever the judgement before the batch said."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

from retention.config import Config
from retention.stores.lake.rowfilter import delete_filter
from retention.testing import examples

from ...conftest import Database
from ...scenario import TICKETS_DATASET, Scenario, rule, utc
from ..lakeworld import iceberg_catalog, iceberg_store

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
            "records": {**TICKETS_DATASET, "store": "lake", "table": "crm.records", "personal": {}}
        },
        stores={"app": {"kind": "sql", "url": db.url}, "lake": iceberg_store(tmp_path)},
    )


def table_of(
    catalog: SqlCatalog, rows: list[tuple[int, int | None, int | None]], naive: bool
) -> Table:
    """Rows (id, account, age in days; None: no value) with `created_at` naive (UTC wall time)
    or UTC."""
    stamp = pa.timestamp("us") if naive else pa.timestamp("us", tz="UTC")
    created = [None if age is None else NOW - dt.timedelta(days=age) for _, _, age in rows]
    data = pa.table(
        {
            "id": pa.array([r[0] for r in rows], pa.int64()),
            "account_id": pa.array([r[1] for r in rows], pa.int64()),
            "created_at": pa.array(
                [c.replace(tzinfo=None) if naive and c else c for c in created], stamp
            ),
        }
    )
    catalog.create_namespace_if_not_exists("crm")
    table = catalog.create_table("crm.records", schema=data.schema)
    table.append(data)
    return table


NO_MATCH = "ignore:Delete operation did not match any records"  # pyiceberg, when none is due


@pytest.mark.filterwarnings(NO_MATCH)
@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.lists(
        st.tuples(st.integers(1, 4) | st.none(), st.integers(0, 120) | st.none()),
        min_size=1,
        max_size=20,
    ),
    held=st.sets(st.integers(1, 4), max_size=3),
    keep=st.booleans(),
    naive=st.booleans(),
    rounded=st.booleans(),
)
def test_the_filter_deletes_only_due_unheld_unkept_rows(
    sqlite_db: Database,
    tmp_path_factory: Any,
    rows: list[tuple[int | None, int | None]],
    held: set[int],
    keep: bool,
    naive: bool,
    rounded: bool,
) -> None:
    """Asked to delete every key, the filter removes exactly the rows past 30 days (past 60
    with the keep rule) of no held account, in a naive or a zoned timestamp column; a row with
    no timestamp is never deleted, a row with no subject is not held; with the clock rounded
    to the month's end, exactly the rows the store's own evaluator finds due."""
    tmp_path = tmp_path_factory.mktemp("iceberg")
    holds = {"holds": [{"id": "h", "subjects": {"account": [str(a) for a in sorted(held)]}}]}
    config = config_of(
        sqlite_db, tmp_path, holds if held else {"holds": []}, keep=keep, rounded=rounded
    )
    catalog = iceberg_catalog(tmp_path)
    try:
        keyed = [(i, account, age) for i, (account, age) in enumerate(rows)]
        table = table_of(catalog, keyed, naive)
        dataset = config.datasets["records"]
        (purge,) = [r for r in dataset.rules if r.id == "purge"]
        schema = table.schema().as_arrow()
        keys = [str(r[0]) for r in keyed]
        table.delete(delete_filter(keys, purge, dataset, NOW, config.holds_as_of(NOW), schema))
        left = set(catalog.load_table("crm.records").scan().to_arrow()["id"].to_pylist())
    finally:
        catalog.engine.dispose()
    floor = 60 if keep else 30
    due = dataset.due_set(purge.after, purge.delay, NOW)
    expected = {
        i
        for i, account, age in keyed
        if age is None or age < floor or account in held or NOW - dt.timedelta(days=age) not in due
    }
    assert left == expected


@pytest.mark.filterwarnings(NO_MATCH)
def test_a_freeze_or_an_unscoped_hold_deletes_nothing(sqlite_db: Database, tmp_path: Path) -> None:
    """Under `freeze`, or a hold with no subject scope, the filter matches no row."""
    for index, holds in enumerate(({"freeze": True, "holds": []}, {"holds": [{"id": "all"}]})):
        directory = tmp_path / str(index)
        directory.mkdir()
        config = config_of(sqlite_db, directory, holds)
        catalog = iceberg_catalog(directory)
        try:
            table = table_of(catalog, [(1, 1, 100)], naive=False)
            dataset = config.datasets["records"]
            where = delete_filter(
                ["1"],
                dataset.rules[0],
                dataset,
                NOW,
                config.holds_as_of(NOW),
                table.schema().as_arrow(),
            )
            table.delete(where)
            assert catalog.load_table("crm.records").scan().to_arrow().num_rows == 1
        finally:
            catalog.engine.dispose()


@pytest.mark.filterwarnings(NO_MATCH)
def test_keys_an_integer_column_cannot_hold_match_nothing(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """A key such as ``abc`` never matches an integer key column (it is left out, not an
    error)."""
    config = config_of(sqlite_db, tmp_path, {"holds": []})
    catalog = iceberg_catalog(tmp_path)
    try:
        table = table_of(catalog, [(1, 1, 100), (2, 1, 100)], naive=False)
        dataset = config.datasets["records"]
        schema = table.schema().as_arrow()
        holds = config.holds_as_of(NOW)
        table.delete(delete_filter(["abc"], dataset.rules[0], dataset, NOW, holds, schema))
        table.delete(delete_filter(["abc", "2"], dataset.rules[0], dataset, NOW, holds, schema))
        assert catalog.load_table("crm.records").scan().to_arrow()["id"].to_pylist() == [1]
    finally:
        catalog.engine.dispose()
