"""Record keys in SQL: keyset pagination and key lists, for single and composite primary keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, tuple_
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


def normal_key(key: KeyTuple) -> KeyTuple:
    """Keys compared as text: JSON round trips turn some types (dates, decimals) into strings."""
    return tuple(str(part) for part in key)
