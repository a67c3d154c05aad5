"""Writing a batch's anonymized values back: which statement each database gets.

SQLite computes the strategies it cannot express in SQL through functions registered on the
connection, so a batch stays one ``UPDATE``; PostgreSQL and MariaDB receive the values computed
in Python as one JSON document (:mod:`.pgwriteback`, :mod:`.mysqlwriteback`); anything else, or
values JSON cannot carry exactly, one ``UPDATE`` per record.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Connection, Date, DateTime, and_, bindparam, func, update
from sqlalchemy.sql.elements import ColumnElement

from ...anonymize import Anonymizer
from ...sqldialects import dialect
from .keys import KeyTuple
from .mysqlwriteback import update_from_rows
from .pgwriteback import update_from_json
from .select import Selection


def sqlite_functions(
    connection: Connection,
    anonymizers: dict[str, Anonymizer],
    set_based: dict[str, ColumnElement[Any] | None],
) -> dict[str, ColumnElement[Any] | None]:
    """`set_based`, with each text strategy SQLite cannot compute itself done by ``apply``
    registered on this connection as a function, so the batch is one UPDATE.

    Text columns only: SQLite hands the function the stored text, which is what ``apply`` gets
    from a text column anyway (dates would reach it as text rather than as dates).
    """
    driver = connection.connection.driver_connection
    found = dict(set_based)
    for index, (name, anonymizer) in enumerate(anonymizers.items()):
        column = anonymizer.column
        if found[name] is not None or isinstance(column.type, (Date, DateTime)):
            continue
        function = f"retention_anonymize_{index}"
        assert driver is not None
        driver.create_function(function, 1, anonymizer.apply, deterministic=True)
        found[name] = getattr(func, function)(column, type_=column.type)
    return found


def write_back(
    connection: Connection,
    selection: Selection,
    condition: ColumnElement[bool],
    columns: list[Column[Any]],
    keys: list[KeyTuple],
    values: list[list[Any]],
) -> list[KeyTuple] | None:
    """Set `columns` of the records `keys` to `values` (one list per column, in key order),
    each record only where `condition` (the batch's window and the rule's predicate) still holds;
    the keys it changed, when the database says (else None).

    PostgreSQL and MariaDB get one statement per batch, the values in one JSON document
    (``UPDATE ... FROM jsonb_array_elements(...) RETURNING``, see stores/pgwriteback.py;
    ``UPDATE ... JOIN JSON_TABLE``, see stores/mysqlwriteback.py); elsewhere, or for types those
    cannot carry exactly, it is an executemany of one UPDATE per record. Every value written is
    ``apply``'s, so every record changed is now done.
    """
    key, table = selection.key, selection.table
    if dialect(connection.dialect.name).write_back == "jsonb":
        changed = update_from_json(connection, table, key, columns, condition, keys, values)
        if changed is not None:
            return changed
    if update_from_rows(connection, table, key, columns, condition, keys, values):
        return None  # no UPDATE ... RETURNING on MariaDB: the caller re-reads what is now done
    key_names = [f"k_{i}" for i in range(len(key))]
    value_names = [f"v_{i}" for i in range(len(columns))]
    names = key_names + value_names
    data = [[k[i] for k in keys] for i in range(len(key))] + values
    match = and_(*(c == bindparam(n) for n, c in zip(key_names, key, strict=True)))
    per_record = (
        update(selection.table)
        .where(match, condition)
        .values({c.name: bindparam(n) for n, c in zip(value_names, columns, strict=True)})
    )
    rows = [dict(zip(names, row, strict=True)) for row in zip(*data, strict=True)]
    connection.execute(per_record, rows)
    return None
