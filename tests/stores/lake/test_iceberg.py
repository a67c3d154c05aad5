"""The Iceberg store: rows deleted by a row filter are logically deleted (a new snapshot; older
snapshots still read them) until the table's purge window has passed, and physically gone
after (older snapshots expired, the files only they reached removed: readable at no snapshot
and in no file); the audit log records both states per batch, the plan shows what is deleted
but still present and when it will be gone, held rows survive both, and a step that cannot be
done is never audited as done.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from retention.cli import app
from retention.config import Config
from retention.durations import Duration
from retention.errors import ConfigError
from retention.executor import Executor
from retention.planner import make_plan
from retention.stores.lake.iceberg import IcebergStore, window_of
from retention.testing import CrashAt, SimulatedCrash, examples, replace_file

from ...conftest import Database
from ...scenario import TICKETS_DATASET, Scenario, rule, verified_entries
from ..lakeworld import (
    DUE,
    GONE,
    HELD,
    HOLD,
    NOW,
    OLD,
    RECENT,
    RECORDS,
    facts_by_record,
    iceberg_catalog,
    iceberg_ids,
    iceberg_readable_anywhere,
    iceberg_snapshots,
    iceberg_store,
    write_iceberg,
)

TABLE = "crm.records"


def world(
    db: Database,
    tmp_path: Path,
    dataset: dict[str, Any] | None = None,
    catalog: str | None = None,
    within: str | None = None,
    **store: Any,
) -> tuple[Config, Path]:
    """Twelve records of four accounts in an Iceberg table (three snapshots), its catalog in
    SQLite (or at `catalog`), the accounts in `db`."""
    scenario = Scenario(db, tmp_path)
    scenario.accounts(*({"id": a} for a in range(1, 5)))
    lake = tmp_path / "iceberg"
    rows = [(i, 1 + i % 4, OLD if i <= 8 else RECENT) for i in RECORDS]
    write_iceberg(lake, TABLE, rows, files=3, url=catalog)
    config = scenario.config(
        [
            rule(
                "purge", applies_to={"dataset": "records"}, **({"within": within} if within else {})
            )
        ],
        holds=HOLD,
        datasets={
            "records": {
                **TICKETS_DATASET,
                "store": "lake",
                "table": TABLE,
                "personal": {},
                **(dataset or {}),
            }
        },
        stores={"app": {"kind": "sql", "url": db.url}, "lake": iceberg_store(lake, **store)},
        batch_size=3,
        audit={"keys": "plain"},
    )
    return config, lake


@contextmanager
def later(config: Config, days: int) -> Iterator[dict[str, IcebergStore]]:
    """The stores with the lake store as it will be `days` from now (the table's own clock)."""
    at = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    settings = config.settings
    store = IcebergStore("lake", settings.stores["lake"], settings, clock=lambda: at)
    try:
        yield {"lake": store}
    finally:
        store.close()


def run(config: Config, *, days: int | None = None, **kwargs: Any) -> Any:
    """A live run now, or as the table's clock will be `days` from now."""
    if days is None:
        return Executor(config, now=NOW, live=True, **kwargs).run()
    with later(config, days) as stores:
        return Executor(config, now=NOW, live=True, stores=stores, **kwargs).run()


def anywhere(lake: Path, records: set[int]) -> set[int]:
    """Which of `records` some snapshot or some file in the warehouse still holds."""
    return {i for i in records if iceberg_readable_anywhere(lake, TABLE, i)}


def test_deleted_rows_stay_readable_until_the_window_passes_then_are_gone_everywhere(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """Within the table's window a deleted record is gone from the current snapshot but still
    readable at an older one (logically deleted, snapshot N audited); once the window has passed
    the next run expires the older snapshots, removes their files, audits each batch as
    physically gone, and the record is readable at no snapshot and in no file. Held records are
    in the current snapshot throughout."""
    config, lake = world(sqlite_db, tmp_path)
    first = iceberg_snapshots(lake, TABLE)
    run(config)
    assert iceberg_ids(lake, TABLE) == set(RECORDS) - GONE
    assert iceberg_ids(lake, TABLE, first[-1]) >= GONE  # time travel reads them
    done = [e for e in verified_entries(config) if e.outcome == "done"]
    assert sorted(int(k) for e in done for k in json.loads(e.keys)) == sorted(GONE)
    details = {e.detail for e in done}
    assert len(details) == len(done)
    assert all("logically deleted (snapshot" in (d or "") for d in details)
    snapshots = iceberg_snapshots(lake, TABLE)
    assert all(str(s) in " ".join(d or "" for d in details) for s in snapshots[len(first) :])
    assert not [e for e in verified_entries(config) if e.outcome == "physically gone"]

    run(config, days=4)  # still inside Iceberg's default 5 days
    assert anywhere(lake, GONE) == GONE

    run(config, days=6)
    assert iceberg_ids(lake, TABLE) == set(RECORDS) - GONE
    assert anywhere(lake, GONE) == set()
    assert iceberg_ids(lake, TABLE) >= HELD
    gone = [e for e in verified_entries(config) if e.outcome == "physically gone"]
    assert [e.action for e in gone] == ["purge"] * len(done)
    assert sum(e.count or 0 for e in gone) == len(GONE)
    assert all("expired at" in (e.detail or "") for e in gone)
    assert all("files removed" in (e.detail or "") for e in gone)

    run(config, days=7)  # already gone: not audited again
    assert len([e for e in verified_entries(config) if e.outcome == "physically gone"]) == len(gone)


@pytest.mark.postgres
def test_a_catalog_in_postgresql(
    sqlite_db: Database, postgres_db: Database, tmp_path: Path
) -> None:
    """The catalog can live in PostgreSQL: the same two steps, the same audit."""
    config, lake = world(sqlite_db, tmp_path, catalog=postgres_db.url, purge_after="P1D")
    run(config)
    assert iceberg_ids(lake, TABLE) == set(RECORDS) - GONE
    assert anywhere(lake, GONE) == GONE
    run(config, days=2)
    assert anywhere(lake, GONE) == set()
    gone = [e for e in verified_entries(config) if e.outcome == "physically gone"]
    assert sum(e.count or 0 for e in gone) == len(GONE)


def test_plan_shows_deleted_records_still_present_and_when_they_will_be_gone(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """After a live run inside the window, the plan says how many deleted records the table's
    older snapshots still hold and the date they will be gone (the delete snapshot + the
    window), in `--json` and in the table even when nothing is due any more."""
    config, lake = world(sqlite_db, tmp_path, purge_after="P3D")
    assert config.path is not None and config.holds_path is not None
    replace_file(config.holds_path, "holds: []\n")
    run(config)
    (row,) = make_plan(config, NOW).rules
    assert row.due == 0
    catalog = iceberg_catalog(lake)
    deletes = catalog.load_table(TABLE).metadata.snapshots[3:]
    catalog.engine.dispose()
    last = max(s.timestamp_ms for s in deletes) / 1000
    by = (dt.datetime.fromtimestamp(last, dt.UTC) + dt.timedelta(days=3)).date().isoformat()
    assert row.extra["physically_present"] == len(DUE)
    assert row.extra["physically_gone_by"] == by
    result = CliRunner().invoke(app, ["plan", "-c", str(config.path), "--now", NOW.isoformat()])
    assert result.exit_code == 0, result.output
    printed = " ".join(result.stdout.split())
    assert f"{len(DUE)} deleted records still physically present" in printed
    assert f"gone by {by}" in printed


def test_purge_after_zero_erases_in_the_same_run(sqlite_db: Database, tmp_path: Path) -> None:
    """`purge_after: P0D` on the dataset (over the store's) erases in the run that deletes;
    what was not deleted is still there."""
    config, lake = world(sqlite_db, tmp_path, {"purge_after": "P0D"}, purge_after="P30D")
    run(config)
    assert anywhere(lake, GONE) == set()
    assert iceberg_ids(lake, TABLE) == set(RECORDS) - GONE


def test_a_crash_during_the_physical_step_is_settled_by_the_next_run(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """Killed after the physical step's intent is durable: the next run's recovery settles it
    (nothing had been expired), the run does the step, and nothing is audited twice."""
    config, lake = world(sqlite_db, tmp_path)
    run(config)
    batches = len([e for e in verified_entries(config) if e.outcome == "done"])
    with pytest.raises(SimulatedCrash):
        run(config, days=6, probe=CrashAt("intent"))
    assert anywhere(lake, GONE) == GONE  # the expiry never started
    run(config, days=6)
    assert anywhere(lake, GONE) == set()
    assert len([e for e in verified_entries(config) if e.outcome == "physically gone"]) == batches


def test_a_crash_before_the_physical_step_is_audited_is_settled_from_the_table(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """Killed after the snapshots were expired and their files removed, before the entry was
    written: recovery finds the expiry committed, the files gone, and audits each batch as
    physically gone once."""
    config, lake = world(sqlite_db, tmp_path)
    run(config)
    batches = len([e for e in verified_entries(config) if e.outcome == "done"])
    with pytest.raises(SimulatedCrash):
        run(config, days=6, probe=CrashAt("audit"))  # nothing else is due: the purge's entry
    assert anywhere(lake, GONE) == set()
    assert not [e for e in verified_entries(config) if e.outcome == "physically gone"]
    run(config, days=6)
    gone = [e for e in verified_entries(config) if e.outcome == "physically gone"]
    assert len(gone) == batches and all("interruption" in (e.detail or "") for e in gone)


def test_a_tagged_snapshot_keeps_its_rows_and_the_audit_never_says_gone(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """A tag on the snapshot before the deletes cannot be expired: its rows stay readable, so
    no delete is audited as physically gone and the run says why; the plan keeps showing them
    as still present."""
    config, lake = world(sqlite_db, tmp_path, purge_after="P1D")
    catalog = iceberg_catalog(lake)
    table = catalog.load_table(TABLE)
    assert table.metadata.current_snapshot_id is not None
    table.manage_snapshots().create_tag(table.metadata.current_snapshot_id, "audit").commit()
    catalog.engine.dispose()
    run(config)
    result = run(config, days=2)
    assert anywhere(lake, GONE) == GONE
    assert not [e for e in verified_entries(config) if e.outcome == "physically gone"]
    assert "branch or tag head" in (result.outcomes[0].message or "")
    with later(config, 2) as stores:
        (row,) = make_plan(config, NOW, stores=stores).rules
    assert row.extra["physically_present"] == len(GONE)


def test_a_file_added_from_outside_the_table_is_never_deleted(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """A data file registered with `add_files` from outside the table's location is not the
    store's to delete: after both steps it is still there, and the batch that deleted its row
    (one commit, two snapshots: the file dropped whole, another rewritten) is not audited as
    physically gone (its row can still be read from that file)."""
    config, lake = world(sqlite_db, tmp_path, purge_after="P1D")
    outside = tmp_path / "elsewhere" / "imported.parquet"
    outside.parent.mkdir()
    pq.write_table(
        pa.table(
            {
                "id": pa.array([100], pa.int64()),
                "account_id": pa.array([1], pa.int64()),
                "created_at": pa.array([OLD], pa.timestamp("us", tz="UTC")),
                "email": ["imported@example.com"],
            }
        ),
        outside,
    )
    catalog = iceberg_catalog(lake)
    catalog.load_table(TABLE).add_files([f"file://{outside}"])
    catalog.engine.dispose()
    run(config)
    assert 100 not in iceberg_ids(lake, TABLE)
    run(config, days=2)
    assert outside.exists()
    gone = [e for e in verified_entries(config) if e.outcome == "physically gone"]
    done = [e for e in verified_entries(config) if e.outcome == "done"]
    (batch,) = [e for e in done if "100" in json.loads(e.keys)]
    snapshot = (batch.detail or "").rsplit(" ", 1)[1].rstrip(")")
    assert not any(f"snapshot {snapshot}" in (e.detail or "") for e in gone)


@pytest.mark.parametrize(
    ("store", "dataset", "message"),
    [
        ({"warehouse": "s3://bucket/lake"}, {}, "s3:// is not supported"),
        ({"catalog": "not a url"}, {}, "not a database URL"),
        ({}, {"store": "app", "table": "tickets"}, "`purge_after` is for lake tables"),
    ],
)
def test_refused_configurations(
    sqlite_db: Database,
    tmp_path: Path,
    store: dict[str, Any],
    dataset: dict[str, Any],
    message: str,
) -> None:
    """An s3:// warehouse (its physical step was not tested here), a catalog that is no
    database URL, and `purge_after` on a dataset whose deletes are final are configuration
    errors naming the field."""
    scenario = Scenario(sqlite_db, tmp_path)
    with pytest.raises(ConfigError, match=message):
        scenario.config(
            [rule("purge", applies_to={"dataset": "records"})],
            datasets={
                "records": {
                    **TICKETS_DATASET,
                    "store": "lake",
                    "table": TABLE,
                    "purge_after": "P1D",
                    **dataset,
                }
            },
            stores={
                "app": {"kind": "sql", "url": sqlite_db.url},
                "lake": {**iceberg_store(tmp_path), **store},
            },
        )


def test_validate_names_a_missing_table_or_column(sqlite_db: Database, tmp_path: Path) -> None:
    """`validate` reaches the catalog and says which table or column is not there."""
    config, _ = world(sqlite_db, tmp_path, {"table": "crm.nowhere"})
    result = CliRunner().invoke(app, ["validate", "-c", str(config.path)])
    assert result.exit_code != 0
    assert "no iceberg table 'crm.nowhere'" in result.output


def test_window_of_reads_the_tables_own_property() -> None:
    """``history.expire.max-snapshot-age-ms`` is read in whole milliseconds."""
    assert window_of("432000000") == Duration(seconds=432000)
    assert window_of(" 3600000 ") == Duration(seconds=3600)
    assert window_of("soon") is None and window_of(None) is None and window_of("-5") is None


@settings(max_examples=examples(200), deadline=None)
@given(st.text() | st.integers(0, 10**15).map(str))
def test_window_of_reads_any_text_or_says_none(text: str) -> None:
    """Whatever a table's property holds, it is read as a duration or not at all (never an
    error): the store then falls back to the configured or default window."""
    found = window_of(text)
    assert found is None or isinstance(found, Duration)


def test_each_deleted_row_carries_its_subject_due_time_and_lateness(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """Every deleted row's audit entry names, per row, its account (the subject column), when
    it became due (created + 30 days) and how late it went (past created + 37 days)."""
    config, _ = world(sqlite_db, tmp_path, within="P7D")
    run(config)
    facts = facts_by_record(verified_entries(config))
    due = (OLD + dt.timedelta(days=30)).isoformat()
    late = int((NOW - OLD - dt.timedelta(days=37)).total_seconds())
    assert facts == {i: (str(1 + i % 4), due, late) for i in GONE}
