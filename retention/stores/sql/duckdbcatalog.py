"""Tables reflected from DuckDB's own catalog functions.

duckdb_engine inherits SQLAlchemy's PostgreSQL inspector, whose queries (SQLAlchemy 2.1) read
``pg_catalog.pg_collation`` and cast to ``regclass``, neither of which DuckDB has: reflection
fails. DuckDB describes its tables in ``duckdb_columns()`` and ``duckdb_constraints()``; this
module builds the same :class:`~sqlalchemy.Table` from them (columns, their types and
nullability, the primary key) and lists tables and foreign keys for error messages.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Column, Connection, MetaData, Table, text
from sqlalchemy import types as sqltypes
from sqlalchemy.exc import NoSuchTableError

_SIMPLE: dict[str, sqltypes.TypeEngine[Any]] = {
    "TINYINT": sqltypes.SmallInteger(),
    "SMALLINT": sqltypes.SmallInteger(),
    "INTEGER": sqltypes.Integer(),
    "BIGINT": sqltypes.BigInteger(),
    "HUGEINT": sqltypes.BigInteger(),
    "UTINYINT": sqltypes.SmallInteger(),
    "USMALLINT": sqltypes.Integer(),
    "UINTEGER": sqltypes.BigInteger(),
    "UBIGINT": sqltypes.BigInteger(),
    "VARCHAR": sqltypes.String(),
    "BOOLEAN": sqltypes.Boolean(),
    "DATE": sqltypes.Date(),
    "TIME": sqltypes.Time(),
    "TIMESTAMP": sqltypes.DateTime(),
    "TIMESTAMP_S": sqltypes.DateTime(),
    "TIMESTAMP_MS": sqltypes.DateTime(),
    "TIMESTAMP_NS": sqltypes.DateTime(),
    "TIMESTAMP WITH TIME ZONE": sqltypes.DateTime(timezone=True),
    "FLOAT": sqltypes.Float(),
    "DOUBLE": sqltypes.Float(),
    "UUID": sqltypes.Uuid(),
    "BLOB": sqltypes.LargeBinary(),
    "INTERVAL": sqltypes.Interval(),
    "JSON": sqltypes.JSON(),
}
_DECIMAL = re.compile(r"DECIMAL\((\d+),(\d+)\)")

_COLUMNS = text(
    "SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
    "WHERE database_name = current_database() AND schema_name = :schema "
    "AND table_name = :table ORDER BY column_index"
)
_CONSTRAINTS = text(
    "SELECT table_name, constraint_type, constraint_column_names, referenced_table "
    "FROM duckdb_constraints() WHERE database_name = current_database() "
    "AND schema_name = :schema AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY')"
)
_TABLES = text(
    "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
    "AND schema_name = :schema UNION SELECT view_name FROM duckdb_views() "
    "WHERE database_name = current_database() AND schema_name = :schema AND NOT internal"
)


def column_type(name: str) -> sqltypes.TypeEngine[Any]:
    """The SQLAlchemy type of a DuckDB ``data_type`` (``NullType`` for one we do not know)."""
    decimal = _DECIMAL.fullmatch(name)
    if decimal:
        return sqltypes.Numeric(int(decimal[1]), int(decimal[2]))
    if name.startswith("VARCHAR("):
        return sqltypes.String()
    return _SIMPLE.get(name, sqltypes.NullType())


def reflect(connection: Connection, metadata: MetaData, name: str, schema: str | None) -> Table:
    """The table (or view) `name` in `schema` (the current one when None), as a Table of
    `metadata`; NoSuchTableError when there is none."""
    where = {"schema": schema or _current_schema(connection), "table": name}
    rows = connection.execute(_COLUMNS, where).all()
    if not rows:
        raise NoSuchTableError(name)
    primary = set()
    for table, kind, columns, _referenced in connection.execute(_CONSTRAINTS, where):
        if table == name and kind == "PRIMARY KEY":
            primary.update(columns)
    columns = [
        Column(column, column_type(kind), nullable=bool(nullable), primary_key=column in primary)
        for column, kind, nullable in rows
    ]
    return Table(name, metadata, *columns, schema=schema)


def table_names(connection: Connection, schema: str | None) -> list[str]:
    """The tables and views of `schema` (the current one when None)."""
    where = {"schema": schema or _current_schema(connection)}
    return sorted(row[0] for row in connection.execute(_TABLES, where))


def referencing(connection: Connection, name: str) -> list[tuple[str, str]]:
    """(table, column) of every foreign key in the current schema that refers to `name`."""
    where = {"schema": _current_schema(connection)}
    found = []
    for table, kind, columns, referenced in connection.execute(_CONSTRAINTS, where):
        if kind == "FOREIGN KEY" and referenced == name:
            found += [(table, column) for column in columns]
    return found


def _current_schema(connection: Connection) -> str:
    return str(connection.execute(text("SELECT current_schema()")).scalar_one())


__all__ = ["column_type", "referencing", "reflect", "table_names"]
