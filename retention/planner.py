"""The plan: what a run would do, per rule and dataset, computed without changing anything.

For every rule × dataset the planner asks the store one set-based COUNT per question: how many
records the rule covers, how many are due, held, blocked by a keep rule, superseded by a delete,
already anonymized, to be acted on, overdue, and how many are never acted on because a clock they
need holds a value that is no timestamp (``unreadable``). A store that cannot be reached is
reported and its rules skipped; the others are still planned. Hold ids that match no subject
are reported as warnings (:mod:`retention.holdcheck`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import False_, and_, case, func, not_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from .config import Config
from .errors import StoreError, StoreMisconfigured
from .holdcheck import HoldWarning, unmatched_hold_ids
from .holds import HoldsFile
from .rules import Rule
from .stores import SqlStore, sql_stores
from .stores.base import ObjectStores
from .stores.sqlselect import Selection, SelectionBuilder

SAMPLE_KEYS = 5


@dataclass(frozen=True)
class RulePlan:
    """The numbers for one rule on one dataset."""

    rule: str
    dataset: str
    store: str
    action: str
    in_scope: int = 0
    due: int = 0
    held: int = 0
    blocked: int = 0
    superseded: int = 0
    done: int = 0
    actionable: int = 0
    overdue: int = 0
    samples: tuple[str, ...] = ()
    # of the pending ones: a clock the rule needs holds a value that is no timestamp
    unreadable: int = 0

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
        }


@dataclass(frozen=True)
class Skipped:
    """A store that could not be planned, and the rules that were skipped with it."""

    store: str
    message: str
    rules: tuple[str, ...]
    unreachable: bool = True


@dataclass(frozen=True)
class Plan:
    """A whole dry run."""

    now: dt.datetime
    freeze: bool
    rules: tuple[RulePlan, ...]
    skipped: tuple[Skipped, ...] = ()
    holds_in_force: tuple[str, ...] = field(default=())
    warnings: tuple[HoldWarning, ...] = ()  # hold ids that match no subject

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "freeze": self.freeze,
            "holds_in_force": list(self.holds_in_force),
            "warnings": [w.as_dict() for w in self.warnings],
            "rules": [r.as_dict() for r in self.rules],
            "skipped": [
                {"store": s.store, "message": s.message, "rules": list(s.rules)}
                for s in self.skipped
            ],
            "totals": {
                key: sum(getattr(r, attr) for r in self.rules)
                for key, attr in (
                    ("due", "due"),
                    ("held", "held"),
                    ("blocked", "blocked"),
                    ("to_act", "actionable"),
                    ("overdue", "overdue"),
                    ("unreadable", "unreadable"),
                )
            },
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


def make_plan(
    config: Config,
    now: dt.datetime,
    *,
    rule_ids: Iterable[str] = (),
    datasets: Iterable[str] = (),
    samples: int = SAMPLE_KEYS,
    holds: HoldsFile | None = None,
    stores: dict[str, SqlStore] | None = None,
    progress: Callable[[Rule, str], None] | None = None,
) -> Plan:
    """Plan every selected rule × dataset as of `now` (an aware datetime)."""
    holds = config.load_holds() if holds is None else holds
    with sql_stores(config.settings, stores) as opened, ObjectStores(config, opened) as objects:
        return _plan(config, now, holds, opened, rule_ids, datasets, samples, progress, objects)


def _plan(
    config: Config,
    now: dt.datetime,
    holds: HoldsFile,
    stores: dict[str, SqlStore],
    rule_ids: Iterable[str],
    datasets: Iterable[str],
    samples: int,
    progress: Callable[[Rule, str], None] | None,
    objects: ObjectStores,
) -> Plan:
    results: list[RulePlan] = []
    failed: dict[str, tuple[str, list[str], bool]] = {}
    builders: dict[str, SelectionBuilder] = {}
    for rule, dataset in rule_targets(config, rule_ids, datasets):
        store_name = config.settings.datasets[dataset].store
        if store_name in failed:
            failed[store_name][1].append(rule.id)
            continue
        store = stores.get(store_name)
        if store is None:
            if progress is not None:
                progress(rule, dataset)
            try:
                results.append(objects[store_name].plan(rule, dataset, holds, now, samples))
            except StoreError as exc:
                failed[store_name] = (str(exc), [rule.id], not isinstance(exc, StoreMisconfigured))
            continue
        if progress is not None:
            progress(rule, dataset)
        builder = builders.setdefault(store_name, SelectionBuilder(config, store, now))
        try:
            results.append(plan_one(builder.build(rule, dataset, holds), store, samples))
        except StoreMisconfigured as exc:
            failed[store_name] = (str(exc), [rule.id], False)
        except StoreError as exc:
            failed[store_name] = (str(exc), [rule.id], True)
        except SQLAlchemyError as exc:
            failed[store_name] = (
                StoreError(_first_line(exc), store=store_name).args[0],
                [rule.id],
                True,
            )
    return Plan(
        now=now,
        freeze=holds.freeze,
        rules=tuple(results),
        skipped=tuple(
            Skipped(store, message, tuple(rules), unreachable)
            for store, (message, rules, unreachable) in failed.items()
        ),
        holds_in_force=tuple(h.id for h in holds.active()),
        warnings=tuple(unmatched_hold_ids(config, holds, stores)),
    )


def plan_one(selection: Selection, store: SqlStore, samples: int = SAMPLE_KEYS) -> RulePlan:
    """Count one rule on one dataset: the records it covers, those due, then every other
    question about the due ones (held, blocked, ..., overdue) in one pass of conditional sums."""
    s = selection
    with store.engine.connect() as connection:

        def count(*conditions: ColumnElement[bool]) -> int:
            query = select(func.count()).select_from(s.table).where(and_(*conditions))
            return int(connection.execute(query).scalar_one())

        in_scope = count(s.scope)
        due = count(s.scope, s.due) if in_scope else 0
        unreadable = 0
        if in_scope > due and not isinstance(s.unreadable, False_):
            unreadable = count(s.unreadable_pending)
        base = RulePlan(
            s.rule.id,
            s.dataset,
            store.name,
            s.rule.action,
            in_scope=in_scope,
            due=due,
            unreadable=unreadable,
        )
        if s.rule.action == "keep" or not due:
            return base
        free, unblocked = not_(s.held), not_(s.blocked)
        questions = {
            "held": (s.held,),
            "blocked": (free, s.blocked),
            "superseded": (free, unblocked, s.superseded),
            "done": (free, unblocked, not_(s.superseded), s.done),
            "actionable": (free, unblocked, not_(s.superseded), not_(s.done)),
            "overdue": (free, unblocked, not_(s.superseded), not_(s.done), s.overdue),
        }
        asked = {
            name: func.coalesce(func.sum(case((and_(*conditions), 1), else_=0)), 0)
            for name, conditions in questions.items()
            if not any(isinstance(c, False_) for c in conditions)
        }
        query = select(*asked.values()).select_from(s.table).where(s.scope, s.due)
        counts = dict.fromkeys(questions, 0)
        counts.update(zip(asked, map(int, connection.execute(query).one()), strict=True))
        keys: tuple[str, ...] = ()
        if counts["actionable"] and samples:
            query = select(*s.key).where(s.actionable).order_by(*s.key).limit(samples)
            keys = tuple(format_key(row) for row in connection.execute(query))
    return replace(
        base,
        held=counts["held"],
        blocked=counts["blocked"],
        superseded=counts["superseded"],
        done=counts["done"],
        actionable=counts["actionable"],
        overdue=counts["overdue"],
        samples=keys,
    )


def format_key(row: Iterable[Any]) -> str:
    """A record key as text: `42`, or `7/3` for a composite key."""
    return "/".join(str(part) for part in row)


def format_keys(rows: Sequence[Sequence[Any]]) -> list[str]:
    """:func:`format_key` of each key of one table (all of one width), once per audited record."""
    if rows and len(rows[0]) == 1:
        return [str(row[0]) for row in rows]
    return [format_key(row) for row in rows]


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@dataclass(frozen=True)
class HoldRow:
    id: str
    active: bool
    scope: str
    records: int
    reason: str | None
    review_by: dt.date | None
    review_overdue: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "active": self.active,
            "scope": self.scope,
            "records_covered": self.records,
            "reason": self.reason,
            "review_by": self.review_by.isoformat() if self.review_by else None,
            "review_overdue": self.review_overdue,
        }


@dataclass(frozen=True)
class HoldsReport:
    freeze: bool
    holds: tuple[HoldRow, ...]
    skipped: tuple[str, ...] = ()
    warnings: tuple[HoldWarning, ...] = ()  # hold ids that match no subject

    def as_dict(self) -> dict[str, Any]:
        return {
            "freeze": self.freeze,
            "holds": [h.as_dict() for h in self.holds],
            "skipped": list(self.skipped),
            "warnings": [w.as_dict() for w in self.warnings],
        }


def hold_coverage(
    config: Config,
    *,
    today: dt.date,
    holds: HoldsFile | None = None,
    stores: dict[str, SqlStore] | None = None,
) -> HoldsReport:
    """Each hold (active or released) and how many records it covers now (or would, if active)."""
    holds = config.load_holds() if holds is None else holds
    with sql_stores(config.settings, stores) as opened, ObjectStores(config, opened) as objects:
        return _hold_coverage(config, today, holds, opened, objects)


def _hold_coverage(
    config: Config,
    today: dt.date,
    holds: HoldsFile,
    stores: dict[str, SqlStore],
    objects: ObjectStores,
) -> HoldsReport:
    epoch = dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC)
    rows: list[HoldRow] = []
    skipped: dict[str, str] = {}
    for hold in holds.holds:
        total = 0
        for dataset, ds in config.settings.datasets.items():
            store = stores.get(ds.store)
            if not hold.covers_dataset(dataset) or ds.store in skipped:
                continue
            if store is None:
                try:
                    total += objects[ds.store].count_covered(dataset, hold)
                except StoreError as exc:
                    skipped[ds.store] = f"{ds.store}: {exc}"
                continue
            try:
                builder = SelectionBuilder(config, store, epoch)
                assert ds.table is not None
                table = store.table(ds.table)
                condition = builder.covered_by(hold, dataset, table)
                if isinstance(condition, False_):
                    continue
                with store.engine.connect() as connection:
                    total += int(
                        connection.execute(
                            select(func.count()).select_from(table).where(condition)
                        ).scalar_one()
                    )
            except (StoreError, SQLAlchemyError) as exc:
                skipped[ds.store] = f"{ds.store}: {_first_line(exc)}"
        rows.append(
            HoldRow(
                id=hold.id,
                active=hold.active,
                scope=_describe_scope(hold),
                records=total,
                reason=hold.reason,
                review_by=hold.review_by,
                review_overdue=hold.review_overdue(today),
            )
        )
    warnings = tuple(unmatched_hold_ids(config, holds, stores))
    return HoldsReport(holds.freeze, tuple(rows), tuple(skipped.values()), warnings)


def _describe_scope(hold: Any) -> str:
    parts = []
    for subject_type, ids in (hold.scoped_subjects() or {}).items():
        parts.append(f"{subject_type} {', '.join(str(i) for i in ids)}")
    if hold.datasets:
        parts.append("datasets " + ", ".join(hold.datasets))
    if hold.rules:
        parts.append("rules " + ", ".join(hold.rules))
    return "; ".join(parts) or "everything"
