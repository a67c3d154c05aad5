"""Enforcement as a state machine on SQLite: random histories against DESIGN.md's promises.

Hypothesis drives one world through random steps: tickets arrive (any account, any age, any
email and IP), accounts close and reopen, the clock (the `now` handed to the executor)
moves by hours, days, months or to the next due moment, legal places and releases holds and
sets the freeze, and the executor runs live, dry, crashes between a batch's data commit and
its audit entry, or is interfered with mid-run (an account reactivated, or a hold placed, after
the run was planned and some batches done). After every step the invariant compares the tables
with a snapshot taken before it, judged by a plain Python model built on
:func:`retention.timemath.add_duration`:

* a record covered by an active hold (or the freeze) at the time of the step is not changed;
* a changed record was due under the rule that changed it at that step's `now`, no keep rule
  still protected it, and an anonymized record was not one a due delete supersedes; it was
  changed exactly as the strategies say, nothing else in it;
* every change has exactly one live `done` audit entry, or — only while a crashed run has not
  been reconciled — a pending intent; never both, never a key twice for one action;
* ``AuditLog.verify()`` is ok;
* a dry run changes nothing and reports exactly the records the model says are actionable;
* after a complete live run nothing due and unheld remains: neither by the model nor by
  ``make_plan`` (``actionable`` is 0 for every destructive rule).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)
from sqlalchemy import Engine, Table, select, update

from retention.audit import AuditLog
from retention.config import Config
from retention.durations import Duration
from retention.executor import Executor, RunResult
from retention.planner import make_plan
from retention.rules import Rule
from retention.runevents import RUN_ACTION
from retention.statedb import open_state
from retention.statetables import intents, runs
from retention.stores.base import Store
from retention.stores.sql import make_engine
from retention.testing import CrashAt, SimulatedCrash, close_stores, examples, open_stores
from retention.timemath import UTC, add_duration

from .conftest import Database
from .scenario import ACCOUNTS, MESSAGES, TICKETS, TICKETS_DATASET, Scenario
from .scenario import rule as rule_yaml

# --- the world and its rules --------------------------------------------------------------------

HMAC_KEY = "test-key-not-secret"
ZONE = ZoneInfo("UTC")  # the config's time zone (the default)
START = dt.datetime(2026, 1, 30, 12, 0, tzinfo=UTC)  # month ends come up when months are added
ACCOUNT_IDS = (1, 2, 3, 4)
STATUSES = ("open", "invoice", None)
HASHED = "h:" + "0123456789abcdef" * 4  # already in anonymized form
EMAILS = ("alice@example.com", "Bob.Smith@Example.org", HASHED, None)
TRUNCATED = {  # raw IP -> what truncate_ip makes of it (already truncated values stay)
    "192.168.1.23": "192.168.1.0",
    "10.0.0.1": "10.0.0.0",
    "2001:db8::1": "2001:db8::",
    "::ffff:10.1.2.3": "10.1.2.0",
    "not an ip": "[redacted]",
    "10.0.0.0": "10.0.0.0",
}
TRUNCATED_IPS = frozenset(TRUNCATED.values())
IPS = (*TRUNCATED, None)

DELETE, ANONYMIZE = "del", "anon"
DELETE_AFTER = Duration.parse("P30D")  # record.created
ANONYMIZE_AFTER = Duration.parse("P7D")  # subject.closed
KEEP_ALL = Duration.parse("P10D")  # record.created, every ticket
KEEP_INVOICES = Duration.parse("P45D")  # record.created, status invoice: outlasts the delete
ACTION = {DELETE: "delete", ANONYMIZE: "anonymize"}
CASCADE = "delete (cascade)"  # the audit action of a message deleted with its ticket
DATASETS = {
    "tickets": {**TICKETS_DATASET, "cascade": [{"dataset": "messages", "column": "ticket_id"}]},
    "messages": {"store": "app", "table": "messages", "key": "id", "category": "messages"},
}
RULES = {
    ANONYMIZE: rule_yaml(
        ANONYMIZE,
        after="subject.closed",
        retain="P7D",
        action="anonymize",
        anonymize={"email": "hash", "ip": "truncate_ip"},
    ),
    DELETE: rule_yaml(DELETE, retain="P30D"),
    "keep": rule_yaml("keep", retain="P10D", action="keep"),
    "keep-invoices": rule_yaml(
        "keep-invoices", retain="P45D", action="keep", where={"status": "invoice"}
    ),
}
BOUNDARIES = (ANONYMIZE_AFTER, KEEP_ALL, DELETE_AFTER, KEEP_INVOICES)
_HASH_DONE = re.compile(r"h:[0-9a-f]{64}")
_MICROSECOND = dt.timedelta(microseconds=1)

Row = Mapping[str, Any]


@dataclass(frozen=True)
class HoldSpec:
    """One hold as the machine wrote it: by account, by rule, on the messages dataset."""

    id: str
    account: int | None
    rule: str | None
    dataset: str | None = None
    active: bool = True

    def as_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "active": self.active}
        if self.account is not None:
            out["subjects"] = {"account": [self.account]}
        if self.rule is not None:
            out["rules"] = [self.rule]
        if self.dataset is not None:
            out["datasets"] = [self.dataset]
        return out

    def _applies(self, rule_id: str, dataset: str) -> bool:
        return (
            self.active
            and (self.rule is None or self.rule == rule_id)
            and (self.dataset is None or self.dataset == dataset)
        )

    def covers(self, ticket: Row, rule_id: str) -> bool:
        return self._applies(rule_id, "tickets") and (
            self.account is None or ticket["account_id"] == self.account
        )

    def covers_messages(self, rule_id: str) -> bool:
        """Every message (they have no subject, so a hold scoped by account covers none)."""
        return self._applies(rule_id, "messages") and self.account is None


@dataclass(frozen=True)
class Holds:
    freeze: bool = False
    holds: tuple[HoldSpec, ...] = ()

    def as_yaml(self) -> dict[str, Any]:
        return {"freeze": self.freeze, "holds": [h.as_yaml() for h in self.holds]}


# --- the model ----------------------------------------------------------------------------------


def _instant(wall: dt.datetime) -> dt.datetime:
    """Stored timestamps are naive UTC wall times (the config's zone is UTC)."""
    return wall.replace(tzinfo=UTC)


def _after(wall: dt.datetime | None, duration: Duration) -> dt.datetime | None:
    return None if wall is None else add_duration(_instant(wall), duration, ZONE)


class Model:
    """DESIGN.md's precedence for one ticket, decided in Python at one `now`."""

    def __init__(
        self,
        accounts: Mapping[int, Row],
        now: dt.datetime,
        holds: Holds,
        messages: Mapping[int, Row],
    ) -> None:
        self.accounts = accounts
        self.now = now
        self.holds = holds
        self.with_messages = {m["ticket_id"] for m in messages.values()}

    def due(self, ticket: Row, rule_id: str) -> bool:
        if rule_id == DELETE:
            moment = _after(ticket["created_at"], DELETE_AFTER)
        else:
            account = self.accounts.get(ticket["account_id"])
            moment = _after(account["closed_at"], ANONYMIZE_AFTER) if account else None
        return moment is not None and moment <= self.now

    def kept(self, ticket: Row) -> bool:
        """A keep rule still protects it (a keep whose clock never started protects forever)."""
        ends = [_after(ticket["created_at"], KEEP_ALL)]
        if ticket["status"] == "invoice":
            ends.append(_after(ticket["created_at"], KEEP_INVOICES))
        return any(end is None or end > self.now for end in ends)

    def held(self, ticket: Row, rule_id: str) -> bool:
        """Held itself, or (for a delete, which cascades) through one of its messages."""
        cascades = rule_id == DELETE and ticket["id"] in self.with_messages
        return self.holds.freeze or any(
            h.covers(ticket, rule_id) or (cascades and h.covers_messages(rule_id))
            for h in self.holds.holds
        )

    def superseded(self, ticket: Row) -> bool:
        return self.due(ticket, DELETE) and not self.held(ticket, DELETE)

    def actionable(self, ticket: Row, rule_id: str) -> bool:
        if not self.due(ticket, rule_id) or self.held(ticket, rule_id) or self.kept(ticket):
            return False
        return rule_id == DELETE or not (self.superseded(ticket) or anonymized(ticket))


def anonymized(ticket: Row) -> bool:
    email, ip = ticket["email"], ticket["ip"]
    email_done = email is None or _HASH_DONE.fullmatch(email) is not None
    return email_done and (ip is None or ip in TRUNCATED_IPS)


def anonymize(ticket: Row) -> dict[str, Any]:
    """The ticket as the anonymize rule must leave it: email hashed, IP truncated, rest kept."""
    email, ip = ticket["email"], ticket["ip"]
    if email is not None and not _HASH_DONE.fullmatch(email):
        digest = hmac.new(HMAC_KEY.encode(), email.encode(), hashlib.sha256).hexdigest()
        email = "h:" + digest
    if ip is not None and ip not in TRUNCATED_IPS:
        ip = TRUNCATED[ip]
    return {**ticket, "email": email, "ip": ip}


# --- the machine --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    tickets: dict[int, Row]
    accounts: dict[int, Row]
    messages: dict[int, Row]


@dataclass
class Step:
    """What the last step did, for the invariant to judge."""

    kind: str  # insert | accounts | clock | holds | dry | live | live-interfered
    now: dt.datetime
    holds: Holds
    complete: bool = False  # a live run that finished (not crashed)
    inserted: dict[int, Row] = field(default_factory=dict)
    inserted_messages: dict[int, Row] = field(default_factory=dict)
    result: RunResult | None = None
    pending_before: int = 0
    # Interference: records protected from the middle of the run on, as they were then.
    frozen_from_mid_run: dict[int, Row] = field(default_factory=dict)  # identical or absent
    not_anonymized_from_mid_run: dict[int, Row] = field(default_factory=dict)


CRASH_POINTS = {
    "before data commit": "intent",  # its intent is durable, its data not committed
    "audit write": "audit",  # its data committed, its audit entry being written
    "reconcile": "settle",  # settling the intents an earlier crash left
}


def on_batch(at: int, action: Callable[[], None]) -> Callable[[Rule, str, int, int], None]:
    """A `progress` callback (called after each batch that acted) running `action` once."""
    calls = 0

    def progress(rule: Rule, dataset: str, acted: int, planned: int) -> None:
        nonlocal calls
        calls += 1
        if calls == at:
            action()

    return progress


def _rows(engine: Engine, table: Table) -> dict[int, Row]:
    with engine.connect() as connection:
        return {
            row.id: dict(row._mapping)
            for row in connection.execute(select(table).order_by(table.c.id))
        }


def _key(key: Any) -> str:
    return "/".join(str(part) for part in key) if isinstance(key, list) else str(key)


any_age = st.builds(
    dt.timedelta,
    days=st.sampled_from(range(81)),  # uniform: most tickets are due under some rule
    seconds=st.integers(0, 86_399),
    microseconds=st.integers(0, 999_999),
)
boundary_age = st.builds(  # due (or a keep ends) exactly now, or one microsecond either side
    lambda d, nudge: add_duration(START, d, ZONE) - START + nudge * _MICROSECOND,
    st.sampled_from(BOUNDARIES),
    st.integers(-1, 1),
)
future_age = st.builds(lambda h: -dt.timedelta(hours=h), st.integers(1, 48))
ages = st.one_of(any_age, any_age, any_age, boundary_age, boundary_age, future_age, st.none())
ticket_specs = st.fixed_dictionaries(
    {
        "account": st.sampled_from((*ACCOUNT_IDS, None)),
        "age": ages,
        "status": st.sampled_from(STATUSES),
        "email": st.sampled_from(EMAILS),
        "ip": st.sampled_from(IPS),
    }
)
steps = st.one_of(
    st.integers(1, 48).map(lambda n: f"PT{n}H"),
    st.integers(1, 20).map(lambda n: f"P{n}D"),
    st.integers(1, 2).map(lambda n: f"P{n}M"),
)
closed_ago = st.one_of(
    st.just(dt.timedelta(0)),
    st.builds(dt.timedelta, days=st.sampled_from(range(21)), seconds=st.integers(0, 86_399)),
    st.integers(-1, 1).map(lambda n: dt.timedelta(days=7) + n * _MICROSECOND),
)


class EnforcementMachine(RuleBasedStateMachine):
    """One SQLite world (its own temporary directory) through a random history."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="retention-stateful-"))
        url = f"sqlite:///{self.directory / 'app.db'}"
        self.db = Database(url, "sqlite", make_engine(url))
        self.scenario = Scenario(self.db, self.directory)
        self.state = open_state(f"sqlite:///{self.directory / 'state.db'}")
        self.config: Config | None = None
        self.stores: dict[str, Store] = {}
        self.now = START
        self.holds = Holds()
        self.next_ticket = 1
        self.next_hold = 1
        self.next_message = 1
        self.ever: set[tuple[str, str]] = set()  # (action, key) of every change ever made
        self.before = Snapshot({}, {}, {})
        self.step: Step | None = None

    def teardown(self) -> None:
        close_stores(self.stores)
        self.state.dispose()
        self.db.engine.dispose()
        shutil.rmtree(self.directory, ignore_errors=True)

    @initialize(
        batch_size=st.integers(2, 4),
        anonymize_first=st.booleans(),
        specs=st.lists(ticket_specs, max_size=12),
    )
    def configure(
        self, batch_size: int, anonymize_first: bool, specs: list[dict[str, Any]]
    ) -> None:
        """Config (rule order and batch size vary), four open accounts, a first lot of tickets."""
        order = [ANONYMIZE, DELETE] if anonymize_first else [DELETE, ANONYMIZE]
        self.config = self.scenario.config(
            [RULES[r] for r in (*order, "keep", "keep-invoices")],
            holds=self.holds.as_yaml(),
            batch_size=batch_size,
            datasets=DATASETS,
            audit={"keys": "plain"},
            limits={"max_fraction": 1.0},
        )
        self.stores = open_stores(self.config.settings)
        created = (START - dt.timedelta(days=400)).replace(tzinfo=None)
        self.scenario.accounts(*({"id": i, "created_at": created} for i in ACCOUNT_IDS))
        self.insert_tickets(specs)
        self.step = None  # the world as it starts: the baseline, nothing to judge

    # -- the world changes ---------------------------------------------------------------------

    @rule(specs=st.lists(ticket_specs, min_size=1, max_size=6))
    def insert_tickets(self, specs: list[dict[str, Any]]) -> None:
        rows: list[dict[str, Any]] = []
        for spec in specs:
            age = spec["age"]
            rows.append(
                {
                    "id": self.next_ticket,
                    "account_id": spec["account"],
                    "created_at": None if age is None else (self.now - age).replace(tzinfo=None),
                    "status": spec["status"],
                    "is_child": None,
                    "email": spec["email"],
                    "name": None,
                    "ip": spec["ip"],
                }
            )
            self.next_ticket += 1  # never reused: a key is one record for the audit's sake
        self.scenario.tickets(*rows)
        inserted: dict[int, Row] = {r["id"]: r for r in rows}
        self.step = Step("insert", self.now, self.holds, inserted=inserted)

    @rule(picks=st.lists(st.integers(0, 1_000), min_size=1, max_size=3))
    def insert_messages(self, picks: list[int]) -> None:
        """Messages on existing tickets: deleted with their ticket (cascade), never alone."""
        tickets = sorted(_rows(self.db.engine, TICKETS))
        rows: list[dict[str, Any]] = []
        for pick in picks if tickets else []:
            ticket = tickets[pick % len(tickets)]
            rows.append({"id": self.next_message, "ticket_id": ticket, "body": "hello"})
            self.next_message += 1
        self.scenario.messages(*rows)
        step = Step("insert", self.now, self.holds)
        step.inserted_messages = {row["id"]: row for row in rows}
        self.step = step

    @rule(pick=st.integers(0, 7), ago=closed_ago)
    def close_account(self, pick: int, ago: dt.timedelta) -> None:
        self._set_closed(pick, (self.now - ago).replace(tzinfo=None), closed=False)

    @rule(pick=st.integers(0, 7))
    def reopen_account(self, pick: int) -> None:
        """Reactivation: closed_at back to NULL."""
        self._set_closed(pick, None, closed=True)

    def _set_closed(self, pick: int, value: dt.datetime | None, *, closed: bool) -> None:
        candidates = sorted(
            key
            for key, row in _rows(self.db.engine, ACCOUNTS).items()
            if (row["closed_at"] is not None) == closed
        )
        if candidates:
            with self.db.engine.begin() as connection:
                connection.execute(
                    update(ACCOUNTS)
                    .where(ACCOUNTS.c.id == candidates[pick % len(candidates)])
                    .values(closed_at=value)
                )
        self.step = Step("accounts", self.now, self.holds)

    @rule(by=steps)
    def advance_clock(self, by: str) -> None:
        self.now = add_duration(self.now, Duration.parse(by), ZONE)
        self.step = Step("clock", self.now, self.holds)

    @rule(nudge=st.integers(-1, 1))
    def advance_to_next_due_moment(self, nudge: int) -> None:
        """To one microsecond around the next moment a rule becomes due or a keep runs out."""
        moments = []
        accounts = _rows(self.db.engine, ACCOUNTS)
        for ticket in _rows(self.db.engine, TICKETS).values():
            for duration in (DELETE_AFTER, KEEP_ALL, KEEP_INVOICES):
                moments.append(_after(ticket["created_at"], duration))
            account = accounts.get(ticket["account_id"])
            if account is not None:
                moments.append(_after(account["closed_at"], ANONYMIZE_AFTER))
        future = [m for m in moments if m is not None and m > self.now]
        if future:
            self.now = max(self.now, min(future) + nudge * _MICROSECOND)
        self.step = Step("clock", self.now, self.holds)

    # -- legal ---------------------------------------------------------------------------------

    @rule(
        kind=st.sampled_from(
            ["account", "account", "account", "account+rule", "rule+messages", "rule", "messages"]
        ),
        account=st.sampled_from(ACCOUNT_IDS),
        rule_id=st.sampled_from([DELETE, ANONYMIZE]),
    )
    def place_hold(self, kind: str, account: int, rule_id: str) -> None:
        hold = HoldSpec(
            f"case-{self.next_hold}",
            account if "account" in kind else None,
            rule_id if "rule" in kind else None,
            "messages" if "messages" in kind else None,
        )
        self.next_hold += 1
        self._write_holds(replace(self.holds, holds=(*self.holds.holds, hold)))

    @rule(pick=st.integers(0, 7))
    def release_hold(self, pick: int) -> None:
        """Sets `active: false` on one active hold (if any), keeping its record."""
        holds = list(self.holds.holds)
        active = [i for i, h in enumerate(holds) if h.active]
        if active:
            index = active[pick % len(active)]
            holds[index] = replace(holds[index], active=False)
        self._write_holds(replace(self.holds, holds=tuple(holds)))

    @rule(on=st.sampled_from([False, False, True]))
    def set_freeze(self, on: bool) -> None:
        """`freeze:` on or off (off more often, so that frozen stretches end)."""
        self._write_holds(replace(self.holds, freeze=on))

    def _write_holds(self, holds: Holds, *, step: bool = True) -> None:
        self.holds = holds
        path = self.directory / "holds.yaml"
        path.write_text(yaml.safe_dump(holds.as_yaml(), sort_keys=False))
        if step:
            self.step = Step("holds", self.now, self.holds)

    # -- runs ----------------------------------------------------------------------------------

    def _executor(self, cls: type[Executor] = Executor, **kwargs: Any) -> Executor:
        assert self.config is not None
        # The world's present is its own clock: it moves months ahead of the wall clock, and a
        # live run may act as of the present (never later), so the present is handed in too.
        return cls(
            self.config,
            now=self.now,
            clock=lambda: self.now,
            state=self.state,
            stores=self.stores,
            **kwargs,
        )

    @rule()
    def run_dry(self) -> None:
        step = Step("dry", self.now, self.holds)
        step.result = self._executor(live=False).run()
        self.step = step

    @rule()
    def run_live(self) -> None:
        step = Step("live", self.now, self.holds, complete=True, pending_before=self._settleable())
        step.result = self._executor(live=True).run()
        self.step = step

    @rule(
        crash_at=st.integers(1, 4),
        point=st.sampled_from(
            ["after data commit", "audit write", "before data commit", "reconcile"]
        ),
    )
    def crash_mid_run(self, crash_at: int, point: str) -> None:
        """Dies around batch `crash_at`'s data commit; a later live run must reconcile."""
        step = Step("live", self.now, self.holds, pending_before=self._settleable())

        def die() -> None:
            raise SimulatedCrash(f"killed right after batch {crash_at} committed")

        if point == "after data commit":  # before its audit entry, which is deferred
            executor = self._executor(live=True, progress=on_batch(crash_at, die))
        else:
            nth = 1 if point == "reconcile" else crash_at
            executor = self._executor(live=True, probe=CrashAt(CRASH_POINTS[point], nth))
        try:
            step.result = executor.run()
            step.complete = True  # fewer batches than crash_at: a complete run
        except SimulatedCrash:
            event(f"crash: {point}")
        self.step = step

    @rule(at=st.integers(1, 6), pick=st.integers(0, 7))
    def run_live_while_an_account_reopens(self, at: int, pick: int) -> None:
        """Reactivated mid-run, after it was planned: later batches re-check the clock."""
        step = Step("live-interfered", self.now, self.holds, complete=True)
        step.pending_before = self._settleable()
        closed = sorted(k for k, a in _rows(self.db.engine, ACCOUNTS).items() if a["closed_at"])

        def reopen() -> None:
            if not closed:
                return
            event("account reopened mid-run")
            account = closed[pick % len(closed)]
            step.not_anonymized_from_mid_run = self._tickets_of(account)
            with self.db.engine.begin() as connection:
                connection.execute(
                    update(ACCOUNTS).where(ACCOUNTS.c.id == account).values(closed_at=None)
                )

        step.result = self._executor(live=True, progress=on_batch(at, reopen)).run()
        self.step = step

    @rule(at=st.integers(1, 6), account=st.sampled_from(ACCOUNT_IDS))
    def run_live_while_legal_places_a_hold(self, at: int, account: int) -> None:
        """A hold placed mid-run is honoured from the next batch on (holds re-read per batch)."""
        step = Step("live-interfered", self.now, self.holds, complete=True)
        step.pending_before = self._settleable()

        def place() -> None:
            event("hold placed mid-run")
            step.frozen_from_mid_run = self._tickets_of(account)
            hold = HoldSpec(f"case-{self.next_hold}", account, None)
            self.next_hold += 1
            self._write_holds(replace(self.holds, holds=(*self.holds.holds, hold)), step=False)

        step.result = self._executor(live=True, progress=on_batch(at, place)).run()
        self.step = step

    def _tickets_of(self, account: int) -> dict[int, Row]:
        tickets = _rows(self.db.engine, TICKETS).items()
        return {key: t for key, t in tickets if t["account_id"] == account}

    # -- the invariant -------------------------------------------------------------------------

    def _claims(self) -> list[tuple[set[tuple[str, str]], set[tuple[str, str]]]]:
        """Each pending intent's (record keys, cascaded children's keys), as audit pairs."""
        with self.state.connect() as connection:
            rows = connection.execute(
                select(intents.c.action, intents.c["keys"], intents.c.children)
            ).all()
        return [
            (
                {(action, _key(k)) for k in json.loads(keys)},
                {(CASCADE, _key(k)) for _, ks in json.loads(children) for k in ks},
            )
            for action, keys, children in rows
        ]

    def _settleable(self) -> int:
        """The audit entries reconciling the pending intents will write: one per dataset of
        each intent whose change did happen."""
        unaudited = self.ever - set(self._done_entries())
        return sum(bool(keys & unaudited) + bool(kids & unaudited) for keys, kids in self._claims())

    def _done_entries(self) -> Counter[tuple[str, str]]:
        return Counter(
            (entry.action, key)
            for entry in self._audit().entries()
            if entry.outcome == "done" and not entry.dry_run
            for key in json.loads(entry.keys)
        )

    def _pending_keys(self) -> set[tuple[str, str]]:
        return {pair for keys, kids in self._claims() for pair in keys | kids}

    def _audit(self) -> AuditLog:
        return AuditLog(self.state, keys="plain", hmac_key=HMAC_KEY.encode())

    @invariant()
    def promises_are_kept(self) -> None:
        if self.config is None:
            return
        engine = self.db.engine
        after = Snapshot(_rows(engine, TICKETS), _rows(engine, ACCOUNTS), _rows(engine, MESSAGES))
        step = self.step
        if step is not None:
            self._check_step(step, self.before, after)
        self._check_audit(step)
        self.before, self.step = after, None

    def _check_step(self, step: Step, before: Snapshot, after: Snapshot) -> None:
        if step.kind not in ("accounts", "live-interfered"):
            assert after.accounts == before.accounts, f"{step.kind} step changed accounts"
        if step.kind == "insert":
            assert after.tickets == {**before.tickets, **step.inserted}
            assert after.messages == {**before.messages, **step.inserted_messages}
            return
        if step.kind in ("accounts", "clock", "holds"):
            assert after.tickets == before.tickets, f"{step.kind} step changed tickets"
            assert after.messages == before.messages, f"{step.kind} step changed messages"
            return
        model = Model(before.accounts, step.now, step.holds, before.messages)
        if step.kind == "dry":
            assert after.tickets == before.tickets, "a dry run changed the data"
            assert after.messages == before.messages, "a dry run changed the data"
            self._check_dry_report(step, model, before)
            return
        for key, old in before.tickets.items():
            new = after.tickets.get(key)
            if new != old:
                self._check_change(model, key, old, new)
            for rule_id in (DELETE, ANONYMIZE):
                if model.due(old, rule_id) and model.held(old, rule_id):
                    event(f"live run: a due ticket held from {ACTION[rule_id]}")
                elif model.due(old, rule_id) and model.kept(old):
                    event(f"live run: a due ticket kept from {ACTION[rule_id]}")
        for key, message in before.messages.items():
            parent_deleted = message["ticket_id"] not in after.tickets
            if key in after.messages:
                assert after.messages[key] == message, f"message {key} changed"
                assert not parent_deleted, f"message {key} outlived its deleted ticket"
            else:
                assert parent_deleted, f"message {key} deleted without its ticket"
                event("live run: a message deleted with its ticket")
                self.ever.add((CASCADE, str(key)))
        for key, then in step.frozen_from_mid_run.items():
            now = after.tickets.get(key)
            assert now == then, f"ticket {key} changed after a hold on it was placed mid-run"
        for key, then in step.not_anonymized_from_mid_run.items():
            now = after.tickets.get(key)
            assert now is None or now == then, (
                f"ticket {key} anonymized after its account was reactivated mid-run"
            )
        if step.complete:
            self._check_complete(step, after)

    def _check_change(self, model: Model, key: int, old: Row, new: Row | None) -> None:
        rule_id = DELETE if new is None else ANONYMIZE
        event(f"live run: a ticket {ACTION[rule_id]}d")
        what = f"ticket {key} {ACTION[rule_id]}d at {model.now.isoformat()}: {dict(old)}"
        assert not model.held(old, rule_id), f"held record changed: {what}"
        assert model.due(old, rule_id), f"changed before due: {what}"
        assert not model.kept(old), f"changed while a keep rule protects it: {what}"
        if new is not None:
            assert not model.superseded(old), f"anonymized although a delete is due: {what}"
            assert not anonymized(old), f"anonymized twice: {what}"
            assert new == anonymize(old), f"wrongly anonymized: {what} -> {dict(new)}"
        self.ever.add((ACTION[rule_id], str(key)))

    def _check_dry_report(self, step: Step, model: Model, before: Snapshot) -> None:
        assert step.result is not None and step.result.status == "complete", step.result
        reported = Counter(
            (entry.action, key)
            for entry in self._audit().entries(run_id=step.result.run_id)
            if entry.outcome.startswith("would ") and entry.dry_run
            for key in json.loads(entry.keys)
        )
        expected = Counter(
            (ACTION[rule_id], str(key))
            for key, ticket in before.tickets.items()
            for rule_id in (DELETE, ANONYMIZE)
            if model.actionable(ticket, rule_id)
        )
        assert reported == expected, (
            f"the dry run does not report what a live run would do: reported but not due "
            f"{sorted(reported - expected)}, due but not reported {sorted(expected - reported)}"
        )

    def _check_complete(self, step: Step, after: Snapshot) -> None:
        result = step.result
        assert result is not None and result.status == "complete", result
        assert all(o.status == "ok" and not o.lingering for o in result.outcomes), result
        assert result.recovered == step.pending_before, "not every interrupted batch reconciled"
        if result.recovered:
            event("live run: reconciled an interrupted batch")
        model = Model(after.accounts, step.now, self.holds, after.messages)
        left = [
            (rule_id, key)
            for key, ticket in after.tickets.items()
            for rule_id in (DELETE, ANONYMIZE)
            if model.actionable(ticket, rule_id)
        ]
        assert not left, f"due and unheld after a complete live run: {left}"
        assert self.config is not None
        plan = make_plan(self.config, step.now, stores=self.stores)
        assert {p.rule: p.actionable for p in plan.rules if p.action != "keep"} == {
            DELETE: 0,
            ANONYMIZE: 0,
        }
        with self.state.connect() as connection:
            running = connection.execute(
                select(runs.c.id).where(runs.c.status == "running", runs.c.mode == "live")
            ).all()
        assert not running, "a crashed run was not marked interrupted"

    def _check_audit(self, step: Step | None) -> None:
        verification = self._audit().verify()
        assert verification.ok, verification
        done = self._done_entries()
        twice = [k for k, n in done.items() if n > 1]
        assert not twice, f"audited twice: {twice}"
        audited, pending = set(done), self._pending_keys()
        assert audited <= self.ever, f"audited but never changed: {audited - self.ever}"
        assert not (audited & pending), f"audited and still pending: {audited & pending}"
        unaudited = self.ever - audited
        assert unaudited <= pending, f"changed, neither audited nor pending: {unaudited - pending}"
        if step is not None and step.complete:
            assert not pending, f"intents left after a complete live run: {pending}"
            assert audited == self.ever


# The suite's 300 s timeout catches hangs; this machine's 12 histories take ~15 s alone and can
# take five times that on a loaded machine (and a deep run draws five times as many), so it
# gets a bound of its own.
pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]

TestEnforcementStateMachine = EnforcementMachine.TestCase
TestEnforcementStateMachine.settings = settings(
    max_examples=examples(12),  # a 40-step history costs ~1 s of CPU
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# --- regressions found by the machine -----------------------------------------------------------


def test_audit_verifies_after_a_run_that_audited_nothing(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """`AuditLog.verify()` is ok after a run that wrote no entry, and stays ok afterwards.

    Found by the machine (its first shrunk example: one dry run on empty tables). A run that
    finds the audit log empty records the chain head ``(0, GENESIS)``; verify then looked up
    entry 0, found none, and reported "entry differs from the head recorded by run …". So every
    state DB whose first run had nothing to do reported tampering, for ever after.
    """
    world = Scenario(sqlite_db, tmp_path)
    config = world.config([rule_yaml(retain="P30D")], audit={"keys": "plain"})
    state = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    log = AuditLog(state, keys="plain", hmac_key=HMAC_KEY.encode())
    try:
        Executor(config, now=START, live=False, state=state).run()
        assert log.verify().ok, log.verify()
        world.tickets({"id": 1, "created_at": dt.datetime(2025, 1, 1)})
        Executor(config, now=START, live=True, state=state).run()
        assert [e.outcome for e in log.entries() if e.action != RUN_ACTION] == ["done"]
        assert log.verify().ok, log.verify()
    finally:
        state.dispose()


def test_anonymize_is_not_superseded_by_a_delete_held_through_a_cascade_child(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """A ticket due for delete and anonymize, whose delete is held only because one of its
    cascade children (messages) is held, is anonymized: a delete that cannot happen does not
    supersede the anonymize.

    Found by the machine. The anonymize rule's `superseded` excluded records held from the
    delete directly, but not those the delete's `protection()` holds through cascade children,
    so the plan said "superseded" for anonymize and "held" for delete, the live run touched
    nothing, reported `complete` with nothing lingering, and the personal data stayed for ever.
    """
    world = Scenario(sqlite_db, tmp_path)
    world.accounts({"id": 1, "closed_at": dt.datetime(2026, 1, 1)})
    ticket = {"id": 1, "account_id": 1, "created_at": dt.datetime(2025, 1, 1)}
    world.tickets({**ticket, "email": "alice@example.com", "ip": "10.0.0.1"})
    world.messages({"id": 1, "ticket_id": 1, "body": "hello"})
    config = world.config(
        [RULES[ANONYMIZE], RULES[DELETE]],
        datasets=DATASETS,
        holds={"holds": [{"id": "case-1", "datasets": ["messages"]}]},
    )
    now = dt.datetime(2026, 2, 1, tzinfo=UTC)
    plan = world.plan(config, now)
    assert (plan[DELETE].held, plan[DELETE].actionable) == (1, 0)
    assert (plan[ANONYMIZE].superseded, plan[ANONYMIZE].actionable) == (0, 1)
    state = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        Executor(config, now=now, live=True, state=state).run()
    finally:
        state.dispose()
    (row,) = _rows(sqlite_db.engine, TICKETS).values()
    assert row == anonymize({**row, "email": "alice@example.com", "ip": "10.0.0.1"})
    assert row["email"] != "alice@example.com"
    assert list(_rows(sqlite_db.engine, MESSAGES)) == [1]
