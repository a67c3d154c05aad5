"""The Store contract, one suite over every backend: SQLite, DuckDB, PostgreSQL, MariaDB, S3 on a
moto server, a file tree, a Delta table (in a directory and in a moto bucket) and an Iceberg
table.

Each backend holds the same world — twelve records of four accounts, eight of them long due,
four recent — and must plan, delete, re-read holds between batches, change nothing in a dry
run, survive a crash at its commit point (the next run settles it), and do nothing on a second
run, in exactly the same way. Records are named by number; each backend spells them its own way
(a row id, an object key, a path).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from retention.audit import AuditLog
from retention.config import Config
from retention.executor import Executor
from retention.planner import make_plan
from retention.runevents import RUN_ACTION
from retention.statedb import open_state
from retention.testing import CrashAt, OnPoint, SimulatedCrash, replace_file

from ..conftest import Database
from ..scenario import TICKETS, TICKETS_DATASET, Scenario, rule, utc
from .lakeworld import (
    delta_s3_options,
    delta_s3_store,
    iceberg_ids,
    iceberg_store,
    ids_at,
    write_iceberg,
    write_records,
)
from .objectworld import object_rule, s3_client, s3_store, seed

NOW = utc("2026-06-01 00:00:00")
OLD = NOW - dt.timedelta(days=400)
RECENT = NOW - dt.timedelta(days=2)
RECORDS = range(1, 13)  # record i belongs to account 1 + i % 4; i <= 8 are old
HELD_ACCOUNT = 2  # holds records 1, 5


def account_of(record: int) -> int:
    return 1 + record % 4


def old(record: int) -> bool:
    return record <= 8


@dataclass
class Backend:
    """One backend's world: how it spells records, lists what is left, and is configured."""

    name: str
    world: Scenario
    present: Any  # () -> set[int]
    dataset: dict[str, Any]
    stores: dict[str, Any]
    rule: Any  # (**fields) -> rule dict

    def config(self, *, holds: dict[str, Any] | None = None, batch_size: int = 3) -> Config:
        return self.world.config(
            [self.rule("purge")],
            holds=holds,
            datasets={"records": self.dataset},
            stores=self.stores,
            batch_size=batch_size,
            audit={"keys": "plain"},
            limits={"max_fraction": 1.0},
        )


def _sql(db: Database, tmp_path: Path) -> Backend:
    world = Scenario(db, tmp_path)
    world.accounts(*({"id": a} for a in range(1, 5)))
    created = {i: (OLD if old(i) else RECENT).replace(tzinfo=None) for i in RECORDS}
    world.tickets(
        *({"id": i, "account_id": account_of(i), "created_at": created[i]} for i in RECORDS)
    )

    def present() -> set[int]:
        with db.engine.connect() as connection:
            return {row[0] for row in connection.execute(select(TICKETS.c.id))}

    return Backend(
        db.dialect,
        world,
        present,
        {**TICKETS_DATASET, "subject": {"type": "account", "column": "account_id"}},
        {"app": {"kind": "sql", "url": db.url}},
        lambda rule_id: rule(rule_id, applies_to={"dataset": "records"}),
    )


def _key(record: int) -> str:
    return f"customers/{account_of(record)}/r{record:02}"


def _object_rule(rule_id: str) -> dict[str, Any]:
    return object_rule(rule_id, dataset="records")


def _s3(sqlite_db: Database, tmp_path: Path, endpoint: str) -> Backend:
    world = Scenario(sqlite_db, tmp_path)
    world.accounts(*({"id": a} for a in range(1, 5)))
    bucket = f"c-{uuid.uuid4().hex[:16]}"
    client = s3_client(endpoint)
    client.create_bucket(Bucket=bucket)
    for i in RECORDS:
        seed(bucket, [_key(i)], OLD if old(i) else RECENT)

    def present() -> set[int]:
        listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {int(item["Key"].rsplit("/r", 1)[1]) for item in listed}

    return Backend(
        "s3",
        world,
        present,
        {"store": "bucket", "prefix": "customers/{account}/", "category": "customer_content"},
        {"app": {"kind": "sql", "url": sqlite_db.url}, "bucket": s3_store(bucket, endpoint)},
        _object_rule,
    )


def _filesystem(sqlite_db: Database, tmp_path: Path) -> Backend:
    world = Scenario(sqlite_db, tmp_path)
    world.accounts(*({"id": a} for a in range(1, 5)))
    root = tmp_path / "tree"
    for i in RECORDS:
        path = root / _key(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("personal data")
        when = (OLD if old(i) else RECENT).timestamp()
        os.utime(path, (when, when))

    def present() -> set[int]:
        return {int(p.name[1:]) for p in root.rglob("r*") if p.is_file()}

    return Backend(
        "filesystem",
        world,
        present,
        {"store": "tree", "glob": "customers/{account}/*", "category": "customer_content"},
        {
            "app": {"kind": "sql", "url": sqlite_db.url},
            "tree": {"kind": "filesystem", "root": str(root)},
        },
        _object_rule,
    )


def _delta(sqlite_db: Database, tmp_path: Path, endpoint: str | None = None) -> Backend:
    """The records in a Delta table in `tmp_path`, or in a fresh bucket of the moto server at
    `endpoint`."""
    world = Scenario(sqlite_db, tmp_path)
    world.accounts(*({"id": a} for a in range(1, 5)))
    store: dict[str, Any] = {"kind": "delta", "root": str(tmp_path / "lake")}
    options: dict[str, str] | None = None
    if endpoint is not None:
        bucket = f"d-{uuid.uuid4().hex[:16]}"
        s3_client(endpoint).create_bucket(Bucket=bucket)
        store = delta_s3_store(f"s3://{bucket}/lake", endpoint)
        options = delta_s3_options(endpoint)
    table = f"{store['root']}/records"
    rows = [(i, account_of(i), OLD if old(i) else RECENT) for i in RECORDS]
    write_records(table, rows, files=3, options=options)

    def present() -> set[int]:
        found = ids_at(table, options=options)
        assert found is not None
        return found

    return Backend(
        "delta" if endpoint is None else "delta-s3",
        world,
        present,
        {**TICKETS_DATASET, "store": "lake", "table": "records", "personal": {}},
        {"app": {"kind": "sql", "url": sqlite_db.url}, "lake": store},
        lambda rule_id: rule(rule_id, applies_to={"dataset": "records"}),
    )


def _iceberg(sqlite_db: Database, tmp_path: Path) -> Backend:
    world = Scenario(sqlite_db, tmp_path)
    world.accounts(*({"id": a} for a in range(1, 5)))
    lake = tmp_path / "iceberg"
    rows = [(i, account_of(i), OLD if old(i) else RECENT) for i in RECORDS]
    write_iceberg(lake, "crm.records", rows, files=3)
    return Backend(
        "iceberg",
        world,
        lambda: iceberg_ids(lake, "crm.records"),
        {**TICKETS_DATASET, "store": "lake", "table": "crm.records", "personal": {}},
        {"app": {"kind": "sql", "url": sqlite_db.url}, "lake": iceberg_store(lake)},
        lambda rule_id: rule(rule_id, applies_to={"dataset": "records"}),
    )


@pytest.fixture(
    params=[
        "sqlite",
        "duckdb",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
        "s3",
        "filesystem",
        "delta",
        "delta-s3",
        "iceberg",
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The same world on each of the nine backends."""
    if request.param in ("sqlite", "duckdb", "postgres", "mariadb"):
        db: Database = request.getfixturevalue(f"{request.param}_db")
        yield _sql(db, tmp_path)
    elif request.param == "s3":
        yield _s3(
            request.getfixturevalue("sqlite_db"), tmp_path, request.getfixturevalue("moto_endpoint")
        )
    elif request.param == "delta":
        yield _delta(request.getfixturevalue("sqlite_db"), tmp_path)
    elif request.param == "delta-s3":
        endpoint = request.getfixturevalue("moto_process_endpoint")
        yield _delta(request.getfixturevalue("sqlite_db"), tmp_path, endpoint)
    elif request.param == "iceberg":
        yield _iceberg(request.getfixturevalue("sqlite_db"), tmp_path)
    else:
        yield _filesystem(request.getfixturevalue("sqlite_db"), tmp_path)


HOLD = {"holds": [{"id": "case", "subjects": {"account": [str(HELD_ACCOUNT)]}}]}
DUE = {i for i in RECORDS if old(i)}
HELD = {i for i in DUE if account_of(i) == HELD_ACCOUNT}


def run(config: Config, *, live: bool = True, **kwargs: Any) -> Any:
    return Executor(config, now=NOW, live=live, **kwargs).run()


def done_keys(config: Config) -> list[str]:
    """Every key a live run audited as changed, in chain order."""
    engine = open_state(config.settings.state_db.get_secret_value())
    try:
        log = AuditLog(engine, keys="plain", hmac_key=None)
        entries = [e for e in log.entries() if e.action != RUN_ACTION]
        assert log.verify().ok
        return [
            k for e in entries if e.outcome == "done" and not e.dry_run for k in json.loads(e.keys)
        ]
    finally:
        engine.dispose()


def test_plan_counts(backend: Backend) -> None:
    """A plan counts what the rule covers, what is due, held, and what a run would act on."""
    (row,) = make_plan(backend.config(holds=HOLD), NOW).rules
    assert (row.in_scope, row.due, row.held, row.actionable) == (12, 8, 2, 6)
    assert len(row.samples) == 5


def test_delete(backend: Backend) -> None:
    """A live run deletes exactly what is due and unheld, and audits each key once."""
    config = backend.config(holds=HOLD)
    result = run(config)
    assert result.outcomes[0].acted == 6 and result.outcomes[0].status == "ok"
    assert backend.present() == set(RECORDS) - (DUE - HELD)
    assert len(done_keys(config)) == len(set(done_keys(config))) == 6


def test_dry_run_changes_nothing(backend: Backend) -> None:
    """A dry run takes the same path, says what it would do, and changes nothing."""
    config = backend.config(holds=HOLD)
    result = run(config, live=False)
    assert result.outcomes[0].acted == 6
    assert backend.present() == set(RECORDS)
    assert done_keys(config) == []


def test_holds_are_re_read_between_batches(backend: Backend) -> None:
    """A hold placed while the first batch is being acted on protects every later batch."""
    config = backend.config(batch_size=2)
    assert config.holds_path is not None
    holds_path = config.holds_path
    everyone = {"holds": [{"id": "late", "subjects": {"account": ["1", "2", "3", "4"]}}]}

    def place() -> None:
        replace_file(holds_path, yaml.safe_dump(everyone))

    result = run(config, probe=OnPoint("write", place))  # as the first batch's change is sent
    acted = result.outcomes[0].acted
    assert 1 <= acted <= 2  # the first batch only
    assert len(set(RECORDS) - backend.present()) == acted


def test_a_crash_at_the_commit_point_is_settled_by_the_next_run(backend: Backend) -> None:
    """Killed after a batch's intent is durable and before its change is final: the next run
    settles that batch from the data (audited once if it happened), finishes the work, and
    the chain verifies; nothing due is left, nothing is audited twice."""
    config = backend.config(holds=HOLD, batch_size=2)
    with pytest.raises(SimulatedCrash):
        run(config, probe=CrashAt("intent", 2))
    run(config)
    assert backend.present() == set(RECORDS) - (DUE - HELD)
    keys = done_keys(config)
    assert len(keys) == len(set(keys)) == 6


def test_a_second_run_does_nothing(backend: Backend) -> None:
    """What one live run did is done: a second run finds nothing to act on."""
    config = backend.config(holds=HOLD)
    run(config)
    again = run(config)
    assert again.outcomes[0].acted == 0 and again.outcomes[0].planned == 0
    assert len(done_keys(config)) == 6
