"""Replaying recorded deletes and anonymizations on a SQL dataset after a backup restore.

The engine says which keys a rule acted on (:data:`~retention.stores.base.KeyMatcher`: given the
text form of some keys, which of them the audit log names, matched through their HMAC where it
keeps no plain keys). :class:`Replay` walks the table in primary-key order, asks which keys of
each page were recorded, and acts on those again through the same delete and anonymize code as
a run (cascade children, quarantine, the commit point and its recovery): never on a record
covered by a hold or blocked by a keep rule now, and never twice (a deleted record is gone, an
anonymized one is skipped as done).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from sqlalchemy import false, select, true

from ..base import BatchResult, Enforcement, KeyMatcher, Note, Stopped, Target
from .batches import Batches, _Done
from .keys import KeyTuple, format_keys, key_after, key_in
from .schema import Schema
from .select import SelectionBuilder

PAGE = 5000


class Replay(Batches):
    """One rule's recorded action on one SQL dataset, applied again to what is there now."""

    def __init__(
        self,
        store: Schema,
        builder: SelectionBuilder,
        target: Target,
        run: Enforcement,
        recorded: KeyMatcher,
    ) -> None:
        super().__init__(store, builder, target, run)
        self.recorded = recorded

    def __iter__(self) -> Iterator[BatchResult]:
        rule, dataset, run = self.rule, self.dataset, self.run
        base = self.builder.build(rule, dataset, run.holds())
        key = base.key
        last: KeyTuple | None = None
        page = min(PAGE, run.batch_size)
        while True:
            if run.should_stop():
                raise Stopped
            with self.store.engine.connect() as connection:
                batch = connection.begin()  # the page's transaction, its key query included
                query = select(*key)
                if last is not None:
                    query = query.where(key_after(key, last))
                keys = [tuple(r) for r in connection.execute(query.order_by(*key).limit(page))]
                if not keys:
                    return
                last = keys[-1]
                marks = self.recorded(format_keys(keys))
                matched = [k for k, mark in zip(keys, marks, strict=True) if mark]
                if not matched:
                    continue
                # the holds as they are now, for every page; the rule's clock is not asked
                # again (it was due when recorded), its keep rules and holds are
                holds = run.holds()
                selection = replace(
                    self.builder.build(rule, dataset, holds),
                    scope=true(),
                    due=true(),
                    superseded=false(),
                    rivals=(),
                )
                window = key_in(key, matched)
                if not run.live:
                    found = select(*key).where(window, selection.actionable).order_by(*key)
                    would = [tuple(r) for r in connection.execute(found)]
                    batch.rollback()
                    if would:
                        note = Note("would " + rule.action, format_keys(would))
                        yield BatchResult(acted=len(would), notes=(note,))
                    continue
                if rule.action == "delete":
                    done = self._delete(connection, selection, window)
                else:
                    done = self._anonymize(connection, selection, window)
                assert isinstance(done, _Done)  # never pipelined: no data thread here
                batch.commit()
                result = self._committed(done)
                if result is not None:
                    yield result


__all__ = ["Replay"]
