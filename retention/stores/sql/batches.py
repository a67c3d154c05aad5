"""Enforcing one rule on one SQL dataset, batch by batch, re-checking every record as it changes.

A run walks the table in windows of the primary key (keyset pagination, like a DBA's range
loop: each window is read once by its index, whatever other index the rule could use). For each
window it re-reads the holds, and changes exactly the actionable records in one transaction
whose DELETE/UPDATE repeats the rule's predicate and the hold exclusion, so a record reactivated
or held since the window was chosen is not touched. Before the transaction commits, the batch is
handed to the engine's commit point (fenced, durable intent); after, its audit entry follows. A
dry run takes the same path and stops before the DELETE/UPDATE.

On PostgreSQL a live run is pipelined: a batch's write (its ``DELETE``, or its anonymized values'
write-back) runs on a data thread while the batch before gets its intent and commit and the next
one is prepared on a second connection (see :func:`pipelined`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    RootTransaction,
    Select,
    Table,
    and_,
    delete,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from ...datasets import Dataset
from ...errors import ForeignKeyRefused, first_line
from ...holds import HoldsFile
from ...recordfacts import FactTable, RecordFacts
from ..base import BatchResult, Enforcement, Intent, Note, Stopped, Target, Ticket
from ..windows import WindowSizer
from . import partitions
from .cascadefacts import cascaded_facts
from .facts import FactColumns
from .keys import KeyTuple, fetch_keys, fetch_rows, format_keys, key_after, key_upto, keys_json
from .precedence import ceded_window
from .quarantine import keep, quarantine_table, window_end
from .schema import Schema
from .select import Selection, SelectionBuilder
from .writeback import sqlite_functions, write_back


@dataclass
class _Done:
    """What one batch changed, in its still open transaction, and its intent's ticket."""

    keys: list[KeyTuple]
    facts: FactTable = field(default_factory=FactTable)
    formatted: list[str] = field(default_factory=list)
    children: list[tuple[str, list[KeyTuple]]] = field(default_factory=list)
    ticket: Ticket | None = None
    detail: str | None = None
    child_facts: list[list[RecordFacts]] = field(default_factory=list)  # as `children`

    def result(self, dataset: str) -> BatchResult:
        """Its audit entries (cascaded children first, each under its own dataset, with their
        parents' facts) and counts."""
        facts = self.child_facts or [[] for _ in self.children]
        notes = [
            Note(
                "done",
                format_keys(keys),
                detail=f"children of {dataset}",
                dataset=name,
                action="delete (cascade)",
                facts=child_facts,
            )
            for (name, keys), child_facts in zip(self.children, facts, strict=True)
            if keys
        ]
        if self.keys:
            notes.append(Note("done", detail=self.detail))  # the intent's keys, being hashed
        return BatchResult(
            acted=len(self.keys),
            notes=tuple(notes),
            audited=True,
            children={name: len(keys) for name, keys in self.children if keys},
        )


@dataclass(frozen=True)
class _Prepared:
    """A batch ready to be written, its transaction open: `write` (on the data thread) deletes
    its records or writes their new values back, `finish` (on the main thread, given what
    `write` returned) makes its commit point."""

    write: Callable[[], list[KeyTuple] | None]
    finish: Callable[[list[KeyTuple] | None], _Done]


@dataclass(frozen=True)
class _Landing:
    """A prepared batch being written on the data thread: its transaction, and what its write
    will return."""

    batch: RootTransaction
    written: Future[list[KeyTuple] | None]
    prepared: _Prepared


@dataclass(frozen=True)
class _Scan:
    """A partition locked and being read in its open transaction: the holds and selection it
    was read with, and its rows (None: not all of them go)."""

    connection: Connection
    transaction: RootTransaction
    holds: HoldsFile
    selection: Selection
    rows: Future[list[KeyTuple] | None]


def pipelined(store: Schema, run: Enforcement) -> bool:
    """Whether a batch's write runs on a data thread while the main thread lands the batch
    before it (its intent and commit: two durable commits, the state DB's and the data DB's)
    and prepares the next one on a second connection (its window; for anonymize also its rows,
    locked, and their new values).

    Live runs on PostgreSQL only: there two batches' row locks cannot meet (disjoint key
    windows; no gap locks, unlike InnoDB's next-key locks, which would make the second batch
    wait for the first one's commit, itself waiting on the second). Only one write is under way
    at a time, and the batch before it is already written, so a write that waits for a lock
    held by that batch waits for a commit that is under way. A prepared batch is written only
    once the one before is written and only if the holds file has not changed since it was read
    for it (else it is prepared again): a hold placed while a batch is written protects the next
    one, as in the plain loop."""
    return run.live and store.sql.pipelined


class Batches:
    """One rule on one SQL dataset in one run (live or dry)."""

    def __init__(self, store: Schema, builder: SelectionBuilder, target: Target, run: Enforcement):
        self.store = store
        self.builder = builder
        self.target = target
        self.run = run
        self.rule = target.rule
        self.dataset = target.dataset
        self.data_thread: ThreadPoolExecutor | None = None
        # a quarantined dataset's deletes keep their rows restorable (created on demand)
        self.quarantine = (
            dataset_quarantine(store, self.dataset)
            if run.live and self.rule.action == "delete" and self.dataset.config.quarantine
            else {}
        )
        self._fact_columns: FactColumns | None = None

    def __iter__(self) -> Iterator[BatchResult]:
        run, rule, dataset = self.run, self.rule, self.dataset
        holds = run.holds()
        selection = self.builder.build(rule, dataset, holds)
        last: KeyTuple | None = None
        with ExitStack() as stack:
            # one connection, as a DBA's loop has; two when pipelined. On an error, the data
            # thread is waited for, then closing the connections rolls back whatever batch is
            # still open (its intent was never written, so nothing is lost).
            lanes = 1 + pipelined(self.store, run)
            connections = [stack.enter_context(self.store.engine.connect()) for _ in range(lanes)]
            if lanes > 1:
                self.data_thread = stack.enter_context(
                    ThreadPoolExecutor(1, thread_name_prefix="retention-data")
                )
                stack.callback(setattr, self, "data_thread", None)
            # a quarantined delete copies its rows out first: no partition is emptied whole
            if (
                run.live
                and rule.action == "delete"
                and self.store.sql.partitions
                and not self.quarantine
            ):
                yield from self._partitions(connections)
                holds = run.holds()
                selection = self.builder.build(rule, dataset, holds)
            landing: _Landing | None = None  # a prepared batch being written
            sizer = WindowSizer(run.batch_size, run.batch_seconds)
            for turn in itertools.count():
                if run.should_stop():
                    if landing is not None:
                        landed = self._land(landing, landing.written.result())
                        if landed is not None:
                            yield landed
                    raise Stopped
                latest = run.holds()
                if latest is not holds:  # the file changed: rebuild (else the same predicates)
                    holds, selection = latest, self.builder.build(rule, dataset, latest)
                connection = connections[turn % len(connections)]
                batch = connection.begin()  # the batch's transaction, window query included
                end = self._window_end(connection, selection, last, sizer.next())
                started: _Done | _Prepared | BatchResult | None = None
                if end is not None:
                    run.probe.reached("window")
                    if self.store.sql.snapshot_at_begin:
                        # it reads as of its transaction's start: the batch's begins now, so
                        # its DELETE/UPDATE sees what changed since the window was chosen
                        batch.commit()
                        batch = connection.begin()
                    started, end = self._batch(connection, selection, last, end)
                before, landing = landing, None
                written = None if before is None else before.written.result()
                again = False
                if isinstance(started, _Prepared):
                    if run.holds() is not holds:  # changed while it was prepared: again
                        batch.rollback()
                        again = True
                    else:  # written with the holds read just now
                        assert self.data_thread is not None
                        landing = _Landing(batch, self.data_thread.submit(started.write), started)
                else:
                    batch.commit()
                    if isinstance(started, _Done):
                        done = self._committed(started)
                        if done is not None:
                            yield done
                    elif started is not None and started.acted:
                        yield started  # a dry run's batch
                if before is not None:  # its intent and commit, while this one is written
                    result = self._land(before, written)
                    if result is not None:
                        yield result
                if started is None:
                    break
                if not again:
                    last = end

    def _partitions(self, connections: Sequence[Connection]) -> Iterator[BatchResult]:
        """Empty, each in one transaction, the partitions whose every row is to be deleted
        now (:mod:`.partitions`): their keys are the intents and audit entries of batches of
        at most `batch_size` records, as row batches' are. The rest of the table is left to
        the row batches. When pipelined, the next partition is locked and scanned on the data
        thread (on the other connection) while this one's keys are audited and it is
        truncated."""
        with connections[0].begin():
            selection = self.builder.build(self.rule, self.dataset, self.run.holds())
            found = partitions.droppable_partitions(connections[0], selection)
        lanes = itertools.cycle(connections)
        ahead: list[_Scan] = []  # the next partition's scan, under way on the data thread
        for index, partition in enumerate(found):
            scan = ahead.pop() if ahead else self._scan(partition, next(lanes))
            if self.run.should_stop():
                wait([scan.rows])  # the connection is free once its scan is over
                scan.transaction.rollback()
                raise Stopped
            if self.data_thread is not None and index + 1 < len(found):
                ahead.append(self._scan(found[index + 1], next(lanes)))
            yield from self._drop(partition, scan)

    def _scan(self, partition: partitions.Partition, connection: Connection) -> _Scan:
        """Lock `partition`, read its rows and, if they all go, truncate it (on the data
        thread when pipelined), in a transaction left open for :meth:`_drop`."""
        holds = self.run.holds()
        selection = self.builder.build(self.rule, self.dataset, holds)
        columns = self._facts(selection).columns
        transaction = connection.begin()

        def scan() -> list[KeyTuple] | None:
            partitions.lock(connection, partition)
            size = self.run.batch_size
            rows = partitions.whole_partition_rows(connection, selection, partition, columns, size)
            if rows is not None:
                self.run.probe.reached("write")
                partitions.truncate(connection, partition)
            return rows

        rows: Future[list[KeyTuple] | None] = Future()
        if self.data_thread is not None:
            rows = self.data_thread.submit(scan)
        else:
            rows.set_result(scan())
        return _Scan(connection, transaction, holds, selection, rows)

    def _drop(self, partition: partitions.Partition, scan: _Scan) -> Iterator[BatchResult]:
        """Finish a scanned partition: if it was truncated, with the holds still those it was
        checked with, its batches' intents, the commit, then their audit entries."""
        rows = scan.rows.result()
        if rows is None or self.run.holds() is not scan.holds:
            # not all of it goes, or the holds changed since it was checked: its rows are left
            # to the row batches, which read the holds again (checking it again here, locking
            # it anew, could wait for the next partition's transaction: a deadlock)
            scan.transaction.rollback()
            return
        batches = []
        size = self.run.batch_size
        for start in range(0, len(rows), size):
            keys, record_facts = self._split(scan.selection, rows[start : start + size])
            done = self._intend(keys, [], record_facts)
            done.detail = f"partition {partition.name} truncated"
            batches.append(done)
        del rows
        scan.transaction.commit()
        for done in batches:
            result = self._committed(done)
            if result is not None:
                yield result

    def _land(self, landing: _Landing, written: list[KeyTuple] | None) -> BatchResult | None:
        """Finish a batch whose write returned `written`: record its intent, commit it."""
        done = landing.prepared.finish(written)
        landing.batch.commit()
        return self._committed(done)

    def _committed(self, done: _Done) -> BatchResult | None:
        """After a batch's commit: its audit entry follows (written with the next batch's
        intent or at the end of the rule); what it did, if anything."""
        if done.ticket is None:
            return None
        result = done.result(self.dataset.name)
        assert self.run.commit is not None
        self.run.commit.done(done.ticket, result)
        return result if done.keys else None

    def _window_end(
        self, connection: Connection, selection: Selection, last: KeyTuple | None, size: int
    ) -> KeyTuple | None:
        """The last key of the next window of `size` rows in primary-key order."""
        page = select(*selection.key)
        if last is not None:
            page = page.where(key_after(selection.key, last))
        window = page.order_by(*selection.key).limit(size).subquery()
        columns = list(window.c)
        query = select(*columns).order_by(*(c.desc() for c in columns)).limit(1)
        row = connection.execute(query).first()
        return None if row is None else tuple(row)

    # -- one batch ---------------------------------------------------------------------------

    def _batch(
        self, connection: Connection, selection: Selection, last: KeyTuple | None, end: KeyTuple
    ) -> tuple[_Done | _Prepared | BatchResult, KeyTuple]:
        """Act on the actionable records of the key window after `last` up to `end` (a dry run
        only lists them), in `connection`'s open transaction; the caller commits it (a
        prepared batch: once written and finished). Records an earlier due delete rule also
        deletes now are left to it; with too many of them to list the window ends earlier:
        the batch and where its window ended."""

        def window_to(upto: KeyTuple) -> ColumnElement[bool]:
            return and_(
                true() if last is None else key_after(selection.key, last),
                key_upto(selection.key, upto),
            )

        window, end = ceded_window(connection, self.store, selection, window_to, end)
        return self._act(connection, selection, window), end

    def _act(
        self, connection: Connection, selection: Selection, window: ColumnElement[bool]
    ) -> _Done | _Prepared | BatchResult:
        """Act on the actionable records of `window` (less what it cedes)."""
        if not self.run.live:
            facts = self._facts(selection)
            query = select(*selection.key, *facts.columns).where(window, selection.actionable)
            rows = [tuple(r) for r in connection.execute(query.order_by(*selection.key))]
            width = len(selection.key)
            keys = [row[:width] for row in rows]
            outcome = "would " + self.rule.action
            found = facts.read(rows, width, self.target.now)
            notes = (Note(outcome, format_keys(keys), facts=found),) if keys else ()
            return BatchResult(acted=len(keys), notes=notes)
        if self.rule.action == "delete":
            return self._delete(connection, selection, window)
        return self._anonymize(connection, selection, window)

    def _facts(self, selection: Selection) -> FactColumns:
        """The per-record fact columns of `selection` (built again only when it is)."""
        if self._fact_columns is None or self._fact_columns.selection is not selection:
            self._fact_columns = FactColumns(self.store, selection, now=self.target.now)
        return self._fact_columns

    def _split(
        self, selection: Selection, rows: list[KeyTuple]
    ) -> tuple[list[KeyTuple], FactTable]:
        """Rows of key and fact columns, in key order, as keys and their facts."""
        width = len(selection.key)
        rows.sort(key=itemgetter(*range(width)))
        facts = self._facts(selection).read(rows, width, self.target.now)
        return [row[:width] for row in rows], facts

    def _intend(
        self,
        keys: list[KeyTuple],
        children: list[tuple[str, list[KeyTuple]]],
        facts: FactTable,
        child_facts: list[list[RecordFacts]] | None = None,
    ) -> _Done:
        """Inside the open data transaction: the batch's intent, recorded by the engine before
        the data commits (nothing to record if the batch changed nothing)."""
        done = _Done(keys, facts, children=children, child_facts=child_facts or [])
        if not keys and not any(k for _, k in children):
            return done
        done.formatted = format_keys(keys)
        names = [name for name, _ in children]
        # by dataset: a child reached twice (two cascade paths) keeps none rather than mixed
        kept = (
            {name: f for name, f in zip(names, done.child_facts, strict=True) if f}
            if done.child_facts and len(set(names)) == len(names)
            else {}
        )
        intent = Intent(
            rule=self.rule.id,
            dataset=self.dataset.name,
            action=self.rule.action,
            child_facts=kept,
            keys=done.formatted,
            payload=keys_json(keys, done.formatted),
            children=json.dumps(children, default=str),
            facts=facts,
        )
        assert self.run.commit is not None
        done.ticket = self.run.commit.intend(intent)
        return done

    def _delete(
        self, connection: Connection, selection: Selection, in_batch: ColumnElement[bool]
    ) -> _Done | _Prepared:
        """Delete the batch's records (cascade children first) and make its commit point; when
        pipelined, a prepared batch whose `DELETE` runs on the data thread."""
        condition = and_(in_batch, selection.actionable)
        children: list[tuple[str, list[KeyTuple]]] = []
        linked: list[tuple[str, str, list[KeyTuple]]] = []  # each child's rows: key, link

        facts = self._facts(selection).columns

        def write() -> list[KeyTuple]:
            self.run.probe.reached("write")
            try:
                self._delete_children(
                    connection, self.dataset, selection.table, condition, children, linked
                )
                return self._delete_returning(
                    connection, selection.table, selection.key, condition, self.dataset, facts
                )
            except IntegrityError as exc:
                raise ForeignKeyRefused(
                    self._describe_refusal(exc), rule=self.rule.id, dataset=self.dataset.name
                ) from None

        def finish(deleted: list[KeyTuple] | None) -> _Done:
            assert deleted is not None  # write() always says what it deleted
            keys, found = self._split(selection, deleted)
            cascaded = cascaded_facts(self.dataset.name, keys, found, linked) if linked else []
            return self._intend(keys, children, found, cascaded)

        if self.data_thread is not None:
            return _Prepared(write, finish)
        return finish(write())

    def _delete_children(
        self,
        connection: Connection,
        dataset: Dataset,
        parent: Table,
        parent_condition: ColumnElement[bool],
        out: list[tuple[str, list[KeyTuple]]],
        linked: list[tuple[str, str, list[KeyTuple]]],
    ) -> None:
        """Delete cascade children (grandchildren first) of the parents matching the condition;
        each child's deleted keys in `out`, and in `linked` with its parent's key after each
        (for the rows' facts)."""
        store = self.store
        for cascade in dataset.cascade:
            (parent_key,) = (store.column(parent, name) for name in dataset.key_columns)
            child = cascade.dataset
            assert child.config.table is not None
            table = store.table(child.config.table)
            link = store.column(table, cascade.column)
            parents = select(parent_key).where(parent_condition)
            if not store.sql.self_subquery:
                # MySQL refuses a subquery on a table the same statement changes; materialise it.
                parents = select(parents.subquery().c[0])
            child_condition = link.in_(parents)
            self._delete_children(connection, child, table, child_condition, out, linked)
            key = tuple(store.column(table, name) for name in child.key_columns)
            rows = self._delete_returning(
                connection, table, key, child_condition, child, extra=[link]
            )
            rows.sort(key=lambda row: row[:-1])
            out.append((child.name, [row[:-1] for row in rows]))
            linked.append((child.name, dataset.name, rows))

    def _delete_returning(
        self,
        connection: Connection,
        table: Table,
        key: tuple[Column[Any], ...],
        condition: ColumnElement[bool],
        dataset: Dataset,
        extra: Sequence[ColumnElement[Any]] = (),
    ) -> list[KeyTuple]:
        """DELETE ... WHERE condition, returning the deleted keys (selected first where needed),
        each followed by the values of `extra` (unsorted then: the caller sorts by key); on a
        quarantined dataset the deleted rows are copied to its quarantine table."""
        quarantine = self.quarantine.get(dataset.name)
        if quarantine is not None:
            return self._delete_into(connection, table, key, condition, quarantine, extra)
        columns = [*key, *extra]
        returning = self._returning(extra)
        if returning:
            result = connection.execute(delete(table).where(condition).returning(*columns))
        else:
            result = connection.execute(self._locked(select(*columns).where(condition)))
        found = fetch_rows(result, columns) if extra else fetch_keys(result, key)
        if returning:
            return found
        if found:
            connection.execute(delete(table).where(condition))
        return found

    def _delete_into(
        self,
        connection: Connection,
        table: Table,
        key: tuple[Column[Any], ...],
        condition: ColumnElement[bool],
        quarantine: Table,
        extra: Sequence[ColumnElement[Any]] = (),
    ) -> list[KeyTuple]:
        """DELETE ... WHERE condition, the deleted rows kept in `quarantine` (same
        transaction): exactly the rows the DELETE returned (or, without RETURNING, the rows it
        deletes, selected and locked first). Returns their keys, each followed by `extra`."""
        columns = list(table.columns)
        returned = [*columns, *extra]
        if self._returning(extra):
            rows = connection.execute(delete(table).where(condition).returning(*returned)).all()
        else:
            rows = connection.execute(self._locked(select(*returned).where(condition))).all()
            if rows:
                connection.execute(delete(table).where(condition))
        width = len(columns)
        now = self.target.now
        keep(
            connection,
            quarantine,
            table,
            [tuple(row[:width]) for row in rows],
            run_id=self.run.run_id,
            rule=self.rule.id,
            now=now,
            window=window_end(self.dataset, now),
        )
        names = [c.name for c in columns]
        positions = [names.index(c.name) for c in key]
        return sorted(tuple(row[i] for i in positions) + tuple(row[width:]) for row in rows)

    def _anonymize(
        self, connection: Connection, selection: Selection, in_batch: ColumnElement[bool]
    ) -> _Done | _Prepared:
        rule, table, dataset = self.rule, selection.table, self.dataset
        anonymizers = {
            dataset.config.personal[personal]: self.builder.anonymizer(
                personal, rule, dataset, table
            )
            for personal in rule.anonymize
        }
        condition = and_(in_batch, selection.actionable)
        dialect = self.store.dialect
        set_based = {name: a.set_based(dialect) for name, a in anonymizers.items()}
        done_now = and_(*(a.done(dialect) for a in anonymizers.values()))
        columns = [table.c[name] for name in anonymizers]
        width = len(selection.key)
        facts = self._facts(selection).columns
        if self.store.sql.python_functions:
            set_based = sqlite_functions(connection, anonymizers, set_based)
        in_sql = all(expr is not None for expr in set_based.values())
        changed: list[KeyTuple] | None = None
        # RETURNING says the new values: facts read from a changed column are selected first
        facts_kept = not self._facts(selection).reads & set(anonymizers)
        if in_sql and facts_kept and self.store.sql.update_returning and self._returning(facts):
            # one statement: the predicate is checked as each record is changed, and RETURNING
            # says which were
            self.run.probe.reached("write")
            statement = update(table).where(condition).values(**set_based)
            returned = [*selection.key, *facts]
            result = connection.execute(statement.returning(*returned))
            keys, found = self._split(selection, fetch_rows(result, returned))
            changed = keys
        else:
            locked = self._locked(select(*selection.key, *facts, *columns).where(condition))
            rows = fetch_rows(connection.execute(locked), [*selection.key, *facts, *columns])
            keys = [tuple(row[:width]) for row in rows]
            if not keys:
                return _Done([])
            found = self._facts(selection).read(rows, width, self.target.now)
            rows = [row[:width] + row[width + len(facts) :] for row in rows]
            if in_sql:
                self.run.probe.reached("write")
                connection.execute(update(table).where(condition).values(**set_based))
            else:
                values = [
                    anonymizers[col.name].apply_all([row[width + i] for row in rows])
                    for i, col in enumerate(columns)
                ]
                arguments = (connection, selection, condition, columns, keys, values)
                if self.data_thread is not None:

                    def write() -> list[KeyTuple] | None:
                        self.run.probe.reached("write")
                        return write_back(*arguments)

                    return _Prepared(
                        write,
                        lambda written: self._anonymized(
                            connection, selection, in_batch, done_now, keys, found, written
                        ),
                    )
                self.run.probe.reached("write")
                changed = write_back(*arguments)
        return self._anonymized(connection, selection, in_batch, done_now, keys, found, changed)

    def _anonymized(
        self,
        connection: Connection,
        selection: Selection,
        in_batch: ColumnElement[bool],
        done_now: ColumnElement[bool],
        keys: list[KeyTuple],
        facts: FactTable,
        changed: list[KeyTuple] | None,
    ) -> _Done:
        """The batch's commit point, once its records are written (`changed`: the keys the
        database said it changed, or None to read back which of `keys` are now done)."""
        if changed is None:
            # the selected records now anonymized; the window, not a list of thousands of keys,
            # bounds the query (the same records: every key is in the window)
            query = select(*selection.key).where(in_batch, done_now).order_by(*selection.key)
            selected = set(keys)
            changed = [k for k in map(tuple, connection.execute(query)) if k in selected]
        position = {key: index for index, key in enumerate(keys)}
        return self._intend(changed, [], facts.take(position[key] for key in changed))

    def _returning(self, extra: Sequence[ColumnElement[Any]]) -> bool:
        """Whether a DELETE returns its keys and `extra` itself (an UPDATE's caller also asks
        ``update_returning``), or the rows are selected first."""
        sql = self.store.sql
        plain = all(isinstance(c, Column) for c in extra)  # a cascade child's link column
        return bool(sql.delete_returning) and (plain or sql.returning_subqueries)

    def _locked(self, query: Select[Any]) -> Select[Any]:
        """`query`, locking the rows it reads where the database has row locks (DuckDB's
        optimistic transactions refuse a conflicting commit instead)."""
        return query.with_for_update() if self.store.sql.row_locks else query

    def _describe_refusal(self, exc: IntegrityError) -> str:
        table = self.dataset.config.table or ""
        said = first_line(exc)
        if self.store.sql.partitions:  # the partitioned tables, not the partitions it names
            with self.store.engine.connect() as connection:
                said = partitions.parent_names(connection, said)
        referencing = self.store.referencing(table)
        declared = {(c.dataset.config.table, c.column) for c in self.dataset.cascade}
        undeclared = [f"{t}.{c}" for t, c in referencing if (t, c) not in declared]
        if not undeclared and not self.store.sql.cascade_with_foreign_keys:
            cascaded = ", ".join(sorted(f"{t}.{c}" for t, c in referencing)) or "a cascade child"
            return (
                f"deleting from {table} is refused by the foreign key from {cascaded}: "
                f"{self.store.dialect} cannot delete rows and the rows referring to them in one "
                "transaction, even children first; nothing in this batch was changed. Drop the "
                f"foreign key (the cascade still deletes the children first) ({said})"
            )
        where = ", ".join(undeclared) if undeclared else "another table"
        return (
            f"deleting from {table} is refused by a foreign key from {where}; nothing in this "
            "batch was changed. Declare `cascade: [{dataset: <that dataset>, column: <column>}]` "
            f"on dataset {self.dataset.name!r} if those rows should go too ({said})"
        )


def dataset_quarantine(store: Schema, dataset: Dataset) -> dict[str, Table]:
    """The quarantine tables a delete on `dataset` keeps its rows (and its cascade
    children's) in, by dataset name; created now if they do not exist yet."""
    found = {dataset.name: quarantine_table(store, dataset, create=True)}
    for cascade in dataset.cascade:
        found.update(dataset_quarantine(store, cascade.dataset))
    return {name: table for name, table in found.items() if table is not None}


__all__ = ["Batches", "dataset_quarantine", "pipelined"]
