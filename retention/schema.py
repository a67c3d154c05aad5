"""The state DB's schema version: run the Alembic revisions of :mod:`retention.migrations`.

:func:`upgrade` is what :func:`~retention.statedb.open_state` calls: it brings any state DB to
:data:`HEAD` programmatically (no ``alembic.ini``). A database without a version table is taken
from the start: revision 0001 creates only the tables that are missing, so a state DB written
by retention 0.1.0 (before versions) passes through it unchanged and is upgraded from there. A
revision this release does not know means a newer release upgraded the state DB, and is refused.

Two processes opening a fresh state DB at once must not both create it: the upgrade runs under
a lock, ``pg_advisory_xact_lock`` on PostgreSQL, ``GET_LOCK`` on MySQL/MariaDB (whose DDL is not
transactional), the ``BEGIN IMMEDIATE`` write lock on SQLite; the revision is read again under
it. The version lives in ``retention_alembic_version``, not ``alembic_version``, so a state DB
that shares a database with an application's own Alembic history does not collide with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib.resources import files

from sqlalchemy import Connection, Engine, func, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from .errors import StateVersionError, StoreError
from .statetables import schema_version

VERSION_TABLE = schema_version.name
HEAD = "0006"
LOCK_TIMEOUT = 120  # seconds another process's upgrade may take before this one gives up
_version = schema_version


@cache
def known_revisions() -> frozenset[str]:
    """Every revision this release ships."""
    from alembic.script import ScriptDirectory  # Alembic only when a revision is checked

    script = ScriptDirectory(str(files("retention.migrations")))
    return frozenset(revision.revision for revision in script.walk_revisions())


def revision(connection: Connection) -> str | None:
    """The state DB's revision; None for a database with no version table (empty, or 0.1.0's)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    found = connection.execute(select(_version.c.version_num)).scalar()
    return str(found) if found is not None else None


def check_revision(found: str | None) -> None:
    """Refuse a revision this release does not know (a newer release upgraded the state DB)."""
    if found is not None and found not in known_revisions():
        raise StateVersionError(
            f"the state DB's schema is at revision {found}, newer than this release knows "
            f"(up to {HEAD}): upgrade retention, or point state_db at another database",
            revision=found,
            known=HEAD,
        )


def upgrade(engine: Engine, *, target: str = HEAD) -> None:
    """Bring the state DB's schema to `target` (see the module docstring); an older `target`
    than :data:`HEAD` is for tests that need a state DB as an older release left it."""
    if _current(engine) == target:
        return
    with engine.connect() as connection, _locked(connection):
        found = revision(connection)
        check_revision(found)
        if found != target:
            # imported here: a state DB already at HEAD (every run but the first) needs no
            # Alembic, whose imports (Mako, Pygments) cost a run a fraction of a second
            from alembic import command
            from alembic.config import Config

            config = Config()
            config.set_main_option("script_location", str(files("retention.migrations")))
            config.attributes["connection"] = connection
            config.attributes["version_table"] = VERSION_TABLE
            command.upgrade(config, target)


def _current(engine: Engine) -> str | None:
    """The revision, read without a lock (the common case: nothing to do); None on any error."""
    try:
        with engine.connect() as connection:
            found = connection.execute(select(_version.c.version_num)).scalar()
    except SQLAlchemyError:
        return None
    return str(found) if found is not None else None


@contextmanager
def _locked(connection: Connection) -> Iterator[None]:
    """A transaction on `connection` that holds the state DB's schema lock, committed at exit."""
    dialect = connection.dialect.name
    if dialect in ("mysql", "mariadb"):
        database = connection.execute(select(func.database())).scalar() or ""
        name = "retention-schema:" + hashlib.sha256(str(database).encode()).hexdigest()[:40]
        got = connection.execute(select(func.get_lock(name, LOCK_TIMEOUT))).scalar()
        connection.commit()
        if got != 1:
            raise StoreError(
                f"another process held the state DB's schema lock for {LOCK_TIMEOUT} s",
                store="state_db",
            )
        try:
            with connection.begin():
                yield
        finally:
            connection.execute(select(func.release_lock(name)))
            connection.commit()
        return
    with connection.begin():  # SQLite: BEGIN IMMEDIATE (statedb's engine), the write lock
        if dialect == "postgresql":
            connection.execute(select(func.pg_advisory_xact_lock(_PG_LOCK)))
        yield


# A fixed 64-bit key for pg_advisory_xact_lock: the first 8 bytes of SHA-256 of a label.
_PG_LOCK = int.from_bytes(
    hashlib.sha256(b"retention state db schema").digest()[:8], "big", signed=True
)
