"""Replicas that share the work: one lease per shard, a fair share each (lease_scope: dataset).

Every replica of `retention serve` registers itself in ``retention_replicas`` and renews that
row with its leases; the replicas alive (row not expired, process not gone from this host) tell
each one its share: ``ceil(shards / replicas)``. Between runs a replica takes free or expired
shards up to its share and gives back the shards beyond it, so a replica that joins gets work
and one that stops (its row and leases expire, or its process is gone) has its shards taken
over. Each shard's lease keeps its own fencing epoch: the batch of a dataset checks the epoch
of that dataset's shard in the transaction that writes its intent and audit entries, so a
replica whose shard was taken over cannot act on it any more, whatever else it still leads.

:meth:`Leadership.acquire` (a `retention run` on the command line) takes every shard or none;
a replica that has joined never does (it leads its share, or nothing).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable, Mapping

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from .errors import LeaseLost, LeaseUnavailable
from .lease import Lease, default_holder, holder_gone
from .shards import lease_name, shard_of
from .statedb import as_utc
from .statetables import replicas

_FORGET = dt.timedelta(days=1)  # how long the row of a replica that died is kept


class Leadership:
    """The shard leases of one holder over one state DB."""

    def __init__(
        self,
        engine: Engine,
        units: Mapping[str, tuple[str, ...]],
        *,
        holder: str | None = None,
        ttl: dt.timedelta = dt.timedelta(seconds=60),
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.engine = engine
        self.holder = holder or default_holder()
        self.clock = clock
        self.units = dict(units)
        self.dataset_shard = shard_of(self.units)
        self._ttl = ttl
        self._joined = False
        self.leases = {
            shard: Lease(engine, holder=self.holder, ttl=ttl, clock=clock, name=lease_name(shard))
            for shard in sorted(self.units)
        }

    @property
    def ttl(self) -> dt.timedelta:
        return self._ttl

    @ttl.setter
    def ttl(self, value: dt.timedelta) -> None:
        self._ttl = value
        for lease in self.leases.values():
            lease.ttl = value

    # -- what is held ------------------------------------------------------------------------

    def held(self) -> list[str]:
        """The shards this holder leads now, sorted."""
        return [shard for shard, lease in self.leases.items() if lease.epoch is not None]

    def datasets(self) -> list[str]:
        """The datasets of the shards held, sorted."""
        return sorted(d for shard in self.held() for d in self.units[shard])

    @property
    def epoch(self) -> int | None:
        """The highest epoch among the shards held; None when none is."""
        return max((lease.epoch for lease in self.leases.values() if lease.epoch), default=None)

    def owns(self, dataset: str) -> bool:
        shard = self.dataset_shard.get(dataset)
        return shard is not None and self.leases[shard].epoch is not None

    def may_be_running(self, holder: str | None) -> bool:
        """A run of `holder` may still act while `holder` is a replica alive (or is us)."""
        return holder is not None and (holder == self.holder or holder in self.alive())

    # -- fencing -----------------------------------------------------------------------------

    def check(self, connection: Connection | None = None, dataset: str | None = None) -> None:
        """Renew the lease of `dataset`'s shard in `connection`'s transaction; LeaseLost if it
        was taken over (or is not held). Without a dataset: every shard held."""
        if dataset is None:
            for held in self.held():
                self.leases[held].check(connection)
            return
        shard = self.dataset_shard.get(dataset)
        if shard is None:
            raise LeaseLost(f"dataset {dataset!r} is in no shard of this configuration")
        self.leases[shard].check(connection)

    # -- membership and the fair share ---------------------------------------------------------

    def join(self) -> None:
        """Count this replica among the alive (or renew that), for one ttl; forget replicas
        that died a day ago (a clean stop removes its own row)."""
        now = self.clock()
        expires = now + self._ttl
        self._joined = True
        with self.engine.begin() as connection:
            connection.execute(delete(replicas).where(replicas.c.expires_at < now - _FORGET))
            changed = connection.execute(
                update(replicas).where(replicas.c.holder == self.holder).values(expires_at=expires)
            ).rowcount
            if changed == 0:
                try:
                    with connection.begin_nested():
                        connection.execute(
                            insert(replicas).values(
                                holder=self.holder, started_at=now, expires_at=expires
                            )
                        )
                except IntegrityError:
                    pass  # inserted meanwhile by ourselves: nothing to do

    def leave(self) -> None:
        """No longer count this replica (a clean stop); its shards go at once."""
        with self.engine.begin() as connection:
            connection.execute(delete(replicas).where(replicas.c.holder == self.holder))

    def alive(self) -> list[str]:
        """The holders counted alive now: row not expired, process not gone from this host."""
        now = self.clock()
        with self.engine.connect() as connection:
            rows = connection.execute(select(replicas.c.holder, replicas.c.expires_at)).all()
        return sorted(
            holder
            for holder, expires in rows
            if (as_utc(expires) or now) > now and not holder_gone(holder)
        )

    def share(self) -> int:
        """How many shards this replica should lead: the shards over the replicas alive."""
        count = len(set(self.alive()) | {self.holder})
        return math.ceil(len(self.units) / count) if self.units else 0

    def rebalance(self) -> tuple[list[str], list[str]]:
        """Take free shards up to the fair share, give back those beyond it; (taken, given)."""
        share = self.share()
        held = self.held()
        given: list[str] = []
        for shard in sorted(held, key=self._order, reverse=True)[: max(0, len(held) - share)]:
            self.leases[shard].release()
            given.append(shard)
        taken: list[str] = []
        room = share - (len(held) - len(given))
        for shard in sorted(self.leases, key=self._order):
            if room <= 0:
                break
            lease = self.leases[shard]
            if lease.epoch is None and shard not in given and lease.try_acquire():
                taken.append(shard)
                room -= 1
        return taken, given

    def renew(self) -> list[str]:
        """Renew every lease held and this replica's row; the shards found taken over."""
        lost = []
        for shard in self.held():
            try:
                self.leases[shard].check()
            except LeaseLost:
                lost.append(shard)
        self.join()
        return lost

    def _order(self, shard: str) -> str:
        """A per-holder order of the shards, so replicas starting together reach for different
        shards first."""
        return hashlib.sha256(f"{self.holder}\0{shard}".encode()).hexdigest()

    # -- a whole-configuration run (the command line) ----------------------------------------

    def acquire(self) -> None:
        """Take every shard's lease, or none and raise LeaseUnavailable naming a holder; a
        replica (joined) that leads nothing any more raises LeaseLost instead."""
        if self._joined:
            raise LeaseLost("this replica leads no shard any more; stopping before acting")
        for shard, lease in self.leases.items():
            if lease.epoch is None and not lease.try_acquire():
                current = lease.current()
                self.release()
                raise LeaseUnavailable(
                    f"another retention process leads shard {shard!r}"
                    + (
                        f": {current[0]} until {current[2]:%Y-%m-%d %H:%M:%S} UTC"
                        if current
                        else ""
                    )
                )

    def release(self) -> None:
        """Give every shard held back now."""
        for lease in self.leases.values():
            lease.release()


__all__ = ["Leadership"]
