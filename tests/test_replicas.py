"""Replicas that share the work (``service.lease_scope: dataset``): shards, fair shares, fencing
per shard, the state-DB upgrade, and real `retention serve` processes on one PostgreSQL state DB
that split six datasets, survive one of them being SIGKILLed, and never act on a record twice.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    func,
    insert,
    select,
    text,
)

from retention.audit import AuditLog
from retention.config import load_config
from retention.errors import LeaseLost
from retention.executor import Executor
from retention.leadership import Leadership
from retention.schedule import mark_covered, read_shard_covered, register_shards
from retention.schema import upgrade
from retention.shards import shards
from retention.statedb import open_state
from retention.statetables import intents, runs
from retention.stores.sql import make_engine
from retention.testing import FixedClock

from .conftest import Database
from .scenario import Scenario, rule, utc
from .test_service import EVERY_2S, Daemon, metric

pytestmark = pytest.mark.slow  # real serve processes, killed and restarted

PARENTS = [f"d{i}" for i in range(1, 7)]
LINES = "d3_lines"  # the cascade child of d3: one shard with it
tables = MetaData()
DATA = {
    name: Table(
        name,
        tables,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("created_at", DateTime),
    )
    for name in PARENTS
}
DATA[LINES] = Table(
    LINES,
    tables,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("parent_id", Integer, ForeignKey("d3.id"), nullable=False),
    Column("created_at", DateTime),
)


def datasets() -> dict[str, Any]:
    made: dict[str, Any] = {
        name: {
            "store": "app",
            "table": name,
            "key": "id",
            "category": "logs",
            "timestamps": {"created": "created_at"},
        }
        for name in PARENTS
    }
    made["d3"]["cascade"] = [{"dataset": LINES, "column": "parent_id"}]
    made[LINES] = {
        "store": "app",
        "table": LINES,
        "key": "id",
        "category": "lines",
        "timestamps": {"created": "created_at"},
    }
    return made


def write_config(world: Scenario, state_db: str, **service: Any) -> Path:
    """Every `logs` dataset's records older than 30 days deleted every two seconds, live, with
    shard leases of four seconds."""
    return world.write(
        [rule(applies_to={"category": "logs"}, schedule=EVERY_2S)],
        datasets=datasets(),
        state_db=state_db,
        dry_run=False,
        batch_size=3,
        audit={"keys": "plain"},
        service={
            "host": "127.0.0.1",
            "port": 0,
            "lease_ttl": 4,
            "lease_scope": "dataset",
            **service,
        },
    )


def fill(engine: Engine, ids: range) -> None:
    """Old records `ids` in every dataset (d3's with a line each), and one recent record."""
    old = dt.datetime(2020, 1, 1)
    with engine.begin() as connection:
        for name in PARENTS:
            rows = [{"id": i, "created_at": old} for i in ids]
            connection.execute(insert(DATA[name]), rows)
        lines = [{"id": i, "parent_id": i, "created_at": old} for i in ids]
        connection.execute(insert(DATA[LINES]), lines)


def left(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            name: int(connection.execute(select(func.count()).select_from(table)).scalar() or 0)
            for name, table in DATA.items()
        }


def acted(engine: Engine) -> Counter[tuple[str, str]]:
    """How often the audit log records each (dataset, key) as deleted."""
    log = AuditLog(engine, keys="plain", hmac_key=None)
    found: Counter[tuple[str, str]] = Counter()
    for entry in log.entries():
        if entry.outcome == "done" and entry.action == "delete" and entry.dataset:
            found.update((entry.dataset, key) for key in json.loads(entry.keys))
    return found


def leads(daemon: Daemon) -> dict[str, list[str]]:
    """The shards a replica says it leads on /readyz, with their datasets."""
    status, body = daemon.get("/readyz")
    assert status == 200, body
    lease = json.loads(body)["checks"]["lease"]
    assert lease["scope"] == "dataset"
    return dict(lease["shards"])


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.2)


@pytest.fixture
def replicas() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.close()


# -- shards and leases, in-process ----------------------------------------------------------------


def test_a_dataset_and_its_cascade_children_are_one_shard(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """Seven datasets, one of them d3's cascade child: six shards, d3 with its lines."""
    world = Scenario(sqlite_db, tmp_path)
    config = load_config(write_config(world, f"sqlite:///{tmp_path / 'state.db'}"))
    found = shards(config)
    assert sorted(found) == PARENTS
    assert found["d3"] == ("d3", LINES)
    assert all(found[name] == (name,) for name in PARENTS if name != "d3")


def test_replicas_take_a_fair_share_and_fencing_holds_per_shard(tmp_path: Path) -> None:
    """Three replicas over six shards lead two each, whatever order they join in; once one
    stalls past its leases, the others take its shards over (three each) and its batch on a
    taken shard is refused at the fence, while the shards it still holds stay its own."""
    state = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    clock = FixedClock(utc("2026-06-01 00:00"))
    units = {name: (name,) for name in PARENTS}
    ttl = dt.timedelta(seconds=30)
    a, b, c = (Leadership(state, units, holder=name, ttl=ttl, clock=clock.now) for name in "abc")
    for replica in (a, b, c):
        replica.join()
    for replica in (a, b, c, a, b, c):
        replica.rebalance()
    assert [len(r.held()) for r in (a, b, c)] == [2, 2, 2]
    assert sorted(a.held() + b.held() + c.held()) == PARENTS

    kept = c.held()
    clock.moment += dt.timedelta(seconds=31)  # c stalls; a and b renew, c does not
    a.renew()
    b.renew()
    a.rebalance()
    b.rebalance()
    assert len(a.held()) == len(b.held()) == 3
    with state.begin() as connection, pytest.raises(LeaseLost):
        c.check(connection, kept[0])
    assert c.held() == kept[1:]
    state.dispose()


def test_a_taken_over_shard_is_fenced_while_the_others_go_on(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """A replica leading every shard stalls after its first batch on d1 long enough for d1's
    lease to be taken over: its next batch on d1 is refused at the commit point (LeaseLost) and
    changes nothing. The new leader of d1 finishes d1; the stalled replica, still leading the
    other shards, finishes those; every record is deleted and audited exactly once."""
    world = Scenario(sqlite_db, tmp_path)
    tables.create_all(sqlite_db.engine)
    fill(sqlite_db.engine, range(1, 10))
    config = load_config(write_config(world, f"sqlite:///{tmp_path / 'state.db'}"))
    state = open_state(config.settings.state_db.get_secret_value())
    clock = FixedClock(utc("2026-06-01 00:00"))
    ttl = dt.timedelta(seconds=30)
    units = shards(config)
    paused = Leadership(state, units, holder="paused", ttl=ttl, clock=clock.now)
    usurper = Leadership(state, units, holder="usurper", ttl=ttl, clock=clock.now)
    paused.acquire()

    def pause(_: Any, dataset: str, done: int, planned: int) -> None:
        if dataset == "d1" and done == 3:  # after the first batch: a stall past d1's lease
            clock.moment += dt.timedelta(seconds=31)
            for shard, lease in paused.leases.items():
                if shard != "d1":
                    lease.check()  # the other shards' leases are still renewed
            assert usurper.leases["d1"].try_acquire()

    run = Executor(config, now=clock.now(), live=True, state=state, lease=paused, progress=pause)
    with pytest.raises(LeaseLost):
        run.run()
    assert paused.held() == [s for s in PARENTS if s != "d1"]
    assert left(sqlite_db.engine)["d1"] == 6
    assert not acted(state)  # the first batch's entries were to go with the refused intent
    with state.connect() as connection:
        assert connection.execute(select(intents.c.dataset)).scalars().all() == ["d1"]

    # the stalled replica's next run leaves d1's intent to d1's leader, which settles it

    others = [d for d in (*PARENTS, LINES) if d != "d1"]
    Executor(config, now=clock.now(), live=True, state=state, lease=paused).run(datasets=others)
    with state.connect() as connection:
        assert connection.execute(select(intents.c.dataset)).scalars().all() == ["d1"]
    Executor(config, now=clock.now(), live=True, state=state, lease=usurper).run(datasets=["d1"])
    assert left(sqlite_db.engine) == dict.fromkeys(DATA, 0)
    counts = acted(state)
    assert set(counts) == {(name, str(i)) for name in PARENTS for i in range(1, 10)}
    assert max(counts.values()) == 1
    assert AuditLog(state, keys="plain", hmac_key=None).verify().ok
    state.dispose()


def test_a_state_db_from_before_shards_is_upgraded_and_keeps_its_marks(tmp_path: Path) -> None:
    """A state DB at revision 0004 (one lease, marks per rule) is upgraded on open; a shard
    led for the first time starts from the rule's mark: no fire time repeated or skipped."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = make_engine(url, immediate=True)
    upgrade(engine, target="0004")  # as a release before shards left it
    mark_covered(engine, ["r"], utc("2026-05-20 03:00"), "before-shards")
    engine.dispose()
    engine = open_state(url)  # upgrades to the newest revision
    try:
        with engine.connect() as connection:
            version = connection.execute(
                text("SELECT version_num FROM retention_alembic_version")
            ).scalar()
        assert version == "0006"
        register_shards(engine, [("r", "d1")], utc("2026-06-01 00:00"))
        assert read_shard_covered(engine, [("r", "d1")], utc("2026-06-01 00:00")) == {
            ("r", "d1"): utc("2026-05-20 03:00")
        }
    finally:
        engine.dispose()


# -- real processes on one PostgreSQL state DB -----------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("count", [2, 3])
def test_replicas_split_the_datasets_survive_a_sigkill_and_never_act_twice(
    postgres_db: Database, tmp_path: Path, replicas: list[Daemon], count: int
) -> None:
    """`count` replicas on one PostgreSQL state DB each lead a fair share of the six shards.
    One is SIGKILLed in the middle of its run: the others take its shards over, settle what it
    left half done and finish; every due record of every dataset is deleted and audited exactly
    once (no batch acted twice), nothing recent is touched, the killed run is recorded as
    interrupted, and the audit chain verifies."""
    world = Scenario(postgres_db, tmp_path)
    tables.create_all(postgres_db.engine)
    path = write_config(world, postgres_db.url)
    replicas.extend(Daemon(path) for _ in range(count))
    share = math.ceil(len(PARENTS) / count)

    def split() -> list[dict[str, list[str]]]:
        return [leads(daemon) for daemon in replicas]

    wait_until(
        lambda: [len(held) for held in split()] == [share] * count,
        60,
        f"each of {count} replicas leads {share} shards",
    )
    held = split()
    assert sorted(s for h in held for s in h) == PARENTS  # disjoint, and every shard led
    assert next(h for h in held if "d3" in h)["d3"] == ["d3", LINES]
    for daemon, shards_held in zip(replicas, held, strict=True):
        body = daemon.get("/metrics")[1]
        holder = daemon.wait_for("service started")["holder"]
        assert metric(body, "retention_lease_shards_held", holder=holder) == share
        for shard in PARENTS:
            expected = 1 if shard in shards_held else 0
            assert (
                metric(body, "retention_lease_shard_held", holder=holder, shard=shard) == expected
            )

    victim = replicas[0]
    mark = len(victim.events)
    fill(postgres_db.engine, range(1, 61))
    with postgres_db.engine.begin() as connection:
        recent = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        for name in PARENTS:
            connection.execute(insert(DATA[name]), [{"id": 1000, "created_at": recent}])
    victim.wait_for("batch audited", after=mark, timeout=60)
    victim.process.kill()  # SIGKILL: no release, no end entry, maybe a batch half done
    victim.process.wait(timeout=10)
    killed = victim.wait_for("service started")["holder"]
    survivors = replicas[1:]

    wait_until(
        lambda: left(postgres_db.engine) == {**dict.fromkeys(PARENTS, 1), LINES: 0},
        120,
        "the survivors have deleted every due record",
    )
    wait_until(
        lambda: sorted(s for d in survivors for s in leads(d)) == PARENTS,
        40,
        "the survivors lead every shard",
    )
    assert [len(leads(d)) for d in survivors] == [math.ceil(6 / (count - 1))] * (count - 1)

    counts = acted(postgres_db.engine)
    expected = {(name, str(i)) for name in PARENTS for i in range(1, 61)}
    assert set(counts) == expected
    assert max(counts.values()) == 1, "a record was acted on twice"

    # the survivors' next run reconciles the killed one; then nothing is left in flight
    def settled() -> bool:
        with postgres_db.engine.connect() as connection:
            statuses = connection.execute(
                select(runs.c.status).where(runs.c.holder == killed, runs.c.mode == "live")
            ).scalars()
            pending = connection.execute(select(func.count()).select_from(intents)).scalar()
        return "running" not in set(statuses) and pending == 0

    wait_until(settled, 40, "the killed replica's run is recorded as interrupted")
    with postgres_db.engine.connect() as connection:
        statuses = set(
            connection.execute(select(runs.c.status).where(runs.c.holder == killed)).scalars()
        )
    assert "interrupted" in statuses
    for daemon in survivors:
        assert daemon.stop() == 0
    assert AuditLog(postgres_db.engine, keys="plain", hmac_key=None).verify().ok


def test_one_replica_leads_every_shard_on_sqlite(
    sqlite_db: Database, tmp_path: Path, replicas: list[Daemon]
) -> None:
    """Alone (here on a SQLite state DB) a replica with shard leases leads every shard and
    does all the work, each record once; a clean stop gives its shards back at once."""
    world = Scenario(sqlite_db, tmp_path)
    tables.create_all(sqlite_db.engine)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    replicas.append(Daemon(write_config(world, state_url)))
    (daemon,) = replicas
    wait_until(lambda: sorted(leads(daemon)) == PARENTS, 20, "it leads every shard")
    fill(sqlite_db.engine, range(1, 21))
    wait_until(lambda: not any(left(sqlite_db.engine).values()), 40, "everything due is gone")
    assert daemon.stop() == 0
    assert daemon.wait_for("shards released")["shards"] == PARENTS
    state = open_state(state_url)
    try:
        counts = acted(state)
        assert set(counts) == {(name, str(i)) for name in PARENTS for i in range(1, 21)}
        assert max(counts.values()) == 1
        assert AuditLog(state, keys="plain", hmac_key=None).verify().ok
    finally:
        state.dispose()
