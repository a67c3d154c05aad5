"""Counting a rule on a SQL dataset: set-based COUNTs, never rows travelling to Python.

A plan row is three statements at most: the records the rule covers, those due, then every
other question about the due ones (held, blocked, superseded, done, to act on, overdue) in one
pass of conditional sums; samples are the first few actionable keys in key order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, False_, Table, and_, case, false, func, not_, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from ..base import Counts, Tally
from .keys import KeyTuple, format_key, key_after
from .precedence import ceded
from .schema import Schema
from .select import Selection

SAMPLE_PAGE = 1000
"""Keys read at a time past the ceded ones while looking for a plan's samples."""


def count(connection: Connection, table: Table, *conditions: ColumnElement[bool]) -> int:
    """``SELECT count(*) FROM table WHERE conditions``."""
    query = select(func.count()).select_from(table).where(and_(true(), *conditions))
    return int(connection.execute(query).scalar_one())


def plan_counts(connection: Connection, store: Schema, s: Selection, samples: int) -> Counts:
    """The plan's numbers for one rule on one dataset; a delete rule's records that an earlier
    due delete rule also deletes now count as superseded (:mod:`.precedence`)."""
    in_scope = count(connection, s.table, s.scope)
    due = count(connection, s.table, s.scope, s.due) if in_scope else 0
    unreadable = 0
    if in_scope > due and not isinstance(s.unreadable, False_):
        unreadable = count(connection, s.table, s.unreadable_pending)
    if s.rule.action == "keep" or not due:
        keys: tuple[str, ...] = ()
        if s.rule.asserts_absent and due and samples:  # what must be absent, and is there
            query = select(*s.key).where(s.scope).order_by(*s.key).limit(samples)
            keys = tuple(format_key(row) for row in connection.execute(query))
        return Counts(in_scope=in_scope, due=due, unreadable=unreadable, samples=keys)
    free, unblocked = not_(s.held), not_(s.blocked)
    questions = {
        "held": (s.held,),
        "blocked": (free, s.blocked),
        "superseded": (free, unblocked, s.superseded),
        "done": (free, unblocked, not_(s.superseded), s.done),
        "actionable": (free, unblocked, not_(s.superseded), not_(s.done)),
        "overdue": (free, unblocked, not_(s.superseded), not_(s.done), s.overdue),
    }
    asked = {
        name: func.coalesce(func.sum(case((and_(*conditions), 1), else_=0)), 0)
        for name, conditions in questions.items()
        if not any(isinstance(c, False_) for c in conditions)
    }
    query = select(*asked.values()).select_from(s.table).where(s.scope, s.due)
    counts = dict.fromkeys(questions, 0)
    counts.update(zip(asked, map(int, connection.execute(query).one()), strict=True))
    lost = ceded(connection, store, s, true()) if counts["actionable"] else []
    counts["superseded"] += len(lost)
    counts["actionable"] -= len(lost)
    counts["overdue"] -= sum(overdue for _, overdue in lost)
    keys = first_keys(connection, s, lost, samples) if counts["actionable"] else ()
    return Counts(
        in_scope=in_scope,
        due=due,
        unreadable=unreadable,
        held=counts["held"],
        blocked=counts["blocked"],
        superseded=counts["superseded"],
        done=counts["done"],
        actionable=counts["actionable"],
        overdue=counts["overdue"],
        samples=keys,
    )


def first_keys(
    connection: Connection, s: Selection, lost: Sequence[tuple[KeyTuple, bool]], samples: int
) -> tuple[str, ...]:
    """The first `samples` actionable keys of `s` in key order, less those it cedes (`lost`,
    skipped here: there may be more of them than one statement can list)."""
    skip = {key for key, _ in lost}
    found: list[KeyTuple] = []
    last: KeyTuple | None = None
    size = samples + min(len(skip), SAMPLE_PAGE)
    while len(found) < samples:
        query = select(*s.key).where(s.actionable)
        if last is not None:
            query = query.where(key_after(s.key, last))
        rows = [tuple(row) for row in connection.execute(query.order_by(*s.key).limit(size))]
        found += [row for row in rows if row not in skip][: samples - len(found)]
        if len(rows) < size:
            break
        last = rows[-1]
    return tuple(format_key(row) for row in found)


def distinct_counts(connection: Connection, selections: Sequence[Selection]) -> Counts:
    """Each record of one dataset counted once across the rules of `selections`
    (:meth:`~retention.stores.base.Store.records`): the covered ones, then every question about
    the due ones in one pass of conditional sums over them alone (an index range, as in
    :func:`plan_counts`, not a pass over the whole table), then the unreadable clocks if any
    rule can have them."""
    table = selections[0].table
    acting = [s for s in selections if s.rule.action != "keep"]

    def any_of(conditions: Iterable[ColumnElement[bool]]) -> ColumnElement[bool]:
        return or_(false(), *conditions)

    found = {"in_scope": count(connection, table, any_of(s.scope for s in selections))}
    due = any_of(s.due_in_scope for s in acting)
    questions = {
        "held": any_of(and_(s.due_in_scope, s.held) for s in acting),
        "blocked": any_of(and_(s.due_in_scope, not_(s.held), s.blocked) for s in acting),
        "actionable": any_of(s.actionable for s in acting),
        "overdue": any_of(and_(s.actionable, s.overdue) for s in acting),
    }
    if found["in_scope"] and not isinstance(due, False_):
        query = (
            select(
                func.count(),
                *(func.coalesce(func.sum(case((q, 1), else_=0)), 0) for q in questions.values()),
            )
            .select_from(table)
            .where(due)
        )
        found |= dict(
            zip(["due", *questions], map(int, connection.execute(query).one()), strict=True)
        )
    pending = [s.unreadable_pending for s in selections if not isinstance(s.unreadable, False_)]
    if found["in_scope"] and pending:
        found["unreadable"] = count(connection, table, any_of(pending))
    return Counts.of_records(found)


def tally(
    connection: Connection, store: Schema, s: Selection, *, size: bool, unreadable: bool = True
) -> Tally:
    """What a run would act on now, and if asked the unreadable ones and the table's size."""
    actionable = count(connection, s.table, s.actionable)
    if actionable:
        actionable -= len(ceded(connection, store, s, true()))
    if unreadable and not isinstance(s.unreadable, False_):
        unreadable_count = count(connection, s.table, s.unreadable_pending)
    else:
        unreadable_count = 0
    total = count(connection, s.table) if size and actionable else None
    return Tally(actionable, unreadable_count, total)


__all__ = ["count", "distinct_counts", "plan_counts", "tally"]
