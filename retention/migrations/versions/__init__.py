"""The state DB's Alembic revisions, one module each, in order of their numbers."""
