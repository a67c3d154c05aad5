"""Revision 0006: an intent keeps its records' facts, so a batch settled after an interruption
is audited with them.

- ``retention_intents.records``: the per-record facts of the batch's keys (and of its cascaded
  rows), already in the audit's form (subjects as HMACs under ``audit.keys: hmac``), made once
  when the intent is written and reused for the batch's own entry
  (:meth:`retention.ledger.Ledger.intend`).

No existing row changes: an intent written before it has none, and is settled as before,
without facts; audit entries are untouched.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_LONG_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.add_column("retention_intents", sa.Column("records", _LONG_TEXT))


def downgrade() -> None:
    op.drop_column("retention_intents", "records")
