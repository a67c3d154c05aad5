"""The state DB's tables at the newest revision of :mod:`retention.migrations`.

Runs, the audit log, intents, leases, replicas, schedules, mirrored S3 holds and the schema's
version; :mod:`retention.statedb` opens a state DB and brings it to these.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, MetaData, String, Table, Text
from sqlalchemy.dialects import mysql

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
    Column("records", LONG_TEXT),  # per record [subject, due, late] (audit.py; revision 0004)
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
    # the facts of its records and cascaded rows, in the audit's form (ledger.py; revision 0006)
    Column("records", LONG_TEXT),
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

# Replicas of `retention serve` sharing the work by shard (service.lease_scope: dataset; revision
# 0005): each one alive until `expires_at`, which it renews with its leases.
replicas = Table(
    "retention_replicas",
    metadata,
    Column("holder", String(200), primary_key=True),
    Column("started_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
)

# What has run per rule and shard (a cascade unit of datasets), as `schedule` per rule.
shard_schedule = Table(
    "retention_shard_schedule",
    metadata,
    Column("rule", String(200), primary_key=True),
    Column("shard", String(100), primary_key=True),
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

# What a run applied, content-addressed: each text once by its SHA-256 (rule packs, the holds
# file, the settings without secrets), and per run the list of what it used (retention.runcontents).
contents = Table(
    "retention_contents",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("body", LONG_TEXT, nullable=False),
)
run_contents = Table(
    "retention_run_contents",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(20), nullable=False),  # rules | holds | settings
    Column("name", Text, nullable=False),
    Column("digest", String(64), nullable=False),
)


__all__ = [
    "audit",
    "contents",
    "intents",
    "leases",
    "legal_holds",
    "metadata",
    "replicas",
    "run_contents",
    "runs",
    "schedule",
    "schema_version",
    "shard_schedule",
]
