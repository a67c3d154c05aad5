"""Enforcing one rule on one object dataset: one listing page at a time, batches in flight.

Per page the records are judged (:mod:`.evaluate`), the store says which it must not delete
(object lock, symlinks: audited as kept), and the rest go into delete batches of at most the
store's largest batch; the holds are re-read before every batch, and a batch is judged again
when they changed. A live batch is handed to the engine's commit point before
the store is asked to delete it, and its outcome after; several batches are in flight at once,
bounded by the store's concurrency, and settled in order of submission from this thread only.
If the store goes away mid-run, the batches in flight are still settled (what the store did
before it died is audited) before the error is raised.

Each record is given its audit facts (subject, due time, lateness: :meth:`.evaluate.Page.facts`)
as it is judged; its batch's intent keeps them, and its deleted keys' entry carries them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any, Protocol

from ...datasets import Dataset
from ...errors import StoreError
from ...kinds import Capabilities
from ...recordfacts import RecordFacts
from ..base import BatchResult, Enforcement, Intent, KeyMatcher, Note, Stopped, Target, Ticket
from ..windows import WindowSizer
from .evaluate import Evaluator, Verdict
from .quarantine import Kept, kept_for
from .records import DeleteResult, ObjectRecord, summary


class Listing(Protocol):
    """What a run needs of an object store (:class:`~.store.ObjectStore` is one)."""

    capabilities: Capabilities
    concurrency: int
    unreadable: set[str]

    def pages(
        self, dataset: Dataset, prefix: str | None = None
    ) -> Iterator[list[ObjectRecord]]: ...

    def protected(self, records: Sequence[ObjectRecord], now: dt.datetime) -> dict[str, str]: ...

    def submit(
        self, dataset: Dataset, records: Sequence[ObjectRecord], kept: Kept | None = None
    ) -> Future[DeleteResult]: ...

    def mode(self, dataset: Dataset) -> str: ...

    def evaluator(self, dataset: Dataset, now: dt.datetime) -> Evaluator: ...


class ObjectRun:
    """One rule on one object dataset in one run (live or dry); iterate for its batches.

    With `recorded` it is a replay: only the keys the audit log recorded are acted on, their
    clock not asked again (it was due when recorded), holds and keep rules as they are now.
    On a quarantined dataset a live delete moves its objects into the quarantine area.
    """

    def __init__(
        self,
        store: Listing,
        target: Target,
        run: Enforcement,
        recorded: KeyMatcher | None = None,
    ) -> None:
        self.store = store
        self.recorded = recorded
        self.kept = (
            kept_for(target.dataset, run.run_id, target.rule.id, target.now)
            if run.live and target.dataset.config.quarantine is not None
            else None
        )
        self.target = target
        self.run = run
        self.rule = target.rule
        self.dataset = target.dataset
        self.label = store.capabilities.veto_label
        self.evaluator = store.evaluator(target.dataset, target.now)
        cap = min(run.batch_size, store.capabilities.max_batch or run.batch_size)
        self.sizer = WindowSizer(cap, run.batch_seconds)
        self.limit = self.sizer.next()
        self.inflight: deque[
            tuple[Ticket, list[ObjectRecord], Future[DeleteResult], dict[str, RecordFacts]]
        ] = deque()
        self.judged_with = run.holds()  # the holds the current page was judged with
        # the audit's facts of each record of the batch being filled (key -> facts)
        self.facts: dict[str, RecordFacts] = {}
        self.broken: str | None = None

    def __iter__(self) -> Iterator[BatchResult]:
        stopped = False
        try:
            for result in self._walk():
                if result is None:
                    stopped = True
                    break
                yield result
        except StoreError as exc:
            # the store went away mid-run: what it did before still gets its audit entries
            self.broken = self.broken or str(exc)
        while self.inflight:
            settled = self._settle(*self.inflight.popleft())
            if settled is not None:
                yield settled
        if self.store.unreadable:
            remark = f"could not read {', '.join(sorted(self.store.unreadable))}"
            yield BatchResult(remarks=(remark,))
        if self.broken is not None:
            raise StoreError(self.broken)
        if stopped:
            raise Stopped

    def _walk(self) -> Iterator[BatchResult | None]:
        """The batches as they complete; None when asked to stop."""
        batch: list[ObjectRecord] = []
        entries = 0
        for page in self.store.pages(self.dataset):
            if self.run.should_stop():
                yield None
                return
            latest = self.run.holds()
            if batch and latest is not self.judged_with:
                # a batch carried over from the last page was judged with the holds before
                again = self.evaluator.page(batch, latest)
                batch = [r for r in batch if self._acts(again.verdict(self.rule, r))]
                self.facts = {r.key: self.facts[r.key] for r in batch}
                entries = sum(r.entries for r in batch)
            self.judged_with = latest
            if self.recorded is not None:
                marks = self.recorded([r.key for r in page])
                page = [r for r, mark in zip(page, marks, strict=True) if mark]
            view = self.evaluator.page(page, self.judged_with)
            free = [r for r in page if self._acts(view.verdict(self.rule, r))]
            protected = self.store.protected(free, self.target.now) if free else {}
            if protected:
                note = Note(self.label, sorted(protected), summary(protected.values()))
                yield BatchResult(notes=(note,), kept={self.label: len(protected)})
            for record in free:
                if record.key in protected:
                    continue
                if batch and entries + record.entries > self.limit:
                    yield from self._submit(batch)
                    batch, entries = [], 0
                    self.limit = self.sizer.next()
                batch.append(record)
                self.facts[record.key] = view.facts(self.rule, record)
                entries += record.entries
            if self.broken is not None:
                return
        if batch and self.broken is None:
            yield from self._submit(batch)

    def _submit(self, batch: list[ObjectRecord]) -> Iterator[BatchResult]:
        judged, self.facts = self.facts, {}
        latest = self.run.holds()  # re-read before every batch, not only every listing page
        if latest is not self.judged_with:  # the page was judged with other holds: again
            view = self.evaluator.page(batch, latest)
            batch = [r for r in batch if self._acts(view.verdict(self.rule, r))]
            if not batch:
                return
        keys = [r.key for r in batch]
        facts = tuple(judged[key] for key in keys)
        commit = self.run.commit
        if commit is None:
            mode = self.store.mode(self.dataset)
            note = Note("would " + self.rule.action, keys, mode, facts=facts)
            yield BatchResult(acted=len(keys), notes=(note,))
            return
        entries = [[r.key, v.id] for r in batch for v in r.versions]
        payload: Any = entries
        if self.kept is not None:  # what settling needs to undo a copy the delete never followed
            copied = {r.key: next((v.id for v in r.versions if not v.marker), None) for r in batch}
            payload = {"kept": self.kept.as_json(), "copied": copied, "entries": entries}
        ticket = commit.intend(
            Intent(
                rule=self.rule.id,
                dataset=self.dataset.name,
                action=self.rule.action,
                keys=keys,
                payload=json.dumps(payload),
                facts=facts,
            )
        )
        self.run.probe.reached("write")
        future = self.store.submit(self.dataset, batch, self.kept)
        self.inflight.append((ticket, batch, future, judged))
        while len(self.inflight) >= self.store.concurrency:
            settled = self._settle(*self.inflight.popleft())
            if settled is not None:
                yield settled

    def _acts(self, verdict: Verdict) -> bool:
        """Whether the rule acts on a record it judged so (a replay: whatever its clock)."""
        if self.recorded is not None:
            return not (verdict.held or verdict.blocked)
        return verdict.free

    def _settle(
        self,
        ticket: Ticket,
        batch: list[ObjectRecord],
        future: Future[DeleteResult],
        facts: dict[str, RecordFacts],
    ) -> BatchResult | None:
        """What one batch did, audited (its intent removed with its entries); the deleted
        records' entry carries their `facts`."""
        try:
            outcome = future.result()
        except StoreError as exc:
            # what happened is unknown: the intent stays, the next run's recovery settles it
            self.broken = self.broken or str(exc)
            return None
        notes = []
        for label, keys, why in (
            ("done", list(outcome.deleted), outcome.detail),
            (self.label, sorted(outcome.vetoed), summary(outcome.vetoed.values())),
            ("failed", sorted(outcome.failed), summary(outcome.failed.values())),
        ):
            if keys:
                acted = tuple(facts[k] for k in keys) if label == "done" else ()
                notes.append(Note(label, keys, why, facts=acted))
        failed = Counter(reason.split(":", 1)[0] for reason in outcome.failed.values())
        result = BatchResult(
            acted=len(outcome.deleted),
            notes=tuple(notes),
            audited=True,
            kept={self.label: len(outcome.vetoed)} if outcome.vetoed else {},
            failed=dict(failed),
        )
        assert self.run.commit is not None
        self.run.commit.done(ticket, result)
        return result


__all__ = ["ObjectRun"]
