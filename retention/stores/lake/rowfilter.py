"""An Iceberg table's delete filter: the batch's keys, and the rule, the holds and the keep
rules once more, as a pyiceberg row filter (the same decisions as the Delta predicate,
:func:`.predicate.due_bounds` and :func:`.predicate.held`, built as expressions instead of SQL
text: nothing is quoted or parsed).

A row the filter does not evaluate to true is kept: pyiceberg keeps a row whose column is null
where the filter does not test for null, so a row without a timestamp is never deleted by its
clock; a row without a subject is not covered by a hold on subjects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast
from zoneinfo import ZoneInfo

import pyarrow as pa  # type: ignore[import-untyped]
from pyiceberg.expressions import (
    AlwaysFalse,
    AlwaysTrue,
    And,
    BooleanExpression,
    GreaterThanOrEqual,
    In,
    IsNull,
    LessThanOrEqual,
    Not,
    Or,
)

from ...datasets import Dataset
from ...holds import HoldsFile
from ...rules import Rule
from .predicate import due_bounds, held, usable


def _value(value: str, type_: pa.DataType) -> int | str:
    return int(value) if pa.types.is_integer(type_) else value


# pyiceberg's predicates are pydantic models whose own __init__ takes a column name and plain
# values; the pydantic mypy plugin sees only their fields, so they are built through this.


def _predicate(kind: Any, column: str, *values: Any) -> BooleanExpression:
    return cast(BooleanExpression, kind(column, *values))


def instant(value: dt.datetime, type_: pa.DataType, zone: ZoneInfo) -> str:
    """An aware instant as the literal of a timestamp column (naive: its wall time in `zone`)."""
    if getattr(type_, "tz", None) is None:
        return value.astimezone(zone).replace(tzinfo=None).isoformat()
    return value.astimezone(dt.UTC).isoformat()


def keyed(column: str, keys: Sequence[str], type_: pa.DataType) -> BooleanExpression:
    """The rows of `keys` (in their audit text form)."""
    found = usable(keys, type_)
    return _predicate(In, column, {_value(k, type_) for k in found}) if found else AlwaysFalse()


def span(column: str, keys: Sequence[str], type_: pa.DataType) -> BooleanExpression:
    """The rows whose key lies between the least and the greatest of `keys`: what prunes a
    scan's files as well as the keys themselves would, without binding thousands of literals
    (pyiceberg converts each one again for every file it plans)."""
    found = [_value(k, type_) for k in usable(keys, type_)]
    if not found:
        return AlwaysFalse()
    low = _predicate(GreaterThanOrEqual, column, min(found))
    return And(low, _predicate(LessThanOrEqual, column, max(found)))


def due(rule: Rule, dataset: Dataset, now: dt.datetime, schema: pa.Schema) -> BooleanExpression:
    """The rows the rule's clock makes due (true: judged before the batch only)."""
    bounds = due_bounds(rule, dataset, now, schema)
    if bounds is None:
        return AlwaysTrue()
    found: BooleanExpression = AlwaysFalse()
    zone = dataset.zone
    column, type_ = bounds.column, bounds.type_
    for lo, hi in bounds.intervals:
        part: BooleanExpression = AlwaysTrue()
        if lo is not None:
            part = And(part, _predicate(GreaterThanOrEqual, column, instant(lo, type_, zone)))
        if hi is not None:
            part = And(part, _predicate(LessThanOrEqual, column, instant(hi, type_, zone)))
        found = Or(found, part)
    return found


def unheld(rule: Rule, dataset: Dataset, holds: HoldsFile, schema: pa.Schema) -> BooleanExpression:
    """The rows no hold in force keeps from this rule."""
    kept = held(rule, dataset, holds, schema)
    if kept is None:
        return AlwaysTrue()
    if kept.everything or kept.column is None:
        return AlwaysFalse()
    type_ = schema.field(kept.column).type
    inside = _predicate(In, kept.column, {_value(i, type_) for i in kept.ids})
    return Or(_predicate(IsNull, kept.column), Not(inside))


def delete_filter(
    keys: Sequence[str],
    rule: Rule,
    dataset: Dataset,
    now: dt.datetime,
    holds: HoldsFile,
    schema: pa.Schema,
) -> BooleanExpression:
    """The rows of `keys` that are still due, unheld and not kept by a keep rule."""
    (key,) = dataset.key_columns
    found = And(keyed(key, keys, schema.field(key).type), due(rule, dataset, now, schema))
    found = And(found, unheld(rule, dataset, holds, schema))
    for keep in dataset.keeps:
        found = And(found, due(keep, dataset, now, schema))
    return found


__all__ = ["delete_filter", "due", "instant", "keyed", "span", "unheld"]
