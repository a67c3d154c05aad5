"""Per-record facts in the audit log: each acted-on record's subject (HMAC'd like the keys), its
due time and how late it was acted on, from the batch's own statement; logs written before them
still verify."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import column, insert, table, update

from retention.audit import GENESIS, AuditLog, entry_hash
from retention.auditkeys import KeyRing, seal
from retention.executor import Executor
from retention.recordfacts import facts_of
from retention.rules import Rule
from retention.runevents import RUN_ACTION
from retention.schema import upgrade
from retention.sqldialects import dialect
from retention.statedb import open_state
from retention.statetables import audit
from retention.stores.sql import make_engine
from retention.testing import examples
from retention.timemath import add_duration

from .conftest import Database
from .scenario import TICKETS_DATASET, Scenario, at, rule, utc

UTC_ZONE = ZoneInfo("UTC")
NOW = utc("2026-06-01 00:00:00")
KEY = "test-key-not-secret"


@pytest.fixture
def world(db: Database, tmp_path: Path) -> Scenario:
    return Scenario(db, tmp_path)


def _state(db: Database) -> dict[str, str]:
    """The state DB on the test's server; on SQLite a file of its own (one writer at a time),
    and on DuckDB, which cannot hold the state DB, the SQLite file too."""
    return {} if db.dialect in ("sqlite", "duckdb") else {"state_db": db.url}


def _url(config: Any) -> str:
    return str(config.settings.state_db.get_secret_value())


def acted(engine: Any, keys: str = "hmac") -> list[Any]:
    log = AuditLog(engine, keys=keys, hmac_key=KEY.encode())  # type: ignore[arg-type]
    return [e for e in log.entries() if e.action != RUN_ACTION and e.outcome == "done"]


def test_each_deleted_record_carries_its_subject_due_time_and_lateness(
    world: Scenario, db: Database
) -> None:
    """A live delete audits, per record and in key order, the HMAC of its subject id, when it
    was due (created + retain) and how many seconds past `within` it went; the chain verifies
    on every state DB."""
    world.accounts({"id": 7}, {"id": 8})
    world.tickets(
        {"id": 1, "account_id": 7, "created_at": at("2026-04-28 00:00:00")},  # due 05-28, on time
        {"id": 2, "account_id": 8, "created_at": at("2026-03-01 00:00:00")},  # due 03-31, late
        {"id": 3, "account_id": None, "created_at": at("2026-01-01 00:00:00")},
    )
    config = world.config([rule(retain="P30D", within="P7D")], **_state(db))
    Executor(config, now=NOW, live=True).run()
    engine = open_state(_url(config))
    try:
        (entry,) = acted(engine)
        log = AuditLog(engine, keys="hmac", hmac_key=KEY.encode())
        assert json.loads(entry.keys) == json.loads(log.protect(["1", "2", "3"]).text)
        facts = entry.facts()
        assert [f[0] for f in facts] == [log.subject_digest("7"), log.subject_digest("8"), None]
        assert [f[1] for f in facts] == [
            "2026-05-28T00:00:00+00:00",
            "2026-03-31T00:00:00+00:00",
            "2026-01-31T00:00:00+00:00",
        ]
        late_2 = int((NOW - utc("2026-04-07 00:00:00")).total_seconds())
        late_3 = int((NOW - utc("2026-02-07 00:00:00")).total_seconds())
        assert [f[2] for f in facts] == [None, late_2, late_3]
        assert log.verify().ok
    finally:
        engine.dispose()


def test_cascaded_rows_carry_their_parents_facts(world: Scenario, db: Database) -> None:
    """A ticket's messages deleted with it carry, per message, the ticket's facts (its
    account, due time and lateness) in the cascade entry, on every SQL store; so does a
    grandchild (a message's reply)."""
    from sqlalchemy import Column, Integer, MetaData, Table

    replies = Table(
        "replies",
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("message_id", Integer),
    )
    replies.create(db.engine)
    world.accounts({"id": 7}, {"id": 8})
    world.tickets(
        {"id": 1, "account_id": 7, "created_at": at("2026-04-28 00:00:00")},  # on time
        {"id": 2, "account_id": 8, "created_at": at("2026-03-01 00:00:00")},  # late
    )
    world.messages(
        {"id": 10, "ticket_id": 1}, {"id": 11, "ticket_id": 2}, {"id": 12, "ticket_id": 2}
    )
    with db.engine.begin() as connection:
        connection.execute(insert(replies), [{"id": 100, "message_id": 12}])
    config = world.config(
        [rule(retain="P30D", within="P7D")],
        datasets={
            "tickets": {
                **TICKETS_DATASET,
                "cascade": [{"dataset": "messages", "column": "ticket_id"}],
            },
            "messages": {
                "store": "app",
                "table": "messages",
                "key": "id",
                "category": "notes",
                "cascade": [{"dataset": "replies", "column": "message_id"}],
            },
            "replies": {"store": "app", "table": "replies", "key": "id", "category": "notes"},
        },
        audit={"keys": "plain"},
        **_state(db),
    )
    result = Executor(config, now=NOW, live=True).run()
    if not dialect(db.dialect).cascade_with_foreign_keys:  # DuckDB: refused, nothing acted on
        assert result.outcomes[0].acted == 0
        return
    engine = open_state(_url(config))
    try:
        by_dataset = {e.dataset: e for e in acted(engine, "plain")}
    finally:
        engine.dispose()
    late = int((NOW - utc("2026-04-07 00:00:00")).total_seconds())
    on_time = ("7", "2026-05-28T00:00:00+00:00", None)
    overdue = ("8", "2026-03-31T00:00:00+00:00", late)
    assert by_dataset["tickets"].facts() == [on_time, overdue]
    assert json.loads(by_dataset["messages"].keys) == ["10", "11", "12"]
    assert by_dataset["messages"].facts() == [on_time, overdue, overdue]
    assert by_dataset["replies"].facts() == [overdue]


def test_anonymized_records_on_a_subject_clock_carry_facts_in_plain_mode(
    world: Scenario, db: Database
) -> None:
    """Under `audit.keys: plain` the subject is its canonical id; a subject-event clock's due
    time comes from the subject table, read in the UPDATE's own statement."""
    world.accounts({"id": 5, "closed_at": at("2026-01-01 00:00:00")})
    world.tickets({"id": 1, "account_id": 5, "created_at": at("2025-01-01"), "email": "a@b.c"})
    anonymize = rule(
        "anon",
        after="subject.closed",
        retain="P1M",
        action="anonymize",
        anonymize={"email": "redact"},
    )
    config = world.config([anonymize], **_state(db), audit={"keys": "plain"})
    Executor(config, now=NOW, live=True).run()
    engine = open_state(_url(config))
    try:
        (entry,) = acted(engine, keys="plain")
        assert entry.facts() == [("5", "2026-02-01T00:00:00+00:00", None)]
    finally:
        engine.dispose()


def test_a_dry_run_entry_carries_the_same_facts(world: Scenario) -> None:
    """The dry run's `would delete` entry has the facts a live run would record."""
    world.accounts({"id": 7})
    world.tickets({"id": 1, "account_id": 7, "created_at": at("2026-01-01 00:00:00")})
    config = world.config([rule()])
    Executor(config, now=NOW, live=False).run()
    engine = open_state(_url(config))
    try:
        log = AuditLog(engine, keys="hmac", hmac_key=KEY.encode())
        (entry,) = [e for e in log.entries() if e.outcome == "would delete"]
        assert entry.facts() == [(log.subject_digest("0007"), "2026-01-31T00:00:00+00:00", None)]
    finally:
        engine.dispose()


def _old_entry(seq: int, prev: str, keys: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "seq": seq,
        "run_id": "before-0004",
        "at": "2026-01-01T00:00:00+00:00",
        "rule": "r",
        "dataset": "tickets",
        "action": "delete",
        "dry_run": False,
        "count": len(keys),
        "keys": json.dumps(keys),
        "outcome": "done",
        "detail": None,
        "prev_hash": prev,
    }
    row["hash"] = entry_hash(row)
    row["seal"] = seal(KEY.encode(), row["hash"])
    row["key_id"] = KeyRing(KEY.encode(), ()).current_id
    return row


def test_a_log_written_at_revision_0003_still_verifies_after_the_upgrade(
    world: Scenario, db: Database
) -> None:
    """Entries written before revision 0004 (no records) verify after it; later runs add
    entries with records after them, and the whole log verifies; giving an old entry records
    afterwards is tampering."""
    world.accounts({"id": 7})
    world.tickets({"id": 1, "account_id": 7, "created_at": at("2026-01-01 00:00:00")})
    config = world.config([rule()], **_state(db))
    engine = make_engine(_url(config), immediate=True)
    upgrade(engine, target="0003")
    old = table("retention_audit", *(column(n) for n in _old_entry(1, GENESIS, [])))
    first = _old_entry(1, GENESIS, ["41", "42"])
    second = _old_entry(2, first["hash"], ["43"])
    with engine.begin() as connection:
        connection.execute(insert(old), [first, second])
    engine.dispose()
    state = open_state(_url(config))
    try:
        log = AuditLog(state, keys="hmac", hmac_key=KEY.encode())
        assert log.verify().ok
        Executor(config, now=NOW, live=True, state=state).run()
        entries = list(log.entries())
        assert entries[0].records is None and entries[1].records is None
        assert any(e.records for e in entries[2:])
        assert log.verify().ok
        with state.begin() as connection:
            connection.execute(
                update(audit).where(audit.c.seq == 1).values(records='[["x", null, null]]')
            )
        result = log.verify()
        assert not result.ok and result.bad_seq == 1
    finally:
        state.dispose()


def test_editing_a_records_field_breaks_the_chain(world: Scenario) -> None:
    """Changing a record's due time or lateness in a written entry is detected."""
    world.accounts({"id": 7})
    world.tickets({"id": 1, "account_id": 7, "created_at": at("2026-01-01 00:00:00")})
    config = world.config([rule(within="P1D")])
    Executor(config, now=NOW, live=True).run()
    engine = open_state(_url(config))
    try:
        (entry,) = acted(engine)
        forged = entry.records.replace(str(entry.facts()[0][2]), "null")  # type: ignore[union-attr]
        with engine.begin() as connection:
            connection.execute(update(audit).where(audit.c.seq == entry.seq).values(records=forged))
        result = AuditLog(engine, keys="hmac", hmac_key=KEY.encode()).verify()
        assert not result.ok and result.bad_seq == entry.seq
    finally:
        engine.dispose()


_RULE = Rule.model_validate(
    {
        "id": "p",
        "applies_to": {"dataset": "tickets"},
        "after": "record.created",
        "retain": "P1M",
        "within": "P10D",
        "action": "delete",
    }
)
_MOMENTS = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2030, 1, 1), timezones=st.just(dt.UTC)
)


@settings(max_examples=examples(60), deadline=None)
@given(start=_MOMENTS, now=_MOMENTS)
def test_late_exactly_when_acted_on_after_the_deadline(
    start: dt.datetime, now: dt.datetime
) -> None:
    """A record is late exactly when acted on after due + within, by the time since then; its
    due time is its clock start plus retain, on the calendar."""
    facts = facts_of(_RULE, UTC_ZONE, now, 42, [start])
    assert _RULE.within is not None
    due = add_duration(start, _RULE.delay, UTC_ZONE)
    deadline = add_duration(start, _RULE.delay + _RULE.within, UTC_ZONE)
    assert facts.subject == "42" and facts.due == due
    assert facts.late == (now - deadline if now > deadline else None)


def test_a_live_run_records_what_it_kept_per_hold_and_keep_rule(
    world: Scenario, db: Database
) -> None:
    """After acting, a live run audits per dataset how many records each hold in force covers
    and each keep rule still protects."""
    world.accounts({"id": 7}, {"id": 8})
    world.tickets(
        {"id": 1, "account_id": 7, "created_at": at("2020-01-01")},
        {"id": 2, "account_id": 7, "created_at": at("2020-01-01")},
        {"id": 3, "account_id": 8, "created_at": at("2026-05-01"), "status": "legal"},
        {"id": 4, "account_id": 8, "created_at": at("2020-01-01")},
    )
    keep = rule("minimum", retain="P5Y", action="keep", where={"status": ["legal"]})
    holds = {"holds": [{"id": "case-1", "subjects": {"account": [7]}}]}
    config = world.config([rule(), keep], holds=holds, **_state(db))
    Executor(config, now=NOW, live=True).run()
    engine = open_state(_url(config))
    try:
        log = AuditLog(engine, keys="hmac", hmac_key=KEY.encode())
        (entry,) = [e for e in log.entries() if e.outcome == "kept"]
        assert (entry.dataset, entry.action) == ("tickets", "keep")
        assert json.loads(entry.detail or "") == {
            "holds": {"case-1": 2},
            "keep_rules": {"minimum": 1},
        }
        assert log.verify().ok
    finally:
        engine.dispose()


def test_due_times_of_text_clocks_in_every_stored_form(world: Scenario, db: Database) -> None:
    """SQLite keeps timestamps as text: naive, with `Z`, with an offset, a date alone, with a
    fraction. Each record's due time is its own instant plus the retention period, whatever
    form its clock was stored in."""
    if db.dialect != "sqlite":
        pytest.skip("text clocks are SQLite's")
    stored = {
        1: ("2026-01-01 10:00:00", "2026-01-31T10:00:00+00:00"),
        2: ("2026-01-01T10:00:00Z", "2026-01-31T10:00:00+00:00"),
        3: ("2026-01-01 10:00:00+02:00", "2026-01-31T08:00:00+00:00"),
        4: ("2026-01-01", "2026-01-31T00:00:00+00:00"),
        5: ("2026-01-01 10:00:00.250", "2026-01-31T10:00:00.250000+00:00"),
        6: ("2026-01-01 10:00:00", "2026-01-31T10:00:00+00:00"),  # the same text as 1
    }
    world.accounts({"id": 7})
    world.tickets(*({"id": i, "account_id": 7, "created_at": at("2020-01-01")} for i in stored))
    tickets = table("tickets", column("id"), column("created_at"))
    with db.engine.begin() as connection:
        for key, (text, _) in stored.items():
            connection.execute(update(tickets).where(tickets.c.id == key).values(created_at=text))
    config = world.config([rule(retain="P30D")], **_state(db))
    Executor(config, now=NOW, live=True).run()
    engine = open_state(_url(config))
    try:
        (entry,) = acted(engine)
        assert [f[1] for f in entry.facts()] == [due for _, due in stored.values()]
    finally:
        engine.dispose()


def test_a_clock_rounded_to_year_end_is_due_and_late_as_the_evaluator_judges_it(
    world: Scenario, db: Database
) -> None:
    """A record whose clock is rounded to the end of the year is due `retain` after 1 January,
    and late only `within` after that: acted on a few days after the unrounded deadline it
    is on time, and its due time is the rounded one (as `plan` and `explain` judge it)."""
    world.accounts({"id": 7})
    world.tickets(
        {"id": 1, "account_id": 7, "created_at": at("2025-12-20 00:00:00")},  # on time
        {"id": 2, "account_id": 7, "created_at": at("2024-06-01 00:00:00")},  # late
    )
    rounded = rule(
        after={"event": "record.created", "round_to": "year_end"}, retain="P30D", within="P10D"
    )
    config = world.config([rounded], **_state(db))
    now = utc("2026-02-05 00:00:00")
    assert world.plan(config, now)["r"].overdue == 1
    Executor(config, now=now, live=True).run()
    engine = open_state(_url(config))
    try:
        (entry,) = acted(engine)
        late_2 = int((now - utc("2025-02-10 00:00:00")).total_seconds())
        assert [(f[1], f[2]) for f in entry.facts()] == [
            ("2026-01-31T00:00:00+00:00", None),
            ("2025-01-31T00:00:00+00:00", late_2),
        ]
    finally:
        engine.dispose()


def test_a_delete_a_keep_rule_held_back_is_late_only_after_the_keep_minimum_and_within(
    world: Scenario, db: Database
) -> None:
    """A delete that a keep rule blocked is recorded late only `within` after the keep minimum
    ended (where the plan counts it overdue), and by the time since then; records the keep rule
    never covered are late from their own deadline."""
    world.accounts({"id": 7})
    world.tickets(
        {"id": 1, "account_id": 7, "created_at": at("2025-05-01"), "status": "legal"},
        {"id": 2, "account_id": 7, "created_at": at("2025-04-01"), "status": "legal"},
        {"id": 3, "account_id": 7, "created_at": at("2025-05-01"), "status": "open"},
    )
    keep = rule("minimum", retain="P1Y", action="keep", where={"status": ["legal"]})
    config = world.config([rule(retain="P30D", within="P7D"), keep], **_state(db))
    now = utc("2026-05-05 00:00:00")
    assert world.plan(config, now)["r"].overdue == 2
    Executor(config, now=now, live=True).run()
    engine = open_state(_url(config))
    try:
        (entry,) = acted(engine)
        late_2 = int((now - utc("2026-04-08 00:00:00")).total_seconds())
        late_3 = int((now - utc("2025-06-07 00:00:00")).total_seconds())
        assert [f[2] for f in entry.facts()] == [None, late_2, late_3]
        assert [f[1] for f in entry.facts()] == [
            "2025-05-31T00:00:00+00:00",
            "2025-05-01T00:00:00+00:00",
            "2025-05-31T00:00:00+00:00",
        ]
    finally:
        engine.dispose()


@settings(max_examples=examples(25), deadline=None)
@given(
    ages=st.lists(st.integers(0, 900), min_size=1, max_size=12),
    keep_days=st.integers(1, 700),
)
def test_an_object_is_late_exactly_when_the_plan_counts_it_overdue(
    ages: list[int], keep_days: int
) -> None:
    """On an object store, with a keep rule that holds deletes back: the records a live run
    audits as late are exactly as many as the plan counted overdue, each due 30 days after
    its modification time, a record whose deadline is the run's moment to the microsecond
    on time in both (overdue and late both mean past the deadline)."""
    import tempfile

    from retention.planner import make_plan
    from retention.testing import MemoryTree

    from .stores.objectworld import object_rule

    directory = Path(tempfile.mkdtemp(prefix="retention-facts-"))
    url = f"sqlite:///{directory / 'app.db'}"
    world = Scenario(Database(url, "sqlite", make_engine(url)), directory)
    tree = MemoryTree("mem")
    for index, age in enumerate(ages):
        tree.put(f"uploads/{index}/f", NOW - dt.timedelta(days=age))
    config = world.config(
        [
            object_rule("age", within="P7D"),
            object_rule("minimum", action="keep", retain=f"P{keep_days}D"),
        ],
        datasets={"files": {"store": "mem", "glob": "uploads/{account}/*", "category": "c"}},
        stores={
            "app": {"kind": "sql", "url": url},
            "mem": {"kind": "filesystem", "root": str(directory / "unused")},
        },
        audit={"keys": "plain"},
    )
    stores = {"mem": tree}
    (row,) = [r for r in make_plan(config, NOW, stores=stores).rules if r.rule == "age"]
    Executor(config, now=NOW, live=True, stores=stores).run()
    engine = open_state(_url(config))
    try:
        log = AuditLog(engine, keys="plain", hmac_key=None)
        facts = [
            (key, fact)
            for e in log.entries()
            if e.outcome == "done"
            for key, fact in zip(json.loads(e.keys), e.facts(), strict=True)
        ]
    finally:
        engine.dispose()
    assert len(facts) == row.actionable
    assert sum(1 for _, (_, _, late) in facts if late is not None) == row.overdue
    modified = {f"uploads/{i}/f": NOW - dt.timedelta(days=age) for i, age in enumerate(ages)}
    for key, (subject, due, _) in facts:
        assert subject == key.split("/")[1]
        assert due == (modified[key] + dt.timedelta(days=30)).isoformat()
