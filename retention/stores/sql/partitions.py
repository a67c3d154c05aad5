"""Whole partitions of a PostgreSQL partitioned table, emptied at once when all their rows are due.

Time-partitioned tables are the usual shape of large personal-data tables. When every row of a
partition is due, unheld, not blocked by a keep rule and left to no other rule, ``TRUNCATE`` of
the partition is far cheaper than deleting its rows batch by batch. A first look, without a
lock, keeps the partitions with a row that must stay out of it; each other one is checked again
in one transaction that first takes its ``ACCESS EXCLUSIVE`` lock, so no row can arrive or
change in it until the truncate commits, and the caller truncates it only if the holds file did
not change since the check was built from it. A partition with one row that must stay (or a
table other tables refer to, or a dataset with cascade children) goes by row batches instead.

Every query reads the partition itself, never the parent filtered on ``tableoid``: PostgreSQL
prunes partitions on the partition key only, and that filter reads all of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, MetaData, Table, exists, literal, select, text, true
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import replacement_traverse

from .keys import KeyTuple, fetch_rows, key_after
from .select import Selection

_LEAVES = text(
    "WITH RECURSIVE tree(oid) AS ("
    " SELECT inhrelid FROM pg_inherits WHERE inhparent = CAST(:parent AS regclass)"
    " UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid) "
    "SELECT c.oid, n.nspname, c.relname FROM tree JOIN pg_class c ON c.oid = tree.oid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' ORDER BY c.relname"
)
_ROOTS = text(
    "WITH RECURSIVE up(child, parent) AS ("
    " SELECT inhrelid, inhparent FROM pg_inherits"
    " UNION ALL SELECT up.child, i.inhparent FROM up JOIN pg_inherits i ON i.inhrelid = up.parent)"
    " SELECT c.relname, p.relname FROM up JOIN pg_class c ON c.oid = up.child"
    " JOIN pg_class p ON p.oid = up.parent"
    " WHERE NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = up.parent)"
)
_AT_ONCE = 64  # partitions checked in one statement
_QUOTED = re.compile(r'"((?:[^"]|"")+)"')
_PARTITIONED = text(
    "SELECT c.relkind = 'p' FROM pg_class c WHERE c.oid = CAST(:parent AS regclass)"
)
_REFERENCED = text(
    "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE contype = 'f' AND confrelid IN "
    "(SELECT CAST(:parent AS regclass) UNION ALL SELECT inhrelid FROM pg_inherits "
    "WHERE inhparent = CAST(:parent AS regclass)))"
)


@dataclass(frozen=True)
class Partition:
    """One leaf partition: its oid (to pick its rows out of the parent by ``tableoid``) and
    its quoted name."""

    oid: int
    schema: str
    name: str

    def quoted(self, connection: Connection) -> str:
        preparer = connection.dialect.identifier_preparer
        return f"{preparer.quote_schema(self.schema)}.{preparer.quote(self.name)}"


def _regclass(connection: Connection, table: Table) -> str:
    preparer = connection.dialect.identifier_preparer
    name = preparer.quote(table.name)
    return f"{preparer.quote_schema(table.schema)}.{name}" if table.schema else name


def droppable_partitions(connection: Connection, selection: Selection) -> list[Partition]:
    """The leaf partitions of `selection`'s table that could be emptied whole: none when the
    table is not partitioned, another table refers to it, or its dataset cascades or has rival
    delete rules (their records are chosen row by row); else those that hold rows, all of them
    actionable as the caller's transaction sees them. Only these are then locked (and checked
    again): a partition the application still writes to, the current month's, is never held
    in an exclusive lock."""
    if selection.dataset.cascade or selection.rivals:
        return []
    parent = _regclass(connection, selection.table)
    if not connection.execute(_PARTITIONED, {"parent": parent}).scalar():
        return []
    if connection.execute(_REFERENCED, {"parent": parent}).scalar():
        return []
    rows = connection.execute(_LEAVES, {"parent": parent})
    leaves = [Partition(int(oid), str(schema), str(name)) for oid, schema, name in rows]
    found = []
    for start in range(0, len(leaves), _AT_ONCE):
        some = leaves[start : start + _AT_ONCE]
        found += [p for p, go in zip(some, _all_go(connection, selection, some), strict=True) if go]
    return found


def _all_go(
    connection: Connection, selection: Selection, leaves: Sequence[Partition]
) -> list[bool]:
    """Whether each of `leaves` holds rows and every one of them is actionable now, in one
    statement (decided in the database, no row sent: in each partition the first row that is
    not, or is unknown, NULL, ends its scan)."""
    table = selection.table
    checks: list[ColumnElement[bool]] = []
    for partition in leaves:
        leaf = _leaf(table, partition)
        staying = _on_leaf(selection.actionable, table, leaf).is_not(true())
        checks.append(exists(select(literal(1)).select_from(leaf)))
        checks.append(exists(select(literal(1)).select_from(leaf).where(staying)))
    row = connection.execute(select(*checks)).one()
    return [bool(row[i]) and not row[i + 1] for i in range(0, len(row), 2)]


def lock(connection: Connection, partition: Partition) -> None:
    """No reader or writer reaches the partition until the transaction ends."""
    connection.exec_driver_sql(
        f"LOCK TABLE {partition.quoted(connection)} IN ACCESS EXCLUSIVE MODE"
    )


def whole_partition_rows(
    connection: Connection,
    selection: Selection,
    partition: Partition,
    extra: Sequence[ColumnElement[Any]],
    chunk: int,
) -> list[KeyTuple] | None:
    """The keys of every row of `partition`, each followed by the values of `extra`, when it
    holds rows and all of them are actionable now (:func:`_all_go`); else None.

    The rows are read in key order, `chunk` at a time (keyset pages: nothing moves under the
    caller's lock)."""
    if not _all_go(connection, selection, [partition])[0]:
        return None
    table = selection.table
    leaf = _leaf(table, partition)
    key = tuple(_on_leaf(column, table, leaf) for column in selection.key)
    columns = [*key, *(_on_leaf(column, table, leaf) for column in extra)]
    query = select(*columns).select_from(leaf).order_by(*key).limit(chunk)
    rows: list[KeyTuple] = []
    page = query
    while len(part := fetch_rows(connection.execute(page), columns)) == chunk:
        rows += part
        page = query.where(key_after(key, part[-1][: len(key)]))  # type: ignore[arg-type]
    rows += part
    return rows


def _leaf(table: Table, partition: Partition) -> Table:
    """`partition` as a table with `table`'s columns (a partition has its parent's columns)."""
    columns = [Column(c.name, c.type, key=c.key) for c in table.columns]
    return Table(partition.name, MetaData(), *columns, schema=partition.schema)


def _on_leaf(expression: ColumnElement[Any], table: Table, leaf: Table) -> ColumnElement[Any]:
    """`expression` with `table` and its columns read from `leaf` instead (subqueries on
    other tables, and aliases of `table` itself, are left as they are)."""

    def swap(element: Any, **_: Any) -> Any:
        if element is table:
            return leaf
        if isinstance(element, Column) and element.table is table:
            return leaf.c[element.key]
        return None

    swapped: ColumnElement[Any] = replacement_traverse(expression, {}, swap)
    return swapped


def parent_names(connection: Connection, message: str) -> str:
    """`message` (a driver's, such as a foreign key's refusal) with each quoted partition name
    replaced by its partitioned table's: the table the user configured, not its pieces."""
    roots = {str(child): str(root) for child, root in connection.execute(_ROOTS)}

    def parent(found: re.Match[str]) -> str:
        name = found.group(1).replace('""', '"')
        return '"' + roots.get(name, name).replace('"', '""') + '"'

    return _QUOTED.sub(parent, message)


def truncate(connection: Connection, partition: Partition) -> None:
    connection.exec_driver_sql(f"TRUNCATE TABLE {partition.quoted(connection)}")


__all__ = [
    "Partition",
    "droppable_partitions",
    "lock",
    "parent_names",
    "truncate",
    "whole_partition_rows",
]
