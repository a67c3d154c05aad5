"""Enforcement: apply the plan batch by batch, re-checking every record at the moment of action.

A run walks every rule × dataset in primary-key order (keyset pagination). For each batch it
re-reads the holds file, selects the next keys that are actionable, and — in a live run — changes
exactly those records in one transaction whose DELETE/UPDATE repeats the rule predicate and the
hold exclusion, so a record reactivated or held since it was selected is not touched. A dry run
takes the same path and stops before the final statement.

Crash safety: before the data transaction commits, the keys it changed are written to the state
DB as an *intent*; after it commits, the audit entry is appended and the intent removed in one
state-DB transaction. The next run first reconciles leftover intents against the data, so the
audit log never claims a change that did not happen and never misses one that did.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    False_,
    RootTransaction,
    Table,
    and_,
    delete,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from .audit import AuditLog, ProtectedKeys
from .auditkeys import hmac_keys
from .config import Config
from .errors import (
    CircuitBreakerTripped,
    ConfigError,
    ForeignKeyRefused,
    RetentionError,
    SafetyError,
    StoreError,
    StoreMisconfigured,
)
from .holds import HoldsFile
from .lease import Lease, default_holder
from .planner import format_keys, rule_targets
from .recovery import reconcile
from .rules import Rule
from .runevents import finish_fields, start_fields
from .statedb import intents, open_state, runs, take_intent, utcnow
from .stores import SqlStore, sql_stores
from .stores.base import ObjectStores
from .stores.keys import KeyTuple, fetch_keys, fetch_rows, key_after, key_upto, keys_json
from .stores.sqlselect import Selection, SelectionBuilder
from .stores.writeback import sqlite_functions, write_back

Progress = Callable[[Rule, str, int, int], None]


@dataclass
class RuleOutcome:
    """What one rule did (or would do) on one dataset in this run."""

    rule: str
    dataset: str
    action: str
    planned: int = 0
    acted: int = 0
    batches: int = 0
    cascaded: dict[str, int] = field(default_factory=dict)
    status: str = "ok"  # ok | refused | failed | skipped | stopped
    message: str | None = None
    lingering: int = 0
    # covered, never acted on: a clock the rule needs holds a value that is no timestamp
    unreadable: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "dataset": self.dataset,
            "action": self.action,
            "planned": self.planned,
            "acted": self.acted,
            "batches": self.batches,
            "cascaded": dict(self.cascaded),
            "status": self.status,
            "message": self.message,
            "lingering": self.lingering,
            "unreadable": self.unreadable,
        }


@dataclass(frozen=True)
class RunResult:
    run_id: str
    live: bool
    status: str
    outcomes: tuple[RuleOutcome, ...]
    recovered: int = 0
    as_of: dt.datetime | None = None  # the moment the rules were evaluated at (--now)

    @property
    def exit_code(self) -> int:
        statuses = {o.status for o in self.outcomes}
        if "refused" in statuses:
            return 4
        if "invalid" in statuses:
            return 2
        if "unreachable" in statuses or "failed" in statuses:
            return 3
        return 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "mode": "live" if self.live else "dry-run",
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "status": self.status,
            "recovered_entries": self.recovered,
            "rules": [o.as_dict() for o in self.outcomes],
            "totals": {
                "acted": sum(o.acted for o in self.outcomes),
                "cascaded": sum(sum(o.cascaded.values()) for o in self.outcomes),
                "lingering": sum(o.lingering for o in self.outcomes),
                "unreadable": sum(o.unreadable for o in self.outcomes),
            },
        }


@dataclass(frozen=True)
class _Pending:
    """A committed batch whose intent is in the state DB and whose audit entry is not yet."""

    intent_id: str
    rule_id: str
    action: str
    dataset: str
    keys: list[KeyTuple]
    children: list[tuple[str, list[KeyTuple]]]
    protected: Callable[[], ProtectedKeys]


def refuse_future(now: dt.datetime, present: dt.datetime) -> None:
    """A live run acts only as of the present or the past: a later moment would destroy
    records that are not due yet (everything due by 2099 for ``--now 2099-01-01``)."""
    if now > present:
        raise ConfigError(
            f"a live run cannot act as of {now.isoformat()}, later than the present "
            f"({present.replace(microsecond=0).isoformat()}): records would be changed before "
            "they are due. Use --now in the future only for plan, explain and dry runs",
            file="command line",
            field="--now",
        )


class Stopped(Exception):
    """Raised between batches when the caller asked the run to stop (SIGTERM)."""


class Executor:
    """One enforcement pass over the configured SQL stores."""

    def __init__(
        self,
        config: Config,
        *,
        now: dt.datetime,
        live: bool,
        force: bool = False,
        state: Engine | None = None,
        lease: Lease | None = None,
        stores: dict[str, SqlStore] | None = None,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        settings = config.settings
        self.config = config
        self.now = now
        self.live = live
        self.force = force
        self._owns_state = state is None
        self.state = state or open_state(settings.state_db.get_secret_value())
        key = settings.hmac_key.get_secret_value().encode() if settings.hmac_key else None
        previous = hmac_keys([k.get_secret_value() for k in settings.audit.previous_hmac_keys])
        self.audit = AuditLog(
            self.state, keys=settings.audit.keys, hmac_key=key, previous_keys=previous
        )
        self.lease = lease
        self._given_stores = stores
        self.progress = progress
        self.should_stop = should_stop
        self.run_id = str(uuid.uuid4())
        self.clock = clock
        self.actions = 0
        self._pending: list[_Pending] = []  # committed batches whose audit entry is not written
        self._data_thread: ThreadPoolExecutor | None = None  # see _pipelined
        self.objects = ObjectStores(config, {})

    # -- the run ---------------------------------------------------------------------------

    def run(self, rule_ids: Sequence[str] = (), datasets: Sequence[str] = ()) -> RunResult:
        """One pass: reconcile interrupted runs, then every selected rule × dataset."""
        if self.live:
            refuse_future(self.now, self.clock())
        own_lease = False
        if self.live and self.lease is None:
            self.lease = Lease(self.state)
            own_lease = True
        if self.live:
            assert self.lease is not None
            if self.lease.epoch is None:
                self.lease.acquire()
        try:
            with (
                sql_stores(self.config.settings, self._given_stores) as stores,
                ObjectStores(self.config, stores) as self.objects,
            ):
                recovered = self.reconcile(stores) if self.live else 0
                return self._run(stores, rule_ids, datasets, recovered)
        finally:
            self.audit.close()
            if own_lease and self.lease is not None:
                self.lease.release()
            if self._owns_state:
                self.state.dispose()

    def _run(
        self,
        stores: dict[str, SqlStore],
        rule_ids: Sequence[str],
        datasets: Sequence[str],
        recovered: int,
    ) -> RunResult:
        self._start_run()
        outcomes: list[RuleOutcome] = []
        status = "complete"
        try:
            for rule, dataset in rule_targets(self.config, rule_ids, datasets):
                if rule.action == "keep":
                    continue
                outcome = RuleOutcome(rule.id, dataset, rule.action)
                outcomes.append(outcome)
                store_name = self.config.settings.datasets[dataset].store
                store = stores.get(store_name)
                if store is None:
                    self.objects[store_name].enforce(self, rule, dataset, outcome)
                    if outcome.status == "stopped":
                        raise Stopped
                    continue
                self._enforce(store, rule, dataset, outcome)
            if self.live:
                self._reconcile_lingering(stores, outcomes)
        except Stopped:
            status = "interrupted"
        except RetentionError:
            status = "failed"
            self.flush_audit()  # batches that committed before the error are still audited
            self._finish_run(status, outcomes)
            raise
        if any(o.status == "refused" for o in outcomes) and status == "complete":
            status = "refused"
        self._finish_run(status, outcomes)
        return RunResult(self.run_id, self.live, status, tuple(outcomes), recovered, self.now)

    def _enforce(self, store: SqlStore, rule: Rule, dataset: str, outcome: RuleOutcome) -> None:
        builder = SelectionBuilder(self.config, store, self.now)
        try:
            holds = self._holds()
            selection = builder.build(rule, dataset, holds)
            outcome.planned = self._count(store, selection.actionable, selection.table)
            if not isinstance(selection.unreadable, False_):
                outcome.unreadable = self._count(
                    store, selection.unreadable_pending, selection.table
                )
            if outcome.planned and not self._breakers_allow(store, selection, outcome):
                return
            last: KeyTuple | None = None
            pipelined = self._pipelined(store, rule)
            with ExitStack() as stack:
                # one connection, as a DBA's loop has; two when pipelined. On an error, the
                # data thread is waited for, then closing the connections rolls back whatever
                # batch is still open (its intent was never written, so nothing is lost).
                connections = [
                    stack.enter_context(store.engine.connect()) for _ in range(1 + pipelined)
                ]
                if pipelined:
                    self._data_thread = stack.enter_context(
                        ThreadPoolExecutor(1, thread_name_prefix="retention-data")
                    )
                    stack.callback(setattr, self, "_data_thread", None)
                landing: _Landing | None = None  # a prepared batch being written
                for turn in itertools.count():
                    if self.should_stop():
                        if landing is not None:
                            self._land(landing, landing.written.result(), rule, outcome)
                        outcome.status = "stopped"
                        self.flush_audit()
                        raise Stopped
                    latest = self._holds()
                    if latest is not holds:  # the file changed: rebuild (else the same predicates)
                        holds, selection = latest, builder.build(rule, dataset, latest)
                    connection = connections[turn % len(connections)]
                    batch = connection.begin()  # the batch's transaction, window query included
                    end = self._window_end(connection, selection, last)
                    started: BatchDone | _Prepared | None = None
                    if end is not None:
                        window = and_(
                            true() if last is None else key_after(selection.key, last),
                            key_upto(selection.key, end),
                        )
                        started = self._batch(connection, store, builder, selection, window)
                    before, landing = landing, None
                    written = None if before is None else before.written.result()
                    again = False
                    if isinstance(started, _Prepared):
                        if self._holds() is not holds:  # changed while it was prepared: again
                            batch.rollback()
                            again = True
                        else:  # written with the holds read just now
                            assert self._data_thread is not None
                            written_now = self._data_thread.submit(started.write)
                            landing = _Landing(batch, written_now, started)
                    else:
                        batch.commit()
                        if started is not None:
                            self._committed(rule, outcome, started)
                    if before is not None:  # its intent and commit, while this one is written
                        self._land(before, written, rule, outcome)
                    if started is None:
                        break
                    if not again:
                        last = end
            self.flush_audit()
        except ForeignKeyRefused as exc:
            self.flush_audit()
            outcome.status, outcome.message = "refused", str(exc)
            self.audit.append(
                run_id=self.run_id,
                rule=rule.id,
                dataset=dataset,
                action=rule.action,
                outcome="refused",
                dry_run=not self.live,
                count=0,
                detail=str(exc),
            )
        except StoreMisconfigured as exc:
            self.flush_audit()
            outcome.status, outcome.message = "invalid", str(exc)
        except StoreError as exc:
            self.flush_audit()
            outcome.status, outcome.message = "unreachable", str(exc)
        except SQLAlchemyError as exc:
            self.flush_audit()
            outcome.status, outcome.message = "failed", _first_line(exc)

    def _pipelined(self, store: SqlStore, rule: Rule) -> bool:
        """Whether a batch's write (its `DELETE`, or its anonymized values' write-back) runs on
        the data thread while the main thread lands the batch before it (its intent and
        commit: two durable commits, the state DB's and the data DB's) and prepares the next
        one on a second connection (its window; for anonymize also its rows, locked, and their
        new values).

        Live runs on PostgreSQL only: there two batches' row locks cannot meet (disjoint key
        windows; no gap locks, unlike InnoDB's next-key locks, which would make the second
        batch wait for the first one's commit, itself waiting on the second). Only one write
        is under way at a time, and the batch before it is already written, so a write that
        waits for a lock held by that batch waits for a commit that is under way. A prepared
        batch is written only once the one before is written and only if the holds file has
        not changed since it was read for it (else it is prepared again): a hold placed while
        a batch is written protects the next one, as in the plain loop."""
        return self.live and store.dialect == "postgresql"

    def _land(
        self,
        landing: _Landing,
        written: list[KeyTuple] | None,
        rule: Rule,
        outcome: RuleOutcome,
    ) -> None:
        """Finish a batch whose write returned `written`: record its intent, commit it."""
        done = landing.prepared.finish(written)
        landing.batch.commit()
        self._committed(rule, outcome, done)

    def _committed(self, rule: Rule, outcome: RuleOutcome, done: BatchDone) -> None:
        """After a batch's commit: queue its audit entry (only now: it is written with the next
        batch's intent or at the flush), count what it did."""
        if done.audit is not None:
            self._pending.append(done.audit)
        if done.keys:
            self._count_batch(rule, outcome, done)

    def _count_batch(self, rule: Rule, outcome: RuleOutcome, done: BatchDone) -> None:
        outcome.acted += len(done.keys)
        outcome.batches += 1
        for child, keys in done.child_keys:
            outcome.cascaded[child] = outcome.cascaded.get(child, 0) + len(keys)
        if self.progress is not None:
            self.progress(rule, outcome.dataset, outcome.acted, outcome.planned)

    def _holds(self) -> HoldsFile:
        """The holds file, re-read now; an unreadable file stops the run (fail closed)."""
        return self.config.load_holds()

    def _count(self, store: SqlStore, condition: ColumnElement[bool], table: Table) -> int:
        with store.engine.connect() as connection:
            return int(
                connection.execute(
                    select(func.count()).select_from(table).where(condition)
                ).scalar_one()
            )

    def _breakers_allow(self, store: SqlStore, selection: Selection, outcome: RuleOutcome) -> bool:
        """Circuit breakers, checked before the first batch of a rule; False when refused."""
        limits = self.config.settings.limits
        planned = outcome.planned
        message = None
        if not self.force:
            total = self._count(store, true(), selection.table)
            if total and planned / total > limits.max_fraction:
                message = (
                    f"rule {selection.rule.id} would {selection.rule.action} {planned} of "
                    f"{total} records of {selection.dataset} ({planned / total:.0%}), more than "
                    f"limits.max_fraction ({limits.max_fraction:.0%}); check the rule, then "
                    f"re-run with --force if it is right"
                )
            elif self.actions + planned > limits.max_actions_per_run:
                message = (
                    f"rule {selection.rule.id} would bring this run to {self.actions + planned} "
                    f"actions, more than limits.max_actions_per_run "
                    f"({limits.max_actions_per_run}); re-run with --force if it is right"
                )
        if message is None:
            self.actions += planned
            return True
        outcome.status, outcome.message = "refused", message
        self.audit.append(
            run_id=self.run_id,
            rule=selection.rule.id,
            dataset=selection.dataset,
            action=selection.rule.action,
            outcome="refused",
            dry_run=not self.live,
            count=planned,
            detail=CircuitBreakerTripped(message).args[0],
        )
        return False

    def _window_end(
        self, connection: Connection, selection: Selection, last: KeyTuple | None
    ) -> KeyTuple | None:
        """The last key of the next window of `batch_size` rows in primary-key order.

        Batches are windows of the primary key, not "the next N matching rows": the database
        walks each window once by its primary-key index, whatever other index the rule's
        predicate could use, so a whole run reads the table once (like a DBA's range loop).
        """
        page = select(*selection.key)
        if last is not None:
            page = page.where(key_after(selection.key, last))
        window = page.order_by(*selection.key).limit(self.config.settings.batch_size).subquery()
        columns = list(window.c)
        query = select(*columns).order_by(*(c.desc() for c in columns)).limit(1)
        row = connection.execute(query).first()
        return None if row is None else tuple(row)

    # -- one batch ---------------------------------------------------------------------------

    def _batch(
        self,
        connection: Connection,
        store: SqlStore,
        builder: SelectionBuilder,
        selection: Selection,
        window: ColumnElement[bool],
    ) -> BatchDone | _Prepared:
        """Act on the actionable records of one key window (a dry run only lists them), in
        `connection`'s open transaction; the caller commits it (a prepared batch: once written
        and finished)."""
        rule = selection.rule
        if not self.live:
            query = select(*selection.key).where(window, selection.actionable)
            keys = [tuple(r) for r in connection.execute(query.order_by(*selection.key))]
            if keys:
                self.audit.append(
                    run_id=self.run_id,
                    rule=rule.id,
                    dataset=selection.dataset,
                    action=rule.action,
                    outcome="would " + rule.action,
                    dry_run=True,
                    keys=format_keys(keys),
                )
            return BatchDone(keys)
        if rule.action == "delete":
            return self._delete(connection, store, selection, window)
        return self._anonymize(connection, store, builder, selection, window)

    def _delete(
        self,
        connection: Connection,
        store: SqlStore,
        selection: Selection,
        in_batch: ColumnElement[bool],
    ) -> BatchDone | _Prepared:
        """Delete the batch's records (cascade children first) and make its commit point; when
        pipelined, a prepared batch whose `DELETE` runs on the data thread."""
        rule = selection.rule
        condition = and_(in_batch, selection.actionable)
        children: list[tuple[str, list[KeyTuple]]] = []

        def write() -> list[KeyTuple]:
            try:
                self._delete_children(
                    store, connection, selection.dataset, selection.table, condition, children
                )
                return self._delete_returning(connection, selection.table, selection.key, condition)
            except IntegrityError as exc:
                raise ForeignKeyRefused(
                    self._describe_refusal(store, selection.dataset, exc),
                    rule=rule.id,
                    dataset=selection.dataset,
                ) from None

        def finish(deleted: list[KeyTuple] | None) -> BatchDone:
            assert deleted is not None  # write() always says what it deleted
            audit = self._commit_point(rule, selection.dataset, deleted, children)
            return BatchDone(deleted, children, audit)

        if self._data_thread is not None:
            return _Prepared(write, finish)
        return finish(write())

    def _delete_children(
        self,
        store: SqlStore,
        connection: Connection,
        dataset: str,
        parent: Table,
        parent_condition: ColumnElement[bool],
        out: list[tuple[str, list[KeyTuple]]],
    ) -> None:
        """Delete cascade children (grandchildren first) of the parents matching the condition."""
        settings = self.config.settings
        ds = settings.datasets[dataset]
        for cascade in ds.cascade:
            (parent_key,) = (store.column(parent, name) for name in ds.key_columns)
            child = settings.datasets[cascade.dataset]
            assert child.table is not None
            table = store.table(child.table)
            link = store.column(table, cascade.column)
            parents = select(parent_key).where(parent_condition)
            if connection.dialect.name in ("mysql", "mariadb"):
                # MySQL refuses a subquery on a table the same statement changes; materialise it.
                parents = select(parents.subquery().c[0])
            child_condition = link.in_(parents)
            self._delete_children(store, connection, cascade.dataset, table, child_condition, out)
            key = tuple(store.column(table, name) for name in child.key_columns)
            out.append(
                (cascade.dataset, self._delete_returning(connection, table, key, child_condition))
            )

    def _delete_returning(
        self,
        connection: Connection,
        table: Table,
        key: tuple[Column[Any], ...],
        condition: ColumnElement[bool],
    ) -> list[KeyTuple]:
        """DELETE ... WHERE condition, returning the deleted keys (selected first where needed)."""
        if connection.dialect.delete_returning:
            statement = delete(table).where(condition).returning(*key)
            return fetch_keys(connection.execute(statement), key)
        locked = select(*key).where(condition).with_for_update()
        found = fetch_keys(connection.execute(locked), key)
        if found:
            connection.execute(delete(table).where(condition))
        return found

    def _anonymize(
        self,
        connection: Connection,
        store: SqlStore,
        builder: SelectionBuilder,
        selection: Selection,
        in_batch: ColumnElement[bool],
    ) -> BatchDone | _Prepared:
        rule, table = selection.rule, selection.table
        ds = self.config.settings.datasets[selection.dataset]
        anonymizers = {
            ds.personal[personal]: builder.anonymizer(personal, rule, selection.dataset, table)
            for personal in rule.anonymize
        }
        condition = and_(in_batch, selection.actionable)
        dialect = store.dialect
        set_based = {name: a.set_based(dialect) for name, a in anonymizers.items()}
        done_now = and_(*(a.done(dialect) for a in anonymizers.values()))
        columns = [table.c[name] for name in anonymizers]
        width = len(selection.key)
        if dialect == "sqlite":
            set_based = sqlite_functions(connection, anonymizers, set_based)
        in_sql = all(expr is not None for expr in set_based.values())
        changed: list[KeyTuple] | None = None
        if in_sql and connection.dialect.update_returning:
            # one statement: the predicate is checked as each record is changed, and
            # RETURNING says which were
            statement = update(table).where(condition).values(**set_based)
            result = connection.execute(statement.returning(*selection.key))
            keys = changed = fetch_keys(result, selection.key)
        else:
            locked = select(*selection.key, *columns).where(condition).with_for_update()
            rows = fetch_rows(connection.execute(locked), [*selection.key, *columns])
            keys = [tuple(row[:width]) for row in rows]
            if not keys:
                return BatchDone([])
            if in_sql:
                connection.execute(update(table).where(condition).values(**set_based))
            else:
                values = [
                    anonymizers[col.name].apply_all([row[width + i] for row in rows])
                    for i, col in enumerate(columns)
                ]
                arguments = (connection, selection, condition, columns, keys, values)
                if self._data_thread is not None:
                    return _Prepared(
                        lambda: write_back(*arguments),
                        lambda written: self._anonymized(
                            connection, selection, in_batch, done_now, keys, written
                        ),
                    )
                changed = write_back(*arguments)
        return self._anonymized(connection, selection, in_batch, done_now, keys, changed)

    def _anonymized(
        self,
        connection: Connection,
        selection: Selection,
        in_batch: ColumnElement[bool],
        done_now: ColumnElement[bool],
        keys: list[KeyTuple],
        changed: list[KeyTuple] | None,
    ) -> BatchDone:
        """The batch's commit point, once its records are written (`changed`: the keys the
        database said it changed, or None to read back which of `keys` are now done)."""
        if changed is None:
            # the selected records now anonymized; the window, not a list of thousands
            # of keys, bounds the query (the same records: every key is in the window)
            query = select(*selection.key).where(in_batch, done_now).order_by(*selection.key)
            selected = set(keys)
            changed = [k for k in map(tuple, connection.execute(query)) if k in selected]
        audit = self._commit_point(selection.rule, selection.dataset, changed, [])
        return BatchDone(changed, [], audit)

    # -- crash safety ------------------------------------------------------------------------

    def _commit_point(
        self,
        rule: Rule,
        dataset: str,
        keys: list[KeyTuple],
        children: list[tuple[str, list[KeyTuple]]],
    ) -> _Pending | None:
        """Inside the open data transaction: fence, then record the intent durably; the audit
        entry to queue once the data commits (None if the batch changed nothing).

        One state-DB transaction, committed before the data transaction is, also writes the
        audit entries of the batches committed since the last one (and removes their intents):
        one durable state-DB commit per batch. If it fails, this batch's data rolls back and
        those batches keep their intents, for this run's next commit point or the next run.
        The keys' audit form (their HMACs) starts being made here, while the batch commits.
        """
        if not keys and not any(k for _, k in children):
            return None
        intent_id = str(uuid.uuid4())
        formatted = format_keys(keys)
        with self._state_transaction() as connection:
            if self.lease is not None:
                self.lease.check(connection)
            self._write_audit(self._pending, connection)
            connection.execute(
                insert(intents).values(
                    id=intent_id,
                    run_id=self.run_id,
                    created_at=utcnow(),
                    rule=rule.id,
                    dataset=dataset,
                    action=rule.action,
                    keys=keys_json(keys, formatted),
                    children=json.dumps(children, default=str),
                )
            )
        self._pending.clear()
        protected = self.audit.protect_later(formatted)
        return _Pending(intent_id, rule.id, rule.action, dataset, keys, children, protected)

    @contextmanager
    def _state_transaction(self) -> Iterator[Connection]:
        """A state-DB transaction whose audit entries are logged only once it has committed."""
        try:
            with self.state.begin() as connection:
                yield connection
        except BaseException:
            self.audit.forget()
            raise
        self.audit.announce()

    def _write_audit(self, batches: list[_Pending], connection: Connection) -> None:
        """The committed batches' audit entries, their intents removed, in `connection`'s
        state-DB transaction."""
        for batch in batches:
            self._audit_done(
                batch.intent_id,
                self.run_id,
                batch.rule_id,
                batch.action,
                batch.dataset,
                batch.keys,
                batch.children,
                protected=batch.protected(),
                connection=connection,
            )

    def flush_audit(self) -> None:
        """Write every queued audit entry (and drop its intent) before the run goes on."""
        if self._pending:
            with self._state_transaction() as connection:
                self._write_audit(self._pending, connection)
            self._pending.clear()

    def _audit_done(
        self,
        intent_id: str,
        run_id: str,
        rule_id: str,
        action: str,
        dataset: str,
        keys: list[KeyTuple],
        children: list[tuple[str, list[KeyTuple]]],
        *,
        detail: str | None = None,
        protected: ProtectedKeys | None = None,
        connection: Connection | None = None,
    ) -> bool:
        """After the data commit: intent removal and audit entries, in one state transaction
        (`connection`'s, when given); False, writing nothing, if the intent was settled by
        another run already. `protected`: `keys` already in their audit form."""
        if connection is None:
            with self._state_transaction() as own:
                return self._audit_done(
                    intent_id,
                    run_id,
                    rule_id,
                    action,
                    dataset,
                    keys,
                    children,
                    detail=detail,
                    protected=protected,
                    connection=own,
                )
        if not take_intent(connection, intent_id):
            return False
        for name, child_keys in children:
            if child_keys:
                self.audit.append(
                    run_id=run_id,
                    rule=rule_id,
                    dataset=name,
                    action="delete (cascade)",
                    outcome="done",
                    dry_run=False,
                    keys=format_keys(child_keys),
                    detail=detail or f"children of {dataset}",
                    connection=connection,
                )
        if keys:
            self.audit.append(
                run_id=run_id,
                rule=rule_id,
                dataset=dataset,
                action=action,
                outcome="done",
                dry_run=False,
                keys=protected if protected is not None else format_keys(keys),
                detail=detail,
                connection=connection,
            )
        return True

    def reconcile(self, stores: dict[str, SqlStore]) -> int:
        """Mark runs left `running` as interrupted and settle their intents; entries written."""
        return reconcile(self, stores)

    # -- run bookkeeping ---------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """``live`` or ``dry-run``, as the run's row and its events record it."""
        return "live" if self.live else "dry-run"

    def _start_run(self) -> None:
        """The run's row and its start entry in the chain, in one state-DB transaction."""
        holder = self.lease.holder if self.lease else default_holder()
        fingerprint = self.config.fingerprint()
        as_of, started_at = self.now.astimezone(dt.UTC), utcnow()
        with self._state_transaction() as connection:
            connection.execute(
                insert(runs).values(
                    id=self.run_id,
                    started_at=started_at,
                    as_of=as_of,
                    mode=self.mode,
                    status="running",
                    config_fingerprint=fingerprint,
                    counts="{}",
                    holder=holder,
                )
            )
            self.audit.append(
                **start_fields(
                    run_id=self.run_id,
                    mode=self.mode,
                    as_of=as_of,
                    started_at=started_at,
                    fingerprint=fingerprint,
                    holder=holder,
                ),
                connection=connection,
            )

    def _finish_run(self, status: str, outcomes: list[RuleOutcome]) -> None:
        """The run's final status and counts, on its row and as its end entry, together."""
        seq, digest = self.audit.head()
        counts = {
            "acted": sum(o.acted for o in outcomes),
            "rules": {f"{o.rule}@{o.dataset}": o.acted for o in outcomes},
            "audit_head": [seq, digest],
        }
        finished_at = utcnow()
        with self._state_transaction() as connection:
            connection.execute(
                update(runs)
                .where(runs.c.id == self.run_id)
                .values(status=status, finished_at=finished_at, counts=json.dumps(counts))
            )
            self.audit.append(
                **finish_fields(
                    run_id=self.run_id,
                    mode=self.mode,
                    status=status,
                    finished_at=finished_at,
                    counts=counts,
                ),
                connection=connection,
            )

    def _reconcile_lingering(
        self, stores: dict[str, SqlStore], outcomes: list[RuleOutcome]
    ) -> None:
        """Re-plan every rule that acted: anything still due and unheld is reported."""
        holds = self._holds()
        for outcome in outcomes:
            if outcome.status != "ok" or not outcome.planned:
                continue
            store = stores.get(self.config.settings.datasets[outcome.dataset].store)
            if store is None:
                continue  # object stores count what they could not delete themselves
            rule = self.config.rule(outcome.rule)
            selection = SelectionBuilder(self.config, store, self.now).build(
                rule, outcome.dataset, holds
            )
            outcome.lingering = self._count(store, selection.actionable, selection.table)
            if outcome.lingering:
                self.audit.append(
                    run_id=self.run_id,
                    rule=rule.id,
                    dataset=outcome.dataset,
                    action=rule.action,
                    outcome="lingering",
                    dry_run=False,
                    count=outcome.lingering,
                    detail="still due and unheld after the run",
                )

    def _describe_refusal(self, store: SqlStore, dataset: str, exc: IntegrityError) -> str:
        ds = self.config.settings.datasets[dataset]
        referencing = _referencing(store, ds.table or "")
        declared = {(self.config.settings.datasets[c.dataset].table, c.column) for c in ds.cascade}
        undeclared = [f"{t}.{c}" for t, c in referencing if (t, c) not in declared]
        where = ", ".join(undeclared) if undeclared else "another table"
        return (
            f"deleting from {ds.table} is refused by a foreign key from {where}; nothing in this "
            "batch was changed. Declare `cascade: [{dataset: <that dataset>, column: <column>}]` "
            f"on dataset {dataset!r} if those rows should go too ({_first_line(exc)})"
        )


@dataclass(frozen=True)
class _Prepared:
    """A batch ready to be written, its transaction open: `write` (on the data thread) deletes
    its records or writes their new values back, `finish` (on the main thread, given what
    `write` returned) makes its commit point."""

    write: Callable[[], list[KeyTuple] | None]
    finish: Callable[[list[KeyTuple] | None], BatchDone]


@dataclass(frozen=True)
class _Landing:
    """A prepared batch being written on the data thread: its transaction, and what its
    write will return."""

    batch: RootTransaction
    written: Future[list[KeyTuple] | None]
    prepared: _Prepared


@dataclass(frozen=True)
class BatchDone:
    """What one batch changed (committed with the caller's transaction), and its intent."""

    keys: list[KeyTuple]
    child_keys: list[tuple[str, list[KeyTuple]]] = field(default_factory=list)
    audit: _Pending | None = None  # its audit entry, to queue once the batch has committed


def _referencing(store: SqlStore, table_name: str) -> list[tuple[str, str]]:
    """(table, column) pairs whose foreign keys reference `table_name`."""
    from sqlalchemy import inspect

    inspector = inspect(store.engine)
    found = []
    for other in inspector.get_table_names():
        for fk in inspector.get_foreign_keys(other):
            if fk.get("referred_table") == table_name:
                found += [(other, col) for col in fk.get("constrained_columns", [])]
    return found


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


__all__ = ["Executor", "RuleOutcome", "RunResult", "SafetyError"]
