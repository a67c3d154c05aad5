"""Database engines prepared for exact comparisons, for SQL stores and the state DB alike.

SQLite gets the ``retention_utc`` function (:mod:`.clock`) and ``retention_id``, the canonical
form of a subject id (:mod:`.ids`); MySQL/MariaDB sessions run in UTC so ``TIMESTAMP`` columns
read as UTC. A URL this install cannot open (an unknown dialect or driver, a driver package that
is not installed) is :class:`~retention.errors.StoreMisconfigured`, naming the extra to install.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import NoSuchModuleError, SQLAlchemyError

from ...errors import StoreFailed, StoreMisconfigured, first_line
from .clock import SQLITE_FUNCTION, sqlite_utc_text
from .ids import SQLITE_ID_FUNCTION, sqlite_canonical_id

# seconds a SQLite connection waits for a lock; `?timeout=N` in the URL says otherwise
SQLITE_LOCK_WAIT = 30
SQLITE_CACHE_KIB = 64 * 1024
"""The page cache of a SQLite data DB connection (SQLite's default is 2 MiB). A batch deletes
or updates rows all over a secondary index (the clock's); with the default cache its
transaction spills dirty pages mid-way (an extra journal sync) and every next batch reads the
same index pages again. A fixed bound, filled only as pages are read: memory stays flat however
large the table is."""


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
            "sqlite, postgresql+psycopg, mysql+pymysql, duckdb)"
        ) from None
    except ImportError as exc:
        raise StoreMisconfigured(_missing_driver(make_url(url).get_dialect().name, exc)) from None


def _missing_driver(dialect: str, exc: ImportError) -> str:
    """Which package provides the driver, and the extra that installs it."""
    extras = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql", "duckdb": "duckdb"}
    extra = extras.get(dialect)
    module = exc.name or "its driver"
    hint = f": pip install 'retention[{extra}]'" if extra else f": install the {module} package"
    return f"the {dialect} driver ({module}) is not installed{hint}"


def _make_engine(url: str, *, connect_timeout: float, immediate: bool) -> Engine:
    kwargs: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        if "timeout" not in make_url(url).query:
            kwargs["connect_args"] = {"timeout": SQLITE_LOCK_WAIT}
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
            if not immediate:
                dbapi_connection.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
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


@contextmanager
def translated(store: str) -> Iterator[None]:
    """Database errors as :class:`~retention.errors.StoreFailed` of `store`, in one line."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreFailed(first_line(exc), store=store) from None


def describe_error(exc: BaseException) -> str:
    """An error message without the URL (it may hold a password)."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return f"{type(exc).__name__}: {first}"


__all__ = ["describe_error", "make_engine", "missing_sqlite_file", "translated"]
