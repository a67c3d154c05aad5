"""The Alembic environment: run the revisions on the connection retention.schema passes in.

Alembic executes this file itself; it is not imported by the package. The connection (already
in a transaction that holds the schema lock) and the name of the version table come in
``config.attributes``.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    version_table=context.config.attributes["version_table"],
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
