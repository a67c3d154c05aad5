"""Crash safety: a run killed at any moment is finished by the next one, exactly once.

The process-level tests start `retention run --execute` as a real subprocess on a 60,000-ticket
SQLite database, SIGKILL it once a few batches have been audited, run again to completion, and
compare everything with an uninterrupted reference run on a copy of the same data: the data left
behind, the keys audited, the chain, the run statuses, the held records. The deterministic test
crashes exactly in the window between a batch's data commit and its audit commit.

Databases live on tmpfs when there is one: a SIGKILL, unlike a power cut, loses nothing the
kernel has accepted, so durability costs (fsync) would only slow the test down.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from retention.cli import app
from retention.executor import Executor
from retention.runevents import RUN_ACTION
from retention.stores.base import Intent, StoredIntent
from retention.stores.sql import make_engine
from retention.testing import Probe, SimulatedCrash

from .conftest import Database
from .scenario import SUBJECTS, TICKETS_DATASET, Scenario, at, rule, utc

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
NOW = "2026-01-01T00:00:00+00:00"
TICKETS = 60_000
ACCOUNTS = 600
HELD_ACCOUNTS = range(1, 31)
OLD = "2020-01-01 00:00:00.000000"
RECENT = "2025-12-20 00:00:00.000000"
RULES = [
    # Every even ticket is closed and years old: deleted (half of the table, minus held ones).
    rule("purge", where={"status": "closed"}, retain="P1Y"),
    # Odd tickets are open; those created in 2020 (id % 4 == 1) are anonymized, the recent
    # ones (id % 4 == 3) are not due yet.
    rule(
        "mask",
        where={"status": "open"},
        retain="P30D",
        action="anonymize",
        anonymize={"email": "mask", "name": "redact", "ip": "null"},
    ),
]
HOLDS = {
    "holds": [
        {
            "id": "case-2026-017",
            "active": True,
            "reason": "dispute",
            "subjects": {"account": list(HELD_ACCOUNTS)},
        }
    ]
}
Row = tuple[Any, ...]


# -- the world -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """A directory on tmpfs if the machine has one, else an ordinary temporary directory."""
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    directory = Path(tempfile.mkdtemp(prefix="retention-crash-", dir=parent))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _ticket(i: int) -> Row:
    closed = i % 2 == 0
    created = OLD if closed or i % 4 == 1 else RECENT
    ip = f"10.{i % 250}.{i % 200}.{i % 100}"
    account = 1 + i % ACCOUNTS
    status = "closed" if closed else "open"
    return (i, account, created, status, 0, f"user{i}@example.org", f"User {i}", ip)


def _build_base(directory: Path) -> Path:
    """The target DB: accounts and 60,000 tickets, inserted in one transaction."""
    path = directory / "base.db"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    Scenario(Database(url, "sqlite", engine), directory)  # creates the tables
    engine.dispose()
    connection = sqlite3.connect(path)
    with connection:
        connection.executemany(
            "INSERT INTO accounts (id, created_at) VALUES (?, ?)",
            [(a, OLD) for a in range(1, ACCOUNTS + 1)],
        )
        connection.executemany(
            "INSERT INTO tickets (id, account_id, created_at, status, is_child, email, name, ip)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [_ticket(i) for i in range(1, TICKETS + 1)],
        )
    connection.close()
    return path


@dataclass
class Site:
    """One copy of the target DB with its own config, rules, holds and state DB."""

    directory: Path
    app: Path = field(init=False)
    state: Path = field(init=False)
    config: Path = field(init=False)

    def __post_init__(self) -> None:
        self.app = self.directory / "app.db"
        self.state = self.directory / "state.db"
        self.config = self.directory / "config.yaml"

    @classmethod
    def copy_of(cls, base: Path, directory: Path) -> Site:
        directory.mkdir(parents=True)
        site = cls(directory)
        shutil.copyfile(base, site.app)
        (directory / "rules").mkdir()
        (directory / "rules" / "pack.yaml").write_text(
            yaml.safe_dump({"policy": {"name": "Crash test"}, "rules": RULES}, sort_keys=False)
        )
        (directory / "holds.yaml").write_text(yaml.safe_dump(HOLDS, sort_keys=False))
        config = {
            "state_db": f"sqlite:///{site.state}",
            "rules": ["rules/"],
            "holds": "holds.yaml",
            "hmac_key": "test-key-not-secret",
            "batch_size": 500,
            "limits": {"max_fraction": 1.0},
            "audit": {"keys": "plain"},
            "stores": {"app": {"kind": "sql", "url": f"sqlite:///{site.app}"}},
            "subjects": SUBJECTS,
            "datasets": {"tickets": TICKETS_DATASET},
        }
        site.config.write_text(yaml.safe_dump(config, sort_keys=False))
        return site

    def args(self) -> list[str]:
        return ["run", "--execute", "--json", "--config", str(self.config), "--now", NOW]

    def run_in_process(self) -> dict[str, Any]:
        """One run to completion through the CLI, in this process."""
        result = CliRunner().invoke(app, self.args())
        assert result.exit_code == 0, (result.output, result.exception)
        report: dict[str, Any] = json.loads(result.stdout)
        assert report["status"] == "complete"
        return report

    def start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "retention", *self.args()],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def query(self, db: Path, sql: str, *params: Any) -> list[Row]:
        connection = sqlite3.connect(db, timeout=30)
        try:
            return connection.execute(sql, params).fetchall()
        finally:
            connection.close()

    def tickets(self) -> list[Row]:
        return self.query(self.app, "SELECT * FROM tickets ORDER BY id")

    def accounts(self) -> list[Row]:
        return self.query(self.app, "SELECT * FROM accounts ORDER BY id")

    def audited(self) -> list[tuple[str, str]]:
        """(action, key) for every key of every `done` entry on tickets, in chain order."""
        found = []
        for action, keys in self.query(
            self.state,
            "SELECT action, keys FROM retention_audit"
            " WHERE outcome = 'done' AND dataset = 'tickets' ORDER BY seq",
        ):
            found += [(action, key) for key in json.loads(keys)]
        return found

    def runs(self) -> dict[str, str]:
        return dict(self.query(self.state, "SELECT id, status FROM retention_runs"))


@dataclass(frozen=True)
class Reference:
    original: dict[int, Row]
    accounts: list[Row]
    tickets: list[Row]
    audited: list[tuple[str, str]]
    batches: dict[str, int]  # audited batches per rule

    def entries_at(self, rule_id: str, fraction: float) -> int:
        """How many batches are audited once `fraction` of rule `rule_id`'s batches are."""
        before = 0 if rule_id == "purge" else self.batches["purge"]
        return before + max(1, int(fraction * self.batches[rule_id]))


@pytest.fixture(scope="module")
def base(scratch: Path) -> Path:
    return _build_base(scratch)


@pytest.fixture(scope="module")
def reference(base: Path, scratch: Path) -> Reference:
    """The uninterrupted run on a copy of the same data."""
    site = Site.copy_of(base, scratch / "reference")
    original = {row[0]: row for row in site.tickets()}
    accounts = site.accounts()
    report = site.run_in_process()
    acted = {r["rule"]: r["acted"] for r in report["rules"]}
    assert acted == {"purge": 28_500, "mask": 14_200}, report
    batches = dict(
        site.query(
            site.state,
            "SELECT rule, count(*) FROM retention_audit WHERE outcome = 'done' GROUP BY rule",
        )
    )
    assert batches["purge"] >= 57 and batches["mask"] >= 29, batches
    return Reference(original, accounts, site.tickets(), site.audited(), batches)


# -- killing a run -------------------------------------------------------------------------------


def _peek(site: Site, query: str) -> int:
    """A count from the state DB, read without creating it or waiting on its lock."""
    if not site.state.exists():
        return 0
    try:
        connection = sqlite3.connect(f"file:{site.state}?mode=ro", uri=True, timeout=0.05)
        try:
            return int(connection.execute(query).fetchone()[0])
        finally:
            connection.close()
    except sqlite3.OperationalError:  # tables not created yet, or busy for a moment
        return 0


def _done_entries(site: Site) -> int:
    return _peek(site, "SELECT count(*) FROM retention_audit WHERE outcome = 'done'")


def _pending_intents(site: Site) -> int:
    return _peek(site, "SELECT count(*) FROM retention_intents")


def _kill_after(site: Site, entries: int, delay: float | None) -> str:
    """Start a live run, SIGKILL it once `entries` batches were audited; its run id.

    Then it waits `delay` seconds, or with `delay=None` until a batch's intent is recorded: the
    kill lands between the intent and the audit entry, before or after the data commit.
    """
    process = site.start()
    deadline = time.monotonic() + 60
    try:
        while _done_entries(site) < entries:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"the run ended (exit {process.returncode}) before the kill: {stderr}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {entries} audited batches within 60 s")
            time.sleep(0.002)
        if delay is None:
            while not _pending_intents(site) and process.poll() is None:
                pass
        else:
            time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
    running = [run for run, status in site.runs().items() if status == "running"]
    assert len(running) == 1, site.runs()
    return running[0]


def _after_kill(site: Site) -> None:
    """The killed process's lease has not expired yet, but its holder is gone: the next run on
    this host takes the lease over at once instead of waiting out the TTL."""
    connection = sqlite3.connect(site.state, timeout=30)
    with connection:
        holder, expires = connection.execute(
            "SELECT holder, expires_at FROM retention_leases"
        ).fetchone()
    connection.close()
    assert expires > dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    pid = int(holder.split(":")[1])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# Where to kill: (rule, fraction of its batches audited, extra delay in seconds). The delays
# shift the moment of the kill within a batch, to land in different phases of it; None waits
# for a batch's intent, to kill inside the span where the data and the audit may disagree.
KILLS: dict[str, list[tuple[str, float, float | None]]] = {
    "early": [("purge", 0.05, 0.0)],
    "rule-boundary": [("purge", 0.98, 0.011)],
    "anonymizing": [("mask", 0.4, None)],
    "twice": [("purge", 0.35, None), ("mask", 0.2, 0.017)],
}


@pytest.mark.parametrize("kills", KILLS.values(), ids=KILLS.keys())
def test_killed_run_is_finished_exactly_once(
    base: Path,
    scratch: Path,
    reference: Reference,
    kills: list[tuple[str, float, float | None]],
    request: pytest.FixtureRequest,
) -> None:
    """SIGKILLed mid-run and run again: the same data and audited keys as a run never killed.

    Every deleted or anonymized key is audited exactly once across all runs, the chain verifies,
    each killed run is marked interrupted, no intent is left over and held records are intact.
    """
    site = Site.copy_of(base, scratch / request.node.callspec.id)
    killed = []
    for rule_id, fraction, delay in kills:
        killed.append(_kill_after(site, reference.entries_at(rule_id, fraction), delay))
        _after_kill(site)
    partial = site.audited()
    assert 0 < len(partial) < len(reference.audited), "the kill was not in the middle of the run"
    report = site.run_in_process()

    # The data: exactly what the uninterrupted run left.
    final = site.tickets()
    assert final == reference.tickets
    assert site.accounts() == reference.accounts

    # The audit: each changed key once, nothing unchanged, the same as the reference.
    original = reference.original
    remaining = {row[0]: row for row in final}
    deleted = {str(k) for k in original if k not in remaining}
    anonymized = {str(k) for k, row in remaining.items() if row != original[k]}
    audited = site.audited()
    duplicates = [item for item, n in Counter(audited).items() if n > 1]
    assert duplicates == []
    assert {k for a, k in audited if a == "delete"} == deleted
    assert {k for a, k in audited if a == "anonymize"} == anonymized
    assert {a for a, _ in audited} == {"delete", "anonymize"}
    assert sorted(audited) == sorted(reference.audited)
    assert (len(deleted), len(anonymized)) == (28_500, 14_200)

    # Bookkeeping: killed runs interrupted, the last one complete, nothing pending, chain intact.
    runs = site.runs()
    assert [runs[run] for run in killed] == ["interrupted"] * len(killed)
    assert runs[report["run_id"]] == "complete"
    assert site.query(site.state, "SELECT count(*) FROM retention_intents") == [(0,)]
    verify = CliRunner().invoke(app, ["audit", "verify", "--config", str(site.config)])
    assert verify.exit_code == 0, verify.output

    # Held records: untouched.
    held = [row for row in final if row[1] in HELD_ACCOUNTS]
    assert held == [row for row in original.values() if row[1] in HELD_ACCOUNTS]
    assert len(held) == TICKETS * len(HELD_ACCOUNTS) // ACCOUNTS


# -- the window between data commit and audit commit --------------------------------------------


MESSAGES_DATASET: dict[str, Any] = {
    "store": "app",
    "table": "messages",
    "key": "id",
    "category": "support_data",
}


@pytest.mark.parametrize(("rule_id", "crash_at"), [("purge", 2), ("mask", 2)])
def test_crash_between_data_and_audit_commit(
    sqlite_db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rule_id: str,
    crash_at: int,
) -> None:
    """A crash after a batch's data committed but before its audit did is audited by the next
    run's reconcile, exactly once, under the crashed run; nothing is acted on twice."""
    world = Scenario(sqlite_db, tmp_path)
    world.accounts({"id": 1}, {"id": 2})
    world.tickets(
        *(
            {
                "id": i,
                "account_id": 1 + i % 2,
                "created_at": at("2020-01-01 00:00:00"),
                "status": "closed" if i <= 12 else "open",
                "email": f"user{i}@example.org",
                "name": f"User {i}",
            }
            for i in range(1, 21)
        )
    )
    world.messages(*({"id": 100 + i, "ticket_id": 1 + i // 2, "body": "hi"} for i in range(24)))
    tickets = {**TICKETS_DATASET, "cascade": [{"dataset": "messages", "column": "ticket_id"}]}
    config = world.config(
        [
            rule("purge", where={"status": "closed"}),
            rule(
                "mask", where={"status": "open"}, action="anonymize", anonymize={"name": "redact"}
            ),
        ],
        datasets={"tickets": tickets, "messages": MESSAGES_DATASET},
        batch_size=3,
        limits={"max_fraction": 1.0},
        audit={"keys": "plain"},
    )
    state = tmp_path / "state.db"

    lost: list[str] = []
    seen: list[Sequence[str]] = []

    class Crashing(Probe):
        """Dies while writing the audit entry of the rule's `crash_at`-th batch."""

        def reached(self, point: str, intent: Intent | StoredIntent | None = None) -> None:
            if point == "audit" and isinstance(intent, Intent) and intent.rule == rule_id:
                seen.append(intent.keys)
                if len(seen) == crash_at:
                    lost.extend(intent.keys)
                    raise SimulatedCrash

    crashed = Executor(config, now=utc("2026-01-01"), live=True, probe=Crashing())
    with pytest.raises(SimulatedCrash):
        crashed.run()

    assert len(lost) == 3
    with sqlite3.connect(state) as connection:
        pending = connection.execute("SELECT run_id, rule FROM retention_intents").fetchall()
        status = connection.execute(
            "SELECT status FROM retention_runs WHERE id = ?", (crashed.run_id,)
        ).fetchone()
    connection.close()
    assert pending == [(crashed.run_id, rule_id)]
    assert status == ("running",)
    before = _entries(state)
    assert not any(set(lost) & set(json.loads(e["keys"])) for e in before)
    with sqlite3.connect(tmp_path / "app.db") as connection:
        names = dict(connection.execute("SELECT id, name FROM tickets").fetchall())
    connection.close()
    if rule_id == "purge":
        assert not set(lost) & {str(t) for t in names}  # the deletion had committed
    else:
        assert all(names[int(k)] != f"User {k}" for k in lost)  # so had the anonymization

    fresh = Executor(config, now=utc("2026-01-01"), live=True)
    result = fresh.run()
    assert result.status == "complete"
    after = [e for e in _entries(state) if e["seq"] > len(before)]
    ends = [e for e in after if e["action"] == RUN_ACTION and e["run_id"] == crashed.run_id]
    assert [e["outcome"] for e in ends] == ["interrupted"]  # recovery wrote the run's end
    recovered = [e for e in after if e["action"] != RUN_ACTION][: result.recovered]
    assert result.recovered == (2 if rule_id == "purge" else 1)
    assert {e["run_id"] for e in recovered} == {crashed.run_id}
    assert all("after an interruption" in (e["detail"] or "") for e in recovered)
    main = [e for e in recovered if e["dataset"] == "tickets"]
    assert [json.loads(e["keys"]) for e in main] == [lost]
    # with the facts its intent kept: each ticket's account and due time (each cascaded
    # message's, its ticket's)
    due = "2020-01-31T00:00:00+00:00"
    assert json.loads(main[0]["records"]) == [[str(1 + int(k) % 2), due, None] for k in lost]
    for child in (e for e in recovered if e["dataset"] == "messages"):
        owners = [1 + (1 + (int(k) - 100) // 2) % 2 for k in json.loads(child["keys"])]
        assert json.loads(child["records"]) == [[str(a), due, None] for a in owners]

    entries = _entries(state)
    audited = [
        (e["dataset"], e["action"], k)
        for e in entries
        if e["outcome"] == "done"
        for k in json.loads(e["keys"])
    ]
    assert [item for item, n in Counter(audited).items() if n > 1] == []
    tickets_deleted = {k for d, a, k in audited if (d, a) == ("tickets", "delete")}
    tickets_masked = {k for d, a, k in audited if (d, a) == ("tickets", "anonymize")}
    messages_deleted = {k for d, _, k in audited if d == "messages"}
    assert tickets_deleted == {str(i) for i in range(1, 13)}
    assert messages_deleted == {str(100 + i) for i in range(24)}
    assert tickets_masked == {str(i) for i in range(13, 21)}
    assert world.ticket_ids() == list(range(13, 21))

    by_rule = {o.rule: o.acted for o in result.outcomes}
    first_run = {o: 0 for o in ("purge", "mask")}
    for e in entries:
        if e["run_id"] == crashed.run_id and e["dataset"] == "tickets" and e["outcome"] == "done":
            first_run[e["rule"]] += e["count"]
    assert by_rule["purge"] + first_run["purge"] == 12
    assert by_rule["mask"] + first_run["mask"] == 8

    with sqlite3.connect(state) as connection:
        statuses = dict(connection.execute("SELECT id, status FROM retention_runs").fetchall())
        left = connection.execute("SELECT count(*) FROM retention_intents").fetchone()
    connection.close()
    assert statuses == {crashed.run_id: "interrupted", result.run_id: "complete"}
    assert left == (0,)
    assert fresh.audit.verify().ok


def test_a_batch_another_run_settled_is_not_audited_twice(
    sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that stalls after a batch committed, while another run takes the lease over and
    settles that batch's intent, writes no second entry for it when it wakes up: the log says
    once what happened."""
    world = Scenario(sqlite_db, tmp_path)
    world.tickets(*({"id": i, "created_at": at("2020-01-01 00:00:00")} for i in range(1, 7)))
    config = world.config(
        [rule("purge")], batch_size=3, limits={"max_fraction": 1.0}, audit={"keys": "plain"}
    )
    state = tmp_path / "state.db"
    stalled: list[str] = []

    class Stalling(Probe):
        """The run stalls (writes nothing more for now) as it audits the batch from key 4."""

        def reached(self, point: str, intent: Intent | StoredIntent | None = None) -> None:
            first_key = intent.keys[0] if isinstance(intent, Intent) else None
            if point == "audit" and first_key == "4" and not stalled:
                stalled.append(first_key)
                raise SimulatedCrash

    first = Executor(config, now=utc("2026-01-01"), live=True, probe=Stalling())
    with pytest.raises(SimulatedCrash):
        first.run()

    second = Executor(config, now=utc("2026-01-01"), live=True)
    assert second.run().recovered == 1  # it settled the stalled batch
    before = len(_entries(state))
    first.ledger.flush()  # the first run wakes up and writes what it still had queued

    audited = Counter(k for e in _entries(state) for k in json.loads(e["keys"]))
    assert audited == Counter({str(i): 1 for i in range(1, 7)})
    assert len(_entries(state)) == before


def _entries(state: Path) -> list[dict[str, Any]]:
    connection = sqlite3.connect(state)
    connection.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in connection.execute("SELECT * FROM retention_audit ORDER BY seq")]
    finally:
        connection.close()
