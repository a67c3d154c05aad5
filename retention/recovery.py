"""Recovery after an interruption: settle the intents a killed run left behind.

A live batch records its changed keys as an *intent* in the state DB before its data transaction
commits, and removes it together with the audit entry after. An intent that is still there at
the start of the next run means the process stopped in between. Whether the change happened is
judged from the data itself: deleted keys are gone, anonymized records are in anonymized form.
What happened is audited (once); what did not is forgotten. A batch another process may still
be committing (a paused replica's, its lease taken over) is never judged while it can commit:
its store waits for it, or says it is in flight (:class:`~retention.errors.BatchInFlight`); then
its intent stays pending and the run leaves its shard alone until a later recovery settles it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import Connection, select, update

from .config import Config
from .errors import BatchInFlight, ConfigError
from .lease import Fence, holder_gone
from .ledger import Ledger
from .logs import get_logger
from .outcomes import RunStatus
from .runevents import finish_fields
from .shards import shards
from .statedb import utcnow
from .statetables import intents, runs
from .stores import Stores
from .stores.base import StoredIntent


@dataclass(frozen=True)
class Reconciled:
    """What recovery did: audit entries written, and the datasets left alone in this run
    (each with why: a batch there may still be committing in another process)."""

    written: int = 0
    in_flight: dict[str, str] = field(default_factory=dict)


def reconcile(
    ledger: Ledger, config: Config, stores: Stores, fence: Fence | None = None
) -> Reconciled:
    """Mark runs left `running` as interrupted and settle their intents.

    Each run marked interrupted gets its end entry in the chain, in the transaction that
    updates its row (only if this process is the one that changed it). Under `fence` (what this
    run holds) only the runs that cannot still be acting are interrupted, and only the intents
    on datasets it leads are settled: with shard leases, other replicas' runs go on meanwhile.
    An intent whose batch may still be committing stays pending; its shard's datasets are
    named in the result, not to be acted on."""
    running = RunStatus.RUNNING.value
    with ledger.transaction() as connection:
        live = connection.execute(
            select(runs.c.id, runs.c.holder).where(runs.c.status == running, runs.c.mode == "live")
        ).all()
    # asked outside the transaction: the fence reads the state DB too (SQLite: one writer)
    stale = [run_id for run_id, holder in live if fence is None or not fence.may_be_running(holder)]
    with ledger.transaction() as connection:
        for run_id in stale:
            _interrupt(ledger, connection, run_id, "live", LIVE_STOPPED)
        # dry runs take no lease: only those whose process is gone from this host are over
        dry = connection.execute(
            select(runs.c.id, runs.c.holder).where(
                runs.c.status == running, runs.c.mode == "dry-run"
            )
        ).all()
        for run_id, holder in dry:
            if holder and holder_gone(holder):
                _interrupt(ledger, connection, run_id, "dry-run", DRY_STOPPED)
        pending = connection.execute(select(intents).order_by(intents.c.created_at)).all()
    written = 0
    in_flight: dict[str, str] = {}
    units = shards(config)
    for row in pending:
        if fence is not None and not fence.owns(row.dataset):
            continue  # another shard's: its leader settles it
        stored = StoredIntent(
            row.id,
            row.run_id,
            row.rule,
            row.dataset,
            row.action,
            row.keys,
            row.children,
            row.records,
        )
        try:
            written += _settle(ledger, config, stores, stored)
        except BatchInFlight as exc:
            get_logger(run_id=row.run_id, dataset=row.dataset).warning(
                "batch in flight", message=str(exc)
            )
            unit = next((u for u in units.values() if row.dataset in u), (row.dataset,))
            in_flight.update(dict.fromkeys(unit, str(exc)))
    return Reconciled(written, in_flight)


LIVE_STOPPED = "the process stopped before the run finished"
DRY_STOPPED = "the dry run's process stopped before it finished"


def _interrupt(
    ledger: Ledger, connection: Connection, run_id: str, mode: str, message: str
) -> None:
    """Mark one run interrupted, with its end entry, unless another process did first."""
    finished_at = utcnow()
    changed = connection.execute(
        update(runs)
        .where(runs.c.id == run_id, runs.c.status == RunStatus.RUNNING.value)
        .values(status=RunStatus.INTERRUPTED.value, finished_at=finished_at, message=message)
    ).rowcount
    if changed != 1:
        return
    counts = connection.execute(select(runs.c.counts).where(runs.c.id == run_id)).scalar()
    ledger.audit.append(
        **finish_fields(
            run_id=run_id,
            mode=mode,
            status=RunStatus.INTERRUPTED.value,
            finished_at=finished_at,
            counts=json.loads(counts or "{}"),
            message=message,
        ),
        connection=connection,
    )


def _settle(ledger: Ledger, config: Config, stores: Stores, stored: StoredIntent) -> int:
    """Audit what an interrupted batch really changed, judged by its store from the data."""
    dataset = config.datasets.get(stored.dataset)
    if dataset is None:
        raise ConfigError(
            f"an interrupted batch on dataset {stored.dataset!r} cannot be reconciled: the "
            "dataset is no longer configured; restore it to finish the audit"
        )
    rule = next((r for r in config.rules if r.id == stored.rule), None)
    result = stores[dataset.store].settle(stored, dataset, rule)
    return ledger.settle(stored, result)


__all__ = ["Reconciled", "reconcile"]
