"""What an object store lists and what its deletes report: records, versions, delete results."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# S3's DeleteObjects takes at most this many keys; listings come in pages of this size.
PAGE_SIZE = 1000


@dataclass(frozen=True)
class Version:
    """One S3 object version or delete marker; `id` None on an unversioned bucket."""

    id: str | None
    marker: bool = False


@dataclass(frozen=True)
class ObjectRecord:
    """One record of an object dataset, as listed.

    `created` is the ``record.created`` clock (LastModified / mtime, or the dataset's `tag`),
    None when it cannot be read (then the record's clock has not started); `clock_unreadable`
    says a tag was there but held no timestamp (the plan reports such records). `problem` is a
    reason found while listing why the record must never be deleted (a symlink); `versions` are
    what a delete removes on S3 (every version and delete marker of a versioned key).
    """

    key: str
    modified: dt.datetime
    created: dt.datetime | None
    subject: str | None
    versions: tuple[Version, ...] = (Version(None),)
    problem: str | None = None
    clock_unreadable: bool = False
    # rows of a lake table: every declared timestamp by name (None: only `created`)
    clocks: Mapping[str, dt.datetime | None] | None = None
    # rows of a lake table: the anonymize rules whose fields it already holds anonymized
    anonymized: frozenset[str] = frozenset()

    def clock(self, name: str) -> dt.datetime | None:
        """The record clock `name` (``record.<name>``) when it started."""
        return self.created if self.clocks is None else self.clocks.get(name)

    @property
    def entries(self) -> int:
        """How many things a delete removes (keys × versions)."""
        return len(self.versions)


@dataclass(frozen=True)
class DeleteResult:
    """What one delete batch did, key by key: every key deleted, vetoed by the store's own
    protections (an Object Lock, a symlink: key → why), failed (key → error code and message),
    or — when the store went away mid-request — of unknown fate (left for recovery)."""

    deleted: tuple[str, ...] = ()
    vetoed: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    detail: str | None = None  # what the deleted keys' audit entry says of how (a table version)


def summary(reasons: Iterable[str]) -> str:
    """``AccessDenied ×2, InternalError`` — reasons without the keys (they may be personal)."""
    counted = Counter(str(r).split(":", 1)[0] for r in reasons)
    return ", ".join(f"{r} ×{n}" if n > 1 else r for r, n in sorted(counted.items()))


__all__ = ["PAGE_SIZE", "DeleteResult", "ObjectRecord", "Version", "summary"]
