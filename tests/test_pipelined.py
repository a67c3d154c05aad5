"""Live runs on PostgreSQL, pipelined: a batch's write (its DELETE, or its anonymized values'
write-back) runs on the data thread while the batch before it gets its intent and commit and
the next one is prepared on a second connection (:mod:`retention.stores.sql.batches`). Whatever
the overlap, a run must change, audit and protect exactly what the plain loop does."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from retention.audit import AuditLog
from retention.config import Config
from retention.executor import Executor, RunResult
from retention.statedb import open_state
from retention.statetables import intents
from retention.testing import OnPoint, replace_file

from .conftest import Database
from .scenario import MESSAGES, TICKETS, TICKETS_DATASET, Scenario, at, rule, utc

pytestmark = pytest.mark.postgres

NOW = utc("2026-06-01 00:00:00")
ANONYMIZE = rule(
    "mask",
    action="anonymize",
    anonymize={"email": "hash", "ip": "truncate_ip", "name": "null"},
)
DELETE = rule("purge")
CASCADE = {
    "tickets": {**TICKETS_DATASET, "cascade": [{"dataset": "messages", "column": "ticket_id"}]},
    "messages": {"store": "app", "table": "messages", "key": "id", "category": "messages"},
}
HELD_ACCOUNT = 3


def _populate(world: Scenario, count: int = 23) -> None:
    """`count` due tickets over four accounts (one of them held), plus two not yet due; every
    third ticket has a message (a cascade child when deleting)."""
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
    world.messages(*({"id": 1000 + i, "ticket_id": i} for i in range(3, count + 1, 3)))


def _config(world: Scenario, action: str = "anonymize", **settings: Any) -> Config:
    holds = {"holds": [{"id": "case", "subjects": {"account": [HELD_ACCOUNT]}}]}
    if action == "delete":
        settings.setdefault("datasets", CASCADE)
    rules = [ANONYMIZE if action == "anonymize" else DELETE]
    return world.config(rules, holds=holds, batch_size=4, audit={"keys": "plain"}, **settings)


def _on_each_write(before_write: Callable[[], None]) -> OnPoint:
    """A probe calling `before_write` just before each batch's write (delete or write-back) is
    sent: on the data thread when the run is pipelined."""
    return OnPoint("write", before_write, every=True)


def _run(config: Config, **kwargs: Any) -> RunResult:
    return Executor(config, now=NOW, live=True, **kwargs).run()


def _tickets(db: Database) -> dict[int, dict[str, Any]]:
    with db.engine.connect() as connection:
        return {r.id: dict(r._mapping) for r in connection.execute(select(TICKETS))}


def _messages(db: Database) -> set[int]:
    with db.engine.connect() as connection:
        return set(connection.execute(select(MESSAGES.c.id)).scalars())


def _changed(before: dict[int, Any], after: dict[int, Any]) -> set[int]:
    """Tickets deleted or anonymized."""
    return {key for key, row in before.items() if after.get(key) != row}


def _audited(config: Config) -> tuple[list[list[str]], int]:
    """The keys of each `done` entry on tickets, in chain order, and how many intents are left."""
    state = open_state(config.settings.state_db.get_secret_value())
    try:
        entries = AuditLog(state, keys="plain", hmac_key=None).entries()
        done = [
            json.loads(e.keys) for e in entries if e.outcome == "done" and e.dataset == "tickets"
        ]
        with state.connect() as connection:
            left = len(connection.execute(select(intents.c.id)).all())
    finally:
        state.dispose()
    return done, left


@pytest.fixture
def world(postgres_db: Database, tmp_path: Path) -> Scenario:
    (tmp_path / "postgres").mkdir()
    return Scenario(postgres_db, tmp_path / "postgres")


ACTIONS = pytest.mark.parametrize("action", ["anonymize", "delete"])


@ACTIONS
def test_pipelined_run_matches_the_plain_loop(
    action: str,
    world: Scenario,
    sqlite_db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same rows, rule and key on SQLite (one batch at a time) and on PostgreSQL
    (pipelined) end with the same rows and values, the same audit entries in the same order,
    no intent left, the held and not-yet-due records untouched; a second run does nothing."""
    (tmp_path / "sqlite").mkdir()
    plain = Scenario(sqlite_db, tmp_path / "sqlite")
    for each in (world, plain):
        _populate(each)
    config, plain_config = _config(world, action), _config(plain, action)
    before = _tickets(world.db)
    threads: set[str] = set()
    on_thread = _on_each_write(lambda: threads.add(threading.current_thread().name))
    result = _run(config, probe=on_thread)
    assert {name.split("_")[0] for name in threads} == {"retention-data"}  # it was pipelined
    assert _run(plain_config).outcomes[0].acted == result.outcomes[0].acted == 17

    after = _tickets(world.db)
    assert after == _tickets(plain.db) and _messages(world.db) == _messages(plain.db)
    assert _audited(config) == _audited(plain_config)
    done, left = _audited(config)
    assert left == 0 and len(done) == result.outcomes[0].batches
    due = sorted(i for i in range(1, 24) if 1 + i % 4 != HELD_ACCOUNT)
    assert [int(k) for keys in done for k in keys] == due
    assert _changed(before, after) == set(due)
    for key in due:
        if action == "delete":
            assert key not in after
        else:
            row = after[key]
            assert row["email"].startswith("h:") and row["ip"].endswith(".0")
            assert row["name"] is None
    if action == "delete":  # the messages of deleted tickets went with them
        assert result.outcomes[0].cascaded == {"messages": sum(1 for k in due if k % 3 == 0)}
        assert _messages(world.db) == {1000 + i for i in range(3, 24, 3) if i not in due}
    assert _run(config).outcomes[0].acted == 0


@ACTIONS
def test_a_hold_placed_while_a_batch_is_written_protects_the_next_one(
    action: str, world: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next batch is prepared while this one is written, but written only if the holds
    file is unchanged since it was read for it: a hold placed while batch 1 is written
    protects every later batch, as in the plain loop (which reads it before batch 2)."""
    _populate(world, count=12)
    config = _config(world, action)
    before = _tickets(world.db)
    holds_file = world.directory / "holds.yaml"
    everyone = list(range(1, 5))
    late = yaml.safe_dump({"holds": [{"id": "late", "subjects": {"account": everyone}}]})
    result = _run(config, probe=_on_each_write(lambda: replace_file(holds_file, late)))
    changed = _changed(before, _tickets(world.db))
    done, left = _audited(config)
    assert result.outcomes[0].batches == 1 and left == 0
    assert done == [[str(k) for k in sorted(changed)]]
    assert changed and all(k <= 4 for k in changed)  # the first window's records only


@ACTIONS
def test_a_failed_write_rolls_back_its_batch_and_the_next(
    action: str, world: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails on the data thread fails the run: that batch and the one prepared
    meanwhile are rolled back (no intent, nothing audited), the batches before stay done and
    audited; the next run finishes the work, each record audited once."""
    _populate(world)
    config = _config(world, action)
    before = _tickets(world.db)
    calls: list[int] = []

    def third_fails() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise OperationalError("UPDATE", {}, Exception("server closed the connection"))

    result = _run(config, probe=_on_each_write(third_fails))
    assert result.outcomes[0].status == "failed" and result.status == "complete"
    changed = _changed(before, _tickets(world.db))
    done, left = _audited(config)
    assert left == 0 and len(done) == 2
    assert changed == {int(k) for keys in done for k in keys}
    assert max(changed) <= 8  # windows of four keys: the first two batches only

    assert _run(config).outcomes[0].status == "ok"
    done, left = _audited(config)
    audited = Counter(k for keys in done for k in keys)
    assert left == 0 and set(audited.values()) == {1} and len(audited) == 17


@ACTIONS
def test_a_stop_request_lands_the_batch_being_written(action: str, world: Scenario) -> None:
    """SIGTERM mid-run: the batch being written is finished and audited before the run stops;
    every record changed is audited, nothing is left in intents."""
    _populate(world)
    config = _config(world, action)
    before = _tickets(world.db)
    batches: list[int] = []
    result = _run(
        config,
        progress=lambda *_: batches.append(1),
        should_stop=lambda: len(batches) >= 2,
    )
    assert result.status == "interrupted"
    changed = _changed(before, _tickets(world.db))
    done, left = _audited(config)
    assert left == 0 and len(done) == result.outcomes[0].batches >= 2
    assert changed == {int(k) for keys in done for k in keys}


def test_a_refusal_mid_run_keeps_the_batches_before_and_changes_nothing_after(
    world: Scenario,
) -> None:
    """Without a cascade, the foreign key refuses batch 3 (a message refers to ticket 9): the
    two batches before are deleted and audited, nothing of batch 3 or of the batch prepared
    meanwhile is, and the refusal names the referencing table."""
    _populate(world)
    config = _config(world, "delete", datasets={"tickets": TICKETS_DATASET})
    with world.db.engine.begin() as connection:  # only ticket 9's message stays
        connection.execute(MESSAGES.delete().where(MESSAGES.c.ticket_id != 9))
    before = _tickets(world.db)
    outcome = _run(config).outcomes[0]
    assert outcome.status == "refused" and "messages.ticket_id" in (outcome.message or "")
    changed = _changed(before, _tickets(world.db))
    done, left = _audited(config)
    assert left == 0 and len(done) == outcome.batches == 2
    assert changed == {int(k) for keys in done for k in keys}
    assert changed == {k for k in range(1, 9) if 1 + k % 4 != HELD_ACCOUNT}
