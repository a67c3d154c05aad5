"""Revision 0001: the state DB as retention 0.1.0 created it, before the schema was versioned.

Each table is created only if it is missing: a state DB written by 0.1.0 has them all (or, from
an older build, most of them) and no version table, and upgrades through here unchanged. The
definitions are a frozen copy of ``statedb.py`` at that release; do not edit them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
SEQ = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _tables() -> list[tuple[str, list[sa.Column[object]]]]:
    return [
        (
            "retention_runs",
            [
                sa.Column("id", sa.String(36), primary_key=True),
                sa.Column("started_at", TS, nullable=False),
                sa.Column("finished_at", TS),
                sa.Column("as_of", TS, nullable=False),
                sa.Column("mode", sa.String(10), nullable=False),
                sa.Column("status", sa.String(16), nullable=False),
                sa.Column("config_fingerprint", sa.String(64), nullable=False),
                sa.Column("counts", sa.Text, nullable=False),
                sa.Column("holder", sa.String(200)),
                sa.Column("message", sa.Text),
            ],
        ),
        (
            "retention_audit",
            [
                sa.Column("seq", SEQ, primary_key=True, autoincrement=False),
                sa.Column("run_id", sa.String(36), nullable=False, index=True),
                sa.Column("at", sa.String(40), nullable=False),
                sa.Column("rule", sa.String(200)),
                sa.Column("dataset", sa.String(200)),
                sa.Column("action", sa.String(40), nullable=False),
                sa.Column("dry_run", sa.Boolean, nullable=False),
                sa.Column("count", sa.Integer, nullable=False),
                sa.Column("keys", sa.Text, nullable=False),
                sa.Column("outcome", sa.String(40), nullable=False),
                sa.Column("detail", sa.Text),
                sa.Column("prev_hash", sa.String(64), nullable=False),
                sa.Column("hash", sa.String(64), nullable=False),
                sa.Column("seal", sa.String(64)),
            ],
        ),
        (
            "retention_intents",
            [
                sa.Column("id", sa.String(36), primary_key=True),
                sa.Column("run_id", sa.String(36), nullable=False),
                sa.Column("created_at", TS, nullable=False),
                sa.Column("rule", sa.String(200), nullable=False),
                sa.Column("dataset", sa.String(200), nullable=False),
                sa.Column("action", sa.String(40), nullable=False),
                sa.Column("keys", sa.Text, nullable=False),
                sa.Column("children", sa.Text, nullable=False),
            ],
        ),
        (
            "retention_leases",
            [
                sa.Column("name", sa.String(100), primary_key=True),
                sa.Column("holder", sa.String(200), nullable=False),
                sa.Column("epoch", SEQ, nullable=False),
                sa.Column("expires_at", TS, nullable=False),
            ],
        ),
        (
            "retention_schedule",
            [
                sa.Column("rule", sa.String(200), primary_key=True),
                sa.Column("covered_until", TS, nullable=False),
                sa.Column("run_id", sa.String(36)),
                sa.Column("updated_at", TS, nullable=False),
            ],
        ),
        (
            "retention_legal_holds",
            [
                sa.Column("id", sa.String(64), primary_key=True),
                sa.Column("store", sa.String(200), nullable=False),
                sa.Column("dataset", sa.String(200), nullable=False, index=True),
                sa.Column("key", sa.Text, nullable=False),
                sa.Column("version_id", sa.String(1024)),
                sa.Column("holds", sa.Text, nullable=False),
                sa.Column("placed_at", TS, nullable=False),
                sa.Column("run_id", sa.String(36), nullable=False),
            ],
        ),
    ]


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for name, columns in _tables():
        if not inspector.has_table(name):
            op.create_table(name, *columns)


def downgrade() -> None:
    for name, _ in reversed(_tables()):
        op.drop_table(name)
