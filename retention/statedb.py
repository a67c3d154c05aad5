"""The state DB: runs, audit log, intents, leases, schedules, mirrored S3 holds (SQLite default).

The tables below are the schema at the newest revision of :mod:`retention.migrations`;
:func:`open_state` brings a state DB there (creating it, or upgrading one an older release
wrote) before anything uses it, and refuses one a newer release upgraded. The audit table is
append-only by convention and by grants (deploy/README.md); its hash chain
(:mod:`retention.audit`) makes any edit detectable anyway.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    Connection,
    Engine,
    delete,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from .errors import StateVersionError, StoreError, first_line

# the tables, defined once; imported here for the modules that use them with open_state
from .statetables import (
    intents,
)
from .stores.sql.engine import make_engine


def open_state(url: str) -> Engine:
    """Connect to the state DB and bring its schema to this release's revision.

    An empty database is created at the newest revision, one an older release wrote is
    upgraded; one a newer release upgraded is refused (:class:`StateVersionError`).
    """
    from .schema import upgrade

    try:
        engine = make_engine(url, immediate=True)
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot open the state DB: {type(exc).__name__}: {first_line(exc)}",
            store="state_db",
        ) from None
    try:
        upgrade(engine)
    except BaseException as exc:
        engine.dispose()
        if not isinstance(exc, SQLAlchemyError):
            raise
        raise StoreError(
            f"cannot open the state DB: {type(exc).__name__}: {first_line(exc)}",
            store="state_db",
        ) from None
    return engine


def take_intent(connection: Connection, intent_id: str) -> bool:
    """Remove a settled batch's intent in `connection`'s transaction, before its audit entries
    are written there; False if it was gone already: another run (one that took the lease over
    while this one stalled) settled and audited that batch, so it must not be audited twice."""
    return connection.execute(delete(intents).where(intents.c.id == intent_id)).rowcount == 1


def utcnow() -> dt.datetime:
    """Wall-clock time for bookkeeping (run start/finish), never for retention decisions."""
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite returns naive datetimes for timezone columns: they are stored as UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class StateProblem:
    """One reason the state DB cannot be used: `unreachable` for a server that does not answer
    (exit 3), else a bad URL, a missing driver or a schema this release cannot use (exit 2)."""

    message: str
    unreachable: bool = False


def check_state(url: str) -> list[StateProblem]:
    """What stands between `url` and a usable state DB, without changing it: the URL parses,
    its dialect and driver are installed, the server answers, and the schema is current, can
    be created or upgraded, and is not newer than this release. Messages never repeat the URL
    (it may hold a password)."""
    from .schema import check_revision, revision

    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
        dialect.import_dbapi()
    except NoSuchModuleError:  # before ArgumentError, which it derives from
        return [StateProblem(f"state_db: no SQLAlchemy dialect {parsed.drivername!r} installed")]
    except (ArgumentError, ValueError):
        return [StateProblem("state_db is not a database URL (value not shown)")]
    except ImportError as exc:
        return [
            StateProblem(
                f"state_db: the driver for {parsed.drivername!r} is not installed ({exc.name}); "
                "install retention[postgres] or retention[mysql]"
            )
        ]
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database or "")
        if not path.exists():
            if not path.parent.is_dir():
                return [StateProblem(f"state_db: directory {path.parent} does not exist", True)]
            return []  # created at the newest revision on first use
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            found = revision(connection)
    except SQLAlchemyError as exc:
        return [StateProblem(f"state_db unreachable: {type(exc).__name__}", True)]
    finally:
        engine.dispose()
    try:
        check_revision(found)
    except StateVersionError as exc:
        return [StateProblem(str(exc))]
    return []  # current, older (upgraded on first use) or none yet (created on first use)
