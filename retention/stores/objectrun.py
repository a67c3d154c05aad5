"""Planning and enforcing rules on an object dataset: one listing page at a time.

The listing is streamed, so memory does not grow with the number of objects: per page the
records are judged (:mod:`retention.stores.evaluate`), the store says which it must not delete
(object lock, symlinks), and the rest go into delete batches. A live batch is recorded as an
*intent* before the store is asked to delete it and audited after, like a SQL batch; several
batches are in flight at once, bounded by the store's concurrency, and audited in order of
completion from this thread only.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert

from ..errors import CircuitBreakerTripped, StoreError
from ..planner import RulePlan
from ..statedb import intents, take_intent, utcnow
from .base import PAGE_SIZE, DeleteResult, ObjectRecord, ObjectStore, RunContext
from .evaluate import Evaluator

if TYPE_CHECKING:
    from ..executor import RuleOutcome
    from ..holds import HoldsFile
    from ..rules import Rule


@dataclass(frozen=True)
class ObjectRulePlan(RulePlan):
    """A :class:`RulePlan` for an object dataset: how deletes are done and what cannot be."""

    mode: str = ""
    locked: int = 0
    refused: int = 0

    def as_dict(self) -> dict[str, Any]:
        data = super().as_dict()
        data.update(
            {"mode": self.mode, "blocked_by_object_lock": self.locked, "refused": self.refused}
        )
        return data

    @property
    def notes(self) -> tuple[str, ...]:
        """Lines a reader of the plan needs beyond the counts."""
        notes = [self.mode] if self.mode else []
        if self.locked:
            notes.append(f"{self.locked} blocked by object lock")
        if self.refused:
            notes.append(f"{self.refused} refused (symlink or outside the root: never deleted)")
        return tuple(notes)


@dataclass
class _Counts:
    in_scope: int = 0
    due: int = 0
    held: int = 0
    blocked: int = 0
    locked: int = 0
    refused: int = 0
    actionable: int = 0
    overdue: int = 0
    unreadable: int = 0
    samples: list[str] = field(default_factory=list)


def plan_dataset(
    store: ObjectStore, dataset: str, holds: HoldsFile, now: dt.datetime, samples: int
) -> dict[str, RulePlan]:
    """Every rule of `dataset` counted in one pass over the listing."""
    evaluator = Evaluator(store.config, dataset, now, store.sql)
    counts = {rule.id: _Counts() for rule in evaluator.rules}
    for page in store.pages(dataset):
        view = evaluator.page(page, holds)
        pending: list[tuple[Rule, ObjectRecord, bool]] = []
        candidates: dict[str, ObjectRecord] = {}
        for record in page:
            for rule in evaluator.rules:
                c = counts[rule.id]
                verdict = view.verdict(rule, record)
                c.in_scope += 1
                if not verdict.due:
                    c.unreadable += verdict.unreadable
                    continue
                c.due += 1
                if not rule.destructive:
                    continue
                if verdict.held:
                    c.held += 1
                elif verdict.blocked:
                    c.blocked += 1
                else:
                    pending.append((rule, record, verdict.overdue))
                    candidates[record.key] = record
        protected = store.protected(list(candidates.values()), now) if candidates else {}
        for rule, record, overdue in pending:
            c = counts[rule.id]
            if record.key in protected:
                if store.protection == "locked":
                    c.locked += 1
                else:
                    c.refused += 1
                continue
            c.actionable += 1
            c.overdue += overdue
            if len(c.samples) < samples:
                c.samples.append(record.key)
    mode = store.mode(dataset)
    return {
        rule.id: ObjectRulePlan(
            rule=rule.id,
            dataset=dataset,
            store=store.name,
            action=rule.action,
            in_scope=c.in_scope,
            due=c.due,
            held=c.held,
            blocked=c.blocked,
            actionable=c.actionable,
            overdue=c.overdue,
            unreadable=c.unreadable,
            samples=tuple(c.samples),
            mode=mode if rule.destructive else "",
            locked=c.locked,
            refused=c.refused,
        )
        for rule in evaluator.rules
        for c in (counts[rule.id],)
    }


class _RuleRun:
    """One rule on one object dataset in one run."""

    def __init__(
        self,
        store: ObjectStore,
        ctx: RunContext,
        rule: Rule,
        dataset: str,
        outcome: RuleOutcome,
    ) -> None:
        self.store = store
        self.ctx = ctx
        self.rule = rule
        self.dataset = dataset
        self.outcome = outcome
        self.evaluator = Evaluator(ctx.config, dataset, ctx.now, store.sql)
        self.limit = min(ctx.config.settings.batch_size, PAGE_SIZE)
        self.inflight: deque[tuple[str, list[ObjectRecord], Future[DeleteResult]]] = deque()
        self.failed: Counter[str] = Counter()
        self.kept: Counter[str] = Counter()  # locked / refused, by kind
        self.broken: str | None = None
        self.total = 0

    def run(self) -> None:
        self.outcome.planned = self._count()
        if self.outcome.planned and not self._breakers_allow():
            return
        try:
            self._walk()
        except StoreError as exc:
            # the store went away mid-run: what it did before still gets its audit entries
            self.broken = self.broken or str(exc)
        finally:
            while self.inflight:
                self._settle(*self.inflight.popleft())
        self._finish()

    def _walk(self) -> None:
        batch: list[ObjectRecord] = []
        entries = 0
        for page in self.store.pages(self.dataset):
            if self.ctx.should_stop():
                self.outcome.status = "stopped"
                break
            view = self.evaluator.page(page, self.ctx.config.load_holds())
            free = [r for r in page if view.verdict(self.rule, r).free]
            protected = self.store.protected(free, self.ctx.now) if free else {}
            if protected:
                self._audit_kept(protected)
            for record in free:
                if record.key in protected:
                    continue
                if batch and entries + record.entries > self.limit:
                    self._submit(batch)
                    batch, entries = [], 0
                batch.append(record)
                entries += record.entries
            if self.broken is not None:
                break
        if batch and self.broken is None and self.outcome.status != "stopped":
            self._submit(batch)

    def _count(self) -> int:
        """Records due, unheld and unblocked now (before the store's own protections); also
        counts those never acted on because their clock is unreadable."""
        planned = total = unreadable = 0
        holds = self.ctx.config.load_holds()
        for page in self.store.pages(self.dataset):
            view = self.evaluator.page(page, holds)
            total += len(page)
            verdicts = [view.verdict(self.rule, r) for r in page]
            planned += sum(1 for v in verdicts if v.free)
            unreadable += sum(1 for v in verdicts if v.unreadable)
        self.total = total
        self.outcome.unreadable = unreadable
        return planned

    def _breakers_allow(self) -> bool:
        """The executor's circuit breakers, with the dataset's object count as its size."""
        limits = self.ctx.config.settings.limits
        planned, total, rule = self.outcome.planned, self.total, self.rule
        message = None
        if not self.ctx.force:
            if total and planned / total > limits.max_fraction:
                message = (
                    f"rule {rule.id} would {rule.action} {planned} of {total} objects of "
                    f"{self.dataset} ({planned / total:.0%}), more than limits.max_fraction "
                    f"({limits.max_fraction:.0%}); check the rule, then re-run with --force if "
                    "it is right"
                )
            elif self.ctx.actions + planned > limits.max_actions_per_run:
                message = (
                    f"rule {rule.id} would bring this run to {self.ctx.actions + planned} "
                    f"actions, more than limits.max_actions_per_run "
                    f"({limits.max_actions_per_run}); re-run with --force if it is right"
                )
        if message is None:
            self.ctx.actions += planned
            return True
        self.outcome.status, self.outcome.message = "refused", message
        self.ctx.audit.append(
            run_id=self.ctx.run_id,
            rule=rule.id,
            dataset=self.dataset,
            action=rule.action,
            outcome="refused",
            dry_run=not self.ctx.live,
            count=planned,
            detail=CircuitBreakerTripped(message).args[0],
        )
        return False

    def _submit(self, batch: list[ObjectRecord]) -> None:
        ctx = self.ctx
        keys = [r.key for r in batch]
        if not ctx.live:
            ctx.audit.append(
                run_id=ctx.run_id,
                rule=self.rule.id,
                dataset=self.dataset,
                action=self.rule.action,
                outcome="would " + self.rule.action,
                dry_run=True,
                keys=keys,
                detail=self.store.mode(self.dataset),
            )
            self._advance(len(keys))
            return
        if ctx.lease is not None:
            ctx.lease.check()
        intent_id = str(uuid.uuid4())
        with ctx.state.begin() as connection:
            connection.execute(
                insert(intents).values(
                    id=intent_id,
                    run_id=ctx.run_id,
                    created_at=utcnow(),
                    rule=self.rule.id,
                    dataset=self.dataset,
                    action=self.rule.action,
                    keys=json.dumps([[r.key, v.id] for r in batch for v in r.versions]),
                    children="[]",
                )
            )
        self.inflight.append((intent_id, batch, self.store.submit(self.dataset, batch)))
        while len(self.inflight) >= self.store.concurrency:
            self._settle(*self.inflight.popleft())

    def _settle(
        self, intent_id: str, batch: list[ObjectRecord], future: Future[DeleteResult]
    ) -> None:
        """Audit what one batch did and drop its intent, in one state-DB transaction."""
        try:
            result = future.result()
        except StoreError as exc:
            # what happened is unknown: the intent stays, the next run's recovery settles it
            self.broken = str(exc)
            return
        write_batch_audit(self.ctx, self.rule, self.dataset, result, intent_id)
        for reason in result.failed.values():
            self.failed[reason.split(":", 1)[0]] += 1
        self.kept["locked"] += len(result.locked)
        self.kept["refused"] += len(result.refused)
        self._advance(len(result.deleted))

    def _advance(self, acted: int) -> None:
        self.outcome.acted += acted
        self.outcome.batches += 1
        if self.ctx.progress is not None:
            self.ctx.progress(self.rule, self.dataset, self.outcome.acted, self.outcome.planned)

    def _audit_kept(self, protected: dict[str, str]) -> None:
        kind = self.store.protection
        outcome = "blocked by object lock" if kind == "locked" else "refused"
        self.ctx.audit.append(
            run_id=self.ctx.run_id,
            rule=self.rule.id,
            dataset=self.dataset,
            action=self.rule.action,
            outcome=outcome,
            dry_run=not self.ctx.live,
            keys=sorted(protected),
            detail=_summary(protected.values()),
        )
        self.kept[kind] += len(protected)

    def _finish(self) -> None:
        outcome = self.outcome
        notes = []
        if self.kept["locked"]:
            notes.append(f"{self.kept['locked']} blocked by object lock")
        if self.kept["refused"]:
            notes.append(f"{self.kept['refused']} refused (symlink or outside the root)")
        if self.failed:
            count = sum(self.failed.values())
            notes.append(f"{count} could not be deleted ({_summary(self.failed.elements())})")
            outcome.lingering = count
            if outcome.status == "ok":
                outcome.status = "failed"
        if self.store.unreadable:
            notes.append(f"could not read {', '.join(sorted(self.store.unreadable))}")
        if self.broken is not None:
            notes.append(f"stopped: {self.broken}")
            if outcome.status in ("ok", "failed"):
                outcome.status = "unreachable"
        if notes:
            outcome.message = "; ".join([*([outcome.message] if outcome.message else []), *notes])


def write_batch_audit(
    ctx: RunContext,
    rule: Rule | str,
    dataset: str,
    result: DeleteResult,
    intent_id: str,
    *,
    detail: str | None = None,
    run_id: str | None = None,
) -> int:
    """Audit entries for one finished delete batch and the removal of its intent; entries."""
    rule_id = rule if isinstance(rule, str) else rule.id
    action = "delete"
    written = 0
    with ctx.state.begin() as connection:
        if not take_intent(connection, intent_id):
            return 0  # another run settled this batch meanwhile
        for outcome, keys, why in (
            ("done", list(result.deleted), detail),
            ("blocked by object lock", sorted(result.locked), _summary(result.locked.values())),
            ("refused", sorted(result.refused), _summary(result.refused.values())),
            ("failed", sorted(result.failed), _summary(result.failed.values())),
        ):
            if keys:
                ctx.audit.append(
                    run_id=run_id or ctx.run_id,
                    rule=rule_id,
                    dataset=dataset,
                    action=action,
                    outcome=outcome,
                    dry_run=False,
                    keys=keys,
                    detail=why,
                    connection=connection,
                )
                written += 1
    return written


def _summary(reasons: Any) -> str:
    """``AccessDenied ×2, InternalError`` — reasons without the keys (they may be personal)."""
    counted = Counter(str(r).split(":", 1)[0] for r in reasons)
    return ", ".join(f"{r} ×{n}" if n > 1 else r for r, n in sorted(counted.items()))


def enforce_rule(
    store: ObjectStore, ctx: RunContext, rule: Rule, dataset: str, outcome: RuleOutcome
) -> None:
    """Apply `rule` to the objects of `dataset`; problems end up in `outcome`, never raised."""
    try:
        store.sync_holds(ctx, dataset, outcome)
        _RuleRun(store, ctx, rule, dataset, outcome).run()
    except StoreError as exc:
        outcome.status, outcome.message = "unreachable", str(exc)


def settle_intent(ctx: RunContext, store: ObjectStore, intent: dict[str, Any]) -> int:
    """Recovery: audit the keys of an interrupted batch that are gone; entries written."""
    entries: Sequence[Sequence[Any]] = json.loads(intent["keys"])
    gone = store.absent(intent["dataset"], entries)
    result = DeleteResult(deleted=tuple(gone))
    return write_batch_audit(
        ctx,
        intent["rule"],
        intent["dataset"],
        result,
        intent["id"],
        detail="recorded after an interruption: the delete had happened",
        run_id=intent["run_id"],
    )


__all__ = ["ObjectRulePlan", "enforce_rule", "plan_dataset", "settle_intent"]
