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
from zoneinfo import ZoneInfo

import pyarrow as pa  # type: ignore[import-untyped]

from ...datasets import Dataset
from ...holds import HoldsFile
from ...rules import Rule
from ...timemath import due_clock_set

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


def member(column: str, values: Iterable[str], type_: pa.DataType) -> str | None:
    """``column IN (...)`` for the values a column of `type_` can hold (None: none can)."""
    usable = sorted(v for v in set(values) if not pa.types.is_integer(type_) or _integer(v))
    if not usable:
        return None
    return f"{quote(column)} IN ({', '.join(literal(v, type_) for v in usable)})"


def due(rule: Rule, dataset: Dataset, now: dt.datetime, schema: pa.Schema) -> str | None:
    """The rule's clock as a condition on one timestamp column, when its clock is one record
    timestamp (None: it is judged before the batch only)."""
    after = rule.after
    if after.combine != "one" or after.refs[0].source != "record":
        return None
    column = dataset.config.timestamps.get(after.refs[0].name)
    if column is None or column not in schema.names:
        return None
    type_ = schema.field(column).type
    if not pa.types.is_timestamp(type_):
        return None
    parts = []
    for lo, hi in due_clock_set(rule.delay, now, dataset.calendar).intervals:
        bounds = [f"{quote(column)} >= {instant(lo, type_, dataset.zone)}"] if lo else []
        bounds += [f"{quote(column)} <= {instant(hi, type_, dataset.zone)}"] if hi else []
        parts.append(" AND ".join(bounds) or "TRUE")
    return "(" + " OR ".join(f"({p})" for p in parts) + ")" if parts else NEVER


def unheld(rule: Rule, dataset: Dataset, holds: HoldsFile, schema: pa.Schema) -> str | None:
    """Excludes the rows the holds in force cover for this rule (None: no hold applies)."""
    if holds.freeze:
        return NEVER
    ids: set[str] = set()
    for hold in holds.applicable(dataset.name, rule.id, rule.action):
        if hold.scoped_subjects() is None:
            return NEVER
        if dataset.subject is not None:
            ids |= hold.subject_ids(dataset.subject.name)
    column = dataset.subject_column
    if not ids or column is None:
        return None
    held = member(column, ids, schema.field(column).type)
    return None if held is None else f"({quote(column)} IS NULL OR NOT {held})"


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
    parts = [member(key, keys, schema.field(key).type) or NEVER]
    parts.append(due(rule, dataset, now, schema) or "TRUE")
    parts.append(unheld(rule, dataset, holds, schema) or "TRUE")
    parts += [due(keep, dataset, now, schema) or "TRUE" for keep in dataset.keeps]
    return " AND ".join(p for p in parts if p != "TRUE")


__all__ = ["NEVER", "delete_predicate", "due", "instant", "literal", "member", "quote", "unheld"]
