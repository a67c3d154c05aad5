"""The audit facts of cascaded rows: a cascade child's row goes because its parent does, so it
carries its parent's facts — the subject the parent belongs to, and the parent rule's due time
and lateness. A certificate then credits a child dataset's rows to the subject they belonged to
through the parent (:mod:`retention.subjects`), from the child's own entry.

A child's delete brings back, besides its key, the value of the column that links it to its
parent (its parent's key), so this costs no query of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...recordfacts import RecordFacts
from .keys import KeyTuple

UNKNOWN = RecordFacts(None, None)  # a row whose parent is not among the batch's (never expected)


def cascaded_facts(
    parent: str,
    keys: Sequence[KeyTuple],
    facts: Sequence[RecordFacts],
    children: Sequence[tuple[str, str, Sequence[KeyTuple]]],
) -> list[list[RecordFacts]]:
    """The facts of each cascade child's deleted rows, in the order of `children`: (child,
    its parent dataset, its rows: key then link value), deepest first as they were deleted.
    `keys` and `facts` are those of the batch's own records, of dataset `parent`."""
    by_dataset: dict[str, dict[str, RecordFacts]] = {}
    if keys and len(keys[0]) == 1:
        by_dataset[parent] = {str(k[0]): f for k, f in zip(keys, facts, strict=True)}
    found: list[list[RecordFacts]] = [[] for _ in children]
    for index in range(len(children) - 1, -1, -1):  # parents before their own children
        name, above, rows = children[index]
        linked = by_dataset.get(above, {})
        mine = [linked.get(str(row[-1]), UNKNOWN) for row in rows]
        found[index] = mine
        if rows and len(rows[0]) == 2:  # a single-column key: it may be a parent itself
            by_dataset[name] = {str(row[0]): f for row, f in zip(rows, mine, strict=True)}
    return found


__all__ = ["cascaded_facts"]
