"""Revision 0002: runs become audit-chain events; seals name their key.

- ``retention_audit.key_id``: the id of the HMAC key that sealed the entry
  (:mod:`retention.auditkeys`), so `audit verify` can tell another key from a forgery. Entries
  sealed before it have none.
- On MySQL/MariaDB, run times keep microseconds (a run's as-of time is checked against its
  start entry) and ``keys``/``detail`` become LONGTEXT (a TEXT holds 64 KiB).
- If the state DB already has runs or entries, one entry is appended: the *upgrade marker*
  (:mod:`retention.runevents`), listing every run that existed then with a digest of its row.
  Those runs have no run events; every later run must.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from retention.audit import GENESIS, entry_hash
from retention.runevents import MARKER_ACTION, MARKER_OUTCOME, MARKER_RUN_ID, marker_detail

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_RUN_TIMES = (("started_at", False), ("finished_at", True), ("as_of", False))
_runs = sa.table(
    "retention_runs",
    *(
        sa.column(name)
        for name in (
            "id",
            "as_of",
            "mode",
            "status",
            "config_fingerprint",
            "counts",
            "holder",
        )
    ),
)
_audit = sa.table(
    "retention_audit",
    *(
        sa.column(name)
        for name in (
            "seq",
            "run_id",
            "at",
            "rule",
            "dataset",
            "action",
            "dry_run",
            "count",
            "keys",
            "outcome",
            "detail",
            "prev_hash",
            "hash",
            "seal",
            "key_id",
        )
    ),
)


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("retention_audit", sa.Column("key_id", sa.String(64)))
    if bind.dialect.name in ("mysql", "mariadb"):
        for name, nullable in _RUN_TIMES:
            op.alter_column(
                "retention_runs",
                name,
                type_=mysql.DATETIME(fsp=6),
                existing_type=sa.DateTime(timezone=True),
                existing_nullable=nullable,
            )
        for name, nullable in (("keys", False), ("detail", True)):
            op.alter_column(
                "retention_audit",
                name,
                type_=mysql.LONGTEXT(),
                existing_type=sa.Text(),
                existing_nullable=nullable,
            )
    _append_marker(bind)


def _append_marker(bind: sa.Connection) -> None:
    """The upgrade marker, chained onto the head (nothing, on a new state DB)."""
    runs = [dict(row) for row in bind.execute(sa.select(_runs)).mappings()]
    head = bind.execute(
        sa.select(_audit.c.seq, _audit.c.hash).order_by(_audit.c.seq.desc()).limit(1)
    ).first()
    if not runs and head is None:
        return
    seq, prev = (int(head[0]) + 1, str(head[1])) if head else (1, GENESIS)
    row = {
        "seq": seq,
        "run_id": MARKER_RUN_ID,
        "at": dt.datetime.now(dt.UTC).isoformat(),
        "rule": None,
        "dataset": None,
        "action": MARKER_ACTION,
        "dry_run": False,
        "count": len(runs),
        "keys": "[]",
        "outcome": MARKER_OUTCOME,
        "detail": marker_detail(runs, seq - 1, prev),
        "prev_hash": prev,
    }
    row["hash"] = entry_hash(row)
    bind.execute(sa.insert(_audit).values(**row, seal=None, key_id=None))


def downgrade() -> None:
    bind = op.get_bind()
    bind.execute(sa.delete(_audit).where(_audit.c.run_id == MARKER_RUN_ID))
    op.drop_column("retention_audit", "key_id")
