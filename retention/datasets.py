"""Datasets resolved once: everything the engine and the stores need to know about one dataset.

The settings name things (``subject: {type: account}``, ``cascade: [{dataset: messages}]``,
``applies_to: {category: support_data}``); :func:`resolve` follows every name once, after the
configuration has been checked, into frozen :class:`Dataset` values: the rules that apply to it
in declaration order, its subject type, its cascade children (themselves resolved), its key
template, the zone its naive timestamps are read in, and what its kind of store can do. The
engine passes these values down; no layer looks a dataset up by name again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from .durations import Duration
from .kinds import Capabilities, capabilities
from .periods import YearStart, period_end, rounded_set
from .rules import Clock, Rule
from .settings import DatasetConfig, Settings, SubjectConfig
from .templates import KeyTemplate, subject_type, template_of
from .timemath import IntervalSet, add_duration, due_clock_set


@dataclass(frozen=True, eq=False)
class SubjectType:
    """A subject type whose lifecycle events are read from a table."""

    name: str
    config: SubjectConfig
    zone: ZoneInfo  # its naive event timestamps are wall time here

    @property
    def store(self) -> str:
        return self.config.store

    def event_column(self, event: str) -> str:
        """The column holding lifecycle event `event` (``closed`` → ``closed_at``)."""
        return self.config.events[event]


@dataclass(frozen=True, eq=False)
class SubjectRef:
    """One subject of a dataset: its type, and the column naming it (None: the key template)."""

    type: SubjectType
    column: str | None

    @property
    def name(self) -> str:
        return self.type.name

    def __str__(self) -> str:
        return self.name if self.column is None else f"{self.name} ({self.column})"


@dataclass(frozen=True, eq=False)
class Cascade:
    """A child dataset whose rows go with their parent's, linked by `column`."""

    dataset: Dataset
    column: str


@dataclass(frozen=True, eq=False)
class Dataset:
    """One dataset with every name in its configuration followed."""

    name: str
    config: DatasetConfig
    store: str
    kind: str
    capabilities: Capabilities
    rules: tuple[Rule, ...]  # every rule that applies to it, in declaration order
    subject: SubjectType | None
    zone: ZoneInfo  # its naive record timestamps are wall time here
    calendar: ZoneInfo  # the configured zone: durations are added on its calendar
    template: KeyTemplate | None  # object datasets: the prefix or glob, parsed
    cascade: tuple[Cascade, ...] = ()
    # every subject the records belong to, the primary (`subject`) first
    subjects: tuple[SubjectRef, ...] = ()
    fiscal_start: YearStart = (1, 1)  # the financial year's first day, for fiscal_year_end

    def due_set(self, clock: Clock, delay: Duration, now: dt.datetime) -> IntervalSet:
        """Exactly the (unrounded) clock starts of `clock` that are `delay` old at `now`: the
        set the stores compare their clock columns with."""
        instants = due_clock_set(delay, now, self.calendar)
        if clock.round_to is None:
            return instants
        return rounded_set(instants, clock.round_to, self.calendar, self.fiscal_start)

    def past_set(self, clock: Clock, delay: Duration, now: dt.datetime) -> IntervalSet:
        """The clock starts of `clock` that are more than `delay` old at `now`: a record is
        overdue once *past* its deadline (DESIGN.md), so one acted on at its deadline, to the
        microsecond, is on time in the plan as in its audit facts."""
        return self.due_set(clock, delay, now - dt.timedelta(microseconds=1))

    def due_at(self, clock: Clock, start: dt.datetime, delay: Duration) -> dt.datetime:
        """When a record whose `clock` started at `start` is `delay` old (OverflowError or
        ValueError past year 9999)."""
        if clock.round_to is not None:
            start = period_end(start, clock.round_to, self.calendar, self.fiscal_start)
        return add_duration(start, delay, self.calendar)

    @property
    def keeps(self) -> tuple[Rule, ...]:
        """The keep rules (legal minimums) of this dataset (an assert_absent that only reports
        is carried as a keep, but keeps nothing)."""
        return tuple(r for r in self.rules if r.action == "keep" and not r.asserts_absent)

    def deletes_besides(self, rule: Rule) -> tuple[Rule, ...]:
        """The delete rules of this dataset other than `rule` (they supersede an anonymize)."""
        return tuple(r for r in self.rules if r.action == "delete" and r.id != rule.id)

    @property
    def subject_column(self) -> str | None:
        """The column naming a record's primary subject (SQL datasets), if any."""
        return self.subjects[0].column if self.subjects else None

    def column_of(self, subject_type: str | None) -> str | None:
        """The column naming a record's subject of `subject_type` (None: the primary one)."""
        for ref in self.subjects:
            if subject_type is None or ref.name == subject_type:
                return ref.column
        return None

    def subject_of(self, rule: Rule) -> SubjectRef | None:
        """The subject `rule` reads here: the one it names, else the primary; None when the
        dataset has no such subject (the config checks refuse a rule that needs one)."""
        if rule.subject is None:
            return self.subjects[0] if self.subjects else None
        return next((ref for ref in self.subjects if ref.name == rule.subject), None)

    @property
    def key_columns(self) -> tuple[str, ...]:
        return self.config.key_columns

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, store={self.store!r})"


def applies(rule: Rule, name: str, config: DatasetConfig) -> bool:
    """Whether `rule` applies to the dataset `name`."""
    target = rule.applies_to
    return name == target.dataset or (
        target.category is not None and config.category == target.category
    )


def resolve(settings: Settings, rules: tuple[Rule, ...]) -> dict[str, Dataset]:
    """Every dataset of `settings`, resolved, in config order (the config has been checked)."""
    zone = settings.zone()
    subjects = {
        name: SubjectType(name, subject, ZoneInfo(subject.timezone) if subject.timezone else zone)
        for name, subject in settings.subjects.items()
    }
    done: dict[str, Dataset] = {}

    def build(name: str, trail: tuple[str, ...]) -> Dataset:
        if name in done:
            return done[name]
        config = settings.datasets[name]
        kind = settings.stores[config.store].kind
        children = tuple(
            Cascade(build(c.dataset, (*trail, name)), c.column)
            for c in config.cascade
            if c.dataset not in (*trail, name)  # a cycle is reported by the config checks
        )
        subject = subject_type(config, kind)
        links: list[tuple[str, str | None]] = [
            (link.type, link.column) for link in config.subject_links
        ]
        if not links and subject is not None:
            links = [(subject, None)]
        refs = tuple(
            SubjectRef(subjects[kind_name], column)
            for kind_name, column in links
            if kind_name in subjects
        )
        done[name] = Dataset(
            name=name,
            config=config,
            store=config.store,
            kind=kind,
            capabilities=capabilities(kind),
            rules=tuple(rule for rule in rules if applies(rule, name, config)),
            subject=subjects.get(subject) if subject is not None else None,
            zone=ZoneInfo(config.timezone) if config.timezone else zone,
            calendar=zone,
            template=template_of(config, kind),
            cascade=children,
            subjects=refs,
            fiscal_start=settings.fiscal_start(),
        )
        return done[name]

    for name in settings.datasets:
        build(name, ())
    return {name: done[name] for name in settings.datasets}


def datasets_by_store(datasets: Mapping[str, Dataset]) -> dict[str, list[Dataset]]:
    """The datasets of each store, in config order."""
    grouped: dict[str, list[Dataset]] = {}
    for dataset in datasets.values():
        grouped.setdefault(dataset.store, []).append(dataset)
    return grouped


__all__ = [
    "Cascade",
    "Dataset",
    "SubjectRef",
    "SubjectType",
    "applies",
    "datasets_by_store",
    "resolve",
]
