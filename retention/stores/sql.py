"""The SQL store: any database SQLAlchemy 2 can reach (SQLite, PostgreSQL, MySQL/MariaDB, ...).

Tables are reflected from the live schema, and every table or column name that comes from
config is checked against it before it reaches a statement; SQLAlchemy quotes identifiers.
Engines are prepared so timestamps compare exactly: SQLite gets the ``retention_utc`` function
(see :mod:`retention.stores.sqlclock`), MySQL/MariaDB sessions run in UTC so ``TIMESTAMP``
columns read as UTC. SQLite also gets ``retention_id``, the canonical form of a subject id
(:mod:`retention.stores.sqlids`).
"""

from __future__ import annotations

from pathlib import Path
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
from sqlalchemy.engine import make_url
from sqlalchemy.exc import NoSuchModuleError, NoSuchTableError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from ..errors import SchemaError, StoreError, StoreMisconfigured
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
    try:
        return _make_engine(url, connect_timeout=connect_timeout, immediate=immediate)
    except NoSuchModuleError:
        raise StoreMisconfigured(
            f"unknown database dialect or driver {make_url(url).drivername!r} (tested: "
            "sqlite, postgresql+psycopg, mysql+pymysql)"
        ) from None
    except ImportError as exc:
        raise StoreMisconfigured(_missing_driver(make_url(url).get_dialect().name, exc)) from None


def _missing_driver(dialect: str, exc: ImportError) -> str:
    """Which package provides the driver, and the extra that installs it."""
    extra = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}.get(dialect)
    module = exc.name or "its driver"
    hint = f": pip install 'retention[{extra}]'" if extra else f": install the {module} package"
    return f"the {dialect} driver ({module}) is not installed{hint}"


def _make_engine(url: str, *, connect_timeout: float, immediate: bool) -> Engine:
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


def missing_sqlite_file(url: str) -> str | None:
    """The path of a SQLite URL's database file when it does not exist (else None)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or parsed.query.get("uri"):
        return None
    return None if Path(database).exists() else database


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
