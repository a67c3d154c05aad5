"""The protocol every object store implements (S3 buckets, file trees), and its value objects.

An object store lists the records of a dataset page by page, deletes batches of them, and says
which ones it must not delete whatever the rules say (an S3 Object Lock, a symlink). Everything
else is shared and decided in Python by :mod:`retention.stores.evaluate` (clocks, rules, holds,
precedence) and :mod:`retention.stores.objectrun` (plan counts, batches, intents, audit), so a
bucket and a directory obey exactly the same rules as a table.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..ids import canonical_id

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ..audit import AuditLog
    from ..config import Config
    from ..executor import RuleOutcome
    from ..holds import Hold, HoldsFile
    from ..lease import Lease
    from ..planner import RulePlan
    from ..rules import Rule
    from .sql import SqlStore

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

    @property
    def entries(self) -> int:
        """How many things a delete removes (keys × versions)."""
        return len(self.versions)


@dataclass(frozen=True)
class DeleteResult:
    """What one delete batch did, key by key."""

    deleted: tuple[str, ...] = ()
    locked: dict[str, str] = field(default_factory=dict)  # key -> why (object lock)
    refused: dict[str, str] = field(default_factory=dict)  # key -> why (symlink, outside root)
    failed: dict[str, str] = field(default_factory=dict)  # key -> error code and message


class RunContext(Protocol):
    """What an object store needs from the run it acts in (the executor provides it)."""

    config: Config
    now: dt.datetime
    live: bool
    force: bool
    run_id: str
    audit: AuditLog
    state: Engine
    lease: Lease | None
    actions: int
    progress: Callable[[Rule, str, int, int], None] | None
    should_stop: Callable[[], bool]


class ObjectStore(ABC):
    """One configured S3 bucket or file tree."""

    kind: str
    name: str
    # what the store's own protections are called: "locked" (S3 Object Lock) or "refused"
    protection: str = "refused"
    # delete batches in flight at once
    concurrency: int = 1

    def __init__(self, name: str, config: Config, sql: dict[str, SqlStore]) -> None:
        self.name = name
        self.config = config
        self.sql = sql
        self._plans: dict[tuple[Any, ...], dict[str, RulePlan]] = {}
        # directories (or prefixes) the listing could not read: reported, never fatal
        self.unreadable: set[str] = set()

    # -- what each backend provides ------------------------------------------------------

    @abstractmethod
    def pages(self, dataset: str, prefix: str | None = None) -> Iterator[list[ObjectRecord]]:
        """The dataset's records, one listing page at a time (never the whole listing)."""

    @abstractmethod
    def mode(self, dataset: str) -> str:
        """How a delete is carried out here, for the plan (``versioned: ...``)."""

    def protected(self, records: Sequence[ObjectRecord], now: dt.datetime) -> dict[str, str]:
        """Records the store must not delete now whatever the rules say: key -> reason."""
        return {r.key: r.problem for r in records if r.problem is not None}

    @abstractmethod
    def delete(self, dataset: str, records: Sequence[ObjectRecord]) -> DeleteResult:
        """Delete one batch; every key ends up deleted, locked, refused or failed."""

    @abstractmethod
    def absent(self, dataset: str, entries: Sequence[Sequence[Any]]) -> list[str]:
        """Keys (of intent entries ``[key, version]``) that no longer exist: they were deleted."""

    @abstractmethod
    def describe(self, dataset: str, key: str) -> ObjectRecord | None:
        """One record by key, or None when it does not exist (for `explain`)."""

    @abstractmethod
    def check(self, dataset: str | None = None) -> list[str]:
        """Problems found reaching the store (or one dataset), for `validate`."""

    def submit(self, dataset: str, records: Sequence[ObjectRecord]) -> Future[DeleteResult]:
        """Start deleting one batch; by default at once, in this thread."""
        future: Future[DeleteResult] = Future()
        try:
            future.set_result(self.delete(dataset, records))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def dispose(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads."""

    def sync_holds(self, ctx: RunContext, dataset: str, outcome: RuleOutcome) -> None:  # noqa: B027
        """Mirror retention holds onto the store, once per dataset and run (S3 only)."""

    # -- shared behaviour ------------------------------------------------------------------

    def plan(
        self, rule: Rule, dataset: str, holds: HoldsFile, now: dt.datetime, samples: int
    ) -> RulePlan:
        """The plan of `rule` on `dataset`; every rule of the dataset is counted in one listing."""
        from .objectrun import plan_dataset

        cache_key = (dataset, now, samples, id(holds))
        if cache_key not in self._plans:
            self._plans = {cache_key: plan_dataset(self, dataset, holds, now, samples)}
        return self._plans[cache_key][rule.id]

    def count_covered(self, dataset: str, hold: Hold) -> int:
        """How many records of `dataset` the subject scope of `hold` covers (`retention holds`)."""
        from .template import subject_type

        ds = self.config.settings.datasets[dataset]
        kind = subject_type(ds, self.kind)
        scoped = hold.scoped_subjects()
        if scoped is None:
            return sum(len(page) for page in self.pages(dataset))
        ids = hold.subject_ids(kind) if kind else frozenset()
        return sum(
            1
            for page in self.pages(dataset)
            for record in page
            if record.subject is not None and canonical_id(record.subject) in ids
        )

    def enforce(self, ctx: RunContext, rule: Rule, dataset: str, outcome: RuleOutcome) -> None:
        """Apply `rule` to `dataset` page by page (a dry run stops before deleting)."""
        from .objectrun import enforce_rule

        enforce_rule(self, ctx, rule, dataset, outcome)


def open_object_store(name: str, config: Config, sql: dict[str, SqlStore]) -> ObjectStore:
    """The object store `name` from config (backends are imported only when used)."""
    store = config.settings.stores[name]
    if store.kind == "s3":
        from .s3 import S3Store

        return S3Store(name, config, sql)
    if store.kind == "filesystem":
        from .filesystem import FilesystemStore

        return FilesystemStore(name, config, sql)
    raise ValueError(f"store {name!r} is a {store.kind} store, not an object store")


class ObjectStores:
    """Object stores opened on first use and disposed together (a context manager)."""

    def __init__(self, config: Config, sql: dict[str, SqlStore]) -> None:
        self.config = config
        self.sql = sql
        self._open: dict[str, ObjectStore] = {}

    def __getitem__(self, name: str) -> ObjectStore:
        if name not in self._open:
            self._open[name] = open_object_store(name, self.config, self.sql)
        return self._open[name]

    def __enter__(self) -> ObjectStores:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def dispose(self) -> None:
        for store in self._open.values():
            store.dispose()
        self._open.clear()


__all__ = [
    "PAGE_SIZE",
    "DeleteResult",
    "ObjectRecord",
    "ObjectStore",
    "ObjectStores",
    "RunContext",
    "Version",
    "open_object_store",
]
