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

import hashlib
import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select

from ..errors import StoreError
from ..ids import canonical_id
from ..statedb import legal_holds, utcnow
from .base import ObjectRecord

if TYPE_CHECKING:
    from ..executor import RuleOutcome
    from ..holds import Hold
    from .base import RunContext
    from .s3 import S3Store


def mirror_holds(store: S3Store, ctx: RunContext, dataset: str, outcome: RuleOutcome) -> None:
    """Put legal holds ON for covered objects and OFF where retention's own hold ended."""
    if not store.locked:
        raise StoreError(
            f"mirror_holds needs Object Lock on bucket {store.bucket!r}: S3 legal holds exist "
            "only there (enable it, or set mirror_holds: false)",
            store=store.name,
        )
    holds = [h for h in ctx.config.load_holds().active() if not h.rules]
    holds = [h for h in holds if h.covers_dataset(dataset)]
    template = store.template(dataset)
    placed = _place(store, ctx, dataset, holds, template.subject)
    released = _release(store, ctx, dataset, holds, template.subject)
    notes = []
    verb = "" if ctx.live else "would "
    if placed:
        notes.append(f"{verb}place an S3 legal hold on {placed} object versions")
    if released:
        notes.append(f"{verb}release {released} S3 legal holds retention had placed")
    if notes:
        outcome.message = "; ".join([*([outcome.message] if outcome.message else []), *notes])


def _covering(holds: list[Hold], subject_type: str | None, record: ObjectRecord) -> list[str]:
    subject = canonical_id(record.subject) if record.subject is not None else None
    return [
        hold.id
        for hold in holds
        if hold.scoped_subjects() is None
        or (subject_type is not None and subject in hold.subject_ids(subject_type))
    ]


def _prefixes(
    store: S3Store, dataset: str, holds: list[Hold], subject_type: str | None
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
    store: S3Store, ctx: RunContext, dataset: str, holds: list[Hold], subject_type: str | None
) -> int:
    placed = 0
    for prefix in _prefixes(store, dataset, holds, subject_type):
        for page in store.pages(dataset, prefix):
            wanted = []
            for record in page:
                ids = _covering(holds, subject_type, record)
                if ids:
                    wanted += [(record.key, v.id, ids) for v in record.versions if not v.marker]
            if not wanted:
                continue
            with ctx.state.connect() as connection:
                ours = {
                    row[0]
                    for row in connection.execute(
                        select(legal_holds.c.id).where(
                            legal_holds.c.id.in_(
                                [_row_id(store.name, dataset, k, v) for k, v, _ in wanted]
                            )
                        )
                    )
                }
            todo = [w for w in wanted if _row_id(store.name, dataset, w[0], w[1]) not in ours]
            statuses = store.map(lambda w: _status(store, w[0], w[1]), todo)
            fresh = [w for w, status in zip(todo, statuses, strict=True) if status == "OFF"]
            if not fresh:
                continue  # already ON: ours, or someone else's (never recorded, never released)
            if ctx.live:
                store.map(lambda w: _put(store, w[0], w[1], "ON"), fresh)
                with ctx.state.begin() as connection:
                    connection.execute(
                        insert(legal_holds),
                        [
                            {
                                "id": _row_id(store.name, dataset, key, version),
                                "store": store.name,
                                "dataset": dataset,
                                "key": key,
                                "version_id": version,
                                "holds": json.dumps(ids),
                                "placed_at": utcnow(),
                                "run_id": ctx.run_id,
                            }
                            for key, version, ids in fresh
                        ],
                    )
            _audit(ctx, dataset, "legal hold on", [k for k, _, _ in fresh], holds)
            placed += len(fresh)
    return placed


def _release(
    store: S3Store, ctx: RunContext, dataset: str, holds: list[Hold], subject_type: str | None
) -> int:
    template = store.template(dataset)
    with ctx.state.connect() as connection:
        rows = connection.execute(
            select(legal_holds.c.id, legal_holds.c.key, legal_holds.c.version_id).where(
                legal_holds.c.store == store.name, legal_holds.c.dataset == dataset
            )
        ).all()
    ended = []
    for row_id, key, version in rows:
        record = ObjectRecord(key, utcnow(), None, template.subject_of(key))
        if not _covering(holds, subject_type, record):
            ended.append((row_id, key, version))
    if not ended:
        return 0
    if ctx.live:
        store.map(lambda e: _put(store, e[1], e[2], "OFF"), ended)
        with ctx.state.begin() as connection:
            connection.execute(
                delete(legal_holds).where(legal_holds.c.id.in_([e[0] for e in ended]))
            )
    _audit(ctx, dataset, "legal hold off", [e[1] for e in ended], holds)
    return len(ended)


def _status(store: S3Store, key: str, version: str | None) -> str | None:
    """ON / OFF, or None when the version is gone."""
    params: dict[str, Any] = {"Bucket": store.bucket, "Key": key}
    if version is not None:
        params["VersionId"] = version
    head = store.quiet("head_object", **params)
    if head is None:
        return None
    return "ON" if head.get("ObjectLockLegalHoldStatus") == "ON" else "OFF"


def _put(store: S3Store, key: str, version: str | None, status: str) -> None:
    target: dict[str, Any] = {"Bucket": store.bucket, "Key": key}
    if version is not None:
        target["VersionId"] = version
    if status == "OFF" and store.quiet("head_object", **target) is None:
        return  # the version is gone: nothing left to release
    store.call("put_object_legal_hold", LegalHold={"Status": status}, **target)


def _audit(ctx: RunContext, dataset: str, action: str, keys: list[str], holds: list[Hold]) -> None:
    ctx.audit.append(
        run_id=ctx.run_id,
        dataset=dataset,
        action=action,
        outcome="done" if ctx.live else f"would set {action}",
        dry_run=not ctx.live,
        keys=sorted(set(keys)),
        count=len(keys),
        detail="mirrors " + (", ".join(h.id for h in holds) or "released holds"),
    )


__all__ = ["mirror_holds"]
