"""Subject ids compared in SQL the way :func:`retention.ids.canonical_id` compares them in Python.

A hold on account ``5`` must protect a row whose subject column holds ``'0005'`` or ``' 5'``,
and a hold on ``"0005"`` a row holding ``5``, on every dialect, inside the one set-based
predicate the planner counts and the executor repeats in its DELETE/UPDATE. How a column is
compared depends on its type:

- an **integer** column is compared with the integers the ids denote (``"0005"`` is 5), so its
  index is used; an id that is not an integer can never match it;
- a **text** column (or one without a declared type) is compared in canonical form: trimmed of
  :data:`~retention.ids.WHITESPACE`, and an integer-looking value with its ``+`` sign and leading
  zeros removed (``'-007'`` → ``'-7'``, ``'-0'`` → ``'0'``). SQLite evaluates this with the
  registered function ``retention_id`` (:func:`sqlite_canonical_id`, which *is* ``canonical_id``);
  PostgreSQL and MariaDB with their own ``btrim`` / ``REGEXP_REPLACE`` expressions, digit by
  digit as text, so an id longer than any integer type still compares exactly;
- any other column (a UUID, a decimal) is compared with the ids converted to its Python type.

Where the database's collation compares text case-insensitively (MariaDB's default), ``'ABC'``
matches an id ``abc`` too: that only ever holds more, never less.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from sqlalchemy import String, and_, case, false, func, literal, type_coerce
from sqlalchemy import types as sqltypes
from sqlalchemy.sql.elements import ColumnElement

from ...ids import WHITESPACE, canonical_id, canonical_ids, integer_id
from ...sqldialects import dialect as capabilities

SQLITE_ID_FUNCTION = "retention_id"
IdKind = Literal["integer", "text", "other"]

_INTEGER_PATTERN = "^[+-]?[0-9]+$"
_ZERO_PATTERN = "^[+-]?0+$"
_LEADING_SPACE = f"^[{WHITESPACE}]+"
_TRAILING_SPACE = f"[{WHITESPACE}]+$"
_MIN_INTEGER = -(2**63)


def sqlite_canonical_id(value: object) -> str | None:
    """SQLite function ``retention_id``: the canonical form of a stored id, NULL for NULL."""
    return None if value is None else canonical_id(value)


def id_kind(column: ColumnElement[Any]) -> IdKind:
    """How ids are compared with `column` (see the module docstring)."""
    kind = column.type
    if isinstance(kind, sqltypes.Integer):
        return "integer"
    if isinstance(kind, (sqltypes.String, sqltypes.NullType)):
        return "text"
    return "other"


def canonical_sql(expr: ColumnElement[Any], dialect: str) -> ColumnElement[str]:
    """`expr` (text) in canonical form, as SQL of `dialect`; NULL stays NULL."""
    text: ColumnElement[str] = type_coerce(expr, String())
    trim = capabilities(dialect).id_trim
    if trim == "function":
        return type_coerce(getattr(func, SQLITE_ID_FUNCTION)(text), String())
    if trim in ("btrim", "trim_chars"):
        trimmer = func.btrim if trim == "btrim" else func.trim
        trimmed: ColumnElement[str] = type_coerce(
            trimmer(text, literal(WHITESPACE, String())), String()
        )
    else:  # MySQL / MariaDB: TRIM removes spaces only
        trimmed = text.regexp_replace(literal(_LEADING_SPACE, String()), literal("", String()))
        trimmed = trimmed.regexp_replace(literal(_TRAILING_SPACE, String()), literal("", String()))
    minus = func.substr(trimmed, 1, 1) == literal("-", String())
    negative = literal("-", String()) + trimmed.regexp_replace(
        literal("^-0*", String()), literal("", String())
    )
    positive = trimmed.regexp_replace(literal("^[+]?0*", String()), literal("", String()))
    number = case(
        (trimmed.regexp_match(literal(_ZERO_PATTERN, String())), literal("0", String())),
        (minus, negative),
        else_=positive,
    )
    canonical = case(
        (trimmed.regexp_match(literal(_INTEGER_PATTERN, String())), number), else_=trimmed
    )
    return type_coerce(canonical, String())


def id_matches(
    column: ColumnElement[Any], ids: Iterable[object], dialect: str
) -> ColumnElement[bool]:
    """Rows whose `column` holds one of `ids` under the canonical comparison.

    A constant false when none of the ids can match the column (no ids; only non-integer ids
    for an integer column). NULL never matches.
    """
    wanted = sorted(canonical_ids(ids))
    kind = id_kind(column)
    if kind == "integer":
        low, high = _MIN_INTEGER, capabilities(dialect).max_integer
        numbers = sorted({n for n in map(integer_id, wanted) if n is not None and low <= n <= high})
        if not numbers:
            return false()
        return and_(column.is_not(None), in_values(column, numbers))
    if kind == "text":
        if not wanted:
            return false()
        return and_(column.is_not(None), in_values(canonical_sql(column, dialect), wanted))
    typed = _typed(column, wanted)
    if not typed:
        return false()
    return and_(column.is_not(None), in_values(column, typed))


def in_values(column: ColumnElement[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN (...)`` with one bound parameter per value.

    SQLAlchemy's default "expanding" IN cannot be used with executemany, and the executor
    repeats these predicates in its per-row UPDATEs.
    """
    if len(values) == 1:
        single: ColumnElement[bool] = column == literal(values[0], column.type)
        return single
    return column.in_([literal(value, column.type) for value in values])


def _typed(column: ColumnElement[Any], ids: Sequence[str]) -> list[Any]:
    """Ids converted to the column's Python type; those that cannot be are left out (they
    cannot be in the column)."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return list(ids)
    out = []
    for value in ids:
        try:
            out.append(python_type(value))
        except (TypeError, ValueError, ArithmeticError):
            continue
    return out


__all__ = [
    "SQLITE_ID_FUNCTION",
    "IdKind",
    "canonical_sql",
    "id_kind",
    "id_matches",
    "in_values",
    "sqlite_canonical_id",
]
