"""The restore window of an object dataset (``quarantine: P7D``): deleted objects kept restorable.

A live delete on a quarantined bucket or file tree moves each object it deletes into the
store's quarantine area, ``.retention-quarantine/<dataset>/<run>/<window end>/<rule>/<key>``
(S3: a copy, then the delete; files: one rename). The path says everything a later step needs,
so purging and restoring read only the listing of the area, and the area is never a record of
any dataset (listings skip it).

:func:`purge` removes for good what is past its window; :func:`restore` puts a run's objects
back under their own keys (never over an object that exists again: reported, left in the area
until purged). Both go batch by batch through the engine's commit point, like a delete, and
:func:`settle` judges an interrupted batch from the area: an object gone from it was purged, or
restored.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ...datasets import Dataset
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
from .records import PAGE_SIZE, DeleteResult, ObjectRecord
from .records import summary as summary_of

AREA = ".retention-quarantine"
_STAMP = "%Y%m%dT%H%M%SZ"


def hidden(key: str) -> bool:
    """Whether `key` lies in the quarantine area (never a record of a dataset)."""
    return key == AREA or key.startswith(AREA + "/")


def area(dataset: str, run_id: str | None = None) -> str:
    """The prefix of what `dataset` keeps in quarantine (of run `run_id` only, when given)."""
    return f"{AREA}/{dataset}/" + (f"{run_id}/" if run_id else "")


@dataclass(frozen=True)
class Kept:
    """Where one quarantined delete puts its objects: its dataset, run and rule, and the end
    of their restore window."""

    dataset: str
    run: str
    rule: str
    until: dt.datetime

    def path(self, key: str) -> str:
        """Where the object `key` is kept."""
        stamp = self.until.astimezone(dt.UTC).strftime(_STAMP)
        return f"{area(self.dataset, self.run)}{stamp}/{self.rule}/{key}"

    def as_json(self) -> dict[str, str]:
        return {
            "dataset": self.dataset,
            "run": self.run,
            "rule": self.rule,
            "until": self.until.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Kept:
        until = dt.datetime.fromisoformat(data["until"])
        return cls(data["dataset"], data["run"], data["rule"], until)


def kept_for(dataset: Dataset, run_id: str, rule: str, now: dt.datetime) -> Kept:
    """Where a delete of `rule` at `now` in run `run_id` keeps `dataset`'s objects."""
    assert dataset.config.quarantine is not None
    until = add_duration(now, dataset.config.quarantine, dataset.calendar)
    return Kept(dataset.name, run_id, rule, until)


@dataclass(frozen=True)
class Entry:
    """One object in quarantine: where it is kept (`record`, its key the path) and what it
    was (its own key, the run and rule that deleted it, the end of its window)."""

    record: ObjectRecord
    key: str
    run: str
    rule: str
    until: dt.datetime

    @property
    def path(self) -> str:
        return self.record.key


def entry_of(record: ObjectRecord, dataset: str) -> Entry | None:
    """The quarantine entry a listed path of `dataset`'s area names (None: not one of ours)."""
    parts = record.key.split("/", 5)
    if len(parts) < 6 or parts[0] != AREA or parts[1] != dataset or not parts[5]:
        return None
    try:
        until = dt.datetime.strptime(parts[3], _STAMP).replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return Entry(record, parts[5], parts[2], parts[4], until)


@dataclass(frozen=True)
class PutBack:
    """What one restore batch did: keys put back, keys that exist again (left in quarantine),
    keys that failed (key -> error)."""

    restored: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    failed: dict[str, str] | None = None


class Area(Protocol):
    """What purge and restore need of an object store."""

    def quarantine_pages(
        self, dataset: Dataset, run_id: str | None = None
    ) -> Iterator[list[ObjectRecord]]: ...

    def purge_kept(self, dataset: Dataset, records: Sequence[ObjectRecord]) -> DeleteResult: ...

    def put_back(self, dataset: Dataset, entries: Sequence[Entry]) -> PutBack: ...

    def kept_present(self, dataset: Dataset, paths: Sequence[str]) -> set[str]: ...


def entries(store: Area, dataset: Dataset, run_id: str | None = None) -> Iterator[Entry]:
    """Every object `dataset` keeps in quarantine (of run `run_id` only, when given)."""
    for page in store.quarantine_pages(dataset, run_id):
        for record in page:
            entry = entry_of(record, dataset.name)
            if entry is not None and (run_id is None or entry.run == run_id):
                yield entry


def summary(store: Area, dataset: Dataset) -> Quarantined:
    """How many objects `dataset` keeps in quarantine and when the first and last are purged."""
    count, first, last = 0, None, None
    for entry in entries(store, dataset):
        count += 1
        first = entry.until if first is None else min(first, entry.until)
        last = entry.until if last is None else max(last, entry.until)
    return Quarantined(dataset.name, count, first, last)


def purge(
    store: Area, dataset: Dataset, now: dt.datetime, run: Enforcement
) -> Iterator[BatchResult]:
    """Remove for good what `dataset` keeps past its window at `now`; each batch audited as a
    ``purge quarantine`` of the rule that deleted it."""
    due = (e for e in entries(store, dataset) if e.until <= now)
    yield from _steps(store, dataset, due, run, restoring=False)


def restore(
    store: Area,
    dataset: Dataset,
    run_id: str,
    rule: str | None,
    now: dt.datetime,
    run: Enforcement,
) -> Iterator[BatchResult]:
    """Put back what run `run_id` (its rule `rule` only, when given) deleted from `dataset`
    and its window still keeps at `now`; an object whose key exists again is reported and
    stays in quarantine."""
    found = entries(store, dataset, run_id)
    mine = (e for e in found if rule in (None, e.rule) and e.until > now)
    yield from _steps(store, dataset, mine, run, restoring=True)


def _steps(
    store: Area, dataset: Dataset, found: Iterable[Entry], run: Enforcement, *, restoring: bool
) -> Iterator[BatchResult]:
    """Batches of at most `batch_size` (and one request's worth of) entries, one rule each."""
    limit = min(run.batch_size, PAGE_SIZE)
    pending: dict[tuple[str, str], list[Entry]] = {}
    for entry in found:
        if run.should_stop():
            raise Stopped
        batch = pending.setdefault((entry.rule, entry.run), [])
        batch.append(entry)
        if len(batch) >= limit:
            yield _batch(store, dataset, pending.pop((entry.rule, entry.run)), run, restoring)
    for batch in pending.values():
        if run.should_stop():
            raise Stopped
        yield _batch(store, dataset, batch, run, restoring)


def _batch(
    store: Area, dataset: Dataset, batch: list[Entry], run: Enforcement, restoring: bool
) -> BatchResult:
    rule, run_id = batch[0].rule, batch[0].run
    keys = [e.key for e in batch]
    detail = _detail(run_id)
    if not run.live:
        verb = "would restore" if restoring else "would purge"
        return BatchResult(acted=len(keys), notes=(Note(verb, keys, detail),))
    assert run.commit is not None
    payload = json.dumps({"run": run_id, "paths": [e.path for e in batch], "keys": keys})
    action = RESTORE if restoring else PURGE
    ticket = run.commit.intend(Intent(rule, dataset.name, action, keys, payload))
    run.probe.reached("write")
    if restoring:
        outcome = store.put_back(dataset, batch)
        done, conflicts, failed = outcome.restored, outcome.conflicts, outcome.failed or {}
    else:
        purged = store.purge_kept(dataset, [e.record for e in batch])
        by_path = {e.path: e.key for e in batch}
        done = tuple(by_path[p] for p in purged.deleted)
        conflicts = ()
        failed = {by_path[p]: why for p, why in {**purged.vetoed, **purged.failed}.items()}
    notes = []
    if conflicts:
        notes.append(Note(CONFLICT, list(conflicts)))
    if failed:
        notes.append(Note("failed", sorted(failed), summary_of(failed.values())))
    if done:
        notes.append(Note("done", list(done), detail))
    result = BatchResult(acted=len(done), notes=tuple(notes), audited=True)
    run.commit.done(ticket, result)
    return result


def _detail(run_id: str) -> str:
    return f"quarantine of run {run_id}"


def settle(store: Area, payload: str, dataset: Dataset) -> BatchResult:
    """What an interrupted purge or restore batch did: its objects gone from quarantine were
    purged (restored: put back before they left it)."""
    data: dict[str, Any] = json.loads(payload)
    paths, keys = list(data["paths"]), list(data["keys"])
    present = store.kept_present(dataset, paths)
    gone = [k for p, k in zip(paths, keys, strict=True) if p not in present]
    detail = f"{_detail(str(data['run']))}; recorded after an interruption: the change was made"
    notes = (Note("done", gone, detail),) if gone else ()
    return BatchResult(acted=len(gone), notes=notes)


__all__ = [
    "AREA",
    "Area",
    "Entry",
    "Kept",
    "PutBack",
    "area",
    "entries",
    "entry_of",
    "hidden",
    "kept_for",
    "purge",
    "restore",
    "settle",
    "summary",
]
