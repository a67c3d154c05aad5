"""The crash-safety commit point, written once for every store: fencing, intents, audit entries.

A live batch reaches the ledger twice. Before its change is final (inside the data transaction
of a SQL batch; before an object store's delete request) :meth:`Ledger.intend` checks the lease
(fencing: a replica that lost it cannot act any more) and records the batch's keys as an *intent*
in the state DB, durably. After the change is final, :meth:`Ledger.done` queues the batch's audit
entries; they are written, and the intent removed, in the state-DB transaction of the next
intent (or at :meth:`flush`): one durable state-DB commit per batch. A crash in between leaves
the intent, and the next run settles it (:meth:`settle`) from the data itself. The keys' audit
form (their HMACs) starts being made when the intent is recorded, while the batch commits.

The intent also keeps its records' facts (subject, due time, lateness; its cascaded rows' too),
put in the audit's form once as it is written and reused for the batch's entry: a batch settled
after an interruption is audited with the facts of the records it really changed.

Whoever removes an intent writes its entries, in the same transaction: a batch settled by
another run (one that took the lease over while this one stalled) is never audited twice.
Every state-DB failure is a :class:`~retention.errors.StateDBError`, in one line.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert
from sqlalchemy.exc import SQLAlchemyError

from .audit import AuditLog, ProtectedKeys
from .errors import StateDBError, first_line
from .lease import Fence
from .statedb import take_intent, utcnow
from .statetables import intents
from .stores.base import BatchResult, Intent, Note, Probe, StoredIntent, Ticket


class NoProbe:
    """The probe of a production run: every point passes."""

    def reached(self, point: str, intent: Intent | StoredIntent | None = None) -> None:
        pass


@dataclass(frozen=True)
class _Queued:
    """A batch whose change is final and whose audit entries are not yet written."""

    ticket: Ticket
    intent: Intent
    result: BatchResult
    protected: Callable[[], ProtectedKeys]
    records: str | None  # the facts of the intent's keys, in the audit's form


@contextmanager
def state_errors() -> Iterator[None]:
    """State-DB errors as one clear StateDBError."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StateDBError(f"{type(exc).__name__}: {first_line(exc)}") from None


class Ledger:
    """The commit point of one run (live: with a lease; dry: audit notes only)."""

    def __init__(
        self,
        state: Engine,
        audit: AuditLog,
        run_id: str,
        *,
        live: bool,
        lease: Fence | None = None,
        probe: Probe | None = None,
    ) -> None:
        self.state = state
        self.audit = audit
        self.run_id = run_id
        self.live = live
        self.lease = lease
        self.probe: Probe = probe or NoProbe()
        self._intents: dict[Ticket, tuple[Intent, Callable[[], ProtectedKeys], str | None]] = {}
        self._queued: list[_Queued] = []

    # -- the commit point (stores.base.CommitPoint) ------------------------------------------

    def intend(self, intent: Intent) -> Ticket:
        """Fence, then record `intent` durably, writing the batches queued since the last one."""
        ticket = str(uuid.uuid4())
        records, kept = self._intent_records(intent)
        with self.transaction() as connection:
            if self.lease is not None:
                self.lease.check(connection, intent.dataset)
            self._write(self._queued, connection)
            connection.execute(
                insert(intents).values(
                    id=ticket,
                    run_id=self.run_id,
                    created_at=utcnow(),
                    rule=intent.rule,
                    dataset=intent.dataset,
                    action=intent.action,
                    keys=intent.payload,
                    children=intent.children,
                    records=kept,
                )
            )
        self._queued.clear()
        self._intents[ticket] = (intent, self.audit.protect_later(list(intent.keys)), records)
        self.probe.reached("intent", intent)
        return ticket

    def done(self, ticket: Ticket, result: BatchResult) -> None:
        """The batch's change is final: its entries follow with the next intent or the flush."""
        intent, protected, records = self._intents.pop(ticket)
        self._queued.append(_Queued(ticket, intent, result, protected, records))

    # -- the rest of a run's audit ---------------------------------------------------------

    def flush(self) -> None:
        """Write every queued audit entry (and drop its intent) before the run goes on."""
        if self._queued:
            with self.transaction() as connection:
                self._write(self._queued, connection)
            self._queued.clear()

    def note(self, rule: str, dataset: str, action: str, result: BatchResult) -> None:
        """Audit a batch that went through no intent: a dry run's, or records the store's own
        protections kept."""
        for note in result.notes:
            self.append(
                rule=rule,
                dataset=note.dataset or dataset,
                action=note.action or action,
                outcome=note.outcome,
                keys=note.keys or (),
                count=note.count,
                detail=note.detail,
                records=self.audit.protect_records(note.facts),
            )

    def append(self, **fields: Any) -> None:
        """One entry of this run (a refusal, lingering records), in its own transaction."""
        fields.setdefault("dry_run", not self.live)
        with state_errors():
            self.audit.append(run_id=self.run_id, **fields)

    def settle(self, stored: StoredIntent, result: BatchResult) -> int:
        """Audit what an interrupted batch really did, and drop its intent; entries written
        (none if another run settled it meanwhile)."""
        with self.transaction() as connection:
            self.probe.reached("settle", stored)
            if not take_intent(connection, stored.id):
                return 0
            for note in result.notes:
                self._append(
                    connection,
                    stored.run_id,
                    stored.rule,
                    stored.dataset,
                    stored.action,
                    note,
                    None,
                    settled_records(stored, note),
                )
        return sum(1 for note in result.notes if note.keys)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A state-DB transaction whose audit entries are logged only once it has committed."""
        try:
            with state_errors(), self.state.begin() as connection:
                yield connection
        except BaseException:
            self.audit.forget()
            raise
        self.audit.announce()

    # -- writing entries -------------------------------------------------------------------

    def _intent_records(self, intent: Intent) -> tuple[str | None, str | None]:
        """The facts of the intent's keys in the audit's form (for its entry), and what the
        intent keeps: those and its cascaded rows' (``{"records": [...], "children": {dataset:
        [...]}}``), None when it has none. Each list is made once, and joined as text."""
        own = self.audit.protect_records(intent.facts)
        children = {
            name: text
            for name, facts in intent.child_facts.items()
            if (text := self.audit.protect_records(facts)) is not None
        }
        if own is None and not children:
            return None, None
        parts = ",".join(f"{json.dumps(name)}:{text}" for name, text in children.items())
        return own, '{"records":' + (own or "null") + ',"children":{' + parts + "}}"

    def _write(self, queued: Sequence[_Queued], connection: Connection) -> None:
        for batch in queued:
            self.probe.reached("audit", batch.intent)
            if not take_intent(connection, batch.ticket):
                continue  # another run settled this batch meanwhile: it is audited already
            intent = batch.intent
            for note in batch.result.notes:
                self._append(
                    connection,
                    self.run_id,
                    intent.rule,
                    intent.dataset,
                    intent.action,
                    note,
                    batch.protected,
                    batch.records,
                )

    def _append(
        self,
        connection: Connection,
        run_id: str,
        rule: str,
        dataset: str,
        action: str,
        note: Note,
        protected: Callable[[], ProtectedKeys] | None,
        records: str | None = None,
    ) -> None:
        """One entry of a batch; `records` the facts its intent recorded, in the audit's form
        (the batch's own entry; a settled batch's note that gives its keys' places)."""
        if note.keys is None:
            assert protected is not None, "only a batch's own entry names its intent's keys"
            keys: Sequence[str] | ProtectedKeys = protected()
        else:
            keys = note.keys
            if note.places is None:
                records = self.audit.protect_records(note.facts)
        self.audit.append(
            run_id=run_id,
            rule=rule,
            dataset=note.dataset or dataset,
            action=note.action or action,
            outcome=note.outcome,
            dry_run=False,
            keys=keys,
            count=note.count,
            detail=note.detail,
            connection=connection,
            records=records,
        )


def settled_records(stored: StoredIntent, note: Note) -> str | None:
    """The facts a settled batch's `note` is owed, in the audit's form: those its intent kept
    of the keys at `note.places` (its cascade child's, for a child's note); None when the note
    gives no places or the intent kept no facts (written before intents kept them)."""
    if note.places is None or stored.records is None:
        return None
    try:
        kept = json.loads(stored.records)
        own = note.dataset is None or note.dataset == stored.dataset
        rows = kept["records"] if own else kept["children"].get(note.dataset)
        return json.dumps([rows[i] for i in note.places]) if rows and note.places else None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None  # not what the ledger wrote: audited without facts rather than wrongly


__all__ = ["Ledger", "NoProbe", "settled_records", "state_errors"]
