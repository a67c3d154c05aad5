"""The state DB's schema history, as Alembic revisions run by :mod:`retention.schema`.

``versions/`` holds one module per revision: ``0001`` is the schema of retention 0.1.0 (what
``metadata.create_all`` made before the schema was versioned), ``0002`` makes runs part of the
audit chain. ``env.py`` is the Alembic environment: it runs the revisions on the connection
:func:`retention.schema.upgrade` hands it, so users need no ``alembic.ini``.

To add a revision: copy the newest module in ``versions/``, give it the next number as
``revision`` and the previous one as ``down_revision``, and set :data:`retention.schema.HEAD`.
"""
