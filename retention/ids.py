"""Subject ids as compared everywhere: one canonical text form per id, whatever the spelling.

A legal hold names subjects by id (``subjects: {account: [4411]}``), and the same id can be
written many ways: ``4411`` or ``"4411"`` in YAML, ``'04411'`` or ``' 4411'`` in a text column,
``customers/004411/`` in an S3 key. Every store compares ids through :func:`canonical_id`
(SQL stores through the same rule written in SQL, see :mod:`retention.stores.sqlids`), so a hold
protects a record however either side spells the id:

- surrounding whitespace (:data:`WHITESPACE`: space, tab, newline, carriage return, vertical
  tab, form feed) is not part of the id;
- an id that looks like an integer (an optional ``+`` or ``-`` and ASCII digits) is the integer
  it denotes: ``"0042"``, ``"+42"`` and ``42`` are ``"42"``, ``"-0"`` is ``"0"``;
- anything else is compared as the text it is (``"abc"`` and ``"ABC"`` are different ids).

This module depends on nothing else in the package, so config, holds, the planner and the
stores can all use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# What is trimmed around an id; the same characters in every SQL dialect (C's isspace, ASCII).
WHITESPACE = " \t\n\r\x0b\x0c"
_INTEGER = re.compile(r"[+-]?[0-9]+")


def canonical_id(value: object) -> str:
    """The id `value` as it is compared: ``"0042"``, ``42``, ``" 42"``, ``"+42"`` are ``"42"``."""
    if type(value) is int:  # already canonical as digits (not bool): once per acted-on record
        return str(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = str(value).strip(WHITESPACE)
    return str(int(text)) if _INTEGER.fullmatch(text) else text


def integer_id(value: object) -> int | None:
    """The integer an id denotes (``"0042"`` → 42), or None when it is not an integer.

    An id that is not an integer can never match an integer column.
    """
    text = canonical_id(value)
    return int(text) if _INTEGER.fullmatch(text) else None


def canonical_ids(values: Iterable[object]) -> frozenset[str]:
    """:func:`canonical_id` of each of `values`."""
    return frozenset(canonical_id(v) for v in values)


__all__ = ["WHITESPACE", "canonical_id", "canonical_ids", "integer_id"]
