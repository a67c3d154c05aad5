"""`retention subject TYPE ID` and erasure certificates: one subject's records per dataset with
the rule, due date, holds and keep rules of each group; the audit entries that acted on them;
a sealed certificate that verifies against the state DB, and fails on any edit of itself or of
the entries it rests on."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text, update
from typer.testing import CliRunner

from retention.audit import AuditLog
from retention.certificates import Sealer, build, document, readable, verify, write
from retention.cli import app
from retention.config import Config
from retention.demo import build_demo
from retention.errors import AuditError, AuditKeyError, ConfigError, RetentionError
from retention.executor import Executor
from retention.recordfacts import RecordFacts
from retention.statedb import open_state
from retention.statetables import audit
from retention.stores.base import Intent, StoredIntent
from retention.stores.sql import make_engine
from retention.subjects import DUE, HELD, KEPT, PENDING, lookup
from retention.testing import Probe, SimulatedCrash, examples

from .conftest import Database
from .scenario import TICKETS_DATASET, Scenario, at, rule, utc

NOW = utc("2026-06-01 00:00:00")


def _state(db: Database) -> dict[str, str]:
    """The state DB on the test's server; a SQLite file of its own beside SQLite and DuckDB
    (which cannot hold one)."""
    return {} if db.dialect in ("sqlite", "duckdb") else {"state_db": db.url}


def _world(
    db: Database, directory: Path, tickets: dict[str, Any] | None = None, **extra: Any
) -> tuple[Scenario, Config]:
    """Account 7 closed (its tickets and their messages due), 8 held, 9 with a ticket kept by a
    keep rule and one not yet due; an uploads tree whose files name no subject."""
    world = Scenario(db, directory)
    world.accounts(
        {"id": 7, "closed_at": at("2026-01-01")},
        {"id": 8, "closed_at": at("2026-01-01")},
        {"id": 9},
    )
    world.tickets(
        {"id": 1, "account_id": 7, "created_at": at("2025-01-01")},
        {"id": 2, "account_id": 7, "created_at": at("2025-02-01")},
        {"id": 3, "account_id": 8, "created_at": at("2025-01-01")},
        {"id": 4, "account_id": 9, "created_at": at("2025-06-01"), "status": "legal"},
        {"id": 5, "account_id": 9, "created_at": at("2026-05-20")},
    )
    world.messages(
        {"id": 10, "ticket_id": 1}, {"id": 11, "ticket_id": 1}, {"id": 12, "ticket_id": 4}
    )
    (directory / "tree").mkdir()
    config = world.config(
        [
            rule(within="P7D"),
            rule("minimum", retain="P2Y", action="keep", where={"status": ["legal"]}),
        ],
        holds={"holds": [{"id": "case-8", "subjects": {"account": [8]}}]},
        datasets={
            "tickets": {
                **TICKETS_DATASET,
                "cascade": [{"dataset": "messages", "column": "ticket_id"}],
                **(tickets or {}),
            },
            "messages": {"store": "app", "table": "messages", "key": "id", "category": "notes"},
            "uploads": {"store": "tree", "glob": "*.bin", "category": "uploads"},
        },
        stores={
            "app": {"kind": "sql", "url": db.url},
            "tree": {"kind": "filesystem", "root": str(directory / "tree")},
        },
        **_state(db),
        **extra,
    )
    return world, config


def _groups(report: Any, dataset: str) -> list[tuple[str, str | None, int, tuple[str, ...]]]:
    (view,) = [d for d in report.datasets if d.dataset == dataset]
    return [(g.state, g.rule, g.records, g.holds or g.keep_rules) for g in view.groups]


def test_a_subject_lookup_groups_its_records_and_names_what_cannot_be_attributed(
    db: Database, tmp_path: Path
) -> None:
    """Before any run, on every SQL store: the closed account's tickets are due (and their
    messages, found through the cascade), the held account's are held by its hold, another's
    kept by the keep rule or not yet due; a file tree whose files name no subject is named."""
    _, config = _world(db, tmp_path)
    report = lookup(config, "account", "0007", NOW)
    assert report.subject_id == "7" and report.due == 2
    assert _groups(report, "tickets") == [(DUE, "r", 2, ())]
    (messages,) = [d for d in report.datasets if d.dataset == "messages"]
    assert messages.records == 2 and messages.via == "cascade from tickets (ticket_id)"
    assert [(u.dataset, u.reason) for u in report.unattributed] == [
        ("uploads", "its records name no subject (no subject column, no cascade parent with one)")
    ]
    assert _groups(lookup(config, "account", "8", NOW), "tickets") == [(HELD, "r", 1, ("case-8",))]
    kept = lookup(config, "account", "9", NOW)
    assert _groups(kept, "tickets") == [(KEPT, "r", 1, ("minimum",)), (PENDING, "r", 1, ())]
    (group,) = [g for g in kept.datasets[0].groups if g.state == KEPT]
    assert group.last == utc("2027-06-01 00:00:00")


def test_after_a_live_run_the_certificate_names_every_run_and_verifies(
    state_db: Database, tmp_path: Path
) -> None:
    """After the run, account 7 has nothing left and nothing due: the certificate cites the
    entry that deleted its tickets (2 of its records) and the cascade entry of their messages
    (2 of its records too: a cascaded row carries its parent's facts), rests on the chain
    head, and verifies against the state DB."""
    _, config = _world(state_db, tmp_path)
    Executor(config, now=NOW, live=True).run()
    report = lookup(config, "account", "7", NOW)
    assert report.due == 0 and sum(d.records for d in report.datasets) == 0
    sealed = Sealer(config.settings).seal(build(report, NOW))
    assert sealed["nothing_due"] and sealed["records_kept"] == 0
    by_name = {d["dataset"]: d for d in sealed["datasets"]}
    assert sorted(by_name) == ["messages", "tickets"]
    (deleted,) = by_name["tickets"]["cleared"]
    assert (deleted["action"], deleted["records"], deleted["rule"]) == ("delete", 2, "r")
    (cascaded,) = by_name["messages"]["cleared"]
    assert (cascaded["cascade_of"], cascaded["records"]) == (deleted["seq"], 2)
    path, text = write(sealed, tmp_path / "cert.json")
    assert "A fresh evaluation finds nothing due left" in text.read_text()
    engine = open_state(config.settings.state_db.get_secret_value())
    try:
        checked = verify(path, config.settings, engine)
        assert checked.entries == 2 and checked.head == sealed["audit_head"]["seq"]
        with engine.begin() as connection:  # the entry it rests on, rewritten
            connection.execute(update(audit).where(audit.c.seq == deleted["seq"]).values(count=1))
        with pytest.raises(AuditError, match="does not verify"):
            verify(path, config.settings, engine)
    finally:
        engine.dispose()


def test_a_held_account_s_certificate_says_what_is_kept_and_why(
    state_db: Database, tmp_path: Path
) -> None:
    """Account 8 is held: its certificate keeps its ticket under hold case-8 and says so."""
    _, config = _world(state_db, tmp_path)
    Executor(config, now=NOW, live=True).run()
    sealed = Sealer(config.settings).seal(build(lookup(config, "account", "8", NOW), NOW))
    (tickets,) = [d for d in sealed["datasets"] if d["dataset"] == "tickets"]
    assert tickets["cleared"] == [] and tickets["records_now"] == 1
    (kept,) = tickets["kept"]
    assert (kept["state"], kept["holds"], kept["records"]) == (HELD, ["case-8"], 1)
    _, text = write(sealed, tmp_path / "held.json")
    assert "kept: 1 record held by case-8 (rule r would act)" in text.read_text()


class _DiesAuditing(Probe):
    """Dies as the first batch's audit entries are being written: its rows are gone, its
    intent is all the state DB has of it."""

    def reached(self, point: str, intent: Intent | StoredIntent | None = None) -> None:
        if point == "audit":
            raise SimulatedCrash


@pytest.mark.parametrize("quarantine", [False, True], ids=["delete", "quarantine"])
def test_a_batch_settled_after_a_crash_is_credited_with_the_facts_its_intent_kept(
    state_db: Database, tmp_path: Path, quarantine: bool
) -> None:
    """A run killed after its delete committed and before its audit entry: the next run
    settles the batch from the data and audits it with the facts its intent kept — per
    ticket the account, due time and lateness, per cascaded message its ticket's — so
    account 7's certificate cites the settled entries of the killed run (2 tickets, 2
    messages with them) and verifies; a quarantined delete (rows kept restorable) alike."""
    _, config = _world(state_db, tmp_path, tickets={"quarantine": "P7D"} if quarantine else None)
    killed = Executor(config, now=NOW, live=True, probe=_DiesAuditing())
    with pytest.raises(SimulatedCrash):
        killed.run()
    assert Executor(config, now=NOW, live=True).run().recovered == 2
    engine = open_state(config.settings.state_db.get_secret_value())
    try:
        log = AuditLog.from_settings(engine, config.settings)
        settled = {
            e.dataset: e for e in log.entries() if e.run_id == killed.run_id and e.keys != "[]"
        }
        seven = log.subject_digest("7")
    finally:
        engine.dispose()
    late = int((NOW - utc("2025-02-07 00:00:00")).total_seconds())
    assert json.loads(settled["tickets"].keys) == [log.key_digest("1"), log.key_digest("2")]
    assert settled["tickets"].facts() == [
        (seven, "2025-01-31T00:00:00+00:00", late),
        (seven, "2025-03-03T00:00:00+00:00", late - 24 * 3600 * 31),
    ]
    assert settled["messages"].facts() == [(seven, "2025-01-31T00:00:00+00:00", late)] * 2
    report = lookup(config, "account", "7", NOW)
    sealed = Sealer(config.settings).seal(build(report, NOW))
    by_name = {d["dataset"]: d for d in sealed["datasets"]}
    (tickets,) = by_name["tickets"]["cleared"]
    (messages,) = by_name["messages"]["cleared"]
    assert (tickets["run_id"], tickets["rule"], tickets["records"]) == (killed.run_id, "r", 2)
    assert (tickets["late"], tickets["late_by"]) == (2, late)
    assert (messages["records"], messages["cascade_of"]) == (2, tickets["seq"])
    path, text = write(sealed, tmp_path / "settled.json")
    assert f"(audit entry {tickets['seq']}); 2 late, by up to 479 days 0 h" in text.read_text()
    engine = open_state(config.settings.state_db.get_secret_value())
    try:
        assert verify(path, config.settings, engine).entries == 2
    finally:
        engine.dispose()


def test_a_cascade_entry_written_before_rows_had_facts_is_credited_through_its_parent(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """A log written before cascaded rows carried facts: the children's entry (no records)
    is still credited to the subject through its parent's entry in the same batch, uncounted,
    and the certificate says its rows went with that entry."""
    _, config = _world(sqlite_db, tmp_path)
    engine = open_state(config.settings.state_db.get_secret_value())
    try:
        log = AuditLog.from_settings(engine, config.settings, writing=True)
        due = utc("2025-01-31 00:00:00")
        common = {"run_id": "old-run", "rule": "r", "outcome": "done", "dry_run": False}
        log.append(
            **common,
            dataset="messages",
            action="delete (cascade)",
            keys=["10", "11"],
            detail="children of tickets",
        )
        parent = log.append(
            **common,
            dataset="tickets",
            action="delete",
            keys=["1"],
            records=log.protect_records([RecordFacts("7", due)]),
        )
    finally:
        engine.dispose()
    sealed = build(lookup(config, "account", "7", NOW), NOW)
    (cascaded,) = next(d for d in sealed["datasets"] if d["dataset"] == "messages")["cleared"]
    assert (cascaded["records"], cascaded["cascade_of"]) == (None, parent.seq)
    text = readable(Sealer(config.settings).seal(sealed))
    assert f"delete (cascade): its rows, with entry {parent.seq} by run old-run" in text


def _edit(sealed: dict[str, Any], path: tuple[Any, ...]) -> None:
    """Change the leaf at `path` to another value of the same kind."""
    target: Any = sealed
    for part in path[:-1]:
        target = target[part]
    value = target[path[-1]]
    if isinstance(value, bool):
        target[path[-1]] = not value
    elif isinstance(value, int):
        target[path[-1]] = value + 1
    elif isinstance(value, str):
        target[path[-1]] = value + "x"
    else:
        target[path[-1]] = "x"


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))]
    return [path]


@cache
def _certificate() -> tuple[Path, Config]:
    """One certificate on a SQLite world, made once for the property tests."""
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="retention-cert-"))
    url = f"sqlite:///{directory / 'app.db'}"
    _, config = _world(Database(url, "sqlite", make_engine(url)), directory)
    Executor(config, now=NOW, live=True).run()
    sealed = Sealer(config.settings).seal(build(lookup(config, "account", "7", NOW), NOW))
    path, _ = write(sealed, directory / "cert.json")
    return path, config


def _fails(path: Path, config: Config) -> RetentionError:
    engine = open_state(config.settings.state_db.get_secret_value())
    try:
        with pytest.raises((AuditError, AuditKeyError)) as caught:
            verify(path, config.settings, engine)
        return caught.value
    finally:
        engine.dispose()


@settings(max_examples=examples(60), deadline=None)
@given(data=st.data())
def test_any_single_byte_changed_fails_verification(data: st.DataObject) -> None:
    """Whichever byte of the certificate is changed, to whatever other byte, it no longer
    verifies (exit 1, or 6 when the change names a key not held here)."""
    path, config = _certificate()
    original = path.read_bytes()
    at_ = data.draw(st.integers(0, len(original) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != original[at_]))
    forged = path.with_name("forged.json")
    forged.write_bytes(original[:at_] + bytes([byte]) + original[at_ + 1 :])
    assert _fails(forged, config).exit_code in (1, 6)


def test_a_lateness_edited_to_infinity_fails_verification() -> None:
    """A digit of `late_by` turned into an exponent (`9e999`, which JSON reads as infinity):
    verification says the certificate was edited (exit 1), it does not crash."""
    path, config = _certificate()
    text = path.read_text()
    edited, count = re.subn(r'"late_by": \d+', '"late_by": 9e999', text, count=1)
    assert count == 1, "the certificate names a late entry"
    forged = path.with_name("infinite.json")
    forged.write_text(edited)
    assert _fails(forged, config).exit_code == 1


@settings(max_examples=examples(60), deadline=None)
@given(data=st.data())
def test_any_field_changed_fails_verification(data: st.DataObject) -> None:
    """A field edited and the file rewritten in retention's own canonical form fails on the
    seal: the certificate proves nothing it was not sealed with."""
    path, config = _certificate()
    sealed = json.loads(path.read_text())
    leaf = data.draw(st.sampled_from(_leaves(sealed)))
    _edit(sealed, leaf)
    forged = path.with_name("edited.json")
    forged.write_text(document(sealed))
    assert _fails(forged, config).exit_code in (1, 6)


def test_verify_certificate_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`audit verify-certificate` exits 0 for a good certificate, 1 with one line when it was
    edited, 6 when checked with another HMAC key (nothing could be checked)."""
    path, config = _certificate()
    runner = CliRunner()
    config_path = str(config.path)
    good = runner.invoke(app, ["audit", "verify-certificate", str(path), "--config", config_path])
    assert good.exit_code == 0, good.output
    assert "chain intact" in good.output
    edited = tmp_path / "edited.json"
    edited.write_text(path.read_text().replace('"nothing_due": true', '"nothing_due": false'))
    bad = runner.invoke(app, ["audit", "verify-certificate", str(edited), "--config", config_path])
    assert bad.exit_code == 1 and "seal does not verify" in bad.output
    state = config.settings.state_db.get_secret_value()
    monkeypatch.setenv("RETENTION_HMAC_KEY", "another-key-not-the-one-that-sealed-it")
    other = runner.invoke(app, ["audit", "verify-certificate", str(path), "--state-db", state])
    assert other.exit_code == 6 and "not held here" in other.output


def _demo_rows(app_db: Path, account: int) -> set[str]:
    """The tables of a demo database that hold rows of `account`."""
    connection = sqlite3.connect(app_db)
    try:
        tables = [
            r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        found = set()
        for name in tables:
            columns = [r[1] for r in connection.execute(f'PRAGMA table_info("{name}")')]
            if "account_id" in columns:
                query = f'SELECT count(*) FROM "{name}" WHERE account_id = ?'
                if connection.execute(query, (account,)).fetchone()[0]:
                    found.add(name)
        return found
    finally:
        connection.close()


def test_on_the_demo_a_closed_account_s_certificate_lists_every_dataset_and_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the demo, after `run --execute`: `retention subject account 105 --certificate` lists
    every dataset the account had records in and verifies; the held account 106's says its
    records are kept by the legal hold."""
    moment = dt.datetime.now(dt.UTC)
    (company,) = build_demo(tmp_path / "demo", moment, ["24sevenoffice"])
    monkeypatch.chdir(company.directory)
    had = _demo_rows(company.directory / "app.db", 105)
    runner = CliRunner()
    ran = runner.invoke(app, ["run", "--config", "config.yaml", "--execute"])
    assert ran.exit_code == 0, ran.output
    made = runner.invoke(
        app, ["subject", "account", "105", "--config", "config.yaml", "--certificate", "105.json"]
    )
    assert made.exit_code == 0, made.output
    sealed = json.loads(Path("105.json").read_text())
    named = {d["dataset"] for d in sealed["datasets"]}
    assert had and had <= named
    assert any(d["cleared"] for d in sealed["datasets"])
    assert "backup_files" in {u["dataset"] for u in sealed["not_attributed"]}
    checked = runner.invoke(
        app, ["audit", "verify-certificate", "105.json", "--config", "config.yaml"]
    )
    assert checked.exit_code == 0, checked.output
    held = runner.invoke(
        app, ["subject", "account", "106", "--config", "config.yaml", "--certificate", "106.json"]
    )
    assert held.exit_code == 0, held.output
    text = Path("106.txt").read_text()
    assert f"held by legal-{moment.year}-017" in text
    kept = [g for d in json.loads(Path("106.json").read_text())["datasets"] for g in d["kept"]]
    assert kept and any(g["holds"] == [f"legal-{moment.year}-017"] for g in kept)


def test_with_a_signing_key_the_certificate_is_signed_and_checked_with_the_public_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `audit.signing_key` the certificate is Ed25519-signed: an auditor checks it with
    only the state DB URL and the public key; without that key it is a key problem (exit 6)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    public = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    url = f"sqlite:///{tmp_path / 'app.db'}"
    _, config = _world(
        Database(url, "sqlite", make_engine(url)), tmp_path, audit={"signing_key": pem}
    )
    Executor(config, now=NOW, live=True).run()
    sealed = Sealer(config.settings).seal(build(lookup(config, "account", "7", NOW), NOW))
    assert sealed["seal"]["algorithm"] == "ed25519"
    path, _ = write(sealed, tmp_path / "cert.json")
    (tmp_path / "retention.pub").write_bytes(public)
    state = config.settings.state_db.get_secret_value()
    monkeypatch.setenv("RETENTION_HMAC_KEY", "test-key-not-secret")
    runner = CliRunner()
    base = ["audit", "verify-certificate", str(path), "--state-db", state]
    checked = runner.invoke(app, [*base, "--verify-key", str(tmp_path / "retention.pub")])
    assert checked.exit_code == 0, checked.output
    unknown = runner.invoke(app, base)
    assert unknown.exit_code == 6 and "not held here" in unknown.output


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=examples(100), deadline=None)
@given(
    body=st.fixed_dictionaries(
        {"format": st.just("retention-erasure-certificate/1")},
        optional={
            "seal": _JSON,
            "subject": _JSON,
            "datasets": _JSON,
            "audit_head": _JSON,
            "not_attributed": _JSON,
        },
    )
    | _JSON,
    raw=st.booleans(),
)
def test_any_file_given_to_verify_certificate_fails_with_one_clear_error(
    body: Any, raw: bool
) -> None:
    """Whatever file is given, verify-certificate ends in an AuditError, AuditKeyError or
    ConfigError (one message, an exit code), never another exception."""
    path, config = _certificate()
    forged = path.with_name("fuzzed.json")
    text = json.dumps(body) if raw else document(body) if isinstance(body, dict) else "["
    forged.write_text(text)
    engine = open_state(config.settings.state_db.get_secret_value())
    try:
        with pytest.raises((AuditError, AuditKeyError, ConfigError)):
            verify(forged, config.settings, engine)
    finally:
        engine.dispose()


def test_an_unknown_subject_type_is_a_clear_input_error() -> None:
    """`retention subject` with a type the config does not declare exits 2 naming it."""
    config = _certificate()[1]
    result = CliRunner().invoke(app, ["subject", "person", "7", "--config", str(config.path)])
    assert result.exit_code == 2 and "unknown subject type 'person'" in result.output


def test_a_quarantined_dataset_s_certificate_says_its_deleted_rows_stay_restorable(
    world: Scenario, tmp_path: Path
) -> None:
    """Deleted rows of a `quarantine:` dataset are kept restorable for its window: the
    certificate says so rather than claim they are gone for good."""
    _, config = _world(world.db, tmp_path, tickets={"quarantine": "P7D"})
    Executor(config, now=NOW, live=True).run()
    sealed = Sealer(config.settings).seal(build(lookup(config, "account", "7", NOW), NOW))
    (tickets,) = [d for d in sealed["datasets"] if d["dataset"] == "tickets"]
    assert tickets["restorable_for"] == "P7D" and tickets["cleared"]
    _, text = write(sealed, tmp_path / "q.json")
    assert "deleted rows stay restorable for P7D after each delete" in text.read_text()


def test_a_dataset_that_cannot_be_read_is_named_and_nothing_due_is_not_claimed(
    world: Scenario, tmp_path: Path
) -> None:
    """A dataset whose table cannot be read (renamed behind retention's back) is listed as
    failed, with the store's error, and the lookup does not claim that nothing is due."""
    _, config = _world(world.db, tmp_path)
    with world.db.engine.begin() as connection:
        connection.execute(text("ALTER TABLE messages RENAME TO messages_gone"))
    report = lookup(config, "account", "9", NOW)
    failed = {u.dataset: u.reason for u in report.unattributed if u.failed}
    assert sorted(failed) == ["messages", "tickets"]  # tickets cascade to messages
    assert all("could not be read" in reason for reason in failed.values())
    assert report.due == 0 and not report.nothing_due


def test_an_anonymize_rule_that_clears_the_subject_column_still_audits_the_subject(
    state_db: Database, tmp_path: Path
) -> None:
    """A rule whose strategy nulls the very column naming the subject: the audit's per-record
    facts carry the subject read before the change, so `retention subject account 7` still
    finds the entry that anonymized account 7's two tickets, though no ticket names it now."""
    tickets = {"personal": {**TICKETS_DATASET["personal"], "owner": "account_id"}}
    world, _ = _world(state_db, tmp_path, tickets)
    unlink = rule(action="anonymize", anonymize={"owner": "null", "email": "redact"})
    config = world.config(
        [unlink],
        holds={"holds": [{"id": "case-8", "subjects": {"account": [8]}}]},
        datasets={"tickets": {**TICKETS_DATASET, **tickets}},
        **_state(state_db),
    )
    Executor(config, now=NOW, live=True).run()
    report = lookup(config, "account", "7", NOW)
    (view,) = [d for d in report.datasets if d.dataset == "tickets"]
    assert view.records == 0  # its tickets no longer name it
    assert [(a.action, a.rule, a.records) for a in view.history] == [("anonymize", "r", 2)]
    held = lookup(config, "account", "8", NOW)
    assert [d.records for d in held.datasets if d.dataset == "tickets"] == [1]
