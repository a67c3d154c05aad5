"""Object stores (S3 buckets, file trees) behind the one Store protocol, over their listings.

A backend lists a dataset's records page by page, deletes batches of them, and says which it
must not delete whatever the rules say (an Object Lock, a symlink). Everything else is decided
here in Python with the same arithmetic the SQL stores push down (:mod:`.evaluate`), so a bucket
and a directory obey exactly the same rules as a table. The listing is streamed: memory does not
grow with the number of objects.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any

from ...datasets import Dataset, SubjectType
from ...errors import RecordNotFound, StoreError, StoreMisconfigured
from ...holds import Hold, HoldsFile
from ...ids import canonical_id
from ...kinds import capabilities
from ...rules import Rule
from ...settings import Settings
from ..base import (
    PURGE,
    RESTORE,
    BatchResult,
    Counts,
    Description,
    Enforcement,
    Flags,
    KeyMatcher,
    Note,
    Problem,
    Quarantined,
    RuleView,
    StoredIntent,
    SubjectPath,
    SubjectSource,
    Tally,
    Target,
    places,
)
from . import quarantine
from .evaluate import Evaluator, Page, Verdict
from .quarantine import Entry, Kept, PutBack
from .records import DeleteResult, ObjectRecord
from .run import ObjectRun

RECOVERED = "recorded after an interruption: the delete had happened"


class ObjectStore(ABC):
    """One configured bucket or file tree: the listing-based part of every object store."""

    kind: str
    # delete batches in flight at once
    concurrency: int = 1

    def __init__(
        self,
        name: str,
        config: Any,
        settings: Settings | None = None,
        subject_sources: Callable[[SubjectType], SubjectSource] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.settings = settings
        self.capabilities = capabilities(self.kind)
        self._subject_sources = subject_sources
        self._plans: dict[tuple[Any, ...], tuple[dict[str, Counts], Counts]] = {}
        # directories (or prefixes) the listing could not read: reported, never fatal
        self.unreadable: set[str] = set()

    # -- what each backend provides ------------------------------------------------------

    @abstractmethod
    def pages(self, dataset: Dataset, prefix: str | None = None) -> Iterator[list[ObjectRecord]]:
        """The dataset's records, one listing page at a time (never the whole listing)."""

    def listing_order(self, key: str) -> Any:
        """Where `key` comes in one sequential listing (default: by key): a plan's samples are
        the first keys in this order, in whatever order a split listing's pages come."""
        return key

    @abstractmethod
    def mode(self, dataset: Dataset) -> str:
        """How a delete is carried out here, for the plan (``versioned bucket: ...``)."""

    def protected(self, records: Sequence[ObjectRecord], now: dt.datetime) -> dict[str, str]:
        """Records the store must not delete now whatever the rules say: key -> reason."""
        return {r.key: r.problem for r in records if r.problem is not None}

    @abstractmethod
    def delete(self, dataset: Dataset, records: Sequence[ObjectRecord]) -> DeleteResult:
        """Delete one batch; every key ends up deleted, vetoed or failed."""

    @abstractmethod
    def absent(self, dataset: Dataset, entries: Sequence[Sequence[Any]]) -> list[str]:
        """Keys (of intent entries ``[key, version]``) that no longer exist: they were deleted."""

    @abstractmethod
    def head(self, dataset: Dataset, key: str) -> ObjectRecord | None:
        """One record by key, or None when it does not exist (for `explain`)."""

    @abstractmethod
    def reach(self, dataset: Dataset | None = None) -> list[str]:
        """Problems found reaching the store (or one dataset's part of it), for `validate`."""

    def submit(
        self, dataset: Dataset, records: Sequence[ObjectRecord], kept: Kept | None = None
    ) -> Future[DeleteResult]:
        """Start deleting one batch (into quarantine at `kept`, when given); by default at
        once, in this thread."""
        future: Future[DeleteResult] = Future()
        try:
            future.set_result(self.remove(dataset, records, kept))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def remove(
        self, dataset: Dataset, records: Sequence[ObjectRecord], kept: Kept | None
    ) -> DeleteResult:
        """Delete one batch, into quarantine at `kept` when given."""
        return self.delete(dataset, records) if kept is None else self.keep(dataset, records, kept)

    # -- the quarantine area, where the backend has one (``Capabilities.quarantine``) --------

    def keep(self, dataset: Dataset, records: Sequence[ObjectRecord], kept: Kept) -> DeleteResult:
        """Move one batch into the quarantine area at `kept` (deleted from the dataset, every
        key moved, vetoed or failed)."""
        raise self._no_quarantine()

    def unkeep(  # noqa: B027 - only a store that copies before it deletes needs it
        self, kept: Kept, keys: Sequence[str], copied: dict[str, str | None]
    ) -> None:
        """After an interrupted quarantined delete: `keys` are still there, so whatever copy
        of them the area got (`copied`: key -> the version copied) goes again."""

    def quarantine_pages(
        self, dataset: Dataset, run_id: str | None = None
    ) -> Iterator[list[ObjectRecord]]:
        """What `dataset` keeps in the quarantine area (of run `run_id` only), listed."""
        raise self._no_quarantine()

    def purge_kept(self, dataset: Dataset, records: Sequence[ObjectRecord]) -> DeleteResult:
        """Remove quarantined objects (listed by :meth:`quarantine_pages`) for good."""
        raise self._no_quarantine()

    def put_back(self, dataset: Dataset, entries: Sequence[Entry]) -> PutBack:
        """Put quarantined objects back under their own keys, never over one that exists."""
        raise self._no_quarantine()

    def kept_present(self, dataset: Dataset, paths: Sequence[str]) -> set[str]:
        """Which of `paths` the quarantine area still holds."""
        raise self._no_quarantine()

    def _no_quarantine(self) -> StoreError:
        return StoreMisconfigured(f"a {self.kind} store keeps no quarantine", store=self.name)

    def sync_holds(self, dataset: Dataset, run: Enforcement) -> list[str]:
        """Mirror retention holds onto the store before a rule acts (S3 only); remarks."""
        return []

    def dispose(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads."""

    # -- the Store protocol ----------------------------------------------------------------

    def subjects_of(self, dataset: Dataset) -> SubjectSource | None:
        """Where the dataset's subjects' lifecycle events are read (None: no subject)."""
        if dataset.subject is None or self._subject_sources is None:
            return None
        return self._subject_sources(dataset.subject)

    def evaluator(self, dataset: Dataset, now: dt.datetime) -> Evaluator:
        return Evaluator(dataset, now, self.subjects_of(dataset))

    def check(self, datasets: Sequence[Dataset]) -> list[Problem]:
        found = self.reach()
        if found:
            return [Problem(f"stores.{self.name}", m, unreachable=True) for m in found]
        return [
            Problem(f"datasets.{dataset.name}", m, unreachable=True)
            for dataset in datasets
            for m in self.reach(dataset)
        ]

    def plan(self, targets: Sequence[Target], holds: HoldsFile, samples: int) -> list[Counts]:
        """Every rule of a dataset is counted in one listing (kept for the targets after)."""
        found = []
        for target in targets:
            cache_key = (target.dataset.name, target.now, samples, id(holds))
            if cache_key not in self._plans:
                counts = plan_dataset(self, target.dataset, holds, target.now, samples)
                self._plans = {cache_key: counts}
            found.append(self._plans[cache_key][0][target.rule.id])
        return found

    def records(self, targets: Sequence[Target], holds: HoldsFile) -> Counts:
        """From the listing :meth:`plan` just counted when it was of these rules, else one more."""
        dataset, now = targets[0].dataset, targets[0].now
        wanted = frozenset(t.rule.id for t in targets)
        if wanted == frozenset(r.id for r in dataset.rules):
            for (name, at, _, holds_id), (_, distinct) in self._plans.items():
                if (name, at, holds_id) == (dataset.name, now, id(holds)):
                    return distinct
        return plan_dataset(self, dataset, holds, now, 0, rule_ids=wanted)[1]

    def tally(
        self, target: Target, holds: HoldsFile, *, size: bool, unreadable: bool = True
    ) -> Tally:
        """Records due, unheld and unblocked now (before the store's own protections), those
        never acted on for an unreadable clock, and every record of the dataset (one listing
        gives all three)."""
        planned = total = never = 0
        evaluator = self.evaluator(target.dataset, target.now)
        for page in self.pages(target.dataset):
            view = evaluator.page(page, holds)
            total += len(page)
            verdicts = [view.verdict(target.rule, r) for r in page]
            planned += sum(1 for v in verdicts if v.free)
            never += sum(1 for v in verdicts if v.unreadable)
        return Tally(planned, never if unreadable else 0, total if size else None)

    def enforce(self, target: Target, run: Enforcement) -> Iterator[BatchResult]:
        remarks = self.sync_holds(target.dataset, run)
        if remarks:
            yield BatchResult(remarks=tuple(remarks))
        yield from ObjectRun(self, target, run)

    def settle(self, intent: StoredIntent, dataset: Dataset, rule: Rule | None) -> BatchResult:
        """A delete's keys gone from the dataset were deleted; a quarantined delete's keys
        still there lose the copy the area may have got (the next run moves them again); a
        purge's or restore's objects gone from the area were purged or put back."""
        if intent.action in (PURGE, RESTORE):
            return quarantine.settle(self, intent.payload, dataset)
        payload: Any = json.loads(intent.payload)
        kept = None
        if isinstance(payload, dict):
            kept = Kept.from_json(payload["kept"])
            copied, payload = payload["copied"], payload["entries"]
        entries: Sequence[Sequence[Any]] = payload
        keys = list(dict.fromkeys(str(e[0]) for e in entries))  # the intent's keys, in order
        gone = self.absent(dataset, entries)
        if kept is not None:
            left = [k for k in keys if k not in set(gone)]
            if left:
                self.unkeep(kept, left, copied)
        notes = (Note("done", gone, RECOVERED, places=places(keys, gone)),) if gone else ()
        return BatchResult(acted=len(gone), notes=notes)

    def purge_quarantine(
        self, dataset: Dataset, now: dt.datetime, run: Enforcement
    ) -> Iterator[BatchResult]:
        if dataset.config.quarantine is None:
            return iter(())
        return quarantine.purge(self, dataset, now, run)

    def quarantined(self, dataset: Dataset) -> list[Quarantined]:
        if dataset.config.quarantine is None:
            return []
        return [quarantine.summary(self, dataset)]

    def replay(
        self, target: Target, recorded: KeyMatcher, run: Enforcement
    ) -> Iterator[BatchResult]:
        """The recorded keys listed now, deleted again unless a hold or keep rule protects
        them (their clock is not asked again: it was due when recorded)."""
        yield from ObjectRun(self, target, run, recorded)

    def restore(
        self,
        dataset: Dataset,
        run_id: str,
        rule: str | None,
        now: dt.datetime,
        run: Enforcement,
    ) -> Iterator[BatchResult]:
        if dataset.config.quarantine is None:
            return iter(())
        return quarantine.restore(self, dataset, run_id, rule, now, run)

    def describe(
        self, dataset: Dataset, key: str, holds: HoldsFile, now: dt.datetime
    ) -> Description:
        record = self.head(dataset, key)
        if record is None:
            raise RecordNotFound(f"no object {key!r} in dataset {dataset.name!r}")
        evaluator = self.evaluator(dataset, now)
        page = evaluator.page([record], holds)
        vetoed = self.protected([record], now).get(key)
        return _described(page, record, vetoed)

    def subject_records(
        self,
        dataset: Dataset,
        subject: str,
        via: SubjectPath,
        holds: HoldsFile,
        now: dt.datetime,
        subject_type: str | None = None,
    ) -> Iterator[tuple[str, Description]]:
        """The records whose key (or subject column) names `subject`, from one listing (each
        page judged once, as a plan judges it), in listing order."""
        if dataset.subject is None or (subject_type not in (None, dataset.subject.name)):
            return
        evaluator = self.evaluator(dataset, now)
        for page in self.pages(dataset):
            mine = [r for r in page if r.subject is not None and canonical_id(r.subject) == subject]
            if not mine:
                continue
            view = evaluator.page(mine, holds)
            vetoed = self.protected(mine, now)
            for record in mine:
                yield record.key, _described(view, record, vetoed.get(record.key))

    def covered(self, dataset: Dataset, hold: Hold) -> int:
        scoped = hold.scoped_subjects()
        if scoped is None:
            return sum(len(page) for page in self.pages(dataset))
        kind = dataset.subject.name if dataset.subject is not None else None
        ids = hold.subject_ids(kind) if kind else frozenset()
        return sum(
            1
            for page in self.pages(dataset)
            for record in page
            if record.subject is not None and canonical_id(record.subject) in ids
        )

    def close(self) -> None:
        self.dispose()


def _described(page: Page, record: ObjectRecord, vetoed: str | None) -> Description:
    """Every rule's view of one listed record (`explain`, `retention subject`)."""
    views = []
    for rule in page.evaluator.rules:
        v = page.verdict(rule, record)
        acts = v.free and vetoed is None
        flags = Flags(
            due=v.due,
            held=v.held,
            blocked=v.blocked,
            superseded=v.superseded,
            done=v.done,
            actionable=acts,
            overdue=acts and v.overdue,
            unreadable=v.unreadable,
        )
        veto = vetoed if v.free and rule.destructive else None
        views.append(RuleView(rule, flags, v.start, veto))
    return Description(tuple(views), tuple(h.id for h in page.held_by(record)))


def plan_dataset(
    store: ObjectStore,
    dataset: Dataset,
    holds: HoldsFile,
    now: dt.datetime,
    samples: int,
    rule_ids: frozenset[str] | None = None,
) -> tuple[dict[str, Counts], Counts]:
    """Every rule of `dataset` counted in one pass over the listing, and the records counted
    once across the rules (those of `rule_ids`, default all: the plan's totals)."""
    evaluator = store.evaluator(dataset, now)
    counts = {rule.id: Counter[str]() for rule in evaluator.rules}
    distinct = Counter[str]()
    sampled: dict[str, list[str]] = {rule.id: [] for rule in evaluator.rules}
    for page in store.pages(dataset):
        view = evaluator.page(page, holds)
        pending: list[tuple[Rule, ObjectRecord, bool]] = []
        candidates: dict[str, ObjectRecord] = {}
        for record in page:
            seen: set[str] = set()
            for rule in evaluator.rules:
                c = counts[rule.id]
                counted = rule_ids is None or rule.id in rule_ids
                verdict = view.verdict(rule, record)
                flags = {"in_scope"}
                c["in_scope"] += 1
                if not verdict.due:
                    c["unreadable"] += verdict.unreadable
                    if counted:
                        seen |= flags | ({"unreadable"} if verdict.unreadable else set())
                    continue
                c["due"] += 1
                if not rule.destructive:
                    seen |= flags if counted else set()
                    continue
                found = _kept_by(verdict)
                if counted:
                    seen |= flags | {"due"} | ({found} if found else set())
                if found is not None:
                    c[found] += 1
                else:
                    pending.append((rule, record, verdict.overdue))
                    candidates[record.key] = record
            distinct.update(seen)
        protected = store.protected(list(candidates.values()), now) if candidates else {}
        acting: dict[str, bool] = {}
        for rule, record, overdue in pending:
            c = counts[rule.id]
            if record.key in protected:
                c["vetoed"] += 1
                continue
            c["actionable"] += 1
            c["overdue"] += overdue
            if rule_ids is None or rule.id in rule_ids:
                acting[record.key] = acting.get(record.key, False) or overdue
            _sample(sampled[rule.id], record.key, samples, store.listing_order)
        distinct["actionable"] += len(acting)
        distinct["overdue"] += sum(acting.values())
    mode = store.mode(dataset)
    label = store.capabilities.veto_label
    per_rule = {
        rule.id: _counts(counts[rule.id], tuple(sampled[rule.id]), rule, mode, label, store)
        for rule in evaluator.rules
    }
    return per_rule, Counts.of_records(distinct)


def _kept_by(verdict: Verdict) -> str | None:
    """Why a due record is not acted on, as the plan counts it (None: it is)."""
    for reason in ("held", "blocked", "superseded", "done"):
        if getattr(verdict, reason):
            return reason
    return None


def _sample(found: list[str], key: str, samples: int, order: Callable[[str], Any]) -> None:
    """`key` among the first `samples` keys of `found` (kept in listing order), if it is."""
    if len(found) >= samples and (samples == 0 or order(key) >= order(found[-1])):
        return
    bisect.insort(found, key, key=order)
    del found[samples:]


def _counts(
    c: Counter[str], samples: tuple[str, ...], rule: Rule, mode: str, label: str, store: Any
) -> Counts:
    notes = [mode] if rule.destructive and mode else []
    if c["vetoed"]:
        why = ", ".join(store.capabilities.vetoes)
        notes.append(f"{c['vetoed']} {label} ({why}: never deleted)")
    return Counts(
        in_scope=c["in_scope"],
        due=c["due"],
        held=c["held"],
        blocked=c["blocked"],
        superseded=c["superseded"],
        done=c["done"],
        actionable=c["actionable"],
        overdue=c["overdue"],
        unreadable=c["unreadable"],
        vetoed=c["vetoed"],
        samples=samples,
        notes=tuple(notes),
        extra={
            "mode": mode if rule.destructive else "",
            label.replace(" ", "_"): c["vetoed"],
        },
    )


__all__ = ["RECOVERED", "ObjectStore", "plan_dataset"]
