"""Recovery after an interruption: settle the intents a killed run left behind.

A live batch records its changed keys as an *intent* in the state DB before its data transaction
commits, and removes it together with the audit entry after. An intent that is still there at
the start of the next run means the process stopped in between. Whether the change happened is
judged from the data itself: deleted keys are gone, anonymized records are in anonymized form.
What happened is audited (once); what did not is forgotten.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, select, update
from sqlalchemy.sql.elements import ColumnElement

from .errors import ConfigError
from .lease import holder_gone
from .runevents import finish_fields
from .statedb import intents, runs, utcnow
from .stores import SqlStore
from .stores.keys import KeyTuple, key_in, normal_key
from .stores.sqlselect import SelectionBuilder

if TYPE_CHECKING:
    from .executor import Executor


def reconcile(executor: Executor, stores: dict[str, SqlStore]) -> int:
    """Mark runs left `running` as interrupted and settle their intents; entries written.

    Each run marked interrupted gets its end entry in the chain, in the transaction that
    updates its row (only if this process is the one that changed it)."""
    written = 0
    try:
        with executor.state.begin() as connection:
            live = connection.execute(
                select(runs.c.id).where(runs.c.status == "running", runs.c.mode == "live")
            ).all()
            for (run_id,) in live:
                _interrupt(executor, connection, run_id, "live", LIVE_STOPPED)
            # dry runs take no lease: only those whose process is gone from this host are over
            dry = connection.execute(
                select(runs.c.id, runs.c.holder).where(
                    runs.c.status == "running", runs.c.mode == "dry-run"
                )
            ).all()
            for run_id, holder in dry:
                if holder and holder_gone(holder):
                    _interrupt(executor, connection, run_id, "dry-run", DRY_STOPPED)
            pending = (
                connection.execute(select(intents).order_by(intents.c.created_at)).mappings().all()
            )
    except BaseException:
        executor.audit.forget()  # the end entries rolled back with the rows
        raise
    executor.audit.announce()
    for intent in pending:
        written += _settle(executor, stores, dict(intent))
    return written


LIVE_STOPPED = "the process stopped before the run finished"
DRY_STOPPED = "the dry run's process stopped before it finished"


def _interrupt(
    executor: Executor, connection: Connection, run_id: str, mode: str, message: str
) -> None:
    """Mark one run interrupted, with its end entry, unless another process did first."""
    finished_at = utcnow()
    changed = connection.execute(
        update(runs)
        .where(runs.c.id == run_id, runs.c.status == "running")
        .values(status="interrupted", finished_at=finished_at, message=message)
    ).rowcount
    if changed != 1:
        return
    counts = connection.execute(select(runs.c.counts).where(runs.c.id == run_id)).scalar()
    executor.audit.append(
        **finish_fields(
            run_id=run_id,
            mode=mode,
            status="interrupted",
            finished_at=finished_at,
            counts=json.loads(counts or "{}"),
            message=message,
        ),
        connection=connection,
    )


def _settle(executor: Executor, stores: dict[str, SqlStore], intent: dict[str, Any]) -> int:
    """Audit what an interrupted batch really changed, judged from the data itself."""
    settings = executor.config.settings
    dataset = intent["dataset"]
    ds = settings.datasets.get(dataset)
    store = stores.get(ds.store) if ds else None
    if ds is not None and store is None and ds.store in settings.stores:
        from .stores.objectrun import settle_intent

        return settle_intent(executor, executor.objects[ds.store], intent)
    if ds is None or store is None:
        raise ConfigError(
            f"an interrupted batch on dataset {dataset!r} cannot be reconciled: the dataset "
            f"is no longer configured as a SQL dataset; restore it to finish the audit"
        )
    keys = [tuple(k) for k in json.loads(intent["keys"])]
    children = [(name, [tuple(k) for k in ks]) for name, ks in json.loads(intent["children"])]
    if intent["action"] == "delete":
        changed = _absent(executor, store, dataset, keys)
        changed_children = [(name, _absent(executor, store, name, ks)) for name, ks in children]
    else:
        changed = _anonymized(executor, store, dataset, intent["rule"], keys)
        changed_children = []
    if not executor._audit_done(
        intent["id"],
        intent["run_id"],
        intent["rule"],
        intent["action"],
        dataset,
        changed,
        changed_children,
        detail="recorded after an interruption: the change had committed",
    ):
        return 0  # another run settled it meanwhile
    return (1 if changed else 0) + sum(1 for _, k in changed_children if k)


def _absent(
    executor: Executor, store: SqlStore, dataset: str, keys: list[KeyTuple]
) -> list[KeyTuple]:
    present = set(_present(executor, store, dataset, keys, None))
    return [k for k in keys if normal_key(k) not in present]


def _anonymized(
    executor: Executor, store: SqlStore, dataset: str, rule_id: str, keys: list[KeyTuple]
) -> list[KeyTuple]:
    ds = executor.config.settings.datasets[dataset]
    assert ds.table is not None
    table = store.table(ds.table)
    try:
        rule = executor.config.rule(rule_id)
    except KeyError:
        return []
    builder = SelectionBuilder(executor.config, store, executor.now)
    done = and_(
        *(builder.anonymizer(p, rule, dataset, table).done(store.dialect) for p in rule.anonymize)
    )
    found = set(_present(executor, store, dataset, keys, done))
    return [k for k in keys if normal_key(k) in found]


def _present(
    executor: Executor,
    store: SqlStore,
    dataset: str,
    keys: list[KeyTuple],
    condition: ColumnElement[bool] | None,
) -> list[KeyTuple]:
    ds = executor.config.settings.datasets[dataset]
    assert ds.table is not None
    table = store.table(ds.table)
    key = tuple(store.column(table, name) for name in ds.key_columns)
    found: list[KeyTuple] = []
    with store.engine.connect() as connection:
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            query = select(*key).where(key_in(key, chunk))
            if condition is not None:
                query = query.where(condition)
            found += [normal_key(tuple(row)) for row in connection.execute(query)]
    return found
