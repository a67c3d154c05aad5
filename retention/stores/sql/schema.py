"""A SQL store's schema: its engine, and the tables and columns config names, checked.

Tables are reflected from the live schema, and every table or column name that comes from config
is checked against it before it reaches a statement; SQLAlchemy quotes identifiers.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Column,
    Engine,
    MetaData,
    Select,
    Table,
    inspect,
    select,
    text,
    type_coerce,
)
from sqlalchemy import types as sqltypes
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from ...errors import SchemaError, StoreError, StoreMisconfigured
from ...settings import SqlStoreConfig
from ...sqldialects import Dialect, connected
from . import duckdbcatalog
from .clock import ClockColumn, ColumnKind
from .engine import describe_error, make_engine, missing_sqlite_file

UTC_ZONE = ZoneInfo("UTC")
# each partition's name → the partitioned table at the top of its tree (PostgreSQL)
_PARTITION_ROOTS = text(
    "WITH RECURSIVE up(child, parent) AS ("
    " SELECT inhrelid, inhparent FROM pg_inherits"
    " UNION ALL SELECT up.child, i.inhparent FROM up JOIN pg_inherits i ON i.inhrelid = up.parent)"
    " SELECT c.relname, p.relname FROM up JOIN pg_class c ON c.oid = up.child"
    " JOIN pg_class p ON p.oid = up.parent"
    " WHERE NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = up.parent)"
)


class Schema:
    """One configured SQL store's engine (created lazily) and the tables reflected from it."""

    def __init__(self, name: str, config: SqlStoreConfig) -> None:
        self.name = name
        self.config = config
        self._engine: Engine | None = None
        self._metadata = MetaData()
        self._tables: dict[str, Table] = {}
        self._sql: Dialect | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            url = self.config.url.get_secret_value()
            missing = missing_sqlite_file(url)
            if missing is not None:
                raise StoreMisconfigured(
                    f"SQLite database file not found: {missing} (a store's file is never "
                    "created: check the path)",
                    store=self.name,
                )
            try:
                self._engine = make_engine(url, connect_timeout=self.config.connect_timeout)
            except StoreMisconfigured as exc:
                raise StoreMisconfigured(str(exc), store=self.name) from None
            except (SQLAlchemyError, ValueError) as exc:
                raise StoreError(describe_error(exc), store=self.name) from None
        return self._engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def sql(self) -> Dialect:
        """What this store's dialect can do (:mod:`retention.sqldialects`)."""
        if self._sql is None:
            engine = self.engine
            with engine.connect():  # the server's version decides some flags (MariaDB's)
                self._sql = connected(engine.dialect)
        return self._sql

    def ping(self) -> None:
        """Connect once; a StoreError says why the store cannot be reached."""
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except SQLAlchemyError as exc:
            raise StoreError(describe_error(exc), store=self.name) from None

    def table(self, name: str) -> Table:
        """The reflected table (or view) `name` (``schema.table`` allowed)."""
        if name in self._tables:
            return self._tables[name]
        schema, _, bare = name.rpartition(".")
        try:
            if self.sql.catalog == "duckdb":
                with self.engine.connect() as connection:
                    table = duckdbcatalog.reflect(connection, self._metadata, bare, schema or None)
            else:
                table = Table(
                    bare, self._metadata, autoload_with=self.engine, schema=schema or None
                )
        except NoSuchTableError:
            raise SchemaError(
                f"table {name!r} does not exist (tables: {self._table_names(schema)})",
                store=self.name,
            ) from None
        except SQLAlchemyError as exc:
            raise StoreError(describe_error(exc), store=self.name) from None
        self._tables[name] = table
        return table

    def define(self, name: str, columns: list[Column[Any]]) -> Table:
        """A table `name` (``schema.table`` allowed) this store is about to create, known
        from now on like a reflected one."""
        schema, _, bare = name.rpartition(".")
        table = Table(bare, self._metadata, *columns, schema=schema or None)
        self._tables[name] = table
        return table

    def column(self, table: Table, name: str) -> Column[Any]:
        """The column `name` of `table`, or a SchemaError listing the real ones."""
        if name not in table.c:
            known = ", ".join(c.name for c in table.columns)
            raise SchemaError(
                f"table {table.fullname!r} has no column {name!r} (columns: {known})",
                store=self.name,
            )
        return table.c[name]

    def as_stored(self, column: Column[Any]) -> ColumnElement[Any]:
        """`column`, to read its value as stored (for :func:`.sqlclock.parse_stored`): on
        SQLite a date or timestamp column is read as its text, since SQLAlchemy's converter
        raises on text that is no timestamp (``'yesterday'``), which must count as unreadable."""
        if self.sql.text_clocks and isinstance(
            column.type, (sqltypes.Date, sqltypes.DateTime, sqltypes.Time)
        ):
            return type_coerce(column, sqltypes.String()).label(column.name)
        return column

    def readable_row(self, table: Table) -> Select[Any]:
        """``SELECT`` every column of `table`, each read :meth:`as_stored`."""
        return select(*(self.as_stored(column) for column in table.columns))

    def clock_kind(self, column: Column[Any]) -> ColumnKind:
        """How values of a timestamp column are to be read."""
        if self.sql.text_clocks:
            return "sqlite_text"
        kind = column.type
        if isinstance(kind, sqltypes.DateTime):
            return "aware" if kind.timezone else "naive"
        if isinstance(kind, sqltypes.Date):
            return "date"
        raise SchemaError(
            f"column {column.table.fullname}.{column.name} is {kind}, not a date or timestamp",
            store=self.name,
        )

    def clock_column(self, column: Column[Any], zone: ZoneInfo) -> ClockColumn:
        """`column` as a clock, naive values read in `zone` (MariaDB TIMESTAMP: UTC)."""
        kind = self.clock_kind(column)
        utc = self.sql.utc_timestamps
        if kind == "naive" and utc and type(column.type).__name__ == "TIMESTAMP":
            zone = UTC_ZONE
        return ClockColumn(column, kind, zone)

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def referencing(self, table: str) -> list[tuple[str, str]]:
        """(table, column) of every foreign key that refers to `table`."""
        if self.sql.catalog == "duckdb":
            with self.engine.connect() as connection:
                return duckdbcatalog.referencing(connection, table)
        inspector = inspect(self.engine)
        roots: dict[str, str] = {}
        if self.sql.partitions:  # a partition's foreign keys are its partitioned table's
            with self.engine.connect() as connection:
                roots = {str(c): str(r) for c, r in connection.execute(_PARTITION_ROOTS)}
        found = []
        for other in inspector.get_table_names():
            for fk in inspector.get_foreign_keys(other):
                if roots.get(fk.get("referred_table") or "", fk.get("referred_table")) == table:
                    owner = roots.get(other, other)
                    found += [(owner, col) for col in fk.get("constrained_columns", [])]
        return list(dict.fromkeys(found))

    def _table_names(self, schema: str) -> str:
        try:
            if self.sql.catalog == "duckdb":
                with self.engine.connect() as connection:
                    names = duckdbcatalog.table_names(connection, schema or None)
            else:
                names = inspect(self.engine).get_table_names(schema=schema or None)
                names += inspect(self.engine).get_view_names(schema=schema or None)
        except SQLAlchemyError:
            return "unknown"
        return ", ".join(sorted(names)) or "none"
