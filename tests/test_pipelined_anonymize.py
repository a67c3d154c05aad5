"""Anonymize on PostgreSQL, pipelined: a batch is written back on the data thread while the next
one is prepared on a second connection (``Executor._pipelined``). Whatever the overlap, a run
must change, audit and protect exactly what the plain loop does."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from retention import executor as executor_module
from retention.audit import AuditLog
from retention.config import Config
from retention.executor import Executor, RunResult
from retention.statedb import intents, open_state

from .conftest import Database
from .scenario import TICKETS, Scenario, at, rule, utc

pytestmark = pytest.mark.postgres

NOW = utc("2026-06-01 00:00:00")
ANONYMIZE = rule(
    "mask",
    action="anonymize",
    anonymize={"email": "hash", "ip": "truncate_ip", "name": "null"},
)
HELD_ACCOUNT = 3


def _populate(world: Scenario, count: int = 23) -> None:
    """`count` due tickets over four accounts (one of them held), plus two not yet due."""
    world.accounts(*({"id": a} for a in range(1, 5)))
    world.tickets(
        *(
            {
                "id": i,
                "account_id": 1 + i % 4,
                "created_at": at("2020-01-01"),
                "email": f"user{i}@example.org",
                "ip": f"10.0.{i}.{i + 7}",
                "name": f"User {i}",
            }
            for i in range(1, count + 1)
        ),
        *(
            {"id": 100 + i, "account_id": 1, "created_at": at("2026-05-30"), "name": "recent"}
            for i in range(2)
        ),
    )


def _config(world: Scenario, **settings: Any) -> Config:
    holds = {"holds": [{"id": "case", "subjects": {"account": [HELD_ACCOUNT]}}]}
    return world.config([ANONYMIZE], holds=holds, batch_size=4, audit={"keys": "plain"}, **settings)


def _run(config: Config, **kwargs: Any) -> RunResult:
    return Executor(config, now=NOW, live=True, **kwargs).run()


def _tickets(db: Database) -> dict[int, dict[str, Any]]:
    with db.engine.connect() as connection:
        return {r.id: dict(r._mapping) for r in connection.execute(select(TICKETS))}


def _audited(config: Config) -> tuple[list[list[str]], int]:
    """The keys of each `done` entry, in chain order, and how many intents are left."""
    state = open_state(config.settings.state_db.get_secret_value())
    try:
        entries = AuditLog(state, keys="plain", hmac_key=None).entries()
        done = [json.loads(e.keys) for e in entries if e.outcome == "done"]
        with state.connect() as connection:
            left = len(connection.execute(select(intents.c.id)).all())
    finally:
        state.dispose()
    return done, left


@pytest.fixture
def world(postgres_db: Database, tmp_path: Path) -> Scenario:
    (tmp_path / "postgres").mkdir()
    return Scenario(postgres_db, tmp_path / "postgres")


def test_pipelined_run_matches_the_plain_loop(
    world: Scenario, sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same rows, rule and key on SQLite (one batch at a time) and on PostgreSQL
    (pipelined) end with the same values, the same audit entries in the same order, no intent
    left, the held and not-yet-due records untouched; a second run does nothing."""
    (tmp_path / "sqlite").mkdir()
    plain = Scenario(sqlite_db, tmp_path / "sqlite")
    for each in (world, plain):
        _populate(each)
    config, plain_config = _config(world), _config(plain)
    before = _tickets(world.db)
    original, threads = executor_module.write_back, set()

    def write_back(*args: Any) -> Any:
        threads.add(threading.current_thread().name)
        return original(*args)

    monkeypatch.setattr(executor_module, "write_back", write_back)
    result = _run(config)
    assert {name.split("_")[0] for name in threads} == {"retention-data"}  # it was pipelined
    assert _run(plain_config).outcomes[0].acted == result.outcomes[0].acted == 17

    after = _tickets(world.db)
    assert after == _tickets(plain.db)
    assert _audited(config) == _audited(plain_config)
    done, left = _audited(config)
    assert left == 0 and len(done) == result.outcomes[0].batches
    assert [k for keys in done for k in keys] == sorted(
        (str(i) for i in range(1, 24) if 1 + i % 4 != HELD_ACCOUNT), key=int
    )
    for key, row in after.items():
        if key >= 100 or row["account_id"] == HELD_ACCOUNT:
            assert row == before[key]
        else:
            assert row["email"].startswith("h:") and row["ip"].endswith(".0")
            assert row["name"] is None
    assert _run(config).outcomes[0].acted == 0


def test_a_hold_placed_while_a_batch_is_written_protects_the_next_one(
    world: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next batch is prepared while this one is written, but written only if the holds
    file is unchanged since it was read for it: a hold placed while batch 1 is written
    protects every later batch, as in the plain loop (which reads it before batch 2)."""
    _populate(world, count=12)
    config = _config(world)
    before = _tickets(world.db)
    holds_file = world.directory / "holds.yaml"
    original = executor_module.write_back

    def write_back_then_hold(*args: Any) -> Any:
        everyone = list(range(1, 5))
        holds_file.write_text(
            yaml.safe_dump({"holds": [{"id": "late", "subjects": {"account": everyone}}]})
        )
        return original(*args)

    monkeypatch.setattr(executor_module, "write_back", write_back_then_hold)
    result = _run(config)
    after = _tickets(world.db)
    changed = sorted(k for k in after if after[k] != before[k])
    done, left = _audited(config)
    assert result.outcomes[0].batches == 1 and left == 0
    assert done == [[str(k) for k in changed]]
    assert changed and all(k <= 4 for k in changed)  # the first window's records only


def test_a_failed_write_back_rolls_back_its_batch_and_the_next(
    world: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write-back that fails on the data thread fails the run: that batch and the one
    prepared meanwhile are rolled back (no intent, nothing audited), the batches before stay
    done and audited; the next run finishes the work, each record audited once."""
    _populate(world)
    config = _config(world)
    before = _tickets(world.db)
    original = executor_module.write_back
    calls: list[int] = []

    def failing(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise OperationalError("UPDATE", {}, Exception("server closed the connection"))
        return original(*args)

    monkeypatch.setattr(executor_module, "write_back", failing)
    result = _run(config)
    assert result.outcomes[0].status == "failed" and result.status == "complete"
    after = _tickets(world.db)
    changed = {k for k in after if after[k] != before[k]}
    done, left = _audited(config)
    assert left == 0 and len(done) == 2
    assert changed == {int(k) for keys in done for k in keys}
    assert max(changed) <= 8  # windows of four keys: the first two batches only

    monkeypatch.setattr(executor_module, "write_back", original)
    assert _run(config).outcomes[0].status == "ok"
    done, left = _audited(config)
    audited = Counter(k for keys in done for k in keys)
    assert left == 0 and set(audited.values()) == {1} and len(audited) == 17


def test_a_stop_request_lands_the_batch_being_written(world: Scenario) -> None:
    """SIGTERM mid-run: the batch being written is finished and audited before the run stops;
    every record changed is audited, nothing is left in intents."""
    _populate(world)
    config = _config(world)
    before = _tickets(world.db)
    batches: list[int] = []
    result = _run(
        config,
        progress=lambda *_: batches.append(1),
        should_stop=lambda: len(batches) >= 2,
    )
    assert result.status == "interrupted"
    after = _tickets(world.db)
    changed = {k for k in after if after[k] != before[k]}
    done, left = _audited(config)
    assert left == 0 and len(done) == result.outcomes[0].batches >= 2
    assert changed == {int(k) for keys in done for k in keys}
