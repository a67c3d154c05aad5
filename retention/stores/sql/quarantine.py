"""The restore window of a SQL dataset (``quarantine: P7D``): deleted rows kept restorable.

A live delete on a quarantined dataset (and on its cascade children) copies each row it deletes
into the table ``retention_quarantine_<table>`` beside the live one, in the same transaction as
the ``DELETE``: the rows the ``DELETE ... RETURNING`` gave back, so exactly what was deleted,
tagged with the run, the rule, the moment and the end of the window. The quarantine table is
created on demand with the live table's columns (types copied, no constraints) and a primary
key of the run and the record's key.

:func:`purge` removes for good what is past its window; :func:`restore` puts a run's rows back
into the live table (never a row whose key exists there again: those are reported and stay in
quarantine until purged). Both go batch by batch through the engine's commit point, like a
delete, and :func:`settle` judges an interrupted batch from the quarantine table: a row gone
from it was purged, or restored.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    select,
)

from ...datasets import Dataset
from ...errors import SchemaError
from ...timemath import add_duration
from ..base import (
    CONFLICT,
    PURGE,
    RESTORE,
    BatchResult,
    Enforcement,
    Intent,
    Note,
    Quarantined,
    Stopped,
)
from .inflight import waiting
from .keys import KeyTuple, chunked, format_keys, key_after, key_in, normal_key
from .schema import Schema

PREFIX = "retention_quarantine_"
RUN, RULE, DELETED_AT, PURGE_AFTER = (
    "retention_run",
    "retention_rule",
    "retention_deleted_at",
    "retention_purge_after",
)
TAGS = (RUN, RULE, DELETED_AT, PURGE_AFTER)


def quarantine_name(table: str) -> str:
    """The quarantine table of the live table `table` (``schema.table`` stays in its schema)."""
    schema, _, bare = table.rpartition(".")
    return f"{schema}.{PREFIX}{bare}" if schema else f"{PREFIX}{bare}"


def quarantine_table(store: Schema, dataset: Dataset, *, create: bool) -> Table | None:
    """The quarantine table of `dataset`: reflected, or (with `create`) created from the live
    table's columns; None when it does not exist and is not to be created."""
    assert dataset.config.table is not None
    name = quarantine_name(dataset.config.table)
    try:
        return store.table(name)
    except SchemaError:
        if not create:
            return None
    live = store.table(dataset.config.table)
    clash = [c.name for c in live.columns if c.name in TAGS]
    if clash:
        raise SchemaError(
            f"table {live.fullname!r} has a column named {clash[0]!r}, which its quarantine "
            "table needs for itself",
            store=store.name,
        )
    keys = set(dataset.key_columns)
    columns = [
        Column(RUN, String(36), primary_key=True),
        *(Column(c.name, c.type, primary_key=c.name in keys, nullable=True) for c in live.columns),
        Column(RULE, String(200), nullable=False),
        Column(DELETED_AT, DateTime(), nullable=False),
        Column(PURGE_AFTER, DateTime(), nullable=False, index=True),
    ]
    table = store.define(name, columns)
    table.create(store.engine, checkfirst=True)
    return table


def naive_utc(moment: dt.datetime) -> dt.datetime:
    """How the quarantine table keeps a moment: naive UTC (the same on every dialect)."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def keep(
    connection: Connection,
    quarantine: Table,
    live: Table,
    rows: Sequence[Sequence[Any]],
    *,
    run_id: str,
    rule: str,
    now: dt.datetime,
    window: dt.datetime,
) -> None:
    """Copy deleted `rows` (every column of `live`, in order) into `quarantine`, in the
    delete's own transaction."""
    if not rows:
        return
    names = [c.name for c in live.columns]
    tags = {RUN: run_id, RULE: rule, DELETED_AT: naive_utc(now), PURGE_AFTER: naive_utc(window)}
    values = [{**dict(zip(names, row, strict=True)), **tags} for row in rows]
    connection.execute(insert(quarantine), values)


def window_end(dataset: Dataset, now: dt.datetime) -> dt.datetime:
    """When the restore window of records deleted at `now` ends."""
    assert dataset.config.quarantine is not None
    return add_duration(now, dataset.config.quarantine, dataset.calendar)


def quarantined(dataset: Dataset) -> list[Dataset]:
    """`dataset` and its cascade descendants, parents first: the tables a quarantined delete
    keeps rows of."""
    found = [dataset]
    for cascade in dataset.cascade:
        found += quarantined(cascade.dataset)
    return found


# -- purge and restore, batch by batch -------------------------------------------------------


def _groups(connection: Connection, table: Table, condition: Any) -> list[tuple[str, str]]:
    query = select(table.c[RULE], table.c[RUN]).where(condition).distinct()
    return sorted((str(rule), str(run)) for rule, run in connection.execute(query))


def summary(store: Schema, dataset: Dataset) -> list[Quarantined]:
    """How many rows `dataset` and each cascade child keep in quarantine, and when the first
    and last of them are purged (one aggregate query per table)."""
    found = []
    for member in quarantined(dataset):
        table = quarantine_table(store, member, create=False)
        if table is None:
            found.append(Quarantined(member.name, 0))
            continue
        window = table.c[PURGE_AFTER]
        query = select(func.count(), func.min(window), func.max(window))
        with store.engine.connect() as connection:
            count, first, last = connection.execute(query).one()
        found.append(Quarantined(member.name, int(count), _aware(first), _aware(last)))
    return found


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    return None if moment is None else moment.replace(tzinfo=dt.UTC)


def purge(
    store: Schema, dataset: Dataset, now: dt.datetime, run: Enforcement
) -> Iterator[BatchResult]:
    """Remove for good the quarantined rows of `dataset` (and its cascade children) whose
    window ended by `now`; each batch audited as a ``purge quarantine`` of its rule."""
    for member in quarantined(dataset):
        table = quarantine_table(store, member, create=False)
        if table is None:
            continue
        expired = table.c[PURGE_AFTER] <= naive_utc(now)
        with store.engine.connect() as connection:
            groups = _groups(connection, table, expired)
        for rule, run_id in groups:
            yield from _batches(store, member, table, rule, run_id, expired, run, restoring=False)


def restore(
    store: Schema,
    dataset: Dataset,
    run_id: str,
    rule: str | None,
    now: dt.datetime,
    run: Enforcement,
) -> Iterator[BatchResult]:
    """Put back the rows run `run_id` deleted from `dataset` (and its cascade children,
    parents first) whose window has not ended at `now`, those of `rule` only when given; rows
    whose key exists again are reported and stay in quarantine."""
    for member in quarantined(dataset):
        table = quarantine_table(store, member, create=False)
        if table is None:
            continue
        of_run = and_(table.c[RUN] == run_id, table.c[PURGE_AFTER] > naive_utc(now))
        with store.engine.connect() as connection:
            groups = [g for g in _groups(connection, table, of_run) if rule in (None, g[0])]
        for rule_id, _ in groups:
            yield from _batches(store, member, table, rule_id, run_id, of_run, run, restoring=True)


def _batches(
    store: Schema,
    dataset: Dataset,
    table: Table,
    rule: str,
    run_id: str,
    condition: Any,
    run: Enforcement,
    *,
    restoring: bool,
) -> Iterator[BatchResult]:
    assert dataset.config.table is not None
    live = store.table(dataset.config.table)
    key = tuple(table.c[name] for name in dataset.key_columns)
    live_key = tuple(store.column(live, name) for name in dataset.key_columns)
    mine = and_(condition, table.c[RULE] == rule, table.c[RUN] == run_id)
    action = RESTORE if restoring else PURGE
    last: KeyTuple | None = None
    while True:
        if run.should_stop():
            raise Stopped
        with store.engine.connect() as connection, connection.begin():
            query = select(*table.c).where(mine)
            if last is not None:
                query = query.where(key_after(key, last))
            rows = connection.execute(query.order_by(*key).limit(run.batch_size)).all()
            if not rows:
                return
            positions = [list(table.c.keys()).index(c.name) for c in key]
            keys = [tuple(row[i] for i in positions) for row in rows]
            last = keys[-1]
            conflicts: list[KeyTuple] = []
            if restoring:
                present = {
                    normal_key(tuple(r))
                    for chunk in chunked(keys)
                    for r in connection.execute(select(*live_key).where(key_in(live_key, chunk)))
                }
                conflicts = [k for k in keys if normal_key(k) in present]
            refused = set(conflicts)
            acting = [k for k in keys if k not in refused]
            notes = []
            if conflicts:
                notes.append(Note(CONFLICT, format_keys(conflicts), dataset=dataset.name))
            if not run.live:
                verb = "would restore" if restoring else "would purge"
                if acting:
                    notes.append(
                        Note(verb, format_keys(acting), _detail(run_id), dataset=dataset.name)
                    )
                yield BatchResult(acted=len(acting), notes=tuple(notes))
                continue
            assert run.commit is not None
            if not acting:
                yield BatchResult(notes=tuple(notes))  # audited by the caller: no change
                continue
            run.probe.reached("write")
            if restoring:
                names = [c.name for c in live.columns]
                values = [
                    {n: row._mapping[n] for n in names}
                    for row, k in zip(rows, keys, strict=True)
                    if k not in refused
                ]
                connection.execute(insert(live), values)
            for chunk in chunked(acting):
                connection.execute(delete(table).where(mine, key_in(key, chunk)))
            formatted = format_keys(acting)
            payload = json.dumps({"run": run_id, "keys": acting}, default=str)
            intent = Intent(rule, dataset.name, action, formatted, payload)
            ticket = run.commit.intend(intent)
        notes.append(Note("done", detail=_detail(run_id), dataset=dataset.name))
        result = BatchResult(acted=len(acting), notes=tuple(notes), audited=True)
        run.commit.done(ticket, result)
        yield result


def _detail(run_id: str) -> str:
    return f"quarantine of run {run_id}"


def settle(store: Schema, action: str, payload: str, dataset: Dataset) -> BatchResult:
    """What an interrupted purge or restore batch did: its rows gone from quarantine were
    purged (restored: the same transaction put them back)."""
    data = json.loads(payload)
    run_id, keys = str(data["run"]), [tuple(k) for k in data["keys"]]
    table = quarantine_table(store, dataset, create=False)
    present: set[KeyTuple] = set()
    if table is not None:
        key = tuple(table.c[name] for name in dataset.key_columns)
        with waiting(store, dataset.name) as reading:
            for chunk in chunked(keys):
                query = select(*key).where(table.c[RUN] == run_id, key_in(key, chunk))
                present |= {normal_key(tuple(row)) for row in reading.read(query, table)}
    gone = [k for k in keys if normal_key(k) not in present]
    detail = f"{_detail(run_id)}; recorded after an interruption: the change had committed"
    notes = (Note("done", format_keys(gone), detail),) if gone else ()
    return BatchResult(acted=len(gone), notes=notes)


__all__ = [
    "keep",
    "purge",
    "quarantine_name",
    "quarantine_table",
    "quarantined",
    "restore",
    "settle",
    "summary",
    "window_end",
]
