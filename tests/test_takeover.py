"""A replica that pauses mid-batch and is taken over (issue 18): whatever the point it pauses at,
every change its data transaction commits is audited exactly once, and nothing held is touched.
In threads (the pause a :class:`~retention.testing.PauseAt` point) and with real `retention
serve` processes, one SIGSTOPped with its COMMIT in flight.

Replica A leads the `tickets` shard and pauses (a :class:`~retention.testing.PauseAt` point, in
a thread of its own: GC, SIGSTOP or the network) while replica B, its lease expired, takes the
shard over and reconciles. A resumes (or dies) while B's recovery waits for its rows, or only
after B gave up waiting; B runs again. The audit log must then name every deleted ticket once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import tempfile
import threading
import uuid
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, func, select, text
from sqlalchemy.engine import make_url

from retention.audit import AuditLog
from retention.config import Config, load_config
from retention.errors import LeaseLost
from retention.executor import Executor
from retention.leadership import Leadership
from retention.outcomes import RunResult
from retention.shards import shards
from retention.statedb import open_state
from retention.statetables import intents
from retention.testing import FixedClock, PauseAt, SimulatedCrash, examples

from .conftest import Database
from .scenario import Scenario, at, rule, utc
from .test_replicas import wait_until
from .test_service import Daemon, audited_keys, serve_config

SETTLE_WAIT = 1.0  # seconds B's recovery waits for rows A may still be committing
TTL = dt.timedelta(seconds=30)
NOW = utc("2026-06-01 00:00")
HELD_ACCOUNT = 2


def world_of(db: Database, directory: Path, url: str | None = None) -> Config:
    """Nine due tickets (account 2's, 4 to 6, held), one recent; batches of three; the store
    reached at `url` (the test database's own by default)."""
    world = Scenario(db, directory)
    world.clear()
    world.accounts({"id": 1}, {"id": 2}, {"id": 3})
    world.tickets(
        *(
            {"id": i, "account_id": 1 + (i - 1) // 3, "created_at": at("2020-01-01")}
            for i in range(1, 10)
        ),
        {"id": 10, "account_id": 1, "created_at": at("2026-05-30")},
    )
    path = world.write(
        [rule()],
        holds={"holds": [{"id": "case", "subjects": {"account": [HELD_ACCOUNT]}}]},
        stores={"app": {"kind": "sql", "url": url or db.url, "settle_wait": SETTLE_WAIT}},
        state_db=f"sqlite:///{directory / 'state.db'}",
        batch_size=3,
        audit={"keys": "plain"},
        service={"lease_scope": "dataset", "lease_ttl": TTL.total_seconds()},
    )
    return load_config(path)


def audited(config: Config) -> Counter[str]:
    """How often the audit log records each ticket as deleted (the chain verified first)."""
    state = open_state(config.settings.state_db.get_secret_value())
    try:
        log = AuditLog(state, keys="plain", hmac_key=None)
        assert log.verify().ok
        found: Counter[str] = Counter()
        for entry in log.entries():
            if entry.outcome == "done" and entry.action == "delete" and entry.dataset:
                found.update(json.loads(entry.keys))
        return found
    finally:
        state.dispose()


def pending(config: Config) -> int:
    state = open_state(config.settings.state_db.get_secret_value())
    try:
        with state.connect() as connection:
            return len(connection.execute(intents.select()).all())
    finally:
        state.dispose()


def take_over(
    db: Database, config: Config, point: str, nth: int, fate: str, delay: float
) -> list[RunResult]:
    """A pauses at `point` #`nth`; B takes the shard over and runs while A stays paused for
    `delay` seconds, then is resumed or killed (`fate`); B runs again. B's results."""
    clock = FixedClock(NOW)
    state_a = open_state(config.settings.state_db.get_secret_value())
    state_b = open_state(config.settings.state_db.get_secret_value())
    units = shards(config)
    a = Leadership(state_a, units, holder="a", ttl=TTL, clock=clock.now)
    b = Leadership(state_b, units, holder="b", ttl=TTL, clock=clock.now)
    a.acquire()
    pause = PauseAt(point, nth)
    stopped: list[BaseException] = []

    def run_a() -> None:
        try:
            Executor(config, now=NOW, live=True, state=state_a, lease=a, probe=pause).run()
        except (LeaseLost, SimulatedCrash) as exc:
            stopped.append(exc)

    thread = threading.Thread(target=run_a)
    thread.start()
    results: list[RunResult] = []
    try:
        while thread.is_alive() and not pause.wait_paused(0.05):
            pass  # A pauses there, or finishes without reaching it
        if thread.is_alive():
            timer = threading.Timer(delay, pause.kill if fate == "killed" else pause.resume)
            timer.start()
            clock.advance(TTL + dt.timedelta(seconds=1))  # A's lease expires while it is paused
            b.acquire()  # (a pause in A's state-DB transaction holds SQLite's lock meanwhile)
            results.append(Executor(config, now=NOW, live=True, state=state_b, lease=b).run())
            timer.join()
        thread.join(60)
        assert not thread.is_alive()
        if not b.held():  # A finished without reaching the point: B takes over after it
            clock.advance(TTL + dt.timedelta(seconds=1))
            b.acquire()
        results.append(Executor(config, now=NOW, live=True, state=state_b, lease=b).run())
    finally:
        pause.resume()
        thread.join(60)
        state_a.dispose()
        state_b.dispose()
    return results


def check(db: Database, config: Config) -> None:
    """Every due unheld ticket is gone and audited exactly once; the held and recent stay."""
    world = Scenario(db, Path(tempfile.gettempdir()))
    assert world.ticket_ids() == [4, 5, 6, 10]
    counts = audited(config)
    assert sorted(counts, key=int) == ["1", "2", "3", "7", "8", "9"]
    assert max(counts.values()) == 1, f"audited twice: {counts}"
    assert pending(config) == 0


@pytest.mark.parametrize(
    "dialect",
    [
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
@pytest.mark.parametrize(
    ("fate", "delay"),
    [("resumed", SETTLE_WAIT / 3), ("resumed", SETTLE_WAIT * 2), ("killed", SETTLE_WAIT * 2)],
    ids=["resumed-while-b-waits", "resumed-after-b-gave-up", "killed"],
)
def test_a_batch_paused_before_its_data_commit_is_audited_once(
    request: pytest.FixtureRequest, tmp_path: Path, dialect: str, fate: str, delay: float
) -> None:
    """A pauses after its first batch's intent is durable and before its DELETE commits.
    B's recovery waits for A's rows: if A commits meanwhile, B audits the batch as done (under
    A's run); if A stays paused past the wait, B leaves the intent pending and does not touch
    the shard, and its next run settles it; if A dies, its DELETE rolls back and B deletes
    those tickets itself. Each deleted ticket is audited once."""
    db: Database = request.getfixturevalue(f"{dialect}_db")
    config = world_of(db, tmp_path)
    results = take_over(db, config, "intent", 1, fate, delay)
    check(db, config)
    if delay > SETTLE_WAIT:
        (first, _) = results
        assert first.recovered == 0
        assert [o.status.value for o in first.outcomes] == ["unreachable"]


@pytest.mark.postgres
@pytest.mark.parametrize("delay", [SETTLE_WAIT / 3, SETTLE_WAIT * 2], ids=["waited", "gave-up"])
def test_a_role_that_may_only_delete_waits_for_the_batch_all_the_same(
    postgres_db: Database, tmp_path: Path, delay: float
) -> None:
    """With the least-privilege grants of a delete rule (SELECT and DELETE, no UPDATE: no
    ``FOR UPDATE`` on PostgreSQL), recovery waits for A's batch on a SHARE lock of the table
    instead: A's late commit is audited once, whether B waited for it or gave up first."""
    role = f"retention_{uuid.uuid4().hex[:8]}"
    url = make_url(postgres_db.url)
    schema = str(url.query["options"]).removeprefix("-csearch_path=")
    with postgres_db.engine.begin() as connection:
        Scenario(postgres_db, tmp_path)  # the tables, to grant on
        connection.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD 'only-delete'"))
        connection.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}'))
        connection.execute(text(f"GRANT SELECT ON accounts TO {role}"))
        connection.execute(text(f"GRANT SELECT, DELETE ON tickets TO {role}"))
    limited = url.set(username=role, password="only-delete").render_as_string(False)
    try:
        config = world_of(postgres_db, tmp_path, limited)
        take_over(postgres_db, config, "intent", 1, "resumed", delay)
        check(postgres_db, config)
    finally:
        with postgres_db.engine.begin() as connection:
            connection.execute(text(f"DROP OWNED BY {role}"))
            connection.execute(text(f"DROP ROLE {role}"))


@pytest.mark.parametrize(
    "dialect", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
@settings(
    max_examples=examples(4),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    point=st.sampled_from(["window", "write", "intent", "audit"]),
    nth=st.integers(1, 3),
    fate=st.sampled_from(["resumed", "killed"]),
    late=st.booleans(),
)
def test_whatever_the_pause_point_every_committed_change_is_audited_once(
    request: pytest.FixtureRequest, dialect: str, point: str, nth: int, fate: str, late: bool
) -> None:
    """Whatever point of whichever batch A pauses at, however long, and whether it then
    resumes or dies: every ticket deleted is audited exactly once, the held ones stay, and no
    intent is left."""
    db: Database = request.getfixturevalue(f"{dialect}_db")
    with tempfile.TemporaryDirectory() as directory:
        config = world_of(db, Path(directory))
        delay = SETTLE_WAIT * 2 if late else SETTLE_WAIT / 4
        take_over(db, config, point, nth, fate, delay)
        check(db, config)


# -- real processes: a `retention serve` replica SIGSTOPped with its COMMIT in flight ------------

GATE = 424242  # the advisory lock that holds a batch's COMMIT on `tickets` at the door


@pytest.mark.postgres
@pytest.mark.slow
def test_a_sigstopped_replica_s_late_commit_is_audited_by_its_successor(
    postgres_db: Database, tmp_path: Path
) -> None:
    """Replica A's first batch on `tickets` reaches its COMMIT (its intent durable) and is held
    there by a deferred trigger waiting on an advisory lock; A is then SIGSTOPped. Replica B
    takes the shard over: its recovery finds A's rows locked, says the batch is in flight and
    leaves the shard alone. The lock is let go, so A's COMMIT lands on the server while A is
    still stopped; B's next run settles the batch as done; A is continued and finds its shard
    gone. Every due ticket is deleted and audited exactly once, the held and the recent stay."""
    world = Scenario(postgres_db, tmp_path)
    world.clear()
    world.accounts({"id": 1}, {"id": 2}, {"id": 3})
    world.tickets(
        *(
            {"id": i, "account_id": 1 + (i - 1) // 3, "created_at": at("2020-01-01")}
            for i in range(1, 10)
        ),
        {"id": 10, "account_id": 1, "created_at": dt.datetime.now(dt.UTC).replace(tzinfo=None)},
    )
    with postgres_db.engine.begin() as connection:
        connection.execute(
            text(
                "CREATE FUNCTION gate() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN PERFORM pg_advisory_xact_lock_shared({GATE}); RETURN NULL; END $$"
            )
        )
        connection.execute(
            text(
                "CREATE CONSTRAINT TRIGGER gate AFTER DELETE ON tickets DEFERRABLE INITIALLY "
                "DEFERRED FOR EACH ROW EXECUTE FUNCTION gate()"
            )
        )
    path = serve_config(
        world,
        state_db=postgres_db.url,
        holds={"holds": [{"id": "case", "subjects": {"account": [HELD_ACCOUNT]}}]},
        stores={"app": {"kind": "sql", "url": postgres_db.url, "settle_wait": 2}},
        batch_size=3,
        service={"host": "127.0.0.1", "port": 0, "lease_ttl": 4, "lease_scope": "dataset"},
    )
    gate = postgres_db.engine.connect()
    gate.execute(text(f"SELECT pg_advisory_lock({GATE})"))
    gate.commit()
    replicas: list[Daemon] = []
    try:
        a = Daemon(path)
        replicas.append(a)
        wait_until(lambda: _waiting_at_the_gate(postgres_db) == 1, 60, "A's COMMIT waits")
        a.signal(signal.SIGSTOP)
        b = Daemon(path)
        replicas.append(b)
        b.wait_for("batch in flight", timeout=60)
        assert _state_rows(postgres_db, intents) == 1
        gate.execute(text(f"SELECT pg_advisory_unlock({GATE})"))  # A's COMMIT lands now
        gate.commit()
        wait_until(lambda: _state_rows(postgres_db, intents) == 0, 30, "B settles A's batch")
        a.signal(signal.SIGCONT)
        wait_until(lambda: world.ticket_ids() == [4, 5, 6, 10], 30, "every due ticket is gone")
        for daemon in (b, a):
            assert daemon.stop() == 0
        counts = Counter(audited_keys(postgres_db.engine))
        assert sorted(counts, key=int) == ["1", "2", "3", "7", "8", "9"]
        assert max(counts.values()) == 1, f"audited twice: {counts}"
        assert AuditLog(postgres_db.engine, keys="plain", hmac_key=None).verify().ok
    finally:
        for daemon in replicas:
            with contextlib.suppress(ProcessLookupError):
                daemon.signal(signal.SIGCONT)
            daemon.close()
        gate.close()


def _waiting_at_the_gate(db: Database) -> int:
    """How many sessions wait for the gate's advisory lock."""
    query = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND objid = :gate"
    )
    with db.engine.connect() as connection:
        return int(connection.execute(query, {"gate": GATE}).scalar() or 0)


def _state_rows(db: Database, table: Table) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar() or 0)
