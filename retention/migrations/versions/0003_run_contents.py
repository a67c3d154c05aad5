"""Revision 0003: what each run applied, content-addressed.

- ``retention_contents``: every rule pack, holds file and settings text a run applied, once, by
  its SHA-256.
- ``retention_run_contents``: per run, in order, which of them it applied (kind, name, digest),
  so `retention audit rules RUN` prints that run's rule packs as they were read.

No existing row changes: logs written before it verify as they did; their runs list nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_LONG_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "retention_contents",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("body", _LONG_TEXT, nullable=False),
    )
    op.create_table(
        "retention_run_contents",
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("retention_run_contents")
    op.drop_table("retention_contents")
