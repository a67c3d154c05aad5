"""The Delta Lake store: rows deleted by predicate are logically deleted (a new table version,
still readable by time travel) until the table's purge window has passed, and physically gone
(vacuumed, readable at no version) after; the audit log records both states per batch, the
plan shows what is deleted but still present and when it will be gone, held rows survive both.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from retention.cli import app
from retention.config import Config
from retention.durations import Duration
from retention.errors import ConfigError
from retention.executor import Executor
from retention.planner import make_plan
from retention.stores.lake.delta import DeltaStore, window_of
from retention.testing import CrashAt, SimulatedCrash, examples, replace_file
from retention.validate import check_stores

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
    delta_s3_options,
    delta_s3_store,
    facts_by_record,
    ids_at,
    readable_anywhere,
    write_records,
)
from ..objectworld import s3_client


@dataclass(frozen=True)
class Lake:
    """Where the tests' tables are: a directory, or a bucket of a moto server."""

    root: str
    store: dict[str, Any]
    options: dict[str, str] | None = None


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    """A root for delta tables in a directory, and under ``s3://`` on a moto server."""
    if request.param == "local":
        root = str(tmp_path / "lake")
        return Lake(root, {"kind": "delta", "root": root})
    endpoint = request.getfixturevalue("moto_process_endpoint")
    bucket = f"d-{uuid.uuid4().hex[:16]}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    root = f"s3://{bucket}/lake"
    return Lake(root, delta_s3_store(root, endpoint), delta_s3_options(endpoint))


def world(
    db: Database,
    tmp_path: Path,
    dataset: dict[str, Any] | None = None,
    at: Lake | None = None,
    within: str | None = None,
    **store: Any,
) -> tuple[Config, str]:
    scenario = Scenario(db, tmp_path)
    scenario.accounts(*({"id": a} for a in range(1, 5)))
    at = at or Lake(str(tmp_path / "lake"), {"kind": "delta", "root": str(tmp_path / "lake")})
    rows = [(i, 1 + i % 4, OLD if i <= 8 else RECENT) for i in RECORDS]
    write_records(f"{at.root}/records", rows, files=3, options=at.options)
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
                "table": "records",
                "personal": {},
                **(dataset or {}),
            }
        },
        stores={
            "app": {"kind": "sql", "url": db.url},
            "lake": {**at.store, **store},
        },
        batch_size=3,
        audit={"keys": "plain"},
    )
    return config, f"{at.root}/records"


def later(config: Config, days: int) -> DeltaStore:
    """The lake store as it will be `days` from now (the table's own clock)."""
    at = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    return DeltaStore("lake", config.settings.stores["lake"], config.settings, clock=lambda: at)


def run(config: Config, **kwargs: Any) -> Any:
    return Executor(config, now=NOW, live=True, **kwargs).run()


def test_deleted_rows_stay_readable_until_the_window_passes_then_are_gone_everywhere(
    sqlite_db: Database, tmp_path: Path, lake: Lake
) -> None:
    """Within the table's window a deleted record is gone from the latest version but still
    readable at an older one (logically deleted, version N audited); once the window has passed
    the next run vacuums it, audits each batch as physically gone, and the record is readable at
    no version. Held records are in the latest version throughout. In a directory and on S3."""
    config, table = world(sqlite_db, tmp_path, at=lake)
    options = lake.options

    def ids(version: int | None = None) -> set[int] | None:
        return ids_at(table, version, options)

    def readable(record: int) -> bool:
        return readable_anywhere(table, record, options)

    run(config)
    assert ids() == set(RECORDS) - GONE
    assert all(readable(i) for i in GONE)
    done = [e for e in verified_entries(config) if e.outcome == "done"]
    assert sorted(int(k) for e in done for k in json.loads(e.keys)) == sorted(GONE)
    versions = {e.detail for e in done}
    assert len(versions) == len(done) and all("logically deleted (version" in v for v in versions)
    assert not [e for e in verified_entries(config) if e.outcome == "physically gone"]

    run(config, stores={"lake": later(config, 6)})  # still inside delta's default 7 days
    assert all(readable(i) for i in GONE)

    run(config, stores={"lake": later(config, 8)})
    assert ids() == set(RECORDS) - GONE
    assert not any(readable(i) for i in GONE)
    assert all(i in (ids() or set()) for i in HELD)
    gone = [e for e in verified_entries(config) if e.outcome == "physically gone"]
    assert [e.action for e in gone] == ["purge"] * len(done)
    assert sum(e.count for e in gone) == len(GONE)
    assert all("vacuum at" in (e.detail or "") for e in gone)
    assert all("files removed" in (e.detail or "") for e in gone)

    run(config, stores={"lake": later(config, 9)})  # already gone: not audited again
    assert len([e for e in verified_entries(config) if e.outcome == "physically gone"]) == len(gone)


def test_plan_shows_deleted_records_still_present_and_when_they_will_be_gone(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """After a live run inside the window, the plan says how many deleted records the table's
    old files still hold and the date they will be gone (the delete commit + the window)."""
    config, table = world(sqlite_db, tmp_path, purge_after="P3D")
    run(config)
    (row,) = make_plan(config, NOW).rules
    assert row.actionable == 0
    commit = DeltaTable(str(table)).history()[0]["timestamp"] / 1000
    by = (dt.datetime.fromtimestamp(commit, dt.UTC) + dt.timedelta(days=3)).date().isoformat()
    assert any(f"{len(GONE)} deleted records still physically present" in n for n in row.notes)
    assert any(f"gone by {by}" in n for n in row.notes)


def test_purge_after_zero_erases_in_the_same_run(
    sqlite_db: Database, tmp_path: Path, lake: Lake
) -> None:
    """`purge_after: P0D` on the dataset (over the store's) vacuums in the run that deletes."""
    config, table = world(sqlite_db, tmp_path, {"purge_after": "P0D"}, lake, purge_after="P30D")
    run(config)
    assert not any(readable_anywhere(table, i, lake.options) for i in GONE)
    kept = HELD | (set(RECORDS) - DUE)
    assert all(readable_anywhere(table, i, lake.options) for i in kept)


def test_a_crash_during_the_physical_step_is_settled_by_the_next_run(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """Killed after the vacuum's intent is durable: the next run's recovery settles it (the
    batches audited as gone once their files are), and nothing is audited twice."""
    config, table = world(sqlite_db, tmp_path)
    run(config)
    batches = len([e for e in verified_entries(config) if e.outcome == "done"])
    with pytest.raises(SimulatedCrash):
        run(config, stores={"lake": later(config, 8)}, probe=CrashAt("intent"))
    assert all(readable_anywhere(table, i) for i in GONE)  # the vacuum never started
    run(config, stores={"lake": later(config, 8)})
    assert not any(readable_anywhere(table, i) for i in GONE)
    gone = [e for e in verified_entries(config) if e.outcome == "physically gone"]
    assert len(gone) == batches


@pytest.mark.parametrize(
    ("store", "dataset", "message"),
    [
        ({"root": "gs://bucket/lake"}, {}, "gs:// is not supported"),
        ({"root": "s3:///lake"}, {}, "names no bucket"),
        ({"access_key_id": "AKIA"}, {}, "applies to an s3:// root only"),
        (
            {"root": "s3://bucket/lake", "access_key_id": "AKIA"},
            {},
            "access_key_id and secret_access_key go together",
        ),
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
    """A root other than a directory or s3://BUCKET/PREFIX, S3 settings on a local root, half
    a key pair, and `purge_after` on a dataset whose deletes are final are configuration
    errors naming the field."""
    scenario = Scenario(sqlite_db, tmp_path)
    with pytest.raises(ConfigError, match=message):
        scenario.config(
            [rule("purge", applies_to={"dataset": "records"})],
            datasets={
                "records": {
                    **TICKETS_DATASET,
                    "store": "lake",
                    "table": "records",
                    "purge_after": "P1D",
                    **dataset,
                }
            },
            stores={
                "app": {"kind": "sql", "url": sqlite_db.url},
                "lake": {"kind": "delta", "root": str(tmp_path), **store},
            },
        )


def test_window_of_reads_the_tables_own_property() -> None:
    """``delta.deletedFileRetentionDuration`` is read in delta's ``interval N unit`` form."""
    assert str(window_of("interval 7 days")) == "P7D"
    assert str(window_of("interval 2 weeks")) == "P14D"
    assert str(window_of("interval 36 hours")) == "PT36H"
    assert window_of("soon") is None and window_of(None) is None


@settings(max_examples=examples(200), deadline=None)
@given(st.text() | st.from_regex(r"\s*interval\s+\d+\s+\w+\s*", fullmatch=True))
def test_window_of_reads_any_text_or_says_none(text: str) -> None:
    """Whatever a table's property holds, it is read as a duration or not at all (never an
    error): the store then falls back to the configured or default window."""
    found = window_of(text)
    assert found is None or isinstance(found, Duration)


def test_plan_output_shows_deleted_records_still_present_when_nothing_is_due(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """`retention plan` prints the deleted-but-still-present line after the run that deleted
    them, when the rule has nothing due any more (the table's notes were only printed for rows
    with something due)."""
    config, _ = world(sqlite_db, tmp_path)
    assert config.path is not None and config.holds_path is not None
    replace_file(config.holds_path, "holds: []\n")
    run(config)
    (row,) = make_plan(config, NOW).rules
    assert row.due == 0
    result = CliRunner().invoke(app, ["plan", "-c", str(config.path), "--now", NOW.isoformat()])
    assert result.exit_code == 0, result.output
    assert f"{len(DUE)} deleted records still physically present" in result.stdout


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


def test_a_batch_settled_after_a_crash_carries_the_facts_its_intent_kept(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """Killed as the first batch's audit entry is written, its delete commit made: the next
    run settles the batch from the table and audits its rows with the facts its intent kept
    (account, due time, lateness); the rest is deleted and audited as usual, each row once."""
    config, _ = world(sqlite_db, tmp_path, within="P7D")
    killed = Executor(config, now=NOW, live=True, probe=CrashAt("audit"))
    with pytest.raises(SimulatedCrash):
        killed.run()
    assert run(config).recovered == 1
    done = [e for e in verified_entries(config) if e.outcome == "done"]
    (settled,) = [e for e in done if e.run_id == killed.run_id]
    assert "interruption" in (settled.detail or "")
    due = (OLD + dt.timedelta(days=30)).isoformat()
    late = int((NOW - OLD - dt.timedelta(days=37)).total_seconds())
    keys = [int(k) for e in done for k in json.loads(e.keys)]
    assert sorted(keys) == sorted(GONE)
    assert settled.facts() == [(str(1 + int(k) % 4), due, late) for k in json.loads(settled.keys)]


def test_a_subject_lookup_finds_a_tables_rows_and_the_entries_that_deleted_them(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """`retention subject account 2`: before the run its held rows are held and its recent
    one not yet due; account 3's due rows are due, and after the run they are gone, the
    lookup citing the entries (run, rule, how many of its rows, how many late) that deleted
    them."""
    from retention.subjects import DUE as DUE_NOW
    from retention.subjects import HELD, PENDING, lookup

    config, _ = world(sqlite_db, tmp_path, within="P7D")
    mine = {i for i in RECORDS if 1 + i % 4 == 3}
    before = lookup(config, "account", "3", NOW)
    (view,) = before.datasets
    assert view.via == "subject column account_id" and view.records == len(mine)
    assert [(g.state, g.records) for g in view.groups] == [
        (DUE_NOW, len(mine & DUE)),
        (PENDING, len(mine - DUE)),
    ]
    held = lookup(config, "account", "2", NOW).datasets[0]
    assert [g.state for g in held.groups] == [HELD, PENDING]
    result = run(config)
    after = lookup(config, "account", "3", NOW).datasets[0]
    assert after.records == len(mine - DUE) and after.due == 0
    assert sum(a.records or 0 for a in after.history) == len(mine & DUE)
    assert {(a.run_id, a.rule) for a in after.history} == {(result.run_id, "purge")}
    assert sum(a.late or 0 for a in after.history) == len(mine & DUE)


def test_validate_names_a_table_missing_from_its_bucket(
    sqlite_db: Database, tmp_path: Path, moto_process_endpoint: str
) -> None:
    """A delta dataset whose table is not in the bucket is reported by `validate` at the
    dataset, as unreachable (exit 3), and names no credential."""
    scenario = Scenario(sqlite_db, tmp_path)
    bucket = f"d-{uuid.uuid4().hex[:16]}"
    s3_client(moto_process_endpoint).create_bucket(Bucket=bucket)
    config = scenario.config(
        [rule("purge", applies_to={"dataset": "records"})],
        datasets={"records": {**TICKETS_DATASET, "store": "lake", "table": "records"}},
        stores={
            "app": {"kind": "sql", "url": sqlite_db.url},
            "lake": delta_s3_store(f"s3://{bucket}/lake", moto_process_endpoint),
        },
    )
    (problem,) = check_stores(config)
    assert problem.where == "datasets.records" and problem.unreachable
    assert "records" in problem.message and "testing" not in problem.message
