"""The audit log: tampering with the state DB is caught by `verify` and `retention audit verify`.

Each tampering test builds a real log (entries appended through :class:`AuditLog` and by a live
:class:`Executor` run on SQLite), changes the state DB behind the library's back with plain SQL,
one way per test, and checks that verification names the damaged entry and the reason, through
the library and through the CLI (exit code 1). The rest pins how record keys are stored
(`audit.keys`), the `audit show` filters, `audit export`, and concurrent appends.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, event

from retention import audit as audit_module
from retention.audit import GENESIS, AuditLog, KeyMode, Verification, entry_hash
from retention.executor import Executor
from retention.statedb import open_state
from retention.testing import examples

from .auditlog import BASE, HMAC_KEY, NOW, Log, assert_tampered, build, rehash_from, ticket
from .conftest import Database
from .scenario import Scenario, rule, utc

HASHED = (
    "seq",
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
)


# -- an intact log -------------------------------------------------------------------------------


def test_intact_log_verifies(world: Scenario) -> None:
    """An untouched log of manual and run entries verifies: ok, every entry counted, exit 0."""
    log = build(world, manual=2)
    assert log.verify() == Verification(True, 9)
    result = log.cli("audit", "verify")
    assert result.exit_code == 0, result.output
    assert "ok: 9 entries, chain intact" in result.output
    as_json = json.loads(log.cli("audit", "verify", "--json").stdout)
    assert as_json == {
        "ok": True,
        "entries": 9,
        "bad_seq": None,
        "reason": None,
        "run_id": None,
        "problem": None,
        "checkpoints": 0,
    }


def test_entries_are_chained_and_sealed(world: Scenario) -> None:
    """Each prev_hash is the hash before it, each hash covers its fields, each seal its hash."""
    log = build(world, hmac_key=HMAC_KEY)
    prev = GENESIS
    for row in log.rows():
        assert row["prev_hash"] == prev
        assert row["hash"] == entry_hash({**row, "dry_run": bool(row["dry_run"])})
        expected = hmac.new(HMAC_KEY.encode(), row["hash"].encode(), hashlib.sha256).hexdigest()
        assert row["seal"] == expected
        prev = row["hash"]
    heads = json.loads(_run_counts(log)["counts"])["audit_head"]
    assert heads == [7, log.rows()[6]["hash"]]


def test_empty_log_verifies(tmp_path: Path) -> None:
    """A state DB with no entries at all (and no finished run) verifies as an empty chain."""
    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    assert AuditLog(engine, keys="plain", hmac_key=None).verify() == Verification(True, 0)
    engine.dispose()


# -- edited entries ----------------------------------------------------------------------------

EDITS = [
    ("count", 99, "entry was edited"),
    ("keys", json.dumps([str(BASE + 1)]), "entry was edited"),
    ("outcome", "refused", "entry was edited"),
    ("rule", "mask", "entry was edited"),
    ("at", "2027-06-01T00:00:00+00:00", "entry was edited"),
    ("dry_run", 1, "entry was edited"),
    ("run_id", "another-run", "entry was edited"),
    ("dataset", "other", "entry was edited"),
    ("action", "anonymize", "entry was edited"),
    ("detail", "nothing to see", "entry was edited"),
    ("hash", "f" * 64, "entry was edited"),
    ("prev_hash", "e" * 64, "does not follow the one before it"),
    ("seal", "d" * 64, "seal does not match"),
]


@pytest.mark.parametrize(("field", "value", "reason"), EDITS, ids=[e[0] for e in EDITS])
def test_edited_field_is_detected(world: Scenario, field: str, value: object, reason: str) -> None:
    """Changing any single field of a middle entry is caught at that entry."""
    log = build(world, hmac_key=HMAC_KEY)
    assert log.rows()[2][field] != value
    log.sql(f"UPDATE retention_audit SET {field} = ? WHERE seq = 3", value)
    assert_tampered(log, 3, reason)


def test_edited_first_entry_is_detected(world: Scenario) -> None:
    """The first entry is checked against the genesis hash like any other."""
    log = build(world)
    log.sql("UPDATE retention_audit SET count = 5 WHERE seq = 1")
    assert_tampered(log, 1, "entry was edited (hash mismatch)")


def test_edited_last_entry_is_detected(world: Scenario) -> None:
    """The last entry (the run's end), which nothing follows, is checked by its own hash."""
    log = build(world)
    log.sql("UPDATE retention_audit SET count = 0 WHERE seq = 8")
    assert_tampered(log, 8, "entry was edited (hash mismatch)")


# -- removed entries ---------------------------------------------------------------------------


def test_deleted_middle_entry_is_detected(world: Scenario) -> None:
    """Deleting an entry from the middle leaves a gap in the sequence, named as removed."""
    log = build(world)
    log.sql("DELETE FROM retention_audit WHERE seq = 3")
    assert_tampered(log, 3, "entry 3 was removed")


def test_deleted_and_renumbered_entry_is_detected(world: Scenario) -> None:
    """Closing the gap by renumbering the later entries still breaks the chain there."""
    log = build(world)
    log.sql("DELETE FROM retention_audit WHERE seq = 3")
    for seq in (4, 5, 6, 7, 8):
        log.sql("UPDATE retention_audit SET seq = ? WHERE seq = ?", seq - 1, seq)
    assert_tampered(log, 3, "does not follow the one before it")


@pytest.mark.parametrize("keep", [5, 3, 0], ids=["last-one", "last-three", "all"])
def test_truncated_tail_is_detected_by_run_head(world: Scenario, keep: int) -> None:
    """Deleting the last entries leaves a valid chain, but not the head the run recorded."""
    log = build(world)
    log.sql("DELETE FROM retention_audit WHERE seq > ?", keep)
    assert_tampered(log, 7, f"entries after {keep} were removed (run {log.run_id} ended at 7)")


def test_truncation_detected_through_earlier_run(world: Scenario) -> None:
    """With several finished runs, cutting back into an earlier run is still caught."""
    log = build(world)
    world.tickets(ticket(11, "closed", 1), ticket(12, "closed", 2), ticket(13, "closed", 1))
    second = Executor(log.config, now=NOW, live=True).run()
    assert second.status == "complete"
    assert log.last_seq() == 12
    log.sql("DELETE FROM retention_audit WHERE seq > 4")
    result = log.verify()
    assert not result.ok
    assert result.bad_seq in (7, 11)
    assert result.reason is not None and "entries after 4 were removed" in result.reason
    cli = log.cli("audit", "verify")
    assert cli.exit_code == 1
    assert "entries after 4 were removed" in cli.output


# -- forged and reordered entries --------------------------------------------------------------


def _forge(log: Log, seq: int, prev_hash: str, *, seal: str | None) -> dict[str, Any]:
    """An entry claiming a deletion, with a correctly computed SHA-256."""
    row: dict[str, Any] = {
        "seq": seq,
        "run_id": log.run_id,
        "at": "2026-01-01T00:00:01+00:00",
        "rule": "purge",
        "dataset": "tickets",
        "action": "delete",
        "dry_run": False,
        "count": 1,
        "keys": json.dumps([str(BASE + 7)]),
        "outcome": "done",
        "detail": None,
        "prev_hash": prev_hash,
    }
    row["hash"] = entry_hash(row)
    row["seal"] = seal
    columns = ", ".join(row)
    log.sql(
        f"INSERT INTO retention_audit ({columns}) VALUES ({', '.join('?' * len(row))})",
        *row.values(),
    )
    return row


@pytest.mark.parametrize(
    ("seal", "reason"),
    [(None, "entry has lost its seal"), ("c" * 64, "seal does not match")],
    ids=["unsealed", "made-up-seal"],
)
def test_forged_entry_appended_is_detected_by_seal(
    world: Scenario, seal: str | None, reason: str
) -> None:
    """A forged entry chained correctly onto the head is caught by the HMAC seal."""
    log = build(world, hmac_key=HMAC_KEY)
    head = log.rows()[-1]
    _forge(log, 9, head["hash"], seal=seal)
    assert_tampered(log, 9, reason)


def test_forged_entry_inserted_in_middle_is_detected_by_chain(world: Scenario) -> None:
    """Without any HMAC key, a forged entry slipped into the middle breaks the entry after it."""
    log = build(world, hmac_key=None)
    for seq in (8, 7, 6, 5, 4):
        log.sql("UPDATE retention_audit SET seq = ? WHERE seq = ?", seq + 1, seq)
    forged = _forge(log, 4, log.rows()[2]["hash"], seal=None)
    assert forged["prev_hash"] == log.rows()[2]["hash"]
    assert_tampered(log, 5, "does not follow the one before it")


def test_forged_entry_inserted_in_middle_is_detected_by_seal(world: Scenario) -> None:
    """With an HMAC key the forged entry itself is named: it carries no valid seal."""
    log = build(world, hmac_key=HMAC_KEY)
    for seq in (8, 7, 6, 5, 4):
        log.sql("UPDATE retention_audit SET seq = ? WHERE seq = ?", seq + 1, seq)
    _forge(log, 4, log.rows()[2]["hash"], seal=None)
    assert_tampered(log, 4, "entry has lost its seal")


@pytest.mark.parametrize(("first", "second"), [(3, 4), (2, 5)], ids=["adjacent", "apart"])
def test_swapped_entries_are_detected(world: Scenario, first: int, second: int) -> None:
    """Swapping two entries' sequence numbers (reordering them) breaks the chain at the first."""
    log = build(world)
    log.sql("UPDATE retention_audit SET seq = -1 WHERE seq = ?", first)
    log.sql("UPDATE retention_audit SET seq = ? WHERE seq = ?", first, second)
    log.sql("UPDATE retention_audit SET seq = ? WHERE seq = -1", second)
    assert_tampered(log, first, "does not follow the one before it")


def test_swapped_contents_are_detected(world: Scenario) -> None:
    """Swapping every column but seq between two entries is caught at the first of them."""
    log = build(world)
    rows = {r["seq"]: r for r in log.rows()}
    columns = [c for c in rows[2] if c != "seq"]
    assignments = ", ".join(f"{c} = ?" for c in columns)
    for target, source in ((2, 4), (4, 2)):
        values = [rows[source][c] for c in columns]
        log.sql(f"UPDATE retention_audit SET {assignments} WHERE seq = ?", *values, target)
    assert_tampered(log, 2, "does not follow the one before it")


# -- a chain rebuilt without the key -----------------------------------------------------------


def test_rehashed_chain_keeping_old_seals_is_detected(world: Scenario) -> None:
    """Recomputing every hash after an edit is caught by the seal, which needs the key."""
    log = build(world, hmac_key=HMAC_KEY)
    log.sql("UPDATE retention_audit SET count = 1, keys = ? WHERE seq = 3", json.dumps(["x"]))
    rehash_from(log, 3, seal="keep")
    assert_tampered(log, 3, "seal does not match (rewritten without the key)")


def test_rehashed_chain_with_seals_stripped_is_detected(world: Scenario) -> None:
    """Stripping every seal and rebuilding the chain after an edit does not pass with a key set.

    The run head recorded in `retention_runs` is updated too, as a forger with write access to
    the state DB would: only the seals stand between the forger and a clean verification.
    """
    log = build(world, hmac_key=HMAC_KEY)
    log.sql("UPDATE retention_audit SET count = 1, keys = ? WHERE seq = 3", json.dumps(["x"]))
    rehash_from(log, 1, seal=None)
    head = log.rows()[-1]
    counts = json.loads(_run_counts(log)["counts"])
    counts["audit_head"] = [head["seq"], head["hash"]]
    log.sql("UPDATE retention_runs SET counts = ? WHERE id = ?", json.dumps(counts), log.run_id)
    result = log.verify()
    assert not result.ok, "a chain with every seal stripped verified although a key is set"
    assert log.cli("audit", "verify").exit_code == 1


def test_rehashed_chain_without_key_is_detected_by_run_head(world: Scenario) -> None:
    """With no HMAC key configured, a rebuilt chain still disagrees with the recorded run head."""
    log = build(world, hmac_key=None)
    log.sql("UPDATE retention_audit SET count = 1, keys = ? WHERE seq = 3", json.dumps(["x"]))
    rehash_from(log, 3, seal=None)
    assert_tampered(log, 7, f"entry differs from the head recorded by run {log.run_id}")


def _run_counts(log: Log) -> dict[str, Any]:
    with sqlite3.connect(log.state) as connection:
        connection.row_factory = sqlite3.Row
        row = connection.execute(
            "SELECT * FROM retention_runs WHERE id = ?", (log.run_id,)
        ).fetchone()
    connection.close()
    return dict(row)


# -- how record keys are kept ------------------------------------------------------------------


def _canonical_hash(fields: dict[str, Any]) -> str:
    """The entry hash as the log format defines it: SHA-256 of the sorted, compact JSON."""
    payload = json.dumps({n: fields[n] for n in HASHED}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


_texts = st.text(max_size=12) | st.sampled_from(['"', "\\", "\u2028", "é", "\x00", "a/b"])


@settings(max_examples=examples(60), deadline=None)
@given(
    mode=st.sampled_from(["plain", "hmac", "none"]),
    keys=st.lists(_texts, max_size=6),
    detail=st.none() | _texts,
    rule=st.none() | _texts,
    dry_run=st.booleans(),
    seq=st.integers(1, 10**12),
)
def test_entry_hash_is_the_canonical_json_hash(
    mode: KeyMode, keys: list[str], detail: str | None, rule: str | None, dry_run: bool, seq: int
) -> None:
    """Keys prepared for a batch (possibly on another thread) hash exactly as the format says:
    the fast path that splices the pre-encoded keys in agrees with plain ``json.dumps``, and the
    stored text is what ``json.dumps`` of the keys (or their HMACs) would be."""
    log = AuditLog(open_state("sqlite://"), keys=mode, hmac_key=HMAC_KEY.encode())
    protected = log.protect(keys)
    assert json.loads(protected.encoded) == protected.text
    stored = json.loads(protected.text)
    if mode == "plain":
        assert stored == keys
    elif mode == "hmac":
        assert stored == [
            hmac.new(HMAC_KEY.encode(), k.encode(), hashlib.sha256).hexdigest() for k in keys
        ]
    else:
        assert stored == []
    fields = {
        "seq": seq,
        "run_id": "r",
        "at": "2026-01-01T00:00:00+00:00",
        "rule": rule,
        "dataset": "ds",
        "action": "delete",
        "dry_run": dry_run,
        "count": protected.count,
        "keys": protected.text,
        "outcome": "done",
        "detail": detail,
        "prev_hash": GENESIS,
    }
    expected = _canonical_hash(fields)
    assert entry_hash(fields) == expected
    assert entry_hash(fields, encoded_keys=protected.encoded) == expected


def _audited_keys(log: Log) -> list[list[str]]:
    return [json.loads(r["keys"]) for r in log.rows() if r["outcome"] == "done"]


def test_keys_plain(world: Scenario) -> None:
    """`audit.keys: plain` stores the record keys as text, batch by batch."""
    log = build(world, audit={"keys": "plain"})
    assert _audited_keys(log) == [[str(BASE + n), str(BASE + n + 1)] for n in (1, 3, 5, 7, 9)]


@pytest.mark.parametrize("helper_from", [None, 1], ids=["in-process", "helper-process"])
def test_keys_hmac(
    world: Scenario, monkeypatch: pytest.MonkeyPatch, helper_from: int | None
) -> None:
    """`audit.keys: hmac` stores HMAC-SHA256(key, record key) and never the key text itself,
    whether the batch's keys were hashed in-process or by the helper process."""
    if helper_from is not None:
        monkeypatch.setattr(audit_module, "HELPER_FROM_KEYS", helper_from)
    log = build(world, hmac_key=HMAC_KEY, audit={"keys": "hmac"})
    assert log.verify().ok

    def digest(n: int) -> str:
        return hmac.new(HMAC_KEY.encode(), str(BASE + n).encode(), hashlib.sha256).hexdigest()

    assert _audited_keys(log) == [[digest(n), digest(n + 1)] for n in (1, 3, 5, 7, 9)]
    with sqlite3.connect(log.state) as connection:
        dump = "\n".join(connection.iterdump())
    connection.close()
    for n in range(1, 11):
        assert str(BASE + n) not in dump


def test_keys_none(world: Scenario) -> None:
    """`audit.keys: none` keeps counts only: no keys, the same counts, a valid chain."""
    log = build(world, audit={"keys": "none"})
    done = [r for r in log.rows() if r["outcome"] == "done"]
    assert [(r["keys"], r["count"]) for r in done] == [("[]", 2)] * 5


def test_show_key_under_hmac(world: Scenario) -> None:
    """`audit show --key K` finds the entry that acted on K even though only its HMAC is stored."""
    log = build(world, hmac_key=HMAC_KEY, audit={"keys": "hmac"})
    result = log.cli("audit", "show", "--json", "--key", str(BASE + 8))
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert [(e["seq"], e["rule"], e["action"]) for e in found] == [(6, "mask", "anonymize")]
    missing = log.cli("audit", "show", "--json", "--key", str(BASE + 99))
    assert json.loads(missing.stdout) == []


def test_show_key_plain_is_exact(world: Scenario) -> None:
    """Under plain keys `--key` matches a whole key only, never a prefix of one."""
    log = build(world)
    found = json.loads(log.cli("audit", "show", "--json", "--key", str(BASE + 1)).stdout)
    assert [e["seq"] for e in found] == [3]
    partial = json.loads(log.cli("audit", "show", "--json", "--key", str(BASE)[:-1]).stdout)
    assert partial == []


# -- audit show filters ------------------------------------------------------------------------


@pytest.fixture
def filtered(world: Scenario) -> Log:
    """A log with entries spread over runs, rules, datasets and days, appended directly."""
    log = build(world, manual=0)
    audit_log = log.audit_log()
    for seq, (run_id, rule_id, dataset, when) in enumerate(
        [
            ("run-a", "r1", "tickets", "2001-02-01 00:00:00"),
            ("run-a", "r2", "messages", "2001-02-02 00:00:00"),
            ("run-b", "r1", "messages", "2001-02-02 12:00:00"),
            ("run-b", "r2", "tickets", "2001-02-03 00:00:00"),
        ],
        start=8,
    ):
        entry = audit_log.append(
            run_id=run_id,
            rule=rule_id,
            dataset=dataset,
            action="delete",
            outcome="done",
            dry_run=False,
            keys=[f"k{seq}"],
            at=utc(when),
        )
        assert entry.seq == seq
    audit_log.engine.dispose()
    return log


def _shown(log: Log, *args: str) -> list[int]:
    result = log.cli("audit", "show", "--json", *args)
    assert result.exit_code == 0, result.output
    return [e["seq"] for e in json.loads(result.stdout)]


def test_show_all_in_chain_order(filtered: Log) -> None:
    """Without filters `audit show` lists every entry in chain order."""
    assert _shown(filtered) == list(range(1, 12))


def test_show_filters(filtered: Log) -> None:
    """--run, --rule and --dataset select exactly the matching entries, and combine with AND."""
    assert _shown(filtered, "--run", "run-a") == [8, 9]
    assert _shown(filtered, "--run", filtered.run_id) == [1, 2, 3, 4, 5, 6, 7]
    assert _shown(filtered, "--rule", "r1") == [8, 10]
    assert _shown(filtered, "--rule", "purge") == [2, 3, 4]
    assert _shown(filtered, "--dataset", "messages") == [9, 10]
    assert _shown(filtered, "--run", "run-b", "--dataset", "tickets") == [11]
    assert _shown(filtered, "--rule", "nope") == []


def test_show_since_until(filtered: Log) -> None:
    """--since is inclusive, --until exclusive; offsets are honoured; dates mean midnight UTC.

    The run's own entries carry the wall-clock time of the test, so every window here is
    closed on both sides, in 2001.
    """

    def window(since: str, until: str = "2001-03-01") -> list[int]:
        return _shown(filtered, "--since", since, "--until", until)

    assert window("2001-02-02") == [9, 10, 11]
    assert window("2001-01-01", "2001-02-02") == [8]
    assert window("2001-02-02", "2001-02-03") == [9, 10]
    assert window("2001-02-02T12:00:00") == [10, 11]
    assert window("2001-02-02T13:00:00+01:00") == [10, 11]
    assert window("2001-02-02T12:00:00.000001") == [11]
    assert window("2001-02-01", "2001-02-02T12:00:00") == [8, 9]
    assert _shown(filtered, "--until", "2001-03-01") == [8, 9, 10, 11]


def test_show_table(filtered: Log) -> None:
    """Without --json `audit show` prints a table row per entry, with its sequence number."""
    result = filtered.cli("audit", "show", "--run", "run-b")
    assert result.exit_code == 0, result.output
    assert "run-b" in result.stdout
    assert "r1" in result.stdout and "r2" in result.stdout
    assert "purge" not in result.stdout


def test_show_bad_date_is_a_clear_error(filtered: Log) -> None:
    """A malformed --since is a usage error (exit 2) with a message, not a traceback."""
    result = filtered.cli("audit", "show", "--since", "yesterday")
    assert result.exit_code == 2, (result.exit_code, result.exception)
    assert "--since" in result.output


# -- export -------------------------------------------------------------------------------------


@pytest.mark.parametrize("hmac_key", [None, HMAC_KEY], ids=["unsealed", "sealed"])
def test_export_jsonl(world: Scenario, hmac_key: str | None) -> None:
    """`export --format jsonl`: one JSON object per entry with its hash, chained, recomputable."""
    log = build(world, hmac_key=hmac_key)
    result = log.cli("audit", "export", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    rows = log.rows()
    assert [e["seq"] for e in lines] == [r["seq"] for r in rows]
    prev = GENESIS
    for exported, row in zip(lines, rows, strict=True):
        assert exported["hash"] == row["hash"]
        assert exported["seal"] == row["seal"]
        assert exported["prev_hash"] == prev
        assert isinstance(exported["keys"], list)
        recomputed = {**exported, "keys": json.dumps(exported["keys"])}
        if exported["records"] is not None:
            recomputed["records"] = json.dumps(exported["records"])
        assert entry_hash(recomputed) == exported["hash"]
        prev = exported["hash"]


def test_export_csv(world: Scenario, tmp_path: Path) -> None:
    """`export --format csv -o FILE`: a header and one row per entry with hash and seal."""
    log = build(world, hmac_key=HMAC_KEY)
    target = tmp_path / "audit.csv"
    result = log.cli("audit", "export", "--format", "csv", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert "exported 8 entries" in result.output
    with target.open(newline="", encoding="utf-8") as stream:
        parsed = list(csv.DictReader(stream))
    rows = log.rows()
    assert len(parsed) == len(rows) == 8
    assert set(parsed[0]) == {*HASHED, "hash", "seal", "key_id", "records"}
    for exported, row in zip(parsed, rows, strict=True):
        assert int(exported["seq"]) == row["seq"]
        assert exported["hash"] == row["hash"]
        assert exported["seal"] == row["seal"]
        assert exported["prev_hash"] == row["prev_hash"]
        assert json.loads(exported["keys"]) == json.loads(row["keys"])
        assert int(exported["count"]) == row["count"]


def test_export_csv_stdout(world: Scenario) -> None:
    """`export --format csv` to stdout parses to the same number of entries."""
    log = build(world)
    result = log.cli("audit", "export", "--format", "csv")
    assert result.exit_code == 0, result.output
    parsed = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["hash"] for r in parsed] == [r["hash"] for r in log.rows()]


def test_export_unknown_format(world: Scenario) -> None:
    """An unknown --format is a usage error (exit 2)."""
    log = build(world)
    result = log.cli("audit", "export", "--format", "xml")
    assert result.exit_code == 2


# -- concurrent appends ------------------------------------------------------------------------


@pytest.fixture
def state_url(fast_path: Path) -> str:
    url = f"sqlite:///{fast_path / 'state.db'}"
    open_state(url).dispose()
    return url


def _hammer(url: str, writer: str, count: int, errors: list[BaseException]) -> None:
    engine = open_state(url)
    log = AuditLog(engine, keys="hmac", hmac_key=HMAC_KEY.encode())
    try:
        for n in range(count):
            kwargs: dict[str, Any] = {
                "run_id": writer,
                "action": "delete",
                "outcome": "done",
                "dry_run": False,
                "keys": [f"{writer}-{n}"],
            }
            log.append(**kwargs)
    except BaseException as exc:  # reported to the test thread
        errors.append(exc)
    finally:
        engine.dispose()


def _check_concurrent(url: str, writers: dict[str, int]) -> None:
    engine = open_state(url)
    log = AuditLog(engine, keys="hmac", hmac_key=HMAC_KEY.encode())
    total = sum(writers.values())
    assert log.verify() == Verification(True, total)
    entries = list(log.entries())
    assert [e.seq for e in entries] == list(range(1, total + 1))
    for writer, count in writers.items():
        mine = [e for e in entries if e.run_id == writer]
        assert len(mine) == count
    engine.dispose()


def test_concurrent_appends_keep_a_valid_chain(state_url: str) -> None:
    """Two threads appending to one SQLite state DB at once: no entry lost, the chain intact."""
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_hammer, args=(state_url, name, 60, errors))
        for name in ("writer-a", "writer-b")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    _check_concurrent(state_url, {"writer-a": 60, "writer-b": 60})


def _interleave(engine: Engine, other: AuditLog, *, skip: int = 0) -> list[int]:
    """Make `other` append one entry just before `engine` next inserts into the audit table
    (after letting `skip` of its inserts pass).

    This is the interleaving two writers produce when the second reads the chain head before
    the first commits: the second's INSERT then races for the same sequence number.
    """
    done: list[int] = []
    passed: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _race(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith("INSERT INTO retention_audit") or done:
            return
        if len(passed) < skip:
            passed.append(statement)
        else:
            done.append(
                other.append(run_id="other-writer", action="note", outcome="x", dry_run=True).seq
            )

    return done


@pytest.mark.postgres
def test_append_inside_transaction_survives_a_concurrent_writer(postgres_db: Database) -> None:
    """An append inside the caller's transaction (how the executor audits a batch) that loses
    the race for the next sequence number chains onto the winner instead of failing.

    On PostgreSQL the race is real (READ COMMITTED); a SQLite state DB starts every state
    transaction with BEGIN IMMEDIATE, so the second writer waits and the race cannot happen.
    """
    state_url = postgres_db.url
    engine = open_state(state_url)
    log = AuditLog(engine, keys="plain", hmac_key=None)
    log.append(run_id="first", action="note", outcome="x", dry_run=False)
    other_engine = open_state(state_url)
    raced = _interleave(engine, AuditLog(other_engine, keys="plain", hmac_key=None))
    with engine.begin() as connection:
        entry = log.append(
            run_id="batch",
            action="delete",
            outcome="done",
            dry_run=False,
            keys=["1"],
            connection=connection,
        )
    assert raced == [2]
    assert entry.seq == 3
    assert log.verify() == Verification(True, 3)
    engine.dispose()
    other_engine.dispose()


@pytest.mark.postgres
def test_batch_audit_survives_a_concurrent_writer(world: Scenario, postgres_db: Database) -> None:
    """A live run whose batch audit races with another writer (say a dry run appending its own
    entries) on a PostgreSQL state DB still finishes the rule, audits every key once and leaves
    a valid chain."""
    world.accounts({"id": 1})
    world.tickets(*(ticket(n, "closed", 1) for n in range(1, 5)))
    config = world.config(
        [rule("purge")], batch_size=2, limits={"max_fraction": 1.0}, audit={"keys": "plain"}
    )
    url = postgres_db.url
    state, other = open_state(url), open_state(url)
    # the run's start entry goes first; the race is on its first batch's entry
    raced = _interleave(state, AuditLog(other, keys="plain", hmac_key=None), skip=1)
    result = Executor(config, now=NOW, live=True, state=state).run()
    assert raced == [2]
    assert [(o.status, o.acted) for o in result.outcomes] == [("ok", 4)], result.as_dict()
    log = AuditLog(state, keys="plain", hmac_key=None)
    assert log.verify() == Verification(True, 5)
    audited = [k for e in log.entries(run_id=result.run_id) for k in json.loads(e.keys)]
    assert audited == [str(BASE + n) for n in range(1, 5)]
    state.dispose()
    other.dispose()
