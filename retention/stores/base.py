"""The one protocol every store implements, and the values that cross it.

The engine (planner, executor, ledger, recovery, explain, validate) talks to SQL databases,
buckets and file trees only through :class:`Store`. A store evaluates rules where the data is —
a SQL store in one set-based statement per question, an object store over its listing — and
re-checks every record at the moment of action; the engine decides nothing about individual
records. What differs between kinds of store is data (:class:`~retention.kinds.Capabilities`),
not ``if kind == ...``.

Crash safety is the engine's, written once: a live store hands each batch to the
:class:`CommitPoint` before the change is final (``intend``: fenced, durable) and after
(``done``: audited). Recovery gives an interrupted batch's intent back to its store to
:meth:`Store.settle`, which judges from the data what really happened.

A store never imports the engine, the audit log, the lease or the state DB; the engine passes
in what a store needs from them (:class:`Enforcement`, :class:`LegalHoldBook`,
:class:`SubjectSource`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..datasets import Dataset, SubjectType
from ..holds import Hold, HoldsFile
from ..kinds import Capabilities
from ..recordfacts import RecordFacts
from ..rules import Rule

Ticket = str  # an intent's id, from CommitPoint.intend

# the actions of a quarantined dataset's second steps (``quarantine:``), as audited
PURGE, RESTORE = "purge quarantine", "restore"
CONFLICT = "not restored: a record with this key exists again"

# given the text form of some record keys, which of them the audit log recorded (`replay`)
KeyMatcher = Callable[[Sequence[str]], list[bool]]


class Stopped(Exception):
    """Raised by a store's enforcement, after its last batch is settled, when the run was asked
    to stop (SIGTERM) before the rule was done."""


@dataclass(frozen=True, eq=False)
class Target:
    """One rule on one dataset, evaluated as of `now`: the unit of planning and enforcing."""

    rule: Rule
    dataset: Dataset
    now: dt.datetime

    def __repr__(self) -> str:
        return f"Target({self.rule.id!r} on {self.dataset.name!r})"


@dataclass(frozen=True)
class Counts:
    """What a rule covers on one dataset and what a run would do with it (a plan row's numbers).

    `notes` are lines a reader of the plan needs beyond the counts (how a delete is carried
    out, what the store's own protections keep); `extra` are the store's own numbers for
    ``--json`` (``blocked_by_object_lock``).
    """

    in_scope: int = 0
    due: int = 0
    held: int = 0
    blocked: int = 0
    superseded: int = 0
    done: int = 0
    actionable: int = 0
    overdue: int = 0
    unreadable: int = 0  # not due: a clock the rule needs holds a value that is no timestamp
    vetoed: int = 0  # due and free, but kept by the store's own protections (Object Lock)
    samples: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    extra: Mapping[str, int | str] = field(default_factory=dict)

    @classmethod
    def of_records(cls, found: Mapping[str, int]) -> Counts:
        """Distinct records (:meth:`Store.records`) from their numbers by field name."""
        return cls(
            in_scope=found.get("in_scope", 0),
            due=found.get("due", 0),
            held=found.get("held", 0),
            blocked=found.get("blocked", 0),
            actionable=found.get("actionable", 0),
            overdue=found.get("overdue", 0),
            unreadable=found.get("unreadable", 0),
        )


@dataclass(frozen=True)
class Quarantined:
    """What a quarantined dataset (``quarantine:``) keeps of its deleted records now: how
    many, and when the first and the last of them are purged (None when it keeps none)."""

    dataset: str
    count: int
    first_purge: dt.datetime | None = None
    last_purge: dt.datetime | None = None

    def as_dict(self) -> dict[str, str | int | None]:
        return {
            "dataset": self.dataset,
            "count": self.count,
            "first_purge": None if self.first_purge is None else self.first_purge.isoformat(),
            "last_purge": None if self.last_purge is None else self.last_purge.isoformat(),
        }


@dataclass(frozen=True)
class Tally:
    """Counted just before a rule acts: what it would act on, what it never can (unreadable
    clocks), and the dataset's size when asked (``limits.max_fraction``, ``approval_share``)."""

    actionable: int
    unreadable: int = 0
    size: int | None = None


@dataclass(frozen=True)
class Problem:
    """One thing `validate` found wrong with a store or dataset, at a dotted config path."""

    where: str
    message: str
    unreachable: bool = False


@dataclass(frozen=True)
class Note:
    """One audit entry a batch produces.

    `keys` None means the keys of the batch's intent (already being put in their audit form),
    and their facts; `facts` are those of `keys` otherwise (each record's subject, due time and
    lateness, when the store knows them); `dataset` and `action` default to the batch's (a
    cascade child names its own). A settled batch's note gives instead its keys' `places` among
    the intent's keys (its cascade child's: among that child's keys), so it carries the facts the
    intent recorded (:func:`places`).
    """

    outcome: str  # done | would delete | blocked by object lock | refused | failed | ...
    keys: Sequence[str] | None = None
    detail: str | None = None
    dataset: str | None = None
    action: str | None = None
    count: int | None = None
    facts: Sequence[RecordFacts] = ()
    places: Sequence[int] | None = None


def places(keys: Sequence[object], chosen: Sequence[object]) -> tuple[int, ...]:
    """Where each of `chosen` is among `keys` (an intent's, in its order): what a settled
    batch's :class:`Note` gives so its entry carries the facts its intent recorded."""
    at = {key: index for index, key in enumerate(keys)}
    return tuple(at[key] for key in chosen)


@dataclass(frozen=True)
class BatchResult:
    """What one batch did (or, in a dry run, would do).

    `acted` records were changed (would be); `children` counts cascaded rows per child dataset;
    `kept` counts records the store's own vetoes kept, by label; `failed` counts records the
    store could not act on (they are left for the next run); `notes` are its audit entries —
    already written through the commit point when `audited`; `remarks` are lines for the run's
    summary (a directory that could not be read).
    """

    acted: int = 0
    notes: tuple[Note, ...] = ()
    audited: bool = False
    children: Mapping[str, int] = field(default_factory=dict)
    kept: Mapping[str, int] = field(default_factory=dict)
    failed: Mapping[str, int] = field(default_factory=dict)  # reason (an error code) -> records
    remarks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Intent:
    """What a live batch is about to change, recorded durably before the change is final.

    `keys` are the records' keys in their audit text form (``42``, ``7/3``, an object key);
    `payload` is the store's own JSON to settle the batch after a crash (key tuples, object
    versions); `children` the cascaded rows, likewise; `facts` each key's subject, due time and
    lateness, for its audit entry, and `child_facts` those of each cascade child's rows (by
    dataset, in the order of `children`): the intent keeps them, in the audit's form, so a
    batch settled after an interruption is audited with them.
    """

    rule: str
    dataset: str
    action: str
    keys: Sequence[str]
    payload: str
    children: str = "[]"
    facts: Sequence[RecordFacts] = ()
    child_facts: Mapping[str, Sequence[RecordFacts]] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredIntent:
    """An intent found in the state DB: a batch whose outcome was not audited; `records` the
    facts it kept, in the audit's form (None: written before intents kept them)."""

    id: str
    run_id: str
    rule: str
    dataset: str
    action: str
    payload: str
    children: str
    records: str | None = None


@dataclass(frozen=True)
class Flags:
    """What one rule says about one record (the same predicates a plan counts and a run uses)."""

    scope: bool = True
    due: bool = False
    held: bool = False
    blocked: bool = False
    superseded: bool = False
    done: bool = False
    actionable: bool = False
    overdue: bool = False
    unreadable: bool = False


@dataclass(frozen=True)
class RuleView:
    """One rule's verdict on one record: its flags, when its clock started, and the store's
    own veto if one keeps the record whatever the rule says."""

    rule: Rule
    flags: Flags
    start: dt.datetime | None
    veto: str | None = None


@dataclass(frozen=True)
class Description:
    """One record as `explain` shows it: every rule's view, and the holds that cover it."""

    rules: tuple[RuleView, ...]
    holds: tuple[str, ...]


@dataclass(frozen=True)
class SubjectEvents:
    """One subject's lifecycle events: when each happened (None: not yet, or unreadable), and
    the ones whose stored value is there but is no timestamp."""

    at: Mapping[str, dt.datetime | None]
    unreadable: frozenset[str] = frozenset()


# how a dataset's records reach their subject when it has no subject column of its own: each
# cascade parent upward, with the column of the dataset below that links to the parent's key
SubjectPath = Sequence[tuple[Dataset, str]]


@runtime_checkable
class SubjectRecords(Protocol):
    """A store that can find one subject's records (`retention subject`; SQL, object and lake
    stores). Other stores are reported as unable to attribute their records, never silently
    left out."""

    def subject_records(
        self,
        dataset: Dataset,
        subject: str,
        via: SubjectPath,
        holds: HoldsFile,
        now: dt.datetime,
        subject_type: str | None = None,
    ) -> Iterator[tuple[str, Description]]:
        """Every record of `dataset` belonging to the subject `subject` (canonical id) of
        `subject_type` (None: the dataset's primary one), in key order: its key (text form)
        and every rule's view of it, as :meth:`Store.describe`."""


@dataclass(frozen=True)
class PlacedHold:
    """An S3 legal hold retention placed to mirror its own holds."""

    id: str
    key: str
    version: str | None
    holds: tuple[str, ...] = ()


class CommitPoint(Protocol):
    """The engine's crash-safety commit point, written once for every store."""

    def intend(self, intent: Intent) -> Ticket:
        """Record `intent` durably, fenced on the lease, before the change is made final
        (inside the open data transaction; before an object store's delete request). Raises
        if the lease was lost or the state DB fails: the change must then not be made."""

    def done(self, ticket: Ticket, result: BatchResult) -> None:
        """The change is final: audit `result` (the intent is removed with its entries)."""


class Probe(Protocol):
    """Named points of a run where tests inject faults (:mod:`retention.testing`); a no-op in
    production. Points: ``window`` (a SQL batch's records are chosen), ``write`` (just before a
    batch's change is sent), ``intent`` (its intent is durable, its change not yet final),
    ``audit`` (a batch's audit entry is being written), ``settle`` (an interrupted batch is being
    settled). `intent` is the batch's, where there is one."""

    def reached(self, point: str, intent: Intent | StoredIntent | None = None) -> None: ...


class LegalHoldBook(Protocol):
    """Where the S3 legal holds retention placed are recorded (in the state DB), so that only
    those are ever released, and their placing and release audited."""

    def placed(self, store: str, dataset: str) -> list[PlacedHold]: ...

    def which_placed(self, ids: Sequence[str]) -> set[str]: ...

    def record(self, store: str, dataset: str, holds: Sequence[PlacedHold]) -> None: ...

    def forget(self, ids: Sequence[str]) -> None: ...

    def note(self, dataset: str, action: str, keys: Sequence[str], detail: str) -> None: ...


class SubjectSource(Protocol):
    """A store that holds subject types' lifecycle tables (what object stores read events from,
    and where hold ids are looked up)."""

    def subject_events(
        self, subject: SubjectType, ids: Iterable[str], events: Sequence[str]
    ) -> dict[str, SubjectEvents]:
        """The events of the subjects `ids` (canonical ids), by canonical id; unknown ids are
        absent."""

    def known_subjects(self, subject: SubjectType, ids: Sequence[str]) -> tuple[set[str], bool]:
        """Which of `ids` (canonical) the subject table has, and whether its key is an integer."""


@dataclass(frozen=True)
class Enforcement:
    """What a store needs from the run it acts in."""

    holds: Callable[[], HoldsFile]  # re-read before every batch; raises ConfigError if unusable
    commit: CommitPoint | None  # None: a dry run (same path, stops before the change)
    should_stop: Callable[[], bool]
    batch_size: int  # the cap: windows grow toward it while batches finish within batch_seconds
    probe: Probe
    legal_holds: LegalHoldBook | None = None
    run_id: str = ""  # what a quarantined delete tags its rows with (restore --run)
    batch_seconds: float = 1.0

    @property
    def live(self) -> bool:
        return self.commit is not None


class Store(Protocol):
    """One configured store. Implementations: :mod:`retention.stores.sql`,
    :mod:`retention.stores.objects` (S3, file trees)."""

    name: str
    capabilities: Capabilities

    def check(self, datasets: Sequence[Dataset]) -> list[Problem]:
        """Reach the store and check what config says of `datasets` against it (`validate`)."""

    def plan(self, targets: Sequence[Target], holds: HoldsFile, samples: int) -> list[Counts]:
        """The counts of each target (in order), changing nothing. Raises StoreError."""

    def records(self, targets: Sequence[Target], holds: HoldsFile) -> Counts:
        """The records of one dataset that `targets` (rules of that dataset, one moment) cover,
        each counted once however many of the rules match it (the plan's totals): in scope,
        due for a delete or anonymize rule, held or blocked for one, acted on by one, overdue
        for one that acts, unreadable. Raises StoreError."""

    def tally(
        self, target: Target, holds: HoldsFile, *, size: bool, unreadable: bool = True
    ) -> Tally:
        """What `target` would act on now (circuit breakers, lingering after a run); with
        `size` the dataset's size too, with `unreadable` the records whose clock is unreadable
        (each a count of its own: asked only when needed)."""

    def enforce(self, target: Target, run: Enforcement) -> Iterator[BatchResult]:
        """Act on `target` batch by batch, re-checking every record at the moment of action;
        in a dry run (no commit point) only say what would be done. Raises StoreError (and
        ForeignKeyRefused) when it cannot go on; batches already yielded are final."""

    def settle(self, intent: StoredIntent, dataset: Dataset, rule: Rule | None) -> BatchResult:
        """What an interrupted batch of `dataset` really changed, judged from the data
        (recovery); `rule` None when the rule is no longer configured."""

    def purge_quarantine(
        self, dataset: Dataset, now: dt.datetime, run: Enforcement
    ) -> Iterator[BatchResult]:
        """Remove for good what a quarantined `dataset` (``quarantine:``) kept of its deleted
        records whose restore window ended by `now`, batch by batch through the commit point
        (a dry run only says what it would purge)."""

    def quarantined(self, dataset: Dataset) -> list[Quarantined]:
        """What a quarantined `dataset` keeps in quarantine now (its cascade children each
        in a row of their own), for the plan."""

    def replay(
        self, target: Target, recorded: KeyMatcher, run: Enforcement
    ) -> Iterator[BatchResult]:
        """Apply `target`'s action again to the records whose keys `recorded` names (after a
        backup restore brought them back), batch by batch through the commit point; never to
        a record a hold or a keep rule protects now."""

    def restore(
        self,
        dataset: Dataset,
        run_id: str,
        rule: str | None,
        now: dt.datetime,
        run: Enforcement,
    ) -> Iterator[BatchResult]:
        """Put back what run `run_id` (its rule `rule`, when given) deleted from a
        quarantined `dataset` and its window still keeps at `now`, batch by batch through the commit
        point; a record whose key exists again is reported, never overwritten."""

    def describe(
        self, dataset: Dataset, key: str, holds: HoldsFile, now: dt.datetime
    ) -> Description:
        """Every rule's view of one record (`explain`); RecordNotFound when it is not there."""

    def covered(self, dataset: Dataset, hold: Hold) -> int:
        """How many records of `dataset` the subject scope of `hold` covers (`holds`)."""

    def close(self) -> None:
        """Release connections and threads."""


__all__ = [
    "CONFLICT",
    "PURGE",
    "RESTORE",
    "BatchResult",
    "Capabilities",
    "CommitPoint",
    "Counts",
    "Description",
    "Enforcement",
    "Flags",
    "Intent",
    "KeyMatcher",
    "LegalHoldBook",
    "Note",
    "PlacedHold",
    "Probe",
    "Problem",
    "Quarantined",
    "RecordFacts",
    "RuleView",
    "Stopped",
    "Store",
    "StoredIntent",
    "SubjectEvents",
    "SubjectPath",
    "SubjectRecords",
    "SubjectSource",
    "Tally",
    "Target",
    "Ticket",
    "places",
]
