"""Runs in the audit chain: every run's start and end are entries, and `retention_runs` must agree.

Each test builds a real log (:func:`tests.auditlog.build`: a manual entry, then a live run whose
start is entry 2 and whose end is entry 8), changes the state DB behind the library's back with
plain SQL, and checks that verification fails naming the run, through the library and the CLI.
A property test then applies any single edit, deletion or swap to the entries or the run row.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retention.audit import AuditLog, Verification
from retention.config import load_config
from retention.executor import Executor
from retention.runevents import (
    MARKER_ACTION,
    MARKER_OUTCOME,
    MARKER_RUN_ID,
    RUN_ACTION,
    STARTED,
    marker_detail,
)
from retention.stores.sql import make_engine

from .auditlog import HMAC_KEY, NOW, Log, build, ticket
from .conftest import Database
from .scenario import Scenario, utc


def run_failure(log: Log, reason: str, run_id: str | None = None) -> Verification:
    """`verify()` and `retention audit verify` both fail as tampering, naming the run."""
    result = log.verify()
    assert not result.ok and result.problem == "tampered", result
    assert result.reason is not None and reason in result.reason, result
    assert result.run_id == (run_id or log.run_id), result
    cli = log.cli("audit", "verify")
    assert cli.exit_code == 1, cli.output
    assert reason in " ".join(cli.output.split())
    return result


def second_run(world: Scenario, log: Log) -> str:
    """A second live run, deleting three more tickets: entries 9 (start) to 12 (end)."""
    world.tickets(ticket(11, "closed", 1), ticket(12, "closed", 2), ticket(13, "closed", 1))
    result = Executor(log.config, now=NOW, live=True).run()
    assert result.status == "complete"
    assert log.last_seq() == 12
    return result.run_id


def run_row(log: Log, run_id: str | None = None) -> dict[str, Any]:
    with sqlite3.connect(log.state) as connection:
        connection.row_factory = sqlite3.Row
        row = connection.execute(
            "SELECT * FROM retention_runs WHERE id = ?", (run_id or log.run_id,)
        ).fetchone()
    connection.close()
    return dict(row)


# -- what the run events say -----------------------------------------------------------------------


def test_run_start_and_end_are_chain_entries(world: Scenario) -> None:
    """A live run's first entry records its mode, as-of time, fingerprint and holder, its last one
    its status and counts, exactly as its row in retention_runs says."""
    log = build(world)
    rows = log.rows()
    start, end = rows[1], rows[-1]
    row = run_row(log)
    assert (start["action"], start["outcome"], start["run_id"]) == (RUN_ACTION, STARTED, log.run_id)
    assert start["detail"].startswith("as of 2026-01-01T00:00:00+00:00: {")
    detail = json.loads(start["detail"].split(": ", 1)[1])
    assert detail["mode"] == "live" and detail["as_of"] == "2026-01-01T00:00:00+00:00"
    assert detail["config_fingerprint"] == row["config_fingerprint"] == log.config.fingerprint()
    assert detail["holder"] == row["holder"]
    assert (end["action"], end["outcome"], end["count"]) == (RUN_ACTION, "complete", 10)
    assert json.loads(end["detail"])["counts"] == json.loads(row["counts"])
    assert all(r["seal"] and r["key_id"] for r in rows)


def test_a_past_now_shows_in_the_runs_events(world: Scenario) -> None:
    """A dry run with a past `--now` records that as-of time, and `audit show` prints it."""
    log = build(world)
    result = Executor(log.config, now=utc("2024-03-05 06:07:08"), live=False).run()
    entries = list(log.audit_log().entries(run_id=result.run_id))
    assert entries[0].outcome == STARTED and entries[0].dry_run
    assert entries[0].detail is not None
    assert entries[0].detail.startswith("as of 2024-03-05T06:07:08+00:00")
    shown = log.cli("audit", "show", "--run", result.run_id)
    assert shown.exit_code == 0, shown.output
    assert "as of 2024-03-05T06:07:08+00:00" in shown.stdout
    assert log.verify().ok


def test_a_run_killed_midway_is_ended_in_the_chain_by_recovery(world: Scenario) -> None:
    """A run that died after its start entry verifies as running; the next live run marks it
    interrupted with an end entry in the same transaction, and the log still verifies."""
    log = build(world)
    world.tickets(*(ticket(n, "closed", 1) for n in range(20, 26)))

    class Killed(BaseException):
        """Stands for SIGKILL: nothing in the executor catches it."""

    def die(*args: Any) -> None:
        raise Killed

    with pytest.raises(Killed):
        Executor(log.config, now=NOW, live=True, progress=die).run()
    killed = next(r for r in log.rows() if r["outcome"] == STARTED and r["run_id"] != log.run_id)
    assert run_row(log, killed["run_id"])["status"] == "running"
    assert log.verify().ok
    Executor(log.config, now=NOW, live=True).run()
    ends = [r for r in log.rows() if r["run_id"] == killed["run_id"] and r["action"] == RUN_ACTION]
    assert [e["outcome"] for e in ends] == [STARTED, "interrupted"]
    assert json.loads(ends[1]["detail"])["message"] == run_row(log, killed["run_id"])["message"]
    assert log.verify().ok


# -- tampering with runs ---------------------------------------------------------------------------


def test_deleting_a_runs_entries_and_row_in_the_middle_is_detected(world: Scenario) -> None:
    """Removing a whole earlier run, its entries and its row, leaves a gap in the chain."""
    log = build(world)
    second_run(world, log)
    log.sql("DELETE FROM retention_audit WHERE run_id = ?", log.run_id)
    log.sql("DELETE FROM retention_runs WHERE id = ?", log.run_id)
    result = log.verify()
    assert not result.ok and result.bad_seq == 2 and result.problem == "tampered"
    assert log.cli("audit", "verify").exit_code == 1


RUN_EDITS = [
    ("mode", "dry-run", "its mode"),
    ("as_of", "2030-01-01 00:00:00.000000", "its as_of"),
    ("started_at", "2020-01-01 00:00:00.000000", "its started_at"),
    ("config_fingerprint", "f" * 64, "its config_fingerprint"),
    ("holder", "elsewhere:1:x", "its holder"),
    ("status", "failed", "its status"),
    ("finished_at", "2020-01-01 00:00:00.000000", "its finished_at"),
    ("message", "nothing to see", "its message"),
]


@pytest.mark.parametrize(("column", "value", "reason"), RUN_EDITS, ids=[e[0] for e in RUN_EDITS])
def test_edited_run_row_is_detected(world: Scenario, column: str, value: str, reason: str) -> None:
    """Changing any column of a run's row makes it disagree with its start or end entry."""
    log = build(world)
    log.sql(f"UPDATE retention_runs SET {column} = ? WHERE id = ?", value, log.run_id)
    run_failure(log, reason)


def test_edited_run_counts_are_detected(world: Scenario) -> None:
    """Claiming the run acted on fewer records (its head left alone) is caught by its end entry."""
    log = build(world)
    counts = json.loads(run_row(log)["counts"])
    counts["acted"], counts["rules"]["purge@tickets"] = 4, 0
    log.sql("UPDATE retention_runs SET counts = ? WHERE id = ?", json.dumps(counts), log.run_id)
    run_failure(log, "its counts in retention_runs is not the one its end entry records")


def test_run_row_without_entries_is_detected(world: Scenario) -> None:
    """A run row that no start entry backs (added, or its entries removed) fails, named."""
    log = build(world)
    row = {**run_row(log), "id": "forged-run"}
    log.sql(
        f"INSERT INTO retention_runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
        *row.values(),
    )
    run_failure(log, "run forged-run is in retention_runs but has no start entry", "forged-run")


def test_removed_run_row_is_detected(world: Scenario) -> None:
    """A start entry whose row was deleted fails, naming the run and its start entry."""
    log = build(world)
    log.sql("DELETE FROM retention_runs WHERE id = ?", log.run_id)
    result = run_failure(log, "started in the chain but its row was removed")
    assert result.bad_seq == 2


def test_removed_end_entry_is_detected(world: Scenario) -> None:
    """Cutting only the run's end entry off the tail keeps the recorded head, but the row says
    complete and the chain does not."""
    log = build(world)
    log.sql("DELETE FROM retention_audit WHERE seq = 8")
    run_failure(log, "the chain has no entry for its end")


def test_removed_last_run_is_not_detected_without_checkpoints(world: Scenario) -> None:
    """The limit of a chain kept inside the state DB: cutting off the last run, entries and
    row together, leaves a valid shorter chain (test_checkpoints.py catches it)."""
    log = build(world)
    last = second_run(world, log)
    log.sql("DELETE FROM retention_audit WHERE run_id = ?", last)
    log.sql("DELETE FROM retention_runs WHERE id = ?", last)
    assert log.verify() == Verification(True, 8)


def test_deleting_everything_is_not_detected_without_checkpoints(world: Scenario) -> None:
    """Likewise an emptied state DB verifies as an empty one: only a checkpoint tells."""
    log = build(world)
    log.sql("DELETE FROM retention_audit")
    log.sql("DELETE FROM retention_runs")
    assert log.verify() == Verification(True, 0)


def test_an_upgrade_marker_cannot_excuse_a_later_run(world: Scenario) -> None:
    """Without a key, a writer could append a well-chained upgrade marker listing a forged run
    (with its row): only one marker, before any run event, is accepted, so it fails."""
    log = build(world, hmac_key=None)
    row = {**run_row(log), "id": "forged-run"}
    log.sql(
        f"INSERT INTO retention_runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
        *row.values(),
    )
    appender = log.audit_log()
    appender.append(
        run_id=MARKER_RUN_ID,
        action=MARKER_ACTION,
        outcome=MARKER_OUTCOME,
        dry_run=False,
        count=1,
        detail=marker_detail([row], 8, log.rows()[-1]["hash"]),
    )
    appender.engine.dispose()
    run_failure(log, "an upgrade marker after run events", MARKER_RUN_ID)


# -- any single change -----------------------------------------------------------------------------

ENTRY_COLUMNS = [
    "run_id",
    "at",
    "rule",
    "dataset",
    "action",
    "dry_run",
    "count",
    "keys",
    "outcome",
    "detail",
    "prev_hash",
    "hash",
    "seal",
    "key_id",
]
RUN_COLUMNS = [
    "id",
    "started_at",
    "finished_at",
    "as_of",
    "mode",
    "status",
    "config_fingerprint",
    "counts",
    "holder",
    "message",
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One built log (state DB and config) that each example copies."""
    directory = tmp_path_factory.mktemp("template")
    url = f"sqlite:///{directory / 'app.db'}"
    engine = make_engine(url)
    build(Scenario(Database(url, "sqlite", engine), directory))
    engine.dispose()
    yield directory


def _values(original: Any) -> st.SearchStrategy[Any]:
    if isinstance(original, int):
        return st.integers(-(2**31), 2**31)
    return st.text(max_size=40) | st.none()


CHANGES = st.one_of(
    st.tuples(st.just("edit entry"), st.integers(1, 8), st.sampled_from(ENTRY_COLUMNS), st.data()),
    st.tuples(st.just("delete entry"), st.integers(1, 8), st.none(), st.none()),
    st.tuples(st.just("swap entries"), st.integers(1, 8), st.integers(1, 8), st.none()),
    st.tuples(st.just("edit run"), st.none(), st.sampled_from(RUN_COLUMNS), st.data()),
    st.tuples(st.just("delete run"), st.none(), st.none(), st.none()),
)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(change=CHANGES)
def test_any_single_change_is_detected(
    template: Path, tmp_path: Path, change: tuple[Any, Any, Any, Any]
) -> None:
    """Any one edit (to a different value) of any column of any entry or of the run row, any
    deleted entry, any swap of two entries and a deleted run row fails verification."""
    try:
        apply(template, tmp_path, change)
    except sqlite3.IntegrityError:
        return  # the database itself refuses this change (a NULL in a NOT NULL column)


def apply(template: Path, tmp_path: Path, change: tuple[Any, Any, Any, Any]) -> None:
    """Copy the template log, make `change` to it, and check that it no longer verifies."""
    kind, seq, column, data = change
    work = Path(tempfile.mkdtemp(dir=tmp_path)) / "log"
    shutil.copytree(template, work)
    text = (work / "config.yaml").read_text().replace(str(template), str(work))
    (work / "config.yaml").write_text(text)
    log = Log(work / "config.yaml", load_config(work / "config.yaml"), work / "state.db", "")
    before = log.rows()
    run = run_row_any(log)
    if kind == "edit entry":
        original = before[seq - 1][column]
        value = data.draw(_values(original).filter(lambda v: v != original))
        if column == "dry_run":
            value = 1 - int(original)
        log.sql(f"UPDATE retention_audit SET {column} = ? WHERE seq = ?", value, seq)
    elif kind == "delete entry":
        log.sql("DELETE FROM retention_audit WHERE seq = ?", seq)
    elif kind == "swap entries":
        if seq == column:
            return
        log.sql("UPDATE retention_audit SET seq = -1 WHERE seq = ?", seq)
        log.sql("UPDATE retention_audit SET seq = ? WHERE seq = ?", seq, column)
        log.sql("UPDATE retention_audit SET seq = ? WHERE seq = -1", column)
    elif kind == "edit run":
        original = run[column]
        value = data.draw(st.text(min_size=1, max_size=40).filter(lambda v: v != original))
        if column in ("started_at", "finished_at", "as_of"):
            moment = dt.datetime.fromisoformat(str(original)) + dt.timedelta(microseconds=1)
            value = moment.isoformat(sep=" ")
        log.sql(f"UPDATE retention_runs SET {column} = ? WHERE id = ?", value, run["id"])
    else:
        log.sql("DELETE FROM retention_runs WHERE id = ?", run["id"])
    result = log.verify()
    assert not result.ok, (change, result)


def run_row_any(log: Log) -> dict[str, Any]:
    with sqlite3.connect(log.state) as connection:
        connection.row_factory = sqlite3.Row
        row = connection.execute("SELECT * FROM retention_runs").fetchone()
    connection.close()
    return dict(row)


def test_key_id_of_an_unknown_key_is_a_key_problem(world: Scenario) -> None:
    """An entry naming a key not held (sealed before a rotation, the old key not configured)
    is reported as a key problem (exit 6), with both key ids, not as tampering."""
    log = build(world)
    log.sql("UPDATE retention_audit SET key_id = 'hmac:0123456789abcdef' WHERE seq = 3")
    result = log.verify()
    assert (result.ok, result.problem, result.bad_seq) == (False, "key", 3)
    assert result.reason is not None and "hmac:0123456789abcdef" in result.reason
    assert AuditLog(log.audit_log().engine, keys="plain", hmac_key=None).verify().ok
    cli = log.cli("audit", "verify")
    assert cli.exit_code == 6, cli.output
    assert "audit key problem" in cli.output
    assert HMAC_KEY not in cli.output
