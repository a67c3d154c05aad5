"""The state DB's schema versions: created at the newest revision, upgraded from 0.1.0, guarded.

The upgrade tests load `tests/fixtures/state_v1.json` (every row of a state DB that retention
0.1.0 wrote: a dry run, a live run, a live run with a past `--now`, 11 sealed entries) into the
tables as 0.1.0 made them, with no version table, on SQLite, PostgreSQL and MariaDB, then open
it with this release and check that it verifies, and still catches tampering with what 0.1.0
wrote. Two processes creating a fresh state DB at once must not race.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, delete, insert, inspect, select, text, update

from retention.audit import AuditLog
from retention.errors import StateVersionError
from retention.executor import Executor
from retention.runevents import MARKER_ACTION, MARKER_RUN_ID, RUN_ACTION
from retention.schema import HEAD, VERSION_TABLE, known_revisions, revision, upgrade
from retention.statedb import open_state
from retention.statetables import audit, runs
from retention.stores.sql import make_engine

from .conftest import Database
from .scenario import Scenario, rule, utc


@pytest.fixture
def db(state_db: Database) -> Database:
    """`db` here is a state DB: SQLite, PostgreSQL and MariaDB (DuckDB is only a store)."""
    return state_db


FIXTURE = Path(__file__).parent / "fixtures" / "state_v1.json"
V1 = json.loads(FIXTURE.read_text())
V1_KEY = V1["hmac_key"].encode()
TABLES = (
    "retention_runs",
    "retention_audit",
    "retention_intents",
    "retention_leases",
    "retention_schedule",
    "retention_legal_holds",
)


def load_v1(engine: Engine) -> None:
    """Make `engine`'s database what 0.1.0 left: its tables (revision 0001, no version table)
    holding the fixture's rows."""
    upgrade(engine, target="0001")
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE {VERSION_TABLE}"))
    tables = MetaData()
    tables.reflect(engine, only=TABLES)
    with engine.begin() as connection:
        for name, rows in V1["tables"].items():
            table = tables.tables[name]
            stamps = [c.name for c in table.columns if "DATE" in str(c.type).upper()]
            values = [
                {
                    k: (dt.datetime.fromisoformat(v) if k in stamps and v else v)
                    for k, v in row.items()
                }
                for row in rows
            ]
            if values:
                connection.execute(insert(table), values)


def log(engine: Engine, key: bytes | None = V1_KEY) -> AuditLog:
    return AuditLog(engine, keys="hmac" if key else "none", hmac_key=key)


@pytest.fixture
def upgraded(db: Database) -> Engine:
    """A 0.1.0 state DB on every dialect, opened (so upgraded) by this release."""
    engine = make_engine(db.url, immediate=True)
    load_v1(engine)
    engine.dispose()
    return db.engine


def test_a_state_db_from_0_1_0_is_upgraded_and_verifies(db: Database) -> None:
    """Opening 0.1.0's state DB brings it to the newest revision and appends one upgrade
    marker listing its three runs; its sealed entries and runs verify, and later runs add
    their events after the marker."""
    engine = make_engine(db.url, immediate=True)
    load_v1(engine)
    with engine.connect() as connection:
        assert revision(connection) is None
    state = open_state(db.url)
    with state.connect() as connection:
        assert revision(connection) == HEAD
        assert "key_id" in {c["name"] for c in inspect(connection).get_columns("retention_audit")}
    result = log(state).verify()
    assert result.ok and result.entries == 12, result
    marker = list(log(state).entries())[-1]
    assert (marker.seq, marker.action, marker.run_id) == (12, MARKER_ACTION, MARKER_RUN_ID)
    assert marker.seal is None and marker.count == 3
    listed = json.loads(marker.detail or "{}")["runs"]
    assert set(listed) == {r["id"] for r in V1["tables"]["retention_runs"]}
    open_state(db.url).dispose()  # a second open changes nothing
    assert log(state).verify().entries == 12
    engine.dispose()
    state.dispose()


def test_runs_after_the_upgrade_are_chain_events(db: Database, tmp_path: Path) -> None:
    """A live run on an upgraded state DB writes its start and end after the marker, sealed
    with its key id, and the whole log (0.1.0's part included) verifies."""
    engine = make_engine(db.url, immediate=True)
    load_v1(engine)
    engine.dispose()
    app = f"sqlite:///{tmp_path / 'app.db'}"
    world = Scenario(Database(app, "sqlite", make_engine(app)), tmp_path)
    config = world.config([rule()], hmac_key=V1["hmac_key"], state_db=db.url)
    state = open_state(db.url)
    result = Executor(config, now=utc("2026-02-01 00:00:00"), live=True, state=state).run()
    entries = list(log(state).entries())
    assert [(e.seq, e.action, e.outcome) for e in entries[12:]] == [
        (13, RUN_ACTION, "started"),
        (14, RUN_ACTION, "complete"),
    ]
    assert entries[12].run_id == result.run_id and entries[12].key_id is not None
    assert log(state).verify().ok
    state.dispose()
    world.db.engine.dispose()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("entry", "entry was edited"),
        ("seal", "seal does not match"),
        ("mode", "changed since the schema upgrade recorded it"),
        ("counts", "changed since the schema upgrade recorded it"),
        ("run row", "recorded at the schema upgrade, has lost its row"),
        ("fake run", "has no start entry"),
        ("marker", "entry was edited"),
    ],
)
def test_tampering_with_what_0_1_0_wrote_is_still_detected(
    upgraded: Engine, db: Database, change: str, reason: str
) -> None:
    """After the upgrade, editing an old entry or its seal, an old run's mode or counts,
    removing an old run's row, adding a run the marker does not list, or editing the marker
    all fail verification."""
    state = open_state(db.url)
    first = V1["tables"]["retention_runs"][0]["id"]
    with state.begin() as connection:
        if change == "entry":
            connection.execute(update(audit).where(audit.c.seq == 3).values(count=99))
        elif change == "seal":
            connection.execute(update(audit).where(audit.c.seq == 3).values(seal="0" * 64))
        elif change == "mode":
            connection.execute(update(runs).where(runs.c.id == first).values(mode="live"))
        elif change == "counts":
            connection.execute(update(runs).where(runs.c.id == first).values(counts="{}"))
        elif change == "run row":
            connection.execute(delete(runs).where(runs.c.id == first))
        elif change == "fake run":
            row = dict(connection.execute(select(runs).where(runs.c.id == first)).mappings().one())
            connection.execute(insert(runs).values(**{**row, "id": "added-later"}))
        else:
            connection.execute(update(audit).where(audit.c.seq == 12).values(count=4))
    result = log(state).verify()
    assert not result.ok and result.problem == "tampered", result
    assert result.reason is not None and reason in result.reason, result
    state.dispose()


def test_an_upgraded_log_verified_with_another_key_is_a_key_problem(
    upgraded: Engine, db: Database
) -> None:
    """0.1.0's seals name no key: if none of them matches a key held, that is a key problem
    (the log was sealed with another key), not tampering."""
    state = open_state(db.url)
    result = log(state, b"not-the-key").verify()
    assert (result.ok, result.problem, result.bad_seq) == (False, "key", 1)
    assert result.reason is not None and "entries 1–11" in result.reason
    assert log(state, None).verify().ok  # the plain chain
    state.dispose()


def test_an_empty_database_is_created_at_the_newest_revision(db: Database) -> None:
    """A database with none of the tables gets all of them and the newest revision, and no
    marker (there is nothing from before)."""
    state = open_state(db.url)
    with state.connect() as connection:
        assert revision(connection) == HEAD
        tables = set(inspect(connection).get_table_names())
        assert {*TABLES, "retention_contents", "retention_run_contents"} <= tables
    assert log(state).verify().entries == 0
    assert known_revisions() == {"0001", "0002", "0003", "0004", "0005", "0006"}
    state.dispose()


def test_a_newer_revision_is_refused(db: Database) -> None:
    """A state DB a newer release upgraded is refused with StateVersionError (exit 2) saying
    so, before anything reads or writes it."""
    open_state(db.url).dispose()
    with db.engine.begin() as connection:
        connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0099'"))
    with pytest.raises(StateVersionError) as caught:
        open_state(db.url)
    assert caught.value.exit_code == 2 and caught.value.revision == "0099"
    assert f"revision 0099, newer than this release knows (up to {HEAD})" in str(caught.value)


def test_two_processes_creating_a_fresh_state_db_do_not_race(db: Database) -> None:
    """Several threads opening one fresh state DB at the same moment all succeed, and it ends
    up created once: one version row, every table, an empty log that verifies."""
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def opener() -> None:
        try:
            barrier.wait()
            open_state(db.url).dispose()
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.engine.connect() as connection:
        versions = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
        assert [tuple(v) for v in versions] == [(HEAD,)]
    state = open_state(db.url)
    assert log(state).verify().ok
    state.dispose()


def test_an_intent_left_at_revision_0005_is_settled_after_the_upgrade(
    db: Database, tmp_path: Path
) -> None:
    """A state DB at revision 0005 (intents keep no facts) with a batch left unaudited and a
    log with per-record facts: this release upgrades it, settles that batch without facts (its
    intent has none to give) and the whole log, old entries included, verifies."""
    (tmp_path / "data").mkdir()
    app = f"sqlite:///{tmp_path / 'data' / 'app.db'}"
    world = Scenario(Database(app, "sqlite", make_engine(app)), tmp_path / "data")
    world.tickets({"id": 1, "created_at": utc("2020-01-01 00:00:00")})
    config = world.config([rule()], state_db=db.url, audit={"keys": "plain"})
    engine = make_engine(db.url, immediate=True)
    upgrade(engine, target="0005")
    older = AuditLog(engine, keys="plain", hmac_key=b"test-key-not-secret")
    older.append(
        run_id="earlier",
        action="delete",
        outcome="done",
        dry_run=False,
        keys=["7"],
        rule="r",
        dataset="tickets",
        records='[["3", "2020-01-31T00:00:00+00:00", null]]',
    )
    tables = MetaData()
    tables.reflect(engine, only=["retention_intents"])  # as revision 0005 made it
    assert "records" not in tables.tables["retention_intents"].c
    with engine.begin() as connection:  # the batch's rows went; its entry was never written
        connection.execute(
            insert(tables.tables["retention_intents"]).values(
                id="i-1",
                run_id="killed",
                created_at=utc("2026-01-01 00:00:00"),
                rule="r",
                dataset="tickets",
                action="delete",
                keys="[[5]]",
                children="[]",
            )
        )
    engine.dispose()
    state = open_state(db.url)
    try:
        result = Executor(config, now=utc("2026-02-01 00:00:00"), live=True, state=state).run()
        assert result.recovered == 1
        entries = list(AuditLog(state, keys="plain", hmac_key=None).entries())
        (settled,) = [e for e in entries if e.run_id == "killed"]
        assert json.loads(settled.keys) == ["5"] and settled.records is None
        assert entries[0].facts() == [("3", "2020-01-31T00:00:00+00:00", None)]
        assert log(state, b"test-key-not-secret").verify().ok
    finally:
        state.dispose()
        world.db.engine.dispose()
