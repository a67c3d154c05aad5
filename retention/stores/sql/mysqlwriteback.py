"""MariaDB: write values computed in Python back in one UPDATE per batch, not one per record.

The anonymize strategies without a SQL form compute each record's new values in Python. On
PostgreSQL they go back as arrays joined with ``unnest``; here the batch travels as one JSON
document, bound as a single parameter and turned back into rows by ``JSON_TABLE``::

    UPDATE t INNER JOIN JSON_TABLE(%s, '$[*]' COLUMNS (
            k_0 DECIMAL(20, 0) PATH '$[0]', v_0 LONGTEXT PATH '$[1]', ...)) AS retention_values
        ON t.id = retention_values.k_0
    SET t.email = retention_values.v_0, ...
    WHERE <condition>

Two choices keep it equal to the per-record UPDATE it replaces:

- the key columns of ``JSON_TABLE`` take their types from the live schema
  (``information_schema.COLUMNS``): integers and datetimes at full width, strings with the
  column's length, character set and collation. The join is an ``eq_ref`` on the key and
  compares exactly as ``WHERE t.k = literal`` does; no key is clamped onto a neighbour's;
- the value columns are ``LONGTEXT``, each value the text of the literal the driver would have
  sent, so the assignment to the real column converts, rounds and (in strict mode) refuses
  exactly as before. ``JSON_TABLE`` itself truncates and clamps to declared column types with
  only a warning, even in strict mode: declaring the target types there would let a value that
  does not fit be written shortened instead of refused.

``JSON_TABLE`` needs MariaDB 10.6. MySQL 8 has it too but is not tested here, so it is not used
there. Where a key type or a value cannot be said exactly, :func:`update_from_rows` returns
False and the caller keeps its per-record UPDATE.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Date,
    DateTime,
    Float,
    Integer,
    Numeric,
    Row,
    String,
    TableClause,
    Text,
    Time,
    and_,
    bindparam,
    column,
    func,
    select,
    table,
    update,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import sqltypes
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.types import TypeEngine

from ...sqldialects import dialect as capabilities

__all__ = ["MAX_DOCUMENT", "update_from_rows"]

MAX_DOCUMENT = 1 << 20
"""Bytes of JSON per statement, well under the smallest usual ``max_allowed_packet`` (4 MiB).
A batch with more is written by several statements, in the caller's transaction."""

_ALIAS = "retention_values"
_DOCUMENT = "retention_document"
_UNSAYABLE = object()
_INTEGERS = {"tinyint", "smallint", "mediumint", "int", "bigint"}
_PLAIN = (str, int, type(None))  # JSON as they are (exact types: not bool, not subclasses)

_COLUMNS = table(
    "COLUMNS",
    column("table_schema"),
    column("table_name"),
    column("column_name"),
    column("data_type"),
    column("character_maximum_length"),
    column("numeric_precision"),
    column("numeric_scale"),
    column("character_set_name"),
    column("collation_name"),
    schema="information_schema",
)


class _JsonRows(TableClause):
    """``JSON_TABLE(:document, '$[*]' COLUMNS (<name> <type> PATH '$[i]', ...)) AS <name>``:
    the rows of a JSON array of arrays, column i taken from each row's element i."""

    __visit_name__ = "retention_json_rows"
    inherit_cache = False  # the document parameter is not part of TableClause's cache key

    def __init__(self, name: str, document: BindParameter[str], *columns: Any) -> None:
        super().__init__(name, *columns)
        self.document = document


@compiles(_JsonRows, "mysql")
@compiles(_JsonRows, "mariadb")
def _compile_json_rows(element: _JsonRows, compiler: SQLCompiler, **kw: Any) -> str:
    quote = compiler.preparer.quote
    type_sql = compiler.dialect.type_compiler_instance.process
    definitions = ", ".join(
        f"{quote(c.name)} {type_sql(c.type)} PATH '$[{i}]'" for i, c in enumerate(element.c)
    )
    document = compiler.process(element.document, **kw)
    return f"JSON_TABLE({document}, '$[*]' COLUMNS ({definitions})) AS {quote(element.name)}"


@compiles(_JsonRows)
def _compile_json_rows_elsewhere(element: _JsonRows, compiler: SQLCompiler, **kw: Any) -> str:
    raise CompileError(f"JSON_TABLE is not available on {compiler.dialect.name}")


def update_from_rows(
    connection: Connection,
    table: TableClause,
    key: Sequence[Column[Any]],
    columns: Sequence[Column[Any]],
    condition: ColumnElement[bool],
    keys: Sequence[Sequence[Any]],
    values: Sequence[Sequence[Any]],
) -> bool:
    """Set `columns` of the records `keys` to `values`, each record only where `condition`
    still holds; True when done, False (and nothing run) when it cannot be done this way here.

    ``values[i][j]`` is the new value of ``columns[i]`` for ``keys[j]``, None meaning NULL;
    `keys` are distinct. The effect is that of ``UPDATE table SET columns[i] = values[i][j]
    WHERE key = keys[j] AND condition`` for every j, errors included, in one statement per
    batch (several, when its JSON is over :data:`MAX_DOCUMENT`). Records that `condition`
    excludes are not touched. False when: the server is not MariaDB 10.6 or later; a key
    column is not integer, CHAR/VARCHAR, DECIMAL, DATE or DATETIME; a target column is not
    text, integer, DECIMAL, DATE, TIME, DATETIME or TIMESTAMP; or a value has no exact text
    form here (bytes, floats, datetimes with a time zone).
    """
    if len(values) != len(columns) or any(len(v) != len(keys) for v in values):
        raise ValueError("values needs one list per column, each with one value per key")
    if not keys:
        return True
    if not _has_json_table(connection) or not all(_writable(c.type) for c in columns):
        return False
    key_types = _key_types(connection, table, key)
    if key_types is None:
        return False
    dialect = connection.dialect
    encoded = []
    for data, target in [
        *zip(zip(*keys, strict=True), key, strict=True),
        *zip(values, columns, strict=True),
    ]:
        as_json = _encode(data, target.type.bind_processor(dialect))
        if as_json is None:
            return False
        encoded.append(as_json)

    key_names = [f"k_{i}" for i in range(len(key))]
    value_names = [f"v_{i}" for i in range(len(columns))]
    rows = _JsonRows(
        _ALIAS,
        bindparam(_DOCUMENT, type_=Text()),
        *(column(n, t) for n, t in zip(key_names, key_types, strict=True)),
        *(column(n, mysql.LONGTEXT()) for n in value_names),
    )
    matched = and_(*(c == rows.c[n] for n, c in zip(key_names, key, strict=True)))
    statement = (
        update(table.join(rows, matched))
        .where(condition)
        .values({c: rows.c[n] for n, c in zip(value_names, columns, strict=True)})
    )
    for document in _documents(list(zip(*encoded, strict=True))):
        connection.execute(statement, {_DOCUMENT: document})
    return True


def _has_json_table(connection: Connection) -> bool:
    dialect = connection.dialect
    if capabilities(dialect.name).write_back != "json_table" or not getattr(
        dialect, "is_mariadb", False
    ):
        return False
    return tuple(dialect.server_version_info or ())[:2] >= (10, 6)


def _key_types(
    connection: Connection, table: TableClause, key: Sequence[Column[Any]]
) -> list[TypeEngine[Any]] | None:
    """The ``JSON_TABLE`` types of the key columns, from the live schema; None if one cannot
    be said exactly (or the table is not found there)."""
    info = _COLUMNS.c
    schema = table.schema if table.schema is not None else func.database(type_=String())
    query = select(_COLUMNS).where(
        info.table_schema == schema,
        info.table_name == table.name,
        info.column_name.in_([c.name for c in key]),
    )
    found: dict[str, Row[Any]] = {}
    for row in connection.execute(query):
        name = str(row.column_name).lower()
        if name in found:  # two tables whose names differ only in case
            return None
        found[name] = row
    types = []
    for c in key:
        described = found.get(c.name.lower())
        type_ = None if described is None else _key_type(described)
        if type_ is None:
            return None
        types.append(type_)
    return types


def _key_type(described: Row[Any]) -> TypeEngine[Any] | None:
    """The ``JSON_TABLE`` type that holds every value of this key column exactly and compares
    with it as the column does, using its index.

    Integers and datetimes are widened (any integer fits DECIMAL(20,0), any DATETIME
    DATETIME(6)), so a Table that declares them narrower cannot clamp a key onto a neighbour's.
    Strings take the column's character set and collation: with another collation the join
    fails (illegal mix of collations) or compares differently. TIMESTAMP keys are left out:
    a local time read back across a DST change can name two instants.
    """
    kind = str(described.data_type).lower()
    if kind in _INTEGERS:
        return mysql.DECIMAL(20, 0)
    if kind == "date":
        return mysql.DATE()
    if kind == "datetime":
        return mysql.DATETIME(fsp=6)
    if kind == "decimal":
        return mysql.DECIMAL(described.numeric_precision, described.numeric_scale)
    if kind in ("char", "varchar"):
        string = mysql.CHAR if kind == "char" else mysql.VARCHAR
        return string(
            described.character_maximum_length,
            charset=described.character_set_name,
            collation=described.collation_name,
        )
    return None


def _writable(type_: TypeEngine[Any]) -> bool:
    """Whether assigning a literal's text to a column of this type is the same as assigning
    the literal (not so for BIT, YEAR, ENUM, SET, binary and floating-point columns)."""
    if isinstance(type_, sqltypes.Enum | mysql.SET):
        return False
    if isinstance(type_, Numeric):
        return not isinstance(type_, Float) and bool(type_.asdecimal)
    return isinstance(type_, String | Integer | Date | DateTime | Time)


def _encode(data: Iterable[Any], process: Callable[[Any], Any] | None) -> list[Any] | None:
    """Each value as the driver would be given it, in JSON; None if one has no exact form."""
    out = []
    for value in data:
        sent = process(value) if process is not None else value
        if type(sent) not in _PLAIN:
            sent = _json_scalar(sent)
            if sent is _UNSAYABLE:
                return None
        out.append(sent)
    return out


def _json_scalar(value: Any) -> Any:
    """The JSON form of one bound value, the text of PyMySQL's literal for it (a datetime
    without microseconds has none, as there), or :data:`_UNSAYABLE`."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else _UNSAYABLE
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ") if value.tzinfo is None else _UNSAYABLE
    if isinstance(value, dt.time):
        return value.isoformat() if value.tzinfo is None else _UNSAYABLE
    if isinstance(value, dt.date):
        return value.isoformat()
    return _UNSAYABLE


def _documents(rows: Sequence[Sequence[Any]]) -> list[str]:
    """The rows as JSON arrays of arrays of at most :data:`MAX_DOCUMENT` bytes each (a single
    row may be more), in order. ASCII: non-ASCII text is escaped, so the connection's character
    set does not matter."""
    document = json.dumps(rows, separators=(",", ":"))
    if len(document) <= MAX_DOCUMENT or len(rows) == 1:
        return [document]
    parts = min(len(rows), -(-len(document) // MAX_DOCUMENT) + 1)
    size = -(-len(rows) // parts)
    return [d for i in range(0, len(rows), size) for d in _documents(rows[i : i + size])]
