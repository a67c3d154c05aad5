"""``mirror_holds: true``: retention holds become S3 legal holds, so no other deleter can act.

Once per run and dataset, before any rule acts on it, every version of every object covered by
an active hold gets an S3 Object Lock legal hold ON, and the versions retention put ON earlier
that no hold covers any more get it OFF. Retention records each legal hold it places in the
state DB (``retention_legal_holds``) and only ever turns OFF the ones recorded there: a legal
hold somebody else placed, before or after, is never touched.

Mirrored are the holds that cover an object for every rule (no ``rules:`` scope), like an S3
legal hold does; a hold scoped to some rules suspends only those rules and stays inside
retention. ``freeze`` is not mirrored (it would mean a request per object of every bucket).
Legal holds need Object Lock on the bucket.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from ...datasets import Dataset
from ...errors import StoreError
from ...holds import Hold
from ...ids import canonical_id
from ...templates import KeyTemplate
from ..base import Enforcement, LegalHoldBook, PlacedHold
from .records import ObjectRecord

T = TypeVar("T")


class Bucket(Protocol):
    """What mirroring needs of a bucket (:class:`~.s3.Bucket` is one)."""

    name: str
    bucket: str

    @property
    def locked(self) -> bool: ...

    def template(self, dataset: Dataset) -> KeyTemplate: ...

    def pages(
        self, dataset: Dataset, prefix: str | None = None
    ) -> Iterator[list[ObjectRecord]]: ...

    def map(self, function: Callable[[Any], T], items: Iterable[Any]) -> list[T]: ...

    def quiet(self, operation: str, **params: Any) -> dict[str, Any] | None: ...

    def call(self, operation: str, **params: Any) -> Any: ...


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def mirror_holds(store: Bucket, dataset: Dataset, run: Enforcement) -> list[str]:
    """Put legal holds ON for covered objects and OFF where retention's own hold ended;
    remarks for the run's summary."""
    if not store.locked:
        raise StoreError(
            f"mirror_holds needs Object Lock on bucket {store.bucket!r}: S3 legal holds exist "
            "only there (enable it, or set mirror_holds: false)",
            store=store.name,
        )
    book = run.legal_holds
    assert book is not None, "the engine gives every run its book of legal holds"
    holds = [
        h
        for h in run.holds().active()
        if not h.rules and h.covers_dataset(dataset.name) and h.blocks_action("delete")
    ]
    template = store.template(dataset)
    placed = _place(store, book, dataset, holds, template.subject, run.live)
    released = _release(store, book, dataset, holds, template.subject, run.live)
    notes = []
    verb = "" if run.live else "would "
    if placed:
        notes.append(f"{verb}place an S3 legal hold on {placed} object versions")
    if released:
        notes.append(f"{verb}release {released} S3 legal holds retention had placed")
    return notes


def _covering(holds: list[Hold], subject_type: str | None, record: ObjectRecord) -> list[str]:
    subject = canonical_id(record.subject) if record.subject is not None else None
    return [
        hold.id
        for hold in holds
        if hold.scoped_subjects() is None
        or (subject_type is not None and subject in hold.subject_ids(subject_type))
    ]


def _prefixes(
    store: Bucket, dataset: Dataset, holds: list[Hold], subject_type: str | None
) -> list[str | None]:
    """What to list: the whole dataset, or just the keys of the held subjects."""
    if not holds:
        return []
    if any(h.scoped_subjects() is None for h in holds):
        return [None]
    if subject_type is None:
        return []
    ids = sorted({i for h in holds for i in h.subject_ids(subject_type)})
    template = store.template(dataset)
    # every spelling of every id (0005 for 5), without listing a key twice
    prefixes = sorted({p for i in ids for p in template.prefixes_for(i)})
    return [p for p in prefixes if not any(p != q and p.startswith(q) for q in prefixes)]


def _row_id(store: str, dataset: str, key: str, version: str | None) -> str:
    return hashlib.sha256(f"{store}\0{dataset}\0{key}\0{version or ''}".encode()).hexdigest()


def _place(
    store: Bucket,
    book: LegalHoldBook,
    dataset: Dataset,
    holds: list[Hold],
    subject_type: str | None,
    live: bool,
) -> int:
    placed = 0
    for prefix in _prefixes(store, dataset, holds, subject_type):
        for page in store.pages(dataset, prefix):
            wanted = []
            for record in page:
                ids = tuple(_covering(holds, subject_type, record))
                if ids:
                    wanted += [
                        PlacedHold(
                            _row_id(store.name, dataset.name, record.key, v.id),
                            record.key,
                            v.id,
                            ids,
                        )
                        for v in record.versions
                        if not v.marker
                    ]
            if not wanted:
                continue
            ours = book.which_placed([w.id for w in wanted])
            todo = [w for w in wanted if w.id not in ours]
            statuses = store.map(lambda w: _status(store, w.key, w.version), todo)
            fresh = [w for w, status in zip(todo, statuses, strict=True) if status == "OFF"]
            if not fresh:
                continue  # already ON: ours, or someone else's (never recorded, never released)
            if live:
                store.map(lambda w: _put(store, w.key, w.version, "ON"), fresh)
                book.record(store.name, dataset.name, fresh)
            _note(book, dataset, "legal hold on", [w.key for w in fresh], holds)
            placed += len(fresh)
    return placed


def _release(
    store: Bucket,
    book: LegalHoldBook,
    dataset: Dataset,
    holds: list[Hold],
    subject_type: str | None,
    live: bool,
) -> int:
    template = store.template(dataset)
    ended = []
    for row in book.placed(store.name, dataset.name):
        record = ObjectRecord(row.key, _EPOCH, None, template.subject_of(row.key))
        if not _covering(holds, subject_type, record):
            ended.append(row)
    if not ended:
        return 0
    if live:
        store.map(lambda e: _put(store, e.key, e.version, "OFF"), ended)
        book.forget([e.id for e in ended])
    _note(book, dataset, "legal hold off", [e.key for e in ended], holds)
    return len(ended)


def _status(store: Bucket, key: str, version: str | None) -> str | None:
    """ON / OFF, or None when the version is gone."""
    params: dict[str, Any] = {"Bucket": store.bucket, "Key": key}
    if version is not None:
        params["VersionId"] = version
    head = store.quiet("head_object", **params)
    if head is None:
        return None
    return "ON" if head.get("ObjectLockLegalHoldStatus") == "ON" else "OFF"


def _put(store: Bucket, key: str, version: str | None, status: str) -> None:
    target: dict[str, Any] = {"Bucket": store.bucket, "Key": key}
    if version is not None:
        target["VersionId"] = version
    if status == "OFF" and store.quiet("head_object", **target) is None:
        return  # the version is gone: nothing left to release
    store.call("put_object_legal_hold", LegalHold={"Status": status}, **target)


def _note(
    book: LegalHoldBook, dataset: Dataset, action: str, keys: list[str], holds: list[Hold]
) -> None:
    detail = "mirrors " + (", ".join(h.id for h in holds) or "released holds")
    book.note(dataset.name, action, keys, detail)


__all__ = ["mirror_holds"]
