"""A lake table's delete predicate: the batch's keys, and the rule, the holds and the keep rules
once more, so that the table itself refuses a row that stopped being due or became held between
judging a batch and committing it (as a SQL store's ``WHERE`` does).

Written in delta-rs's SQL (DataFusion): identifiers quoted, literals typed by the column's
Arrow type (an integer column is compared with integer literals only, a text column with text,
a timestamp column with an instant, in its own zone when it is naive). What cannot be said in
the predicate stays with the judgement just before the batch: subject clocks (their events live
in a SQL store), ``earliest``/``latest`` clocks, and hold ids spelled differently in a text
column (``0005`` for 5).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pyarrow as pa  # type: ignore[import-untyped]

from ...datasets import Dataset
from ...holds import HoldsFile
from ...rules import Rule

NEVER = "FALSE"


def quote(name: str) -> str:
    """A column name as a DataFusion SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def literal(value: str, type_: pa.DataType) -> str:
    """An audit-form key or a canonical id as a SQL literal of a column's type."""
    if pa.types.is_integer(type_):
        return str(int(value))
    return text(value)


def instant(value: dt.datetime, type_: pa.DataType, zone: ZoneInfo) -> str:
    """An aware instant as a literal compared with a timestamp column (naive: wall time)."""
    if getattr(type_, "tz", None) is None:
        return text(value.astimezone(zone).replace(tzinfo=None).isoformat())
    return text(value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"))


def _integer(value: str) -> bool:
    return value.lstrip("+-").isdigit()


def usable(values: Iterable[str], type_: pa.DataType) -> list[str]:
    """The values (canonical ids, audit-form keys) a column of `type_` can hold, sorted."""
    return sorted(v for v in set(values) if not pa.types.is_integer(type_) or _integer(v))


def member(column: str, values: Iterable[str], type_: pa.DataType) -> str | None:
    """``column IN (...)`` for the values a column of `type_` can hold (None: none can)."""
    found = usable(values, type_)
    if not found:
        return None
    return f"{quote(column)} IN ({', '.join(literal(v, type_) for v in found)})"


@dataclass(frozen=True)
class Bounds:
    """A rule's due set as intervals of one timestamp column (an empty tuple: nothing is due;
    a None bound: open on that side)."""

    column: str
    type_: pa.DataType
    intervals: tuple[tuple[dt.datetime | None, dt.datetime | None], ...]


@dataclass(frozen=True)
class Held:
    """What the holds in force keep from a rule: everything (a freeze, a hold on the whole
    dataset), or the rows whose subject column holds one of `ids`."""

    everything: bool = False
    column: str | None = None
    ids: frozenset[str] = frozenset()


def due_bounds(rule: Rule, dataset: Dataset, now: dt.datetime, schema: pa.Schema) -> Bounds | None:
    """The rule's clock as bounds on one timestamp column, when its clock is one record
    timestamp (None: it is judged before the batch only)."""
    after = rule.after
    if not after.refs or after.combine != "one" or after.refs[0].source != "record":
        return None
    column = dataset.config.timestamps.get(after.refs[0].name)
    if column is None or column not in schema.names:
        return None
    type_ = schema.field(column).type
    if not pa.types.is_timestamp(type_):
        return None
    intervals = tuple(dataset.due_set(after, rule.delay, now).intervals)
    return Bounds(column, type_, intervals)


def held(rule: Rule, dataset: Dataset, holds: HoldsFile, schema: pa.Schema) -> Held | None:
    """What the holds in force cover for this rule (None: no hold applies to a row)."""
    if holds.freeze:
        return Held(everything=True)
    ids: set[str] = set()
    for hold in holds.applicable(dataset.name, rule.id, rule.action):
        if hold.scoped_subjects() is None:
            return Held(everything=True)
        if dataset.subject is not None:
            ids |= hold.subject_ids(dataset.subject.name)
    column = dataset.subject_column
    if not ids or column is None:
        return None
    found = usable(ids, schema.field(column).type)
    return Held(column=column, ids=frozenset(found)) if found else None


def due(rule: Rule, dataset: Dataset, now: dt.datetime, schema: pa.Schema) -> str | None:
    """The rule's clock as a condition on one timestamp column (None: judged before the batch
    only)."""
    bounds = due_bounds(rule, dataset, now, schema)
    if bounds is None:
        return None
    column, type_ = quote(bounds.column), bounds.type_
    parts = []
    for lo, hi in bounds.intervals:
        limits = [f"{column} >= {instant(lo, type_, dataset.zone)}"] if lo else []
        limits += [f"{column} <= {instant(hi, type_, dataset.zone)}"] if hi else []
        parts.append(" AND ".join(limits) or "TRUE")
    return "(" + " OR ".join(f"({p})" for p in parts) + ")" if parts else NEVER


def unheld(rule: Rule, dataset: Dataset, holds: HoldsFile, schema: pa.Schema) -> str | None:
    """Excludes the rows the holds in force cover for this rule (None: no hold applies)."""
    kept = held(rule, dataset, holds, schema)
    if kept is None:
        return None
    if kept.everything or kept.column is None:
        return NEVER
    inside = member(kept.column, kept.ids, schema.field(kept.column).type)
    return f"({quote(kept.column)} IS NULL OR NOT {inside})"


def guard(
    rule: Rule, dataset: Dataset, now: dt.datetime, holds: HoldsFile, schema: pa.Schema
) -> str | None:
    """The rule's clock, the holds and the keep rules as one condition on a row (None: nothing
    to add to the judgement before the batch)."""
    parts = [due(rule, dataset, now, schema), unheld(rule, dataset, holds, schema)]
    parts += [due(keep, dataset, now, schema) for keep in dataset.keeps]
    given = [p for p in parts if p is not None]
    return " AND ".join(given) if given else None


def delete_predicate(
    keys: Sequence[str],
    rule: Rule,
    dataset: Dataset,
    now: dt.datetime,
    holds: HoldsFile,
    schema: pa.Schema,
) -> str:
    """The predicate deleting the rows of `keys` that are still due, unheld and unblocked."""
    (key,) = dataset.key_columns
    keyed = member(key, keys, schema.field(key).type) or NEVER
    condition = guard(rule, dataset, now, holds, schema)
    return keyed if condition is None else f"{keyed} AND {condition}"


__all__ = [
    "NEVER",
    "Bounds",
    "Held",
    "delete_predicate",
    "due",
    "due_bounds",
    "guard",
    "held",
    "instant",
    "literal",
    "member",
    "quote",
    "unheld",
    "usable",
]
