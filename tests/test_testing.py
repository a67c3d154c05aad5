"""The helpers `retention.testing` ships to users: what a test written with them can rely on."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

from retention.config import Config
from retention.executor import Executor
from retention.planner import make_plan
from retention.stores.base import Store
from retention.testing import (
    DEPTH_ENV,
    CrashAt,
    FixedClock,
    MemoryTree,
    OnPoint,
    PauseAt,
    SimulatedCrash,
    examples,
    replace_file,
)

from .conftest import Database
from .scenario import Scenario, utc
from .stores.objectworld import object_rule

NOW = utc("2026-06-01 00:00:00")


def _world(sqlite_db: Database, tmp_path: Path) -> tuple[Config, MemoryTree, dict[str, Store]]:
    world = Scenario(sqlite_db, tmp_path)
    world.accounts({"id": 1}, {"id": 2})
    tree = MemoryTree("mem")
    for account in (1, 2):
        for name in ("old", "new"):
            age = 400 if name == "old" else 1
            tree.put(f"uploads/{account}/{name}", NOW - dt.timedelta(days=age))
    config = world.config(
        [object_rule("age")],
        holds={"holds": [{"id": "case", "subjects": {"account": ["2"]}}]},
        datasets={"files": {"store": "mem", "glob": "uploads/{account}/*", "category": "c"}},
        stores={
            "app": {"kind": "sql", "url": sqlite_db.url},
            "mem": {"kind": "filesystem", "root": str(tmp_path / "unused")},
        },
        audit={"keys": "plain"},
    )
    return config, tree, {"mem": tree}


def test_a_memory_tree_is_planned_and_enforced_like_a_file_tree(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """A MemoryTree given as a store is judged by the same rules and holds as a real one."""
    config, tree, stores = _world(sqlite_db, tmp_path)
    (row,) = make_plan(config, NOW, stores=stores).rules
    assert (row.due, row.held, row.actionable) == (2, 1, 1)
    result = Executor(config, now=NOW, live=True, stores=stores).run()
    assert result.outcomes[0].acted == 1
    assert sorted(tree.files) == ["uploads/1/new", "uploads/2/new", "uploads/2/old"]


def test_a_memory_tree_reports_a_failing_delete(sqlite_db: Database, tmp_path: Path) -> None:
    """A key put in `failing` is not deleted: the run says so and counts it as lingering."""
    config, tree, stores = _world(sqlite_db, tmp_path)
    tree.failing.add("uploads/1/old")
    outcome = Executor(config, now=NOW, live=True, stores=stores).run().outcomes[0]
    assert outcome.status == "failed" and outcome.lingering == 1
    assert "uploads/1/old" in tree.files


def test_crash_at_dies_at_the_named_point_and_nothing_else(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """CrashAt("intent") kills the run like SIGKILL would: no error handler catches it, and the
    next run settles what it left."""
    config, tree, stores = _world(sqlite_db, tmp_path)
    with pytest.raises(SimulatedCrash):
        Executor(config, now=NOW, live=True, stores=stores, probe=CrashAt("intent")).run()
    assert "uploads/1/old" in tree.files  # the crash came before the delete
    assert Executor(config, now=NOW, live=True, stores=stores).run().outcomes[0].acted == 1


def test_on_point_calls_its_action_once_or_every_time() -> None:
    """OnPoint counts the times its point is reached; other points do not count."""
    calls: list[str] = []
    once = OnPoint("write", lambda: calls.append("once"), 2)
    every = OnPoint("write", lambda: calls.append("every"), 1, every=True)
    for point in ("window", "write", "write", "write"):
        once.reached(point)
        every.reached(point)
    assert calls == ["every", "once", "every", "every"]


def test_pause_at_holds_the_thread_until_resumed_or_killed() -> None:
    """PauseAt blocks the thread reaching its point until resume(); after kill() that thread
    dies there (SimulatedCrash), as a process killed while paused would."""
    passed: list[str] = []

    def run(probe: PauseAt) -> None:
        try:
            probe.reached("intent")
            passed.append("resumed")
        except SimulatedCrash:
            passed.append("killed")

    for count, fate in enumerate(("resume", "kill")):
        probe = PauseAt("intent")
        thread = threading.Thread(target=run, args=(probe,))
        thread.start()
        assert probe.wait_paused(5)
        assert thread.is_alive() and len(passed) == count
        getattr(probe, fate)()
        thread.join(5)
    assert passed == ["resumed", "killed"]
    assert not PauseAt("intent").wait_paused(0.01)


def test_fixed_clock_moves_only_when_told() -> None:
    """A FixedClock says its moment, as a callable and through now(), until advanced."""
    clock = FixedClock(NOW)
    assert clock() == clock.now() == NOW
    assert clock.advance(dt.timedelta(hours=1)) == NOW + dt.timedelta(hours=1)
    with pytest.raises(ValueError):
        FixedClock(dt.datetime(2026, 1, 1))


def test_replace_file_never_shows_an_empty_file(tmp_path: Path) -> None:
    """The file is replaced whole (renamed over), and no temporary file is left behind."""
    path = tmp_path / "holds.yaml"
    path.write_text("holds: []\n")
    replace_file(path, "holds: [{id: a}]\n")
    assert path.read_text() == "holds: [{id: a}]\n"
    assert [p.name for p in tmp_path.iterdir()] == ["holds.yaml"]


def test_examples_are_five_times_as_many_in_a_deep_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The everyday suite draws the quick count; RETENTION_TEST_DEPTH=deep draws five times it."""
    monkeypatch.delenv(DEPTH_ENV, raising=False)
    assert examples(12) == 12
    monkeypatch.setenv(DEPTH_ENV, "deep")
    assert examples(12) == 60
    monkeypatch.setenv(DEPTH_ENV, "shallow")
    assert examples(12) == 12
