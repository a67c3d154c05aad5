"""Record keys in SQL: keyset pagination and key lists, for single and composite primary keys."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Column, CursorResult, tuple_
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.sql.elements import ColumnElement

KeyTuple = tuple[Any, ...]


def key_after(key: tuple[Column[Any], ...], last: KeyTuple) -> ColumnElement[bool]:
    """Keys strictly after `last` in primary-key order (the next keyset page)."""
    if len(key) == 1:
        single: ColumnElement[bool] = key[0] > last[0]
        return single
    after: ColumnElement[bool] = tuple_(*key) > tuple_(*last)
    return after


def key_from(key: tuple[Column[Any], ...], first: KeyTuple) -> ColumnElement[bool]:
    """Keys at or after `first`."""
    if len(key) == 1:
        single: ColumnElement[bool] = key[0] >= first[0]
        return single
    after: ColumnElement[bool] = tuple_(*key) >= tuple_(*first)
    return after


def key_upto(key: tuple[Column[Any], ...], last: KeyTuple) -> ColumnElement[bool]:
    """Keys at or before `last`."""
    if len(key) == 1:
        single: ColumnElement[bool] = key[0] <= last[0]
        return single
    after: ColumnElement[bool] = tuple_(*key) <= tuple_(*last)
    return after


def key_in(key: tuple[Column[Any], ...], keys: Sequence[KeyTuple]) -> ColumnElement[bool]:
    """Keys among `keys`."""
    if len(key) == 1:
        return key[0].in_([k[0] for k in keys])
    return tuple_(*key).in_(list(keys))


# keys per IN-list: a statement's bound parameters are capped (PostgreSQL 65,535, SQLite 32,766
# where compiled so), and a batch of keys may be larger than that
IN_LIST = 1000


def chunked(keys: Sequence[KeyTuple]) -> Iterator[Sequence[KeyTuple]]:
    """`keys` in runs of at most :data:`IN_LIST`, one per statement."""
    for start in range(0, len(keys), IN_LIST):
        yield keys[start : start + IN_LIST]


def normal_key(key: KeyTuple) -> KeyTuple:
    """Keys compared as text: JSON round trips turn some types (dates, decimals) into strings."""
    return tuple(str(part) for part in key)


def fetch_keys(result: CursorResult[Any], key: tuple[Column[Any], ...]) -> list[KeyTuple]:
    """Every row of a result of key columns, as plain tuples in key order."""
    rows = fetch_rows(result, key)
    rows.sort()
    return rows


def fetch_rows(result: CursorResult[Any], columns: Sequence[ColumnElement[Any]]) -> list[KeyTuple]:
    """Every row of a result of `columns`, as plain tuples.

    When no column needs SQLAlchemy's conversion of what the driver returns (integers and
    text everywhere; dates and UUIDs where the driver makes them), the rows come from the
    driver's own ``fetchall``: on batches of thousands of rows SQLAlchemy's per-row work costs
    several times the fetch itself. Otherwise (SQLite dates, decimals) SQLAlchemy converts them,
    so a value reads the same whichever way it was fetched.
    """
    dialect = result.context.dialect
    cursor = result.cursor
    description = (cursor.description if cursor is not None else None) or []
    codes = [d[1] for d in description] if len(description) == len(columns) else []

    def converted(index: int, column: ColumnElement[Any]) -> bool:
        code = codes[index] if codes else None
        try:
            processor = column.type.dialect_impl(dialect).result_processor(dialect, code)
        except (TypeError, InvalidRequestError):  # a type that must see the driver's type code
            return True
        return processor is not None

    native = not any(converted(i, column) for i, column in enumerate(columns))
    if native and cursor is not None:
        rows: list[KeyTuple] = [tuple(row) for row in cursor.fetchall()]
        result.close()
        return rows
    return [tuple(row) for row in result.all()]


def keys_json(keys: Sequence[KeyTuple], formatted: Sequence[str] | None = None) -> str:
    """Key tuples as a JSON array of arrays (how intents keep them); other types as text.

    Integer keys, by far the most common, are joined from their decimal text (`formatted`,
    when the caller has it already): the same text as ``json.dumps`` in a fraction of its
    time, once per batch of thousands.
    """
    if keys and len(keys[0]) == 1 and {type(k[0]) for k in keys} == {int}:
        texts = formatted if formatted is not None else [str(k[0]) for k in keys]
        return "[[" + "], [".join(texts) + "]]"
    return json.dumps(keys, default=str, check_circular=False)


def format_key(row: Iterable[Any]) -> str:
    """A record key as text: `42`, or `7/3` for a composite key."""
    return "/".join(str(part) for part in row)


def format_keys(rows: Sequence[Sequence[Any]]) -> list[str]:
    """:func:`format_key` of each key of one table (all of one width), once per audited record."""
    if rows and len(rows[0]) == 1:
        return [str(row[0]) for row in rows]
    return [format_key(row) for row in rows]
