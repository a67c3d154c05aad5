"""The plan: what a run would do, per rule and dataset, computed without changing anything.

For every rule × dataset the planner asks the store one set-based COUNT per question: how many
records the rule covers, how many are due, held, blocked by a keep rule, superseded by a delete,
already anonymized, to be acted on, overdue, and how many are never acted on because a clock they
need holds a value that is no timestamp (``unreadable``). A store that cannot be reached is
reported and its rules skipped; the others are still planned. Hold ids that match no subject
are reported as warnings (:mod:`retention.holdcheck`), and so are the rules a live run would
refuse for a circuit breaker (:mod:`retention.breakers`), counted as the run would count them.
The totals count records, not rule matches: each dataset's records once across its rules
(:meth:`Store.records`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .approvals import check_approval, needs_size
from .breakers import check_breakers
from .config import Config
from .datasets import Dataset
from .errors import (
    ApprovalRequired,
    CircuitBreakerTripped,
    ConfigError,
    StoreError,
    StoreMisconfigured,
)
from .holdcheck import HoldWarning, unmatched_hold_ids
from .holds import HoldsFile
from .rules import Rule
from .stores import Stores
from .stores.base import Counts, Quarantined, Store, Tally, Target

SAMPLE_KEYS = 5


@dataclass(frozen=True, kw_only=True)
class RulePlan(Counts):
    """The numbers for one rule on one dataset (:class:`~retention.stores.base.Counts`), and
    which rule, dataset and store they are of."""

    rule: str
    dataset: str
    store: str
    action: str
    asserts_absent: bool = False  # `action: assert_absent`: `action` is what it does then
    # on a dataset with several subjects: the one the rule read (``user (user_id)``)
    subject: str | None = None

    @classmethod
    def of(cls, target: Target, counts: Counts) -> RulePlan:
        """The plan row of `target` from its store's counts."""
        fields = {f.name: getattr(counts, f.name) for f in dataclasses.fields(Counts)}
        return cls(
            rule=target.rule.id,
            dataset=target.dataset.name,
            store=target.dataset.store,
            action=target.rule.action,
            asserts_absent=target.rule.asserts_absent,
            subject=_subject_read(target.dataset, target.rule),
            **fields,
        )

    @property
    def violations(self) -> int:
        """assert_absent: the records holding what must be absent (none for other rules)."""
        return self.due - self.done if self.asserts_absent else 0

    @property
    def pending(self) -> int:
        """Covered by the rule but not yet due (or whose clock has not started, or is
        unreadable: those are also counted in :attr:`unreadable`)."""
        return self.in_scope - self.due

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "dataset": self.dataset,
            "store": self.store,
            "action": self.action,
            "in_scope": self.in_scope,
            "due": self.due,
            "held": self.held,
            "blocked": self.blocked,
            "superseded": self.superseded,
            "already_done": self.done,
            "to_act": self.actionable,
            "overdue": self.overdue,
            "not_yet_due": self.pending,
            "unreadable": self.unreadable,
            "sample_keys": list(self.samples),
            **(
                {"assert_absent": True, "violations": self.violations}
                if self.asserts_absent
                else {}
            ),
            **({"subject": self.subject} if self.subject is not None else {}),
            **self.extra,
        }


def _subject_read(dataset: Dataset, rule: Rule) -> str | None:
    """The subject `rule` reads on `dataset` when the dataset has several to choose from."""
    ref = dataset.subject_of(rule) if rule.reads_subject and len(dataset.subjects) > 1 else None
    return str(ref) if ref is not None else None


@dataclass(frozen=True)
class Skipped:
    """A store that could not be planned, and the rules that were skipped with it."""

    store: str
    message: str
    rules: tuple[str, ...]
    unreachable: bool = True


@dataclass(frozen=True)
class DatasetRecords:
    """The records of one dataset counted once across its planned rules (a record two rules
    match is one record): what the plan's totals add up."""

    dataset: str
    store: str
    counts: Counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "store": self.store,
            **{key: getattr(self.counts, attr) for key, attr in TOTALS},
        }


# the plan's totals: key in --json → field of Counts
TOTALS = (
    ("due", "due"),
    ("held", "held"),
    ("blocked", "blocked"),
    ("to_act", "actionable"),
    ("overdue", "overdue"),
    ("unreadable", "unreadable"),
)


@dataclass(frozen=True)
class Refusal:
    """A rule × dataset a live run would refuse now, and why: a circuit breaker it would trip
    (``limits``; refused unless forced), or an approval it waits for (:mod:`.approvals`)."""

    rule: str
    dataset: str
    message: str


@dataclass(frozen=True)
class Plan:
    """A whole dry run."""

    now: dt.datetime
    freeze: bool
    rules: tuple[RulePlan, ...]
    skipped: tuple[Skipped, ...] = ()
    holds_in_force: tuple[str, ...] = field(default=())
    # holds in force that expire, and the moment each is released (`expires_on`)
    holds_ending: tuple[tuple[str, dt.datetime], ...] = field(default=())
    holds_expired: tuple[str, ...] = field(default=())  # marked active, released by expiry
    warnings: tuple[HoldWarning, ...] = ()  # hold ids that match no subject
    records: tuple[DatasetRecords, ...] = ()
    breakers: tuple[Refusal, ...] = ()  # rules a run would refuse (limits)
    approvals: tuple[Refusal, ...] = ()  # rules a live run would wait for an approval for
    quarantine: tuple[Quarantined, ...] = ()  # what quarantined datasets keep, restorable

    @property
    def violations(self) -> tuple[RulePlan, ...]:
        """The assert_absent rows that found what must be absent."""
        return tuple(r for r in self.rules if r.violations)

    def totals(self) -> dict[str, int]:
        """Distinct records over every planned dataset: due (for a delete or anonymize rule),
        held, blocked, to act on, overdue, unreadable."""
        return {key: sum(getattr(r.counts, attr) for r in self.records) for key, attr in TOTALS}

    def matches(self) -> dict[str, int]:
        """The same numbers as rule matches: the sum of the rule rows (a record that two rules
        match counts twice)."""
        return {key: sum(getattr(r, attr) for r in self.rules) for key, attr in TOTALS}

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "freeze": self.freeze,
            "holds_in_force": list(self.holds_in_force),
            "holds_ending": [
                {"hold": hold, "released_at": ends.isoformat()} for hold, ends in self.holds_ending
            ],
            "holds_expired": list(self.holds_expired),
            "warnings": [w.as_dict() for w in self.warnings],
            "breakers": [dataclasses.asdict(b) for b in self.breakers],
            "approvals": [dataclasses.asdict(a) for a in self.approvals],
            "rules": [r.as_dict() for r in self.rules],
            "skipped": [
                {"store": s.store, "message": s.message, "rules": list(s.rules)}
                for s in self.skipped
            ],
            "totals": self.totals(),
            "rule_matches": self.matches(),
            "datasets": [r.as_dict() for r in self.records],
            "quarantine": [q.as_dict() for q in self.quarantine],
        }


def rule_targets(
    config: Config, rule_ids: Iterable[str] = (), datasets: Iterable[str] = ()
) -> list[tuple[Rule, str]]:
    """Every (rule, dataset) pair in config order, optionally filtered."""
    wanted_rules, wanted_datasets = set(rule_ids), set(datasets)
    pairs = []
    for rule in config.rules:
        if wanted_rules and rule.id not in wanted_rules:
            continue
        for dataset in config.datasets_for(rule):
            if wanted_datasets and dataset not in wanted_datasets:
                continue
            pairs.append((rule, dataset))
    return pairs


def targets(
    config: Config, now: dt.datetime, rule_ids: Iterable[str] = (), datasets: Iterable[str] = ()
) -> list[Target]:
    """Every rule × dataset as a Target evaluated as of `now`, in config order, filtered."""
    resolved = config.datasets
    return [
        Target(rule, resolved[name], now) for rule, name in rule_targets(config, rule_ids, datasets)
    ]


def _records_alone(rule: Rule, counts: Counts) -> Counts:
    """The distinct records of a dataset `rule` governs alone: its own counts (no other rule
    can supersede, block or share them; a keep rule's due records are nobody's to act on),
    without asking the store again."""
    return Counts.of_records(
        {
            "in_scope": counts.in_scope,
            "due": counts.due if rule.action != "keep" else 0,
            "held": counts.held,
            "blocked": counts.blocked,
            "actionable": counts.actionable,
            "overdue": counts.overdue,
            "unreadable": counts.unreadable,
        }
    )


def make_plan(
    config: Config,
    now: dt.datetime,
    *,
    rule_ids: Iterable[str] = (),
    datasets: Iterable[str] = (),
    samples: int = SAMPLE_KEYS,
    holds: HoldsFile | None = None,
    stores: Mapping[str, Store] | None = None,
    progress: Callable[[Rule, str], None] | None = None,
) -> Plan:
    """Plan every selected rule × dataset as of `now` (an aware datetime)."""
    holds = (config.load_holds() if holds is None else holds).as_of(now, config.settings.zone())
    results: list[RulePlan] = []
    planned: dict[str, list[Target]] = {}
    alone: dict[str, tuple[Rule, Counts]] = {}  # a dataset's last planned rule (_records_alone)
    breakers: list[Refusal] = []
    approvals: list[Refusal] = []
    actions = 0
    failed: dict[str, tuple[str, list[str], bool]] = {}
    with Stores(config.settings, stores) as opened:
        for target in targets(config, now, rule_ids, datasets):
            name = target.dataset.store
            if name in failed:
                failed[name][1].append(target.rule.id)
                continue
            if progress is not None:
                progress(target.rule, target.dataset.name)
            try:
                (counts,) = opened[name].plan([target], holds, samples)
            except StoreError as exc:
                failed[name] = (str(exc), [target.rule.id], not isinstance(exc, StoreMisconfigured))
                continue
            results.append(RulePlan.of(target, counts))
            alone[target.dataset.name] = (target.rule, counts)
            if target.rule.destructive and counts.actionable:
                tripped = _breaker(config, opened[name], target, holds, counts, actions)
                if tripped is not None:
                    breakers.append(tripped)
                waiting = _approval(config, opened[name], target, holds, counts)
                if waiting is not None:
                    approvals.append(waiting)
                actions += counts.actionable
            planned.setdefault(target.dataset.name, []).append(target)
        records = []
        for dataset, of_dataset in planned.items():
            name = of_dataset[0].dataset.store
            if name in failed:
                continue
            if len(of_dataset) == 1 and len(config.datasets[dataset].rules) == 1:
                records.append(DatasetRecords(dataset, name, _records_alone(*alone[dataset])))
                continue
            try:
                distinct = opened[name].records(of_dataset, holds)
            except StoreError as exc:
                rules = [t.rule.id for t in of_dataset]
                failed[name] = (str(exc), rules, not isinstance(exc, StoreMisconfigured))
                continue
            records.append(DatasetRecords(dataset, name, distinct))
        warnings = tuple(unmatched_hold_ids(config, holds, opened))
        kept = _quarantine(config, opened, datasets, failed)
    return Plan(
        now=now,
        freeze=holds.freeze,
        rules=tuple(results),
        skipped=tuple(
            Skipped(store, message, tuple(rules), unreachable)
            for store, (message, rules, unreachable) in failed.items()
        ),
        holds_in_force=tuple(h.id for h in holds.active()),
        holds_ending=tuple((h.id, ends) for h, ends in holds.ending()),
        holds_expired=tuple(h.id for h in holds.expired()),
        warnings=warnings,
        records=tuple(r for r in records if r.store not in failed),
        breakers=tuple(breakers),
        approvals=tuple(approvals),
        quarantine=kept,
    )


def _quarantine(
    config: Config, opened: Stores, datasets: Iterable[str], failed: dict[str, Any]
) -> tuple[Quarantined, ...]:
    """What each quarantined dataset (of `datasets`, default all) keeps now; a store that
    cannot say is skipped with its rules (`failed`)."""
    wanted = set(datasets)
    found: list[Quarantined] = []
    for dataset in config.datasets.values():
        if dataset.config.quarantine is None or (wanted and dataset.name not in wanted):
            continue
        if dataset.store in failed:
            continue
        try:
            found += opened[dataset.store].quarantined(dataset)
        except StoreError as exc:
            failed[dataset.store] = (str(exc), [], not isinstance(exc, StoreMisconfigured))
    return tuple(found)


def _breaker(
    config: Config,
    store: Store,
    target: Target,
    holds: HoldsFile,
    counts: Counts,
    actions_so_far: int,
) -> Refusal | None:
    """The circuit breaker a live run would trip on `target`, counted as the run counts it.

    The dataset is counted again (as the run does) only when the share of what the rule covers
    is already over ``limits.max_fraction``: the dataset is never smaller than that.
    """
    limits = config.settings.limits
    tally = Tally(counts.actionable)
    try:
        if counts.in_scope and counts.actionable / counts.in_scope > limits.max_fraction:
            tally = store.tally(target, holds, size=True, unreadable=False)
        check_breakers(target, tally, limits, actions_so_far)
    except CircuitBreakerTripped as exc:
        return Refusal(target.rule.id, target.dataset.name, str(exc))
    except StoreError:
        return None  # the plan's own counts went through; a run would report the store
    return None


def _approval(
    config: Config, store: Store, target: Target, holds: HoldsFile, counts: Counts
) -> Refusal | None:
    """The approval a live run would wait for on `target`, decided as the run decides it (the
    dataset is counted only when the approval share could apply)."""
    size = None
    try:
        if needs_size(config, target.rule, counts.actionable, counts.in_scope):
            size = store.tally(target, holds, size=True, unreadable=False).size
        check_approval(config, target.rule, target.dataset.name, counts.actionable, size)
    except (ApprovalRequired, ConfigError) as exc:
        return Refusal(target.rule.id, target.dataset.name, str(exc))
    except StoreError:
        return None  # the plan's own counts went through; a run would report the store
    return None


__all__ = [
    "SAMPLE_KEYS",
    "TOTALS",
    "DatasetRecords",
    "Plan",
    "Refusal",
    "RulePlan",
    "Skipped",
    "make_plan",
    "rule_targets",
    "targets",
]
