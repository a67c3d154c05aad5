"""Revision 0004: each audit entry that acted on records carries their facts.

- ``retention_audit.records``: per record, in the order of the entry's keys, its subject (in
  the keys' form: HMAC, plain or null), its due time and how late it was acted on
  (:mod:`retention.recordfacts`). The entry's hash covers it only when it is there.

No existing row changes: entries written before it have no records and verify as they did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_LONG_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.add_column("retention_audit", sa.Column("records", _LONG_TEXT))


def downgrade() -> None:
    op.drop_column("retention_audit", "records")
