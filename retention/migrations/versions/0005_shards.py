"""Revision 0005: replicas that share the work (``service.lease_scope: dataset``).

- ``retention_replicas``: each running `serve` replica and until when it counts as alive (it
  renews this with its leases); the replicas alive tell each one its fair share of the shards.
- ``retention_shard_schedule``: per rule and shard (a cascade unit of datasets), the instant
  up to which every fire time has been run, as ``retention_schedule`` records it per rule for
  the whole state DB.

No existing row changes. A state DB written before it keeps its per-rule marks; a replica that
leads a shard for the first time starts that shard's marks from them (:mod:`retention.schedule`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "retention_replicas",
        sa.Column("holder", sa.String(200), primary_key=True),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
    )
    op.create_table(
        "retention_shard_schedule",
        sa.Column("rule", sa.String(200), primary_key=True),
        sa.Column("shard", sa.String(100), primary_key=True),
        sa.Column("covered_until", _TS, nullable=False),
        sa.Column("run_id", sa.String(36)),
        sa.Column("updated_at", _TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("retention_shard_schedule")
    op.drop_table("retention_replicas")
