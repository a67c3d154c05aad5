"""Anonymize rules on lake tables (Delta in a directory and on S3, Iceberg): one commit per
batch sets the due, unheld rows' personal columns to exactly the values a SQL store writes;
the original values stay readable at older versions (snapshots) until the physical step, and
at none after it; held rows keep their values through both; a strategy a column cannot hold is
refused by `validate`, naming the file, line and field.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from retention.config import Config
from retention.executor import Executor
from retention.explain import explain
from retention.planner import make_plan
from retention.stores.base import Store
from retention.stores.lake.delta import DeltaStore
from retention.stores.lake.iceberg import IcebergStore
from retention.testing import CrashAt, SimulatedCrash, examples
from retention.validate import check_stores

from ...conftest import Database
from ...scenario import TICKETS, TICKETS_DATASET, Scenario, rule, verified_entries
from ..lakeworld import (
    DUE,
    HELD,
    HOLD,
    NOW,
    OLD,
    RECENT,
    RECORDS,
    delta_column,
    delta_s3_options,
    delta_s3_store,
    delta_versions,
    iceberg_column,
    iceberg_snapshots,
    iceberg_store,
    in_parquet_files,
    write_iceberg,
    write_records,
)
from ..objectworld import s3_client

CHANGED = DUE - HELD
ROWS = [(i, 1 + i % 4, OLD if i <= 8 else RECENT) for i in RECORDS]


def email(record: int) -> str:
    return f"person{record}@example.com"  # as the lake helpers write it


@dataclass
class Lake:
    """One lake table of the twelve records: its store config, the dataset's table, the
    emails each version (snapshot) holds, and the store as its clock will be later."""

    name: str
    store: dict[str, Any]
    table: str
    emails: Callable[[Any], dict[int, Any] | None]  # version (None: latest) -> id -> email
    versions: Callable[[], list[Any]]
    later: Callable[[Config, int], Store]
    files: Path | None = None  # where the table's data files are, when local


def _at(days: int) -> Callable[[], dt.datetime]:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    return lambda: moment


def _delta(tmp_path: Path, endpoint: str | None) -> Lake:
    root = str(tmp_path / "lake")
    store: dict[str, Any] = {"kind": "delta", "root": root}
    options = None
    if endpoint is not None:
        bucket = f"a-{uuid.uuid4().hex[:16]}"
        s3_client(endpoint).create_bucket(Bucket=bucket)
        root = f"s3://{bucket}/lake"
        store, options = delta_s3_store(root, endpoint), delta_s3_options(endpoint)
    uri = f"{root}/records"
    write_records(uri, ROWS, files=3, options=options)
    return Lake(
        "delta" if endpoint is None else "delta-s3",
        store,
        "records",
        lambda version: delta_column(uri, "email", version, options),
        lambda: list(range(DeltaTable(uri, storage_options=options).version() + 1)),
        lambda config, days: DeltaStore(
            "lake", config.settings.stores["lake"], config.settings, clock=_at(days)
        ),
        None if endpoint is not None else Path(uri),
    )


def _iceberg(tmp_path: Path) -> Lake:
    lake = tmp_path / "iceberg"
    write_iceberg(lake, "crm.records", ROWS, files=3)
    return Lake(
        "iceberg",
        iceberg_store(lake),
        "crm.records",
        lambda snapshot: iceberg_column(lake, "crm.records", "email", snapshot),
        lambda: list(iceberg_snapshots(lake, "crm.records")),
        lambda config, days: IcebergStore(
            "lake", config.settings.stores["lake"], config.settings, clock=_at(days)
        ),
        lake / "warehouse",
    )


@pytest.fixture(params=["delta", "delta-s3", "iceberg"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    if request.param == "iceberg":
        return _iceberg(tmp_path)
    endpoint = request.getfixturevalue("moto_process_endpoint") if "s3" in request.param else None
    return _delta(tmp_path, endpoint)


def world(
    db: Database, tmp_path: Path, lake: Lake, strategy: Any = "hash", **dataset: Any
) -> Config:
    """The lake table and, on `db`, a SQL table of the same records and emails, each with an
    anonymize rule of `strategy` on its emails."""
    scenario = Scenario(db, tmp_path)
    scenario.accounts(*({"id": a} for a in range(1, 5)))
    scenario.tickets(
        *(
            {"id": i, "account_id": account, "created_at": created.replace(tzinfo=None)}
            | {"email": email(i)}
            for i, account, created in ROWS
        )
    )
    anonymize = {"action": "anonymize", "anonymize": {"email": strategy}}
    return scenario.config(
        [
            rule("lake", applies_to={"dataset": "records"}, **anonymize),
            rule("sql", applies_to={"dataset": "tickets"}, **anonymize),
        ],
        holds=HOLD,
        datasets={
            "records": {
                **TICKETS_DATASET,
                "store": "lake",
                "table": lake.table,
                "personal": {"email": "email"},
                **dataset,
            },
            "tickets": TICKETS_DATASET,
        },
        stores={"app": {"kind": "sql", "url": db.url}, "lake": lake.store},
        batch_size=3,
        audit={"keys": "plain"},
    )


def run(config: Config, stores: dict[str, Store] | None = None) -> Any:
    return Executor(config, now=NOW, live=True, stores=stores).run()


@pytest.fixture
def later(lake: Lake) -> Iterator[Callable[[Config, int], dict[str, Store]]]:
    """The stores with the lake store as its clock will be `days` from now; closed after."""
    opened: list[Store] = []

    def make(config: Config, days: int) -> dict[str, Store]:
        opened.append(lake.later(config, days))
        return {"lake": opened[-1]}

    yield make
    for store in opened:
        store.close()


def sql_emails(db: Database) -> dict[int, Any]:
    with db.engine.connect() as connection:
        return dict(connection.execute(select(TICKETS.c.id, TICKETS.c.email)).all())  # type: ignore[arg-type]


def originals_readable(lake: Lake, records: set[int]) -> set[int]:
    """Which of `records` some version (snapshot) of the table, or a data file left in its
    folder, still shows with its original email."""
    found = set()
    for version in lake.versions():
        emails = lake.emails(version) or {}
        found |= {i for i in records if emails.get(i) == email(i)}
    if lake.files is not None:
        found |= {i for i in records if in_parquet_files(lake.files, "email", email(i))}
    return found


def test_anonymized_values_stay_readable_at_old_versions_until_the_physical_step(
    sqlite_db: Database, tmp_path: Path, lake: Lake, later: Any
) -> None:
    """A run sets the due, unheld rows' emails to exactly what the SQL store writes for the
    same emails, one commit per batch audited with its version; an older version still shows
    the original emails (logically anonymized) until the window has passed, after which the
    physical step leaves no version (and no file) that does; held and recent rows keep their
    emails through both steps, and nothing is done twice."""
    config = world(sqlite_db, tmp_path, lake, purge_after="P3D")
    run(config)
    latest = lake.emails(None)
    assert latest is not None
    sql = sql_emails(sqlite_db)
    assert {i: latest[i] for i in CHANGED} == {i: sql[i] for i in CHANGED}
    assert all(str(latest[i]).startswith("h:") for i in CHANGED)
    assert all(latest[i] == email(i) for i in set(RECORDS) - CHANGED)
    done = [e for e in verified_entries(config) if e.outcome == "done" and e.dataset == "records"]
    assert sorted(int(k) for e in done for k in json.loads(e.keys)) == sorted(CHANGED)
    assert all("anonymized (" in (e.detail or "") for e in done)
    assert originals_readable(lake, CHANGED) == CHANGED

    (row,) = [r for r in make_plan(config, NOW).rules if r.rule == "lake"]
    assert row.actionable == 0 and row.done == len(CHANGED)
    (verdict,) = explain(config, "records", "3", NOW).rules
    assert verdict.status == "already anonymized"
    assert any("original values still physically present" in n for n in row.notes)

    run(config, later(config, 1))  # inside the window: nothing erased yet
    assert originals_readable(lake, CHANGED) == CHANGED

    run(config, later(config, 4))
    assert originals_readable(lake, CHANGED) == set()
    latest = lake.emails(None)
    assert latest is not None
    assert {i: latest[i] for i in CHANGED} == {i: sql[i] for i in CHANGED}
    assert all(latest[i] == email(i) for i in set(RECORDS) - CHANGED)
    assert originals_readable(lake, set(RECORDS) - CHANGED) == set(RECORDS) - CHANGED
    gone = [e for e in verified_entries(config) if e.outcome == "physically gone"]
    assert gone and sum(e.count or 0 for e in gone) == len(CHANGED)
    assert all("original values" in (e.detail or "") for e in gone)

    again = run(config, later(config, 5))
    acted = [o.acted for o in again.outcomes if o.dataset == "records"]
    assert acted == [0]
    assert len([e for e in verified_entries(config) if e.outcome == "physically gone"]) == len(gone)


@pytest.mark.parametrize(
    "strategy",
    ["email_domain", "mask", "redact", "null", {"strategy": "redact", "token": "gone"}],
)
def test_every_text_strategy_writes_what_the_sql_store_writes(
    sqlite_db: Database, tmp_path: Path, strategy: Any
) -> None:
    """Each strategy a text column can hold gives a Delta row the SQL row's value."""
    lake = _delta(tmp_path, None)
    config = world(sqlite_db, tmp_path, lake, strategy)
    run(config)
    latest = lake.emails(None)
    assert latest is not None
    sql = sql_emails(sqlite_db)
    assert {i: latest[i] for i in CHANGED} == {i: sql[i] for i in CHANGED}
    assert all(latest[i] != email(i) for i in CHANGED)


@pytest.mark.parametrize("backend", ["delta", "iceberg"])
def test_validate_refuses_a_strategy_the_column_cannot_hold(
    sqlite_db: Database, tmp_path: Path, backend: str
) -> None:
    """`hash` on an integer column cannot be done on a lake table: validate names the rule's
    field, its file and line; the run refuses it before writing anything."""
    lake = _iceberg(tmp_path) if backend == "iceberg" else _delta(tmp_path, None)
    scenario = Scenario(sqlite_db, tmp_path)
    scenario.accounts(*({"id": a} for a in range(1, 5)))
    config = scenario.config(
        [
            rule(
                "lake",
                applies_to={"dataset": "records"},
                action="anonymize",
                anonymize={"account": "hash"},
            )
        ],
        datasets={
            "records": {
                **TICKETS_DATASET,
                "store": "lake",
                "table": lake.table,
                "personal": {"account": "account_id"},
            }
        },
        stores={"app": {"kind": "sql", "url": sqlite_db.url}, "lake": lake.store},
    )
    (problem,) = check_stores(config)
    assert problem.where == "rule lake: anonymize.account"
    assert "needs a string column" in problem.message
    assert problem.file is not None and problem.line is not None
    before = lake.emails(None)
    result = run(config)
    (outcome,) = result.outcomes
    assert outcome.status != "ok" and outcome.acted == 0
    assert "anonymize.account" in str(outcome.as_dict())
    assert lake.emails(None) == before


@settings(
    max_examples=examples(8),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    held=st.sets(st.integers(1, 4)),
    old=st.sets(st.sampled_from(list(RECORDS))),
)
def test_held_and_undue_rows_keep_their_values_through_both_steps(
    sqlite_db: Database, tmp_path_factory: pytest.TempPathFactory, held: set[int], old: set[int]
) -> None:
    """Whatever accounts are held and whichever records are old, an anonymize run with the
    physical step in the same run (``purge_after: P0D``) changes exactly the old rows of
    unheld accounts, whose original emails no version shows after it; every other row keeps
    its email at the latest version."""
    directory = tmp_path_factory.mktemp("anon")
    rows = [(i, 1 + i % 4, OLD if i in old else RECENT) for i in RECORDS]
    uri = directory / "lake" / "records"
    write_records(uri, rows, files=2)
    scenario = Scenario(sqlite_db, directory)
    scenario.clear()
    scenario.accounts(*({"id": a} for a in range(1, 5)))
    holds = {"holds": [{"id": "case", "subjects": {"account": [str(a) for a in sorted(held)]}}]}
    config = scenario.config(
        [
            rule(
                "lake",
                applies_to={"dataset": "records"},
                action="anonymize",
                anonymize={"email": "hash"},
            )
        ],
        holds=holds if held else {"holds": []},
        datasets={
            "records": {
                **TICKETS_DATASET,
                "store": "lake",
                "table": "records",
                "personal": {"email": "email"},
                "purge_after": "P0D",
            }
        },
        stores={
            "app": {"kind": "sql", "url": sqlite_db.url},
            "lake": {"kind": "delta", "root": str(directory / "lake")},
        },
        batch_size=4,
        audit={"keys": "plain"},
    )
    run(config)
    latest = delta_column(uri, "email")
    assert latest is not None
    changed = {i for i in RECORDS if latest[i] != email(i)}
    assert changed == {i for i in old if 1 + i % 4 not in held}
    for version in delta_versions(uri):  # the originals of what changed: at no version
        emails = delta_column(uri, "email", version) or {}
        assert not {i for i in changed if emails.get(i) == email(i)}


def test_a_crash_at_the_commit_point_is_settled_by_the_next_run(
    sqlite_db: Database, tmp_path: Path, lake: Lake
) -> None:
    """Killed after an anonymize batch's intent is durable: the next run settles it from the
    table (its keys audited once if the commit happened), finishes the rest, and every due
    unheld row is audited exactly once."""
    config = world(sqlite_db, tmp_path, lake)
    with pytest.raises(SimulatedCrash):
        run_with(config, probe=CrashAt("intent", 2))
    run(config)
    latest = lake.emails(None)
    assert latest is not None
    assert {i for i in RECORDS if latest[i] != email(i)} == CHANGED
    done = [e for e in verified_entries(config) if e.outcome == "done" and e.dataset == "records"]
    keys = [int(k) for e in done for k in json.loads(e.keys)]
    assert sorted(keys) == sorted(CHANGED)


def run_with(config: Config, **kwargs: Any) -> Any:
    return Executor(config, now=NOW, live=True, **kwargs).run()


def test_rows_a_delete_rule_takes_are_not_anonymized_first(
    sqlite_db: Database, tmp_path: Path, lake: Lake
) -> None:
    """As on SQL, an anonymize rule leaves the rows a delete rule of the dataset deletes now
    (superseded, counted as such in the plan) and changes only the others it makes due."""
    scenario = Scenario(sqlite_db, tmp_path)
    scenario.accounts(*({"id": a} for a in range(1, 5)))
    anonymize = {"action": "anonymize", "anonymize": {"email": "hash"}}
    config = scenario.config(
        [
            rule("lake", applies_to={"dataset": "records"}, retain="P1D", **anonymize),
            rule("purge", applies_to={"dataset": "records"}),
        ],
        holds=HOLD,
        datasets={
            "records": {
                **TICKETS_DATASET,
                "store": "lake",
                "table": lake.table,
                "personal": {"email": "email"},
            }
        },
        stores={"app": {"kind": "sql", "url": sqlite_db.url}, "lake": lake.store},
        batch_size=3,
        audit={"keys": "plain"},
    )
    rows = {r.rule: r for r in make_plan(config, NOW).rules}
    assert rows["lake"].superseded == len(CHANGED)
    (taken,) = [v for v in explain(config, "records", "3", NOW).rules if v.rule == "lake"]
    assert taken.status == "superseded by a delete rule"
    recent = {i for i in RECORDS if i not in DUE and 1 + i % 4 != 2}  # unheld, not deleted
    assert rows["lake"].actionable == len(recent)
    run(config)
    latest = lake.emails(None)
    assert latest is not None
    assert set(latest) == set(RECORDS) - CHANGED
    assert {i for i in latest if latest[i] != email(i)} == recent
