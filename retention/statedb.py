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
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from .errors import StateVersionError, StoreError
from .stores.sql import make_engine

metadata = MetaData()

TS = DateTime(timezone=True)
# A run's times to the microsecond on MySQL/MariaDB too: its as-of time is checked against the
# one its audit entry records.
RUN_TS = DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
LONG_TEXT = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

runs = Table(
    "retention_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("started_at", RUN_TS, nullable=False),
    Column("finished_at", RUN_TS),
    Column("as_of", RUN_TS, nullable=False),
    Column("mode", String(10), nullable=False),  # live | dry-run
    Column(
        "status", String(16), nullable=False
    ),  # running | complete | interrupted | failed | refused
    Column("config_fingerprint", String(64), nullable=False),
    Column("counts", Text, nullable=False, default="{}"),
    Column("holder", String(200)),
    Column("message", Text),
)

audit = Table(
    "retention_audit",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("run_id", String(36), nullable=False, index=True),
    Column("at", String(40), nullable=False),
    Column("rule", String(200)),
    Column("dataset", String(200)),
    Column("action", String(40), nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("count", Integer, nullable=False),
    Column("keys", LONG_TEXT, nullable=False),
    Column("outcome", String(40), nullable=False),
    Column("detail", LONG_TEXT),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("seal", String(64)),
    Column("key_id", String(64)),  # the id of the HMAC key that made `seal` (auditkeys.py)
)

intents = Table(
    "retention_intents",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("run_id", String(36), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("rule", String(200), nullable=False),
    Column("dataset", String(200), nullable=False),
    Column("action", String(40), nullable=False),
    Column("keys", Text, nullable=False),  # JSON list of key tuples, needed to check the outcome
    Column("children", Text, nullable=False, default="[]"),
)

leases = Table(
    "retention_leases",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("epoch", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("expires_at", TS, nullable=False),
)

schedule = Table(
    "retention_schedule",
    metadata,
    Column("rule", String(200), primary_key=True),
    # every fire time of the rule at or before this instant has been run (retention.schedule)
    Column("covered_until", TS, nullable=False),
    Column("run_id", String(36)),
    Column("updated_at", TS, nullable=False),
)

# The schema's revision, as Alembic records it (retention.schema; Alembic creates this table).
schema_version = Table(
    "retention_alembic_version",
    metadata,
    Column("version_num", String(32), primary_key=True),
)

# S3 legal holds that retention placed to mirror its own holds (mirror_holds: true): only these
# are ever released by retention. `id` is a digest of store, dataset, key and version id.
legal_holds = Table(
    "retention_legal_holds",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("store", String(200), nullable=False),
    Column("dataset", String(200), nullable=False, index=True),
    Column("key", Text, nullable=False),
    Column("version_id", String(1024)),
    Column("holds", Text, nullable=False),  # JSON list of the hold ids it mirrors
    Column("placed_at", TS, nullable=False),
    Column("run_id", String(36), nullable=False),
)


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
            f"cannot open the state DB: {type(exc).__name__}", store="state_db"
        ) from None
    try:
        upgrade(engine)
    except BaseException as exc:
        engine.dispose()
        if not isinstance(exc, SQLAlchemyError):
            raise
        raise StoreError(
            f"cannot open the state DB: {type(exc).__name__}", store="state_db"
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
