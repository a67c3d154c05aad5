"""Waiting for a batch another process may still be committing, before judging what it did.

Replicas share a state DB (``service.lease_scope: dataset``): when one pauses mid-batch (GC,
SIGSTOP, the network) its lease expires and another replica settles its intent. Reading the
intent's rows right away would be wrong: the paused batch's DELETE may not have committed yet,
so its rows still look present; the batch is judged "not done", its intent dropped, and the
DELETE that commits later is never audited.

Why waiting for the rows' locks closes that gap, by construction. On every path of a SQL batch
(rows, cascade children, a partition truncated, quarantine copies, purge and restore) the
data statement runs first, in the batch's transaction, and takes its locks: row locks on the
rows it changes (PostgreSQL, InnoDB; an exclusive table lock for a TRUNCATE), the database's
write lock on SQLite. Only then is the intent written (fenced by the lease), and only then does
the data transaction commit, releasing them. So while an intent exists, its batch's transaction
is either over or still holds a lock on every row the intent names. Settling reads those rows
in a transaction that must take the same locks (``SELECT ... FOR UPDATE`` under a
``lock_timeout`` or ``innodb_lock_wait_timeout``, or on PostgreSQL a ``SHARE`` lock on the
table for a role that may delete but not update there; ``BEGIN IMMEDIATE`` under a
``busy_timeout``): it gets them only once the batch's transaction has committed (rows gone or
anonymized: audited as done) or rolled back (rows untouched: nothing happened), and a
transaction that is over changes nothing later. A replica that lost its lease cannot start a
new change to be audited wrongly: its next batch needs an intent, which the fence refuses, so
that batch's statement rolls back.

If the locks are not granted within the store's ``settle_wait``, the batch may still commit:
:class:`~retention.errors.BatchInFlight` leaves its intent pending (failing closed) and the run
leaves its datasets alone (a batch of its own there could delete the same rows, to be audited
again by the settle), until a later run's recovery gets the locks.

Rejected: a deadline carried by the acting replica's statement (it is judged by one clock and
guarded by another, and a COMMIT already sent is not bounded by it), and a second fence check
just before COMMIT (a pause between the check and the COMMIT reopens the same gap). Neither is
needed: the batch path is unchanged, and only recovery waits. Dialects with no bounded lock
wait (``settle_wait: none``: DuckDB, one process at a time; the untested warehouses) read at
once, as before.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, CursorResult, Select, Table, func, select, text
from sqlalchemy.exc import OperationalError

from ...errors import BatchInFlight
from ...sqldialects import SettleWait
from .schema import Schema

_SQLITE_BUSY = 5
_INNODB_WAITED = (1205, 1213)  # lock wait timeout; deadlock (the other side goes on)
_PG_LOCK_NOT_AVAILABLE = "55P03"


class Waiting:
    """A transaction that reads rows only once no other transaction is changing them."""

    def __init__(self, connection: Connection, how: SettleWait) -> None:
        self.connection = connection
        self.how = how
        self._rows_lockable: dict[Table, bool] = {}

    def read(self, query: Select[Any], table: Table) -> CursorResult[Any]:
        """Run `query` on `table`, locking the rows it reads where the wait is on row locks.

        PostgreSQL allows ``FOR UPDATE`` only with UPDATE privilege on a column of the table; a
        role that may only delete there (the least-privilege grants of a delete rule) takes a
        ``SHARE`` lock on the table instead, which waits just as surely for a batch's
        transaction (its DELETE holds ``ROW EXCLUSIVE``, a TRUNCATE ``ACCESS EXCLUSIVE``),
        at the price of holding the table's other writers back for the moment it is held,
        and while it waits (at most ``settle_wait``): only in recovery, with an intent
        pending."""
        rows = self.how == "innodb_lock_wait_timeout"
        if self.how == "lock_timeout":
            rows = self._rows_lockable_in(table)
        return self.connection.execute(query.with_for_update() if rows else query)

    def _rows_lockable_in(self, table: Table) -> bool:
        """Whether this role may lock rows of `table` (PostgreSQL); if not, the SHARE lock on
        it is taken now, once."""
        if table not in self._rows_lockable:
            # the name as SQLAlchemy quotes it, of a table reflected from the live schema
            name = self.connection.dialect.identifier_preparer.format_table(table)
            query = select(func.has_any_column_privilege(name, "UPDATE"))
            lockable = bool(self.connection.execute(query).scalar())
            if not lockable:
                self.connection.exec_driver_sql(f"LOCK TABLE {name} IN SHARE MODE")
            self._rows_lockable[table] = lockable
        return self._rows_lockable[table]


@contextmanager
def waiting(store: Schema, dataset: str) -> Iterator[Waiting]:
    """A transaction on `store` whose reads wait for the transactions changing their rows
    (``settle_wait`` seconds at most for each lock); BatchInFlight (naming `dataset`) when one
    is still under way after that. Nothing is changed: it rolls back."""
    how = store.sql.settle_wait
    seconds = store.config.settle_wait
    try:
        with store.engine.connect() as connection:
            if how == "busy_timeout":
                yield from _sqlite(connection, seconds)
            elif how == "innodb_lock_wait_timeout":
                yield from _innodb(connection, seconds)
            else:
                connection.begin()
                if how == "lock_timeout":
                    wait = f"{math.ceil(seconds * 1000)}ms"
                    connection.execute(select(func.set_config("lock_timeout", wait, True)))
                try:
                    yield Waiting(connection, how)
                finally:
                    connection.rollback()
    except OperationalError as exc:
        if not _waited_out(exc, how):
            raise
        raise BatchInFlight(
            f"an interrupted batch on dataset {dataset!r} may still be committing in another "
            f"process (its rows stayed locked for {seconds:g} s): it stays pending, and its "
            "datasets are left alone in this run, until a later run can settle it",
            store=store.name,
            dataset=dataset,
        ) from None


def _sqlite(connection: Connection, seconds: float) -> Iterator[Waiting]:
    """The database's write lock, waited for `seconds` at most (the connection's own wait
    restored after)."""
    before = int(connection.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0)
    connection.exec_driver_sql(f"PRAGMA busy_timeout = {math.ceil(seconds * 1000)}")
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield Waiting(connection, "busy_timeout")
    finally:
        connection.rollback()
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {before}")
        connection.commit()


def _innodb(connection: Connection, seconds: float) -> Iterator[Waiting]:
    """Row locks, each waited for `seconds` at most (whole seconds: InnoDB's unit); the
    session's own wait restored after."""
    set_wait = text("SET SESSION innodb_lock_wait_timeout = :seconds")
    connection.execute(set_wait, {"seconds": max(1, math.ceil(seconds))})
    connection.commit()
    try:
        connection.begin()
        yield Waiting(connection, "innodb_lock_wait_timeout")
    finally:
        connection.rollback()
        connection.execute(text("SET SESSION innodb_lock_wait_timeout = DEFAULT"))
        connection.commit()


def _waited_out(exc: OperationalError, how: SettleWait) -> bool:
    """Whether `exc` says a lock was not granted in time (not that the store failed)."""
    orig = exc.orig
    if how == "busy_timeout":
        return (getattr(orig, "sqlite_errorcode", 0) & 0xFF) == _SQLITE_BUSY
    if how == "innodb_lock_wait_timeout":
        args: tuple[Any, ...] = getattr(orig, "args", ())
        return bool(args) and args[0] in _INNODB_WAITED
    if how == "lock_timeout":
        return getattr(orig, "sqlstate", None) == _PG_LOCK_NOT_AVAILABLE
    return False


__all__ = ["Waiting", "waiting"]
