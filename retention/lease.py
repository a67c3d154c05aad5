"""One active executor per state DB: a lease row with a fencing epoch.

The holder renews the lease while it works. Whoever takes the lease over (because it expired)
increments the epoch; before every batch commits, the executor checks that the epoch is still
its own, so a paused or partitioned replica that lost the lease cannot delete anything afterwards.
With ``service.lease_scope: dataset`` each shard has such a lease (:mod:`retention.leadership`);
both are a :class:`Fence` to the executor.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from .errors import LeaseLost, LeaseUnavailable
from .statedb import as_utc
from .statetables import leases

LEASE_NAME = "executor"


def default_holder() -> str:
    """``host:pid:nonce``: unique per process, and tells whether the holder still runs here."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_gone(holder: str) -> bool:
    """True when `holder` was a process on this host that no longer exists (killed, crashed).

    Such a lease need not be waited out: the next run on the same machine takes it over at
    once (with a new epoch, so the dead holder could not act even if it came back).
    """
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Fence(Protocol):
    """What the executor holds while it acts: checked in every batch's state-DB transaction."""

    holder: str

    @property
    def epoch(self) -> int | None: ...

    def acquire(self) -> None: ...

    def release(self) -> None: ...

    def check(self, connection: Connection | None = None, dataset: str | None = None) -> None: ...

    def owns(self, dataset: str) -> bool:
        """Whether an interrupted batch on `dataset` is this holder's to settle."""
        ...

    def may_be_running(self, holder: str | None) -> bool:
        """Whether a run left `running` by `holder` may still be running (not to interrupt)."""
        ...


class Lease:
    """A lease on the state DB, held by `holder` for `ttl` at a time."""

    def __init__(
        self,
        engine: Engine,
        *,
        holder: str | None = None,
        ttl: dt.timedelta = dt.timedelta(seconds=60),
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        name: str = LEASE_NAME,
    ) -> None:
        self.engine = engine
        self.holder = holder or default_holder()
        self.ttl = ttl
        self.clock = clock
        self.name = name
        self.epoch: int | None = None

    def owns(self, dataset: str) -> bool:
        """The one lease covers every dataset."""
        return self.epoch is not None

    def may_be_running(self, holder: str | None) -> bool:
        """Holding the one lease proves no other run can still act."""
        return False

    def try_acquire(self) -> bool:
        """Take the lease if it is free, expired or already ours; True when held."""
        now = self.clock()
        with self.engine.begin() as connection:
            row = (
                connection.execute(
                    select(leases).where(leases.c.name == self.name).with_for_update()
                )
                .mappings()
                .first()
            )
            if row is None:
                try:
                    with connection.begin_nested():  # a loser's transaction stays usable
                        connection.execute(
                            insert(leases).values(
                                name=self.name,
                                holder=self.holder,
                                epoch=1,
                                expires_at=now + self.ttl,
                            )
                        )
                except IntegrityError:
                    return False
                self.epoch = 1
                return True
            expires = as_utc(row["expires_at"])
            assert expires is not None
            if row["holder"] != self.holder and expires > now and not holder_gone(row["holder"]):
                return False
            epoch = row["epoch"] if row["holder"] == self.holder else row["epoch"] + 1
            updated = connection.execute(
                update(leases)
                .where(leases.c.name == self.name, leases.c.epoch == row["epoch"])
                .values(holder=self.holder, epoch=epoch, expires_at=now + self.ttl)
            )
            if updated.rowcount != 1:
                return False
            self.epoch = epoch
            return True

    def acquire(self) -> None:
        """Take the lease or raise LeaseUnavailable naming the current holder."""
        if not self.try_acquire():
            current = self.current()
            raise LeaseUnavailable(
                f"another retention process holds the lease: {current[0]} until "
                f"{current[2]:%Y-%m-%d %H:%M:%S} UTC"
                if current
                else "the lease is busy"
            )

    def check(self, connection: Connection | None = None, dataset: str | None = None) -> None:
        """Renew the lease; raise LeaseLost if someone else took it (fencing).

        Given a state-DB `connection`, the renewal joins its transaction. The one lease covers
        every `dataset`.
        """
        if self.epoch is None:
            raise LeaseLost("the lease is not held")
        if connection is None:
            with self.engine.begin() as own:
                self.check(own, dataset)
            return
        updated = connection.execute(
            update(leases)
            .where(
                leases.c.name == self.name,
                leases.c.holder == self.holder,
                leases.c.epoch == self.epoch,
            )
            .values(expires_at=self.clock() + self.ttl)
        )
        if updated.rowcount != 1:
            self.epoch = None
            raise LeaseLost("the lease was taken over by another process; stopping before acting")

    def release(self) -> None:
        """Give the lease up (expire it now) if still ours."""
        if self.epoch is None:
            return
        with self.engine.begin() as connection:
            connection.execute(
                update(leases)
                .where(
                    leases.c.name == self.name,
                    leases.c.holder == self.holder,
                    leases.c.epoch == self.epoch,
                )
                .values(expires_at=self.clock() - dt.timedelta(seconds=1))
            )
        self.epoch = None

    def current(self) -> tuple[str, int, dt.datetime] | None:
        """(holder, epoch, expires_at) of the lease row, if any."""
        with self.engine.connect() as connection:
            row = (
                connection.execute(select(leases).where(leases.c.name == self.name))
                .mappings()
                .first()
            )
        if row is None:
            return None
        expires = as_utc(row["expires_at"])
        assert expires is not None
        return row["holder"], int(row["epoch"]), expires
