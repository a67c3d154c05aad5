"""The state DB: runs, audit log, intents, leases, schedules, mirrored S3 holds (SQLite default).

The tables below are the schema at the newest revision of :mod:`retention.migrations`;
:func:`open_state` brings a state DB there (creating it, or upgrading one an older release
wrote) before anything uses it, and refuses one a newer release upgraded. The audit table is
append-only by convention and by grants (deploy/README.md); its hash chain
(:mod:`retention.audit`) makes any edit detectable anyway.
"""

from __future__ import annotations

import datetime as dt

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
from sqlalchemy.exc import SQLAlchemyError

from .errors import StoreError
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
        upgrade(engine)
    except SQLAlchemyError as exc:
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
