"""`retention explain DATASET KEY`: every rule that touches one record, and the verdict.

The record's store judges it with the same predicates a plan counts and a run repeats
(:meth:`~retention.stores.base.Store.describe`), so `explain` cannot disagree with a run; here
those views become a status per rule and one verdict, with due dates in the configured zone. A
record that is gone is looked up in the audit log (:mod:`retention.disposals`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from .config import Config
from .datasets import Dataset
from .disposals import Disposal, disposal
from .durations import Duration
from .errors import ConfigError, RecordNotFound
from .holds import HoldsFile
from .rules import Rule
from .stores import Stores
from .stores.base import Flags, RuleView, Store


@dataclass(frozen=True)
class RuleVerdict:
    """What one rule says about the record."""

    rule: str
    action: str
    status: str
    clock: str
    clock_start: dt.datetime | None = None
    due_at: dt.datetime | None = None
    overdue_at: dt.datetime | None = None
    subject: str | None = None  # the one of several subjects the rule read: ``user (user_id)``

    def as_dict(self) -> dict[str, Any]:
        def iso(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "rule": self.rule,
            "action": self.action,
            "status": self.status,
            "clock": self.clock,
            "clock_start": iso(self.clock_start),
            "due_at": iso(self.due_at),
            "overdue_at": iso(self.overdue_at),
            "subject": self.subject,
        }


@dataclass(frozen=True)
class Explanation:
    dataset: str
    key: str
    now: dt.datetime
    verdict: str
    rules: tuple[RuleVerdict, ...]
    holds: tuple[str, ...] = field(default=())
    deleted: Disposal | None = None  # the record is gone: the audit entry that deleted it

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "key": self.key,
            "now": self.now.isoformat(),
            "verdict": self.verdict,
            "holds": list(self.holds),
            "rules": [r.as_dict() for r in self.rules],
            "deleted": self.deleted.as_dict() if self.deleted else None,
        }


# the status of a rule whose clock is there but is no timestamp ('yesterday', a tag "soon")
UNREADABLE = "unreadable clock"


def explain(
    config: Config,
    dataset: str,
    key: str,
    now: dt.datetime,
    *,
    holds: HoldsFile | None = None,
    stores: Mapping[str, Store] | None = None,
) -> Explanation:
    """Explain the fate of record `key` (``a/b`` for composite keys) in `dataset`."""
    if dataset not in config.settings.datasets:
        raise ConfigError(f"unknown dataset {dataset!r}", field="DATASET")
    resolved = config.datasets[dataset]
    zone = config.settings.zone()
    holds = (config.load_holds() if holds is None else holds).as_of(now, zone)
    with Stores(config.settings, stores) as opened:
        store = opened[resolved.store]
        try:
            description = store.describe(resolved, key, holds, now)
        except RecordNotFound:
            gone = disposal(config, dataset, key)
            if gone is None:
                raise
            verdict = (
                f"deleted on {_in_zone(gone.at, zone)} by run {gone.run_id} under rule "
                f"{gone.rule} (audit entry {gone.seq})"
            )
            if gone.due is not None:
                verdict += f"; due since {_in_zone(gone.due, zone)}, " + (
                    f"late by {_span(gone.late_seconds)}" if gone.late_seconds else "on time"
                )
            return Explanation(dataset, key, now, verdict, (), deleted=gone)
    label = store.capabilities.veto_label
    verdicts = []
    for view in description.rules:
        rule = view.rule
        status = _status(rule, view.flags, view.start)
        if view.veto is not None:
            status = f"{label}: {view.veto}"
        verdicts.append(
            RuleVerdict(
                rule=rule.id,
                action=rule.action,
                status=status,
                clock=str(rule.after),
                clock_start=view.start,
                due_at=_after(resolved, rule, view.start, rule.delay),
                overdue_at=_deadline(resolved, view, description.rules),
                subject=_subject_read(resolved, rule),
            )
        )
    verdict = _verdict(verdicts, description.holds, holds.freeze, zone)
    stuck = [v for v in verdicts if v.status.startswith(f"{label}:")]
    if stuck and not any(v.status in ("due", "overdue") for v in verdicts):
        verdict = f"{stuck[0].status}: rule {stuck[0].rule} would otherwise delete it"
    return Explanation(
        dataset=dataset,
        key=key,
        now=now,
        verdict=verdict,
        rules=tuple(verdicts),
        holds=description.holds,
    )


def _subject_read(dataset: Dataset, rule: Rule) -> str | None:
    """The subject `rule` reads on `dataset` (type and column), when it reads one of several."""
    ref = dataset.subject_of(rule) if rule.reads_subject and len(dataset.subjects) > 1 else None
    return str(ref) if ref is not None else None


def _after(
    dataset: Dataset, rule: Rule, start: dt.datetime | None, delay: Duration
) -> dt.datetime | None:
    """`start` + `delay`, or None when the clock has not started or the sum is past year 9999
    (a stored clock far in the future: never due)."""
    if start is None:
        return None
    try:
        return dataset.due_at(rule.after, start, delay)
    except (OverflowError, ValueError):
        return None


def _deadline(dataset: Dataset, view: RuleView, views: tuple[RuleView, ...]) -> dt.datetime | None:
    """When the record becomes overdue for `view`'s rule: `within` after it is due and after
    every keep rule covering it ran out (None: no deadline, or a keep that never ends)."""
    rule = view.rule
    if rule.within is None:
        return None
    moments = [_after(dataset, rule, view.start, rule.delay + rule.within)]
    if rule.destructive:
        moments += [
            _after(dataset, keep.rule, keep.start, keep.rule.delay + rule.within)
            for keep in views
            if keep.rule.action == "keep" and keep.flags.scope
        ]
    known = [m for m in moments if m is not None]
    return max(known) if len(known) == len(moments) else None


def _status(rule: Rule, flags: Flags, start: dt.datetime | None) -> str:
    if not flags.scope:
        if rule.asserts_absent and not rule.where:
            return "absent, as it must be"
        return "not covered (where filter)"
    if rule.asserts_absent and rule.action == "keep":
        return "present: must never be stored"
    if flags.unreadable:  # a clock it needs holds no timestamp: never acted on
        return UNREADABLE
    if start is None and not flags.due:
        return "clock not started"
    if not flags.due:
        return "keeping" if rule.action == "keep" else "not yet due"
    if rule.action == "keep":
        return "keep period over"
    for name, text in (
        ("held", "held"),
        ("blocked", "blocked by a keep rule"),
        ("superseded", "superseded by a delete rule"),
        ("done", "already anonymized"),
        ("overdue", "overdue"),
        ("actionable", "due"),
    ):
        if getattr(flags, name):
            return text
    return "due"


def _verdict(
    verdicts: list[RuleVerdict], covering: tuple[str, ...], freeze: bool, zone: ZoneInfo
) -> str:
    def _day(value: dt.datetime | None) -> str:
        return _in_zone(value, zone)

    if not verdicts:
        return "no rule applies to this record: it is kept"
    acting = [v for v in verdicts if v.status in ("due", "overdue")]
    deletes = [v for v in acting if v.action == "delete"]
    if deletes:
        first = deletes[0]
        return f"due for deletion by rule {first.rule} since {_day(first.due_at)}" + (
            " (overdue)" if first.status == "overdue" else ""
        )
    if acting:
        first = acting[0]
        return f"due for anonymization by rule {first.rule} since {_day(first.due_at)}"
    held = [v for v in verdicts if v.status == "held"]
    if held:
        reason = "freeze" if freeze else ", ".join(covering) or "a hold"
        return f"held by {reason}: rule {held[0].rule} would otherwise act"
    blocked = [v for v in verdicts if v.status == "blocked by a keep rule"]
    keeps = [
        v
        for v in verdicts
        if v.action == "keep" and v.status in ("keeping", "clock not started", UNREADABLE)
    ]
    if blocked:
        until = max((v.due_at for v in keeps if v.due_at), default=None)
        names = ", ".join(v.rule for v in keeps)
        return f"kept by {names}" + (f" until {_day(until)}" if until else "")
    upcoming = sorted(
        (v for v in verdicts if v.action != "keep" and v.status == "not yet due" and v.due_at),
        key=lambda v: v.due_at or dt.datetime.max.replace(tzinfo=dt.UTC),
    )
    if upcoming:
        first = upcoming[0]
        verb = "deleted" if first.action == "delete" else "anonymized"
        keep_until = max((v.due_at for v in keeps if v.due_at), default=None)
        when = max(first.due_at, keep_until) if keep_until and first.due_at else first.due_at
        return f"will be {verb} on {_day(when)} by rule {first.rule}"
    if any(v.status == "already anonymized" for v in verdicts):
        return "already anonymized; nothing left to do"
    unreadable = [v.rule for v in verdicts if v.status == UNREADABLE]
    if unreadable:
        return (
            f"unreadable clock: rule {unreadable[0]} never acts on this record until the "
            "timestamp it needs is fixed"
        )
    return "no rule will act on this record yet (its clocks have not started)"


def _span(seconds: int) -> str:
    """A lateness as days (or hours, under a day)."""
    days, rest = divmod(seconds, 86400)
    return f"{days} day{'s' * (days != 1)}" if days else f"{rest // 3600} h"


def _in_zone(value: dt.datetime | None, zone: ZoneInfo) -> str:
    """A moment as the configured zone's wall time, e.g. ``2027-03-01 00:00:00 CET``."""
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z") if value else "unknown"
