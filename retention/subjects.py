"""`retention subject TYPE ID`: everything retention governs about one person or account.

Per dataset: how many of the subject's records there are now and, in groups, which rule
governs them, when they are (or were) due, and what stands in the way (a hold, a keep rule, a
clock not yet started); and the history: the live audit entries that acted on the subject's
records, found through the subject id in the log's form (its HMAC under ``audit.keys: hmac``)
in each entry's per-record facts, so the state DB never needs the plain id. A cascade child's
entry carries its parents' facts, so it is credited with the subject's rows in it; one written
before entries had facts is credited through its parent's entry in the same batch.

Records are judged by their store with the same predicates a plan counts and a run repeats
(:class:`~retention.stores.base.SubjectRecords`). A dataset whose records cannot be attributed
to a subject (no subject column and no cascade parent with one, another subject type, a store
that cannot look records up by subject) is named with the reason, never left out.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .audit import AuditEntry, AuditLog
from .config import Config
from .datasets import Dataset, SubjectType
from .errors import ConfigError, StoreError
from .holds import HoldsFile
from .ids import canonical_id
from .statedb import open_state
from .stores import Stores
from .stores.base import Description, RuleView, Store, SubjectRecords

# What became of a group of records, in the order a reader cares about.
DUE, HELD, KEPT, PENDING, WAITING, UNREADABLE, ANONYMIZED, NO_RULE = (
    "due now",
    "held",
    "kept by a keep rule",
    "not yet due",
    "clock not started",
    "unreadable clock",
    "anonymized",
    "no rule removes it",
)
ACTED = frozenset({"delete", "anonymize", "delete (cascade)"})


@dataclass(frozen=True)
class Group:
    """Records of one dataset with the same fate: the rule that governs them, what stands in
    the way, and the span of the moments that matter (due, or kept until)."""

    state: str
    rule: str | None
    records: int
    holds: tuple[str, ...] = ()
    keep_rules: tuple[str, ...] = ()
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    overdue: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "rule": self.rule,
            "records": self.records,
            "holds": list(self.holds),
            "keep_rules": list(self.keep_rules),
            "from": _iso(self.first),
            "to": _iso(self.last),
            "overdue": self.overdue,
        }


@dataclass(frozen=True)
class Acted:
    """One live audit entry that acted on the subject's records."""

    seq: int
    hash: str
    run_id: str
    at: str
    rule: str | None
    dataset: str
    action: str
    records: int | None  # the subject's records in it (None: an old cascade entry, not counted)
    cascade_of: int | None = None  # a cascade child's entry: the parent entry it went with
    late: int | None = None  # of those, acted on after their deadline (None: not counted)
    late_by: int | None = None  # the most late of them was, in seconds (None: none late)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "hash": self.hash,
            "run_id": self.run_id,
            "at": self.at,
            "rule": self.rule,
            "dataset": self.dataset,
            "action": self.action,
            "records": self.records,
            "cascade_of": self.cascade_of,
            "late": self.late,
            "late_by": self.late_by,
        }


@dataclass(frozen=True)
class DatasetView:
    """One dataset's records of the subject now, and what the audit log says was done."""

    dataset: str
    store: str
    via: str
    records: int
    groups: tuple[Group, ...] = ()
    history: tuple[Acted, ...] = ()
    restorable_for: str | None = None  # `quarantine:`: deleted rows are kept this long

    @property
    def due(self) -> int:
        return sum(g.records for g in self.groups if g.state == DUE)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "store": self.store,
            "via": self.via,
            "records": self.records,
            "due": self.due,
            "groups": [g.as_dict() for g in self.groups],
            "history": [a.as_dict() for a in self.history],
            "restorable_for": self.restorable_for,
        }


@dataclass(frozen=True)
class Unattributed:
    """A dataset whose records cannot be told apart by subject, and why."""

    dataset: str
    store: str
    reason: str
    failed: bool = False  # it could have been attributed, but its store failed: nothing known

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "store": self.store,
            "reason": self.reason,
            "failed": self.failed,
        }


@dataclass(frozen=True)
class SubjectReport:
    """Everything `retention subject` found about one subject at `now`."""

    subject_type: str
    subject_id: str
    digest: str | None  # the id as the audit log keeps it (None: `audit.keys: none`)
    now: dt.datetime
    datasets: tuple[DatasetView, ...]
    unattributed: tuple[Unattributed, ...] = ()
    audit_head: tuple[int, str] = (0, "0" * 64)
    notes: tuple[str, ...] = field(default=())

    @property
    def due(self) -> int:
        """Records a run would act on now: zero once everything due is done."""
        return sum(d.due for d in self.datasets)

    @property
    def nothing_due(self) -> bool:
        """Nothing of the subject is due now, in every dataset that could be read."""
        return self.due == 0 and not any(u.failed for u in self.unattributed)

    def held(self) -> tuple[DatasetView, ...]:
        """The datasets that hold or held the subject's records."""
        return tuple(d for d in self.datasets if d.records or d.history)

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": {"type": self.subject_type, "id": self.subject_id, "digest": self.digest},
            "now": self.now.isoformat(),
            "records": sum(d.records for d in self.datasets),
            "due": self.due,
            "nothing_due": self.nothing_due,
            "datasets": [d.as_dict() for d in self.datasets],
            "unattributed": [u.as_dict() for u in self.unattributed],
            "audit_head": {"seq": self.audit_head[0], "hash": self.audit_head[1]},
            "notes": list(self.notes),
        }


def lookup(
    config: Config,
    subject_type: str,
    subject_id: str,
    now: dt.datetime,
    *,
    holds: HoldsFile | None = None,
    stores: Mapping[str, Store] | None = None,
) -> SubjectReport:
    """What retention governs about subject `subject_id` of `subject_type`, as of `now`."""
    settings = config.settings
    if subject_type not in settings.subjects:
        known = ", ".join(settings.subjects) or "none configured"
        raise ConfigError(f"unknown subject type {subject_type!r} ({known})", field="TYPE")
    subject = canonical_id(subject_id)
    holds = (config.load_holds() if holds is None else holds).as_of(now, settings.zone())
    engine = open_state(settings.state_db.get_secret_value())
    try:
        log = AuditLog.from_settings(engine, settings)
        try:
            digest = log.subject_digest(subject) if log.key_mode != "none" else None
            history = _history(log, digest)
            head = log.head()
        finally:
            log.close()
    finally:
        engine.dispose()
    views: list[DatasetView] = []
    unattributed: list[Unattributed] = []
    notes = []
    with Stores(settings, stores) as opened:
        kind = SubjectType(subject_type, settings.subjects[subject_type], settings.zone())
        try:
            present, _ = opened.subjects(kind).known_subjects(kind, [subject])
        except StoreError as exc:
            notes.append(f"could not look {subject_type} {subject} up in its table: {exc}")
        else:
            if subject not in present:
                notes.append(
                    f"{kind.config.table} has no {subject_type} {subject} (now): only records "
                    "that still name it, and the audit log, can say anything of it"
                )
        for dataset in config.datasets.values():
            via, reason = _path(config.datasets, dataset, subject_type)
            store = opened[dataset.store] if reason is None else None
            if store is not None and not isinstance(store, SubjectRecords):
                reason = f"a {dataset.kind} store cannot look its records up by subject"
            if reason is not None or store is None:
                unattributed.append(Unattributed(dataset.name, dataset.store, reason or ""))
                continue
            assert isinstance(store, SubjectRecords)
            try:
                found = store.subject_records(dataset, subject, via, holds, now, subject_type)
                count, groups = _groups(dataset, found, holds.freeze)
            except StoreError as exc:
                reason = f"its store could not be read: {exc}"
                unattributed.append(Unattributed(dataset.name, dataset.store, reason, True))
                continue
            column = dataset.column_of(subject_type)
            how = (
                "cascade from " + " → ".join(f"{p.name} ({c})" for p, c in via)
                if via
                else f"subject column {column}"
                if column is not None
                else "subject in its object key"
            )
            acted = tuple(history.get(dataset.name, ()))
            window = dataset.config.quarantine
            restorable = str(window) if window is not None else None
            views.append(
                DatasetView(dataset.name, dataset.store, how, count, groups, acted, restorable)
            )
    if digest is None:
        notes.append("audit.keys is none: the audit log keeps no subjects, so it has no history")
    return SubjectReport(
        subject_type, subject, digest, now, tuple(views), tuple(unattributed), head, tuple(notes)
    )


def _path(
    datasets: Mapping[str, Dataset], dataset: Dataset, subject_type: str
) -> tuple[list[tuple[Dataset, str]], str | None]:
    """How `dataset`'s records reach a subject of `subject_type`: ([], None) by its own column,
    the cascade parents upward, or a reason they cannot be attributed."""
    if dataset.subjects:
        ref = next((r for r in dataset.subjects if r.name == subject_type), None)
        if ref is None:
            names = " and ".join(r.name for r in dataset.subjects)
            return [], f"its records belong to subject type {names}"
        return [], None
    for parent in datasets.values():
        for child in parent.cascade:
            if child.dataset.name != dataset.name or parent.store != dataset.store:
                continue
            above, reason = _path(datasets, parent, subject_type)
            if reason is None:
                return [(parent, child.column), *above], None
    return [], "its records name no subject (no subject column, no cascade parent with one)"


def _history(log: AuditLog, digest: str | None) -> dict[str, list[Acted]]:
    """The live entries that acted on records of the subject whose log form is `digest`, by
    dataset; a cascade child's entries are credited through their parent's entry."""
    found: dict[str, list[Acted]] = {}
    if digest is None:
        return found
    needle = json.dumps(digest)
    children: list[AuditEntry] = []  # cascade entries waiting for their parent's entry
    for entry in log.entries():
        if entry.dry_run or entry.outcome != "done" or entry.action not in ACTED:
            children = []
            continue
        if entry.action == "delete (cascade)":
            children.append(entry)
            continue
        count = _count(entry, digest, needle)
        if entry.dataset:
            for child in children:
                # its parent's: the entries of one batch, cascaded rows first (a settled
                # batch's say so alike)
                ours = child.detail in (f"children of {entry.dataset}", entry.detail)
                if child.run_id != entry.run_id or not ours:
                    continue
                if child.records is not None:  # its own facts say whose rows went
                    own = _count(child, digest, needle)
                    if own:
                        found.setdefault(child.dataset or "", []).append(
                            _acted(child, own, digest, cascade_of=entry.seq)
                        )
                elif count:
                    found.setdefault(child.dataset or "", []).append(
                        _acted(child, None, digest, cascade_of=entry.seq)
                    )
            if count:
                found.setdefault(entry.dataset, []).append(_acted(entry, count, digest))
        children = []
    return found


def _count(entry: AuditEntry, digest: str, needle: str) -> int:
    """:func:`subject_count`, skipped (0) when the subject's form is nowhere in the entry."""
    return subject_count(entry, digest) if entry.records and needle in entry.records else 0


def subject_lateness(entry: AuditEntry, digest: str) -> tuple[int, int | None]:
    """How many of the subject's records in `entry` were acted on after their deadline, and
    by how many seconds the latest of them was (None: none was late)."""
    lates = [late for subject, _, late in entry.facts() if subject == digest and late is not None]
    return len(lates), max(lates, default=None)


def subject_count(entry: AuditEntry, digest: str) -> int:
    """How many of the records `entry` acted on belong to the subject whose log form is
    `digest` (its per-record facts)."""
    return sum(1 for subject, _, _ in entry.facts() if subject == digest)


def _acted(
    entry: AuditEntry, records: int | None, digest: str, cascade_of: int | None = None
) -> Acted:
    late, late_by = subject_lateness(entry, digest) if records is not None else (None, None)
    return Acted(
        entry.seq,
        entry.hash,
        entry.run_id,
        entry.at,
        entry.rule,
        entry.dataset or "",
        entry.action,
        records,
        cascade_of,
        late,
        late_by,
    )


def _groups(
    dataset: Dataset, found: Iterable[tuple[str, Description]], freeze: bool
) -> tuple[int, tuple[Group, ...]]:
    """The subject's records of `dataset` counted, and grouped by fate (streamed: memory per
    group, not per record)."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    count = 0
    for _key, description in found:
        count += 1
        state, rule, holds, keeps, moment, overdue = _fate(dataset, description, freeze)
        group = groups.setdefault((state, rule, holds, keeps), [0, None, None, 0])
        group[0] += 1
        if moment is not None:
            group[1] = moment if group[1] is None else min(group[1], moment)
            group[2] = moment if group[2] is None else max(group[2], moment)
        group[3] += overdue
    order = (DUE, HELD, KEPT, PENDING, WAITING, UNREADABLE, ANONYMIZED, NO_RULE)
    made = [
        Group(state, rule, n, holds, keeps, first, last, overdue)
        for (state, rule, holds, keeps), (n, first, last, overdue) in groups.items()
    ]
    made.sort(key=lambda g: (order.index(g.state), g.rule or "", g.holds, g.keep_rules))
    return count, tuple(made)


def _fate(
    dataset: Dataset, description: Description, freeze: bool
) -> tuple[str, str | None, tuple[str, ...], tuple[str, ...], dt.datetime | None, int]:
    """One record's (state, rule, holds, keep rules, moment, overdue) from its rules' views."""
    views = description.rules
    acting = [v for v in views if v.rule.destructive]
    keeping = [
        v for v in views if v.rule.action == "keep" and not v.rule.asserts_absent and v.flags.scope
    ]
    blocking = [v for v in keeping if not v.flags.due]
    keep_ids = tuple(v.rule.id for v in blocking)
    until = max((m for m in (_due(dataset, v) for v in blocking) if m), default=None)
    now_due = [v for v in acting if v.flags.actionable]
    if now_due:
        first = min(now_due, key=lambda v: v.rule.action != "delete")
        return DUE, first.rule.id, (), (), _due(dataset, first), int(first.flags.overdue)
    held = [v for v in acting if v.flags.due and v.flags.held]
    if held:
        reason = description.holds or (("freeze",) if freeze else ())
        return HELD, held[0].rule.id, reason, (), _due(dataset, held[0]), 0
    blocked = [v for v in acting if v.flags.due and v.flags.blocked]
    if blocked:
        return KEPT, blocked[0].rule.id, (), keep_ids, until, 0
    pending = [
        v for v in acting if v.flags.scope and not v.flags.due and v.start and not v.flags.done
    ]
    if pending:
        first = min(
            pending, key=lambda v: _due(dataset, v) or dt.datetime.max.replace(tzinfo=dt.UTC)
        )
        moment = _due(dataset, first)
        if moment is not None and until is not None:
            moment = max(moment, until)
        return PENDING, first.rule.id, (), keep_ids, moment, 0
    unreadable = [v for v in acting if v.flags.unreadable]
    if unreadable:
        return UNREADABLE, unreadable[0].rule.id, (), (), None, 0
    waiting = [v for v in acting if v.flags.scope and v.start is None and not v.flags.done]
    if waiting:
        return WAITING, waiting[0].rule.id, (), keep_ids, None, 0
    done = [v for v in acting if v.flags.done]
    if done:
        return ANONYMIZED, done[0].rule.id, (), (), None, 0
    return NO_RULE, None, (), keep_ids, until, 0


def _due(dataset: Dataset, view: RuleView) -> dt.datetime | None:
    """When `view`'s rule is (was) due for the record, None when its clock has not started."""
    if view.start is None:
        return None
    try:
        return dataset.due_at(view.rule.after, view.start, view.rule.delay)
    except (OverflowError, ValueError):
        return None


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value else None


__all__ = [
    "ACTED",
    "Acted",
    "DatasetView",
    "Group",
    "SubjectReport",
    "Unattributed",
    "lookup",
    "subject_count",
    "subject_lateness",
]
