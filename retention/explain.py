"""`retention explain DATASET KEY`: every rule that touches one record, and the verdict.

The decision for the record is made by the same SQL predicates the planner counts and the
executor repeats (restricted to this one key), so `explain` cannot disagree with a run. The
clock start and due dates are also computed in Python from the record's values, for display.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import False_, and_, case, select
from sqlalchemy.sql.elements import ColumnElement

from .config import Config
from .durations import Duration
from .errors import ConfigError, RetentionError
from .holds import Hold, HoldsFile
from .rules import Rule
from .stores import SqlStore, sql_stores
from .stores.sqlclock import parse_stored
from .stores.sqlids import id_matches
from .stores.sqlselect import Selection, SelectionBuilder
from .timemath import add_duration


@dataclass(frozen=True)
class RuleVerdict:
    """What one rule says about the record."""

    rule: str
    action: str
    status: str
    clock: str
    clock_start: dt.datetime | None = None
    due_at: dt.datetime | None = None
    overdue_at: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        def iso(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "rule": self.rule,
            "action": self.action,
            "status": self.status,
            "clock": self.clock,
            "clock_start": iso(self.clock_start),
            "due_at": iso(self.due_at),
            "overdue_at": iso(self.overdue_at),
        }


@dataclass(frozen=True)
class Explanation:
    dataset: str
    key: str
    now: dt.datetime
    verdict: str
    rules: tuple[RuleVerdict, ...]
    holds: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "key": self.key,
            "now": self.now.isoformat(),
            "verdict": self.verdict,
            "holds": list(self.holds),
            "rules": [r.as_dict() for r in self.rules],
        }


# the status of a rule whose clock is there but is no timestamp ('yesterday', a tag "soon")
UNREADABLE = "unreadable clock"


class RecordNotFound(RetentionError):
    exit_code = 1


def explain(
    config: Config,
    dataset: str,
    key: str,
    now: dt.datetime,
    *,
    holds: HoldsFile | None = None,
    stores: dict[str, SqlStore] | None = None,
) -> Explanation:
    """Explain the fate of record `key` (``a/b`` for composite keys) in `dataset`."""
    settings = config.settings
    if dataset not in settings.datasets:
        raise ConfigError(f"unknown dataset {dataset!r}", field="DATASET")
    with sql_stores(settings, stores) as opened:
        return _explain(config, dataset, key, now, holds, opened)


def _explain(
    config: Config,
    dataset: str,
    key: str,
    now: dt.datetime,
    holds: HoldsFile | None,
    stores: dict[str, SqlStore],
) -> Explanation:
    settings = config.settings
    ds = settings.datasets[dataset]
    store = stores.get(ds.store)
    holds = config.load_holds() if holds is None else holds
    if store is None:
        return _explain_object(config, dataset, key, now, holds, stores)
    builder = SelectionBuilder(config, store, now)
    assert ds.table is not None
    table = store.table(ds.table)
    key_columns = [store.column(table, name) for name in ds.key_columns]
    parts = key.split("/") if len(key_columns) > 1 else [key]
    if len(parts) != len(key_columns):
        raise ConfigError(
            f"dataset {dataset!r} has a key of {len(key_columns)} columns: give them as a/b",
            field="KEY",
        )
    match = and_(*(col == _typed(col, part) for col, part in zip(key_columns, parts, strict=True)))
    with store.engine.connect() as connection:
        row = connection.execute(store.readable_row(table).where(match)).mappings().first()
    if row is None:
        raise RecordNotFound(f"no record with key {key!r} in dataset {dataset!r}")
    subject_row = _subject_row(config, store, dataset, row)
    covering = _covering_holds(store, builder, dataset, table, match, holds)
    verdicts = []
    for rule in config.rules_for(dataset):
        selection = builder.build(rule, dataset, holds)
        flags = _flags(store, selection, match)
        start = _clock_start(config, store, dataset, rule, row, subject_row)
        zone = settings.zone()
        due_at = _after(start, rule.delay, zone)
        overdue_at = _after(start, rule.delay + rule.within, zone) if rule.within else None
        verdicts.append(
            RuleVerdict(
                rule=rule.id,
                action=rule.action,
                status=_status(rule, flags, start),
                clock=str(rule.after),
                clock_start=start,
                due_at=due_at,
                overdue_at=overdue_at,
            )
        )
    return Explanation(
        dataset=dataset,
        key=key,
        now=now,
        verdict=_verdict(verdicts, covering, holds.freeze, settings.zone()),
        rules=tuple(verdicts),
        holds=tuple(h.id for h in covering),
    )


def _explain_object(
    config: Config,
    dataset: str,
    key: str,
    now: dt.datetime,
    holds: HoldsFile,
    stores: dict[str, SqlStore],
) -> Explanation:
    """`explain` for an S3 key or a file path, judged by the same code a plan and a run use."""
    from .stores.base import ObjectStores
    from .stores.evaluate import Evaluator

    zone = config.settings.zone()
    with ObjectStores(config, stores) as objects:
        store = objects[config.settings.datasets[dataset].store]
        record = store.describe(dataset, key)
        if record is None:
            raise RecordNotFound(f"no object {key!r} in dataset {dataset!r}")
        evaluator = Evaluator(config, dataset, now, stores)
        page = evaluator.page([record], holds)
        protected = store.protected([record], now).get(key)
    verdicts = []
    for rule in evaluator.rules:
        v = page.verdict(rule, record)
        acts = v.free and protected is None
        flags = {
            "scope": True,
            "due": v.due,
            "held": v.held,
            "blocked": v.blocked,
            "superseded": False,
            "done": False,
            "actionable": acts,
            "overdue": acts and v.overdue,
            "unreadable": v.unreadable,
        }
        status = _status(rule, flags, v.start)
        if v.free and rule.destructive and protected is not None:
            what = "blocked by object lock" if store.protection == "locked" else "refused"
            status = f"{what}: {protected}"
        verdicts.append(
            RuleVerdict(
                rule=rule.id,
                action=rule.action,
                status=status,
                clock=str(rule.after),
                clock_start=v.start,
                due_at=_after(v.start, rule.delay, zone),
                overdue_at=_after(v.start, rule.delay + rule.within, zone) if rule.within else None,
            )
        )
    covering = page.held_by(record)
    verdict = _verdict(verdicts, covering, holds.freeze, zone)
    stuck = [v for v in verdicts if v.status.startswith(("blocked by object lock", "refused"))]
    if stuck and not any(v.status in ("due", "overdue") for v in verdicts):
        verdict = f"{stuck[0].status}: rule {stuck[0].rule} would otherwise delete it"
    return Explanation(
        dataset=dataset,
        key=key,
        now=now,
        verdict=verdict,
        rules=tuple(verdicts),
        holds=tuple(h.id for h in covering),
    )


def _after(start: dt.datetime | None, delay: Duration, zone: ZoneInfo) -> dt.datetime | None:
    """`start` + `delay`, or None when the clock has not started or the sum is past year 9999
    (a stored clock far in the future: never due)."""
    if start is None:
        return None
    try:
        return add_duration(start, delay, zone)
    except (OverflowError, ValueError):
        return None


def _flags(store: SqlStore, s: Selection, match: ColumnElement[bool]) -> dict[str, bool]:
    named = {
        "scope": s.scope,
        "due": and_(s.scope, s.due),
        "held": s.held,
        "blocked": s.blocked,
        "superseded": s.superseded,
        "done": s.done,
        "actionable": s.actionable,
        "overdue": and_(s.actionable, s.overdue),
        "unreadable": s.unreadable_pending,
    }
    query = (
        select(*(case((expr, 1), else_=0).label(name) for name, expr in named.items()))
        .select_from(s.table)
        .where(match)
    )
    with store.engine.connect() as connection:
        row = connection.execute(query).mappings().one()
    return {name: bool(row[name]) for name in named}


def _status(rule: Rule, flags: dict[str, bool], start: dt.datetime | None) -> str:
    if not flags["scope"]:
        return "not covered (where filter)"
    if flags["unreadable"]:  # a clock it needs holds no timestamp: never acted on
        return UNREADABLE
    if start is None and not flags["due"]:
        return "clock not started"
    if not flags["due"]:
        return "keeping" if rule.action == "keep" else "not yet due"
    if rule.action == "keep":
        return "keep period over"
    for name, text in (
        ("held", "held"),
        ("blocked", "blocked by a keep rule"),
        ("superseded", "superseded by a delete rule"),
        ("done", "already anonymized"),
        ("overdue", "overdue"),
        ("actionable", "due"),
    ):
        if flags[name]:
            return text
    return "due"


def _verdict(
    verdicts: list[RuleVerdict], covering: list[Hold], freeze: bool, zone: ZoneInfo
) -> str:
    def _day(value: dt.datetime | None) -> str:
        return _in_zone(value, zone)

    if not verdicts:
        return "no rule applies to this record: it is kept"
    acting = [v for v in verdicts if v.status in ("due", "overdue")]
    deletes = [v for v in acting if v.action == "delete"]
    if deletes:
        first = deletes[0]
        return f"due for deletion by rule {first.rule} since {_day(first.due_at)}" + (
            " (overdue)" if first.status == "overdue" else ""
        )
    if acting:
        first = acting[0]
        return f"due for anonymization by rule {first.rule} since {_day(first.due_at)}"
    held = [v for v in verdicts if v.status == "held"]
    if held:
        reason = "freeze" if freeze else ", ".join(h.id for h in covering) or "a hold"
        return f"held by {reason}: rule {held[0].rule} would otherwise act"
    blocked = [v for v in verdicts if v.status == "blocked by a keep rule"]
    keeps = [
        v
        for v in verdicts
        if v.action == "keep" and v.status in ("keeping", "clock not started", UNREADABLE)
    ]
    if blocked:
        until = max((v.due_at for v in keeps if v.due_at), default=None)
        names = ", ".join(v.rule for v in keeps)
        return f"kept by {names}" + (f" until {_day(until)}" if until else "")
    upcoming = sorted(
        (v for v in verdicts if v.action != "keep" and v.status == "not yet due" and v.due_at),
        key=lambda v: v.due_at or dt.datetime.max.replace(tzinfo=dt.UTC),
    )
    if upcoming:
        first = upcoming[0]
        verb = "deleted" if first.action == "delete" else "anonymized"
        keep_until = max((v.due_at for v in keeps if v.due_at), default=None)
        when = max(first.due_at, keep_until) if keep_until and first.due_at else first.due_at
        return f"will be {verb} on {_day(when)} by rule {first.rule}"
    if any(v.status == "already anonymized" for v in verdicts):
        return "already anonymized; nothing left to do"
    unreadable = [v.rule for v in verdicts if v.status == UNREADABLE]
    if unreadable:
        return (
            f"unreadable clock: rule {unreadable[0]} never acts on this record until the "
            "timestamp it needs is fixed"
        )
    return "no rule will act on this record yet (its clocks have not started)"


def _in_zone(value: dt.datetime | None, zone: ZoneInfo) -> str:
    """A moment as the configured zone's wall time, e.g. ``2027-03-01 00:00:00 CET``."""
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z") if value else "unknown"


def _typed(column: Any, text: str) -> Any:
    try:
        return column.type.python_type(text)
    except (NotImplementedError, TypeError, ValueError):
        return text


def _subject_row(config: Config, store: SqlStore, dataset: str, row: Any) -> dict[str, Any] | None:
    ds = config.settings.datasets[dataset]
    if ds.subject is None or row[ds.subject.column] is None:
        return None
    subject = config.settings.subjects[ds.subject.type]
    table = store.table(subject.table)
    key = store.column(table, subject.key)
    matches = id_matches(key, [row[ds.subject.column]], store.dialect)  # '0005' is account 5
    if isinstance(matches, False_):
        return None
    with store.engine.connect() as connection:
        found = connection.execute(store.readable_row(table).where(matches)).mappings().first()
    return dict(found) if found else None


def _clock_start(
    config: Config,
    store: SqlStore,
    dataset: str,
    rule: Rule,
    row: Any,
    subject_row: dict[str, Any] | None,
) -> dt.datetime | None:
    settings = config.settings
    ds = settings.datasets[dataset]
    values: list[dt.datetime | None] = []
    for ref in rule.after.refs:
        if ref.source == "record":
            zone = ZoneInfo(ds.timezone) if ds.timezone else settings.zone()
            values.append(parse_stored(row[ds.timestamps[ref.name]], zone))
        else:
            assert ds.subject is not None
            subject = settings.subjects[ds.subject.type]
            zone = ZoneInfo(subject.timezone) if subject.timezone else settings.zone()
            raw = subject_row.get(subject.events[ref.name]) if subject_row else None
            values.append(parse_stored(raw, zone))
    known = [v for v in values if v is not None]
    if rule.after.combine == "one":
        return values[0]
    if rule.after.combine == "earliest":
        return min(known, default=None)
    return max(known) if len(known) == len(values) else None


def _covering_holds(
    store: SqlStore,
    builder: SelectionBuilder,
    dataset: str,
    table: Any,
    match: ColumnElement[bool],
    holds: HoldsFile,
) -> list[Hold]:
    """The active holds whose scope covers the record `match` selects, decided by the same SQL
    predicate (:meth:`SelectionBuilder.covered_by`) a plan counts and a run repeats."""
    candidates = [h for h in holds.active() if h.covers_dataset(dataset)]
    if not candidates:
        return []
    query = (
        select(
            *(
                case((builder.covered_by(hold, dataset, table), 1), else_=0).label(f"h{index}")
                for index, hold in enumerate(candidates)
            )
        )
        .select_from(table)
        .where(match)
    )
    with store.engine.connect() as connection:
        row = connection.execute(query).one()
    return [hold for hold, covered in zip(candidates, row, strict=True) if covered]
