"""The SQL store: any database SQLAlchemy 2 can reach (SQLite, PostgreSQL, MySQL/MariaDB, ...).

Tables are reflected from the live schema, and every table or column name that comes from
config is checked against it before it reaches a statement; SQLAlchemy quotes identifiers.
Engines are prepared so timestamps compare exactly: SQLite gets the ``retention_utc`` function
(see :mod:`retention.stores.sqlclock`), MySQL/MariaDB sessions run in UTC so ``TIMESTAMP``
columns read as UTC. SQLite also gets ``retention_id``, the canonical form of a subject id
(:mod:`retention.stores.sqlids`).
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
    create_engine,
    event,
    inspect,
    select,
    type_coerce,
)
from sqlalchemy import types as sqltypes
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from ..errors import SchemaError, StoreError
from ..settings import SqlStoreConfig
from .sqlclock import SQLITE_FUNCTION, ClockColumn, ColumnKind, sqlite_utc_text
from .sqlids import SQLITE_ID_FUNCTION, sqlite_canonical_id

UTC_ZONE = ZoneInfo("UTC")


def make_engine(url: str, *, connect_timeout: float = 10.0, immediate: bool = False) -> Engine:
    """An engine for `url`, prepared for exact timestamp comparison.

    `immediate` (SQLite only, for the state DB) makes every transaction take the write lock
    when it begins, so a read-then-write (the audit chain's head) cannot be overtaken by
    another writer, and puts the file in WAL mode.
    """
    kwargs: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    elif url.startswith(("postgresql", "mysql", "mariadb")):
        kwargs["connect_args"] = {"connect_timeout": int(connect_timeout)}
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    dialect = engine.dialect.name
    if dialect == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_setup(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.create_function(
                SQLITE_FUNCTION, 2, sqlite_utc_text, deterministic=True
            )
            dbapi_connection.create_function(
                SQLITE_ID_FUNCTION, 1, sqlite_canonical_id, deterministic=True
            )
            dbapi_connection.execute("PRAGMA foreign_keys = ON")
            if immediate:
                dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
                # WAL: one fsync per commit instead of several; readers never block the writer
                dbapi_connection.execute("PRAGMA journal_mode=WAL")

        if immediate:

            @event.listens_for(engine, "begin")
            def _begin_immediate(connection: Any) -> None:
                connection.exec_driver_sql("BEGIN IMMEDIATE")

    elif dialect in ("mysql", "mariadb"):

        @event.listens_for(engine, "connect")
        def _mysql_setup(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("SET time_zone = '+00:00'")
            cursor.close()

    return engine


class SqlStore:
    """One configured SQL store: a lazily created engine and the tables reflected from it."""

    kind = "sql"

    def __init__(self, name: str, config: SqlStoreConfig) -> None:
        self.name = name
        self.config = config
        self._engine: Engine | None = None
        self._metadata = MetaData()
        self._tables: dict[str, Table] = {}

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            try:
                self._engine = make_engine(
                    self.config.url.get_secret_value(),
                    connect_timeout=self.config.connect_timeout,
                )
            except (SQLAlchemyError, ImportError, ValueError) as exc:
                raise StoreError(_describe(exc), store=self.name) from None
        return self._engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def ping(self) -> None:
        """Connect once; a StoreError says why the store cannot be reached."""
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except SQLAlchemyError as exc:
            raise StoreError(_describe(exc), store=self.name) from None

    def table(self, name: str) -> Table:
        """The reflected table (or view) `name` (``schema.table`` allowed)."""
        if name in self._tables:
            return self._tables[name]
        schema, _, bare = name.rpartition(".")
        try:
            table = Table(bare, self._metadata, autoload_with=self.engine, schema=schema or None)
        except NoSuchTableError:
            raise SchemaError(
                f"table {name!r} does not exist (tables: {self._table_names(schema)})",
                store=self.name,
            ) from None
        except SQLAlchemyError as exc:
            raise StoreError(_describe(exc), store=self.name) from None
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
        if self.dialect == "sqlite" and isinstance(
            column.type, (sqltypes.Date, sqltypes.DateTime, sqltypes.Time)
        ):
            return type_coerce(column, sqltypes.String()).label(column.name)
        return column

    def readable_row(self, table: Table) -> Select[Any]:
        """``SELECT`` every column of `table`, each read :meth:`as_stored`."""
        return select(*(self.as_stored(column) for column in table.columns))

    def clock_kind(self, column: Column[Any]) -> ColumnKind:
        """How values of a timestamp column are to be read."""
        if self.dialect == "sqlite":
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
        mysql = self.dialect in ("mysql", "mariadb")
        if kind == "naive" and mysql and type(column.type).__name__ == "TIMESTAMP":
            zone = UTC_ZONE
        return ClockColumn(column, kind, zone)

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def _table_names(self, schema: str) -> str:
        try:
            names = inspect(self.engine).get_table_names(schema=schema or None)
            names += inspect(self.engine).get_view_names(schema=schema or None)
        except SQLAlchemyError:
            return "unknown"
        return ", ".join(sorted(names)) or "none"


def _describe(exc: BaseException) -> str:
    """An error message without the URL (it may hold a password)."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return f"{type(exc).__name__}: {first}"
