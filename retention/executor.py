"""Enforcement: one pass over every rule × dataset, on whatever store each dataset lives in.

A run takes the lease (live), settles what an interrupted run left (:mod:`retention.recovery`),
records itself in the state DB and the audit chain, then for each rule × dataset: counts what it
would act on, checks the circuit breakers (:mod:`retention.breakers`), and lets the dataset's
store act batch by batch (:meth:`~retention.stores.base.Store.enforce`), every batch going
through the one commit point (:mod:`retention.ledger`). After a live run, what is still due and
unheld is reported as lingering. A dry run takes the same path and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress

from sqlalchemy import Engine, func, insert, select, update

from . import runcontents
from .approvals import check_approval
from .audit import AuditLog
from .breakers import check_breakers
from .config import Config
from .errors import (
    ApprovalRequired,
    CircuitBreakerTripped,
    ConfigError,
    ForeignKeyRefused,
    RetentionError,
    StateDBError,
    StoreError,
    StoreFailed,
    StoreMisconfigured,
)
from .holds import HoldsFile
from .leadership import Leadership
from .lease import Fence, Lease, default_holder
from .ledger import Ledger, state_errors
from .legalholds import LegalHolds
from .outcomes import RuleOutcome, RuleStatus, RunResult, RunStatus
from .planner import SAMPLE_KEYS, targets
from .recovery import Reconciled, reconcile
from .replay import Matcher, recorded
from .rules import Rule
from .runevents import finish_fields, start_fields
from .shards import shards
from .statedb import as_utc, open_state, utcnow
from .statetables import runs
from .stores import Stores
from .stores.base import (
    CONFLICT,
    PURGE,
    RESTORE,
    BatchResult,
    Enforcement,
    Probe,
    Stopped,
    Store,
    Target,
)

Progress = Callable[[Rule, str, int, int], None]


class _Tallies:
    """What a store's own protections kept, and what it could not do, over one rule's run."""

    def __init__(self) -> None:
        self.kept: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()

    def conclude(self, outcome: RuleOutcome, broken: StoreError | None) -> None:
        for label, count in sorted(self.kept.items()):
            if count:
                outcome.note(f"{count} {label}")
        if self.failed:
            count = sum(self.failed.values())
            reasons = ", ".join(f"{r} ×{n}" if n > 1 else r for r, n in sorted(self.failed.items()))
            outcome.note(f"{count} could not be deleted ({reasons})")
            outcome.lingering = count  # left for the next run
            if outcome.status == RuleStatus.OK:
                outcome.status = RuleStatus.FAILED
        if broken is not None:
            if outcome.status in (RuleStatus.OK, RuleStatus.FAILED):
                outcome.status = RuleStatus.UNREACHABLE
            outcome.note(
                f"stopped: {broken}" if outcome.message or outcome.batches else str(broken)
            )


def refuse_future(now: dt.datetime, present: dt.datetime) -> None:
    """A live run acts only as of the present or the past: a later moment would destroy
    records that are not due yet (everything due by 2099 for ``--now 2099-01-01``)."""
    if now > present:
        raise ConfigError(
            f"a live run cannot act as of {now.isoformat()}, later than the present "
            f"({present.replace(microsecond=0).isoformat()}): records would be changed before "
            "they are due. Use --now in the future only for plan, explain and dry runs",
            file="command line",
            field="--now",
        )


class Executor:
    """One enforcement pass over the configured stores."""

    def __init__(
        self,
        config: Config,
        *,
        now: dt.datetime,
        live: bool,
        force: bool = False,
        state: Engine | None = None,
        lease: Fence | None = None,
        stores: dict[str, Store] | None = None,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        clock: Callable[[], dt.datetime] = utcnow,
        probe: Probe | None = None,
    ) -> None:
        self.config = config
        self.now = now
        self.live = live
        self.force = force
        self._owns_state = state is None
        self.state = state or open_state(config.settings.state_db.get_secret_value())
        try:
            self.audit = AuditLog.from_settings(self.state, config.settings, writing=True)
        except ConfigError:
            if self._owns_state:
                self.state.dispose()
            raise
        self.lease = lease
        self._given_stores = stores
        self.progress = progress
        self.should_stop = should_stop
        self.clock = clock
        self.run_id = str(uuid.uuid4())
        self.actions = 0
        self._in_flight: dict[str, str] = {}  # datasets recovery says to leave alone, and why
        self.ledger = Ledger(
            self.state, self.audit, self.run_id, live=live, lease=lease, probe=probe
        )

    @property
    def mode(self) -> str:
        """``live`` or ``dry-run``, as the run's row and its events record it."""
        return "live" if self.live else "dry-run"

    # -- the run ---------------------------------------------------------------------------

    def run(self, rule_ids: Sequence[str] = (), datasets: Sequence[str] = ()) -> RunResult:
        """One pass: reconcile interrupted runs, then every selected rule × dataset, then the
        purge of what quarantined datasets kept past its restore window."""

        def body(stores: Stores, outcomes: list[RuleOutcome]) -> None:
            for target in targets(self.config, self.now, rule_ids, datasets):
                rule = target.rule
                if not (rule.destructive or rule.asserts_absent):
                    continue
                action = rule.action if rule.destructive else "assert_absent"
                outcome = RuleOutcome(rule.id, target.dataset.name, action)
                outcomes.append(outcome)
                if self._left_alone(outcome):
                    continue
                if rule.asserts_absent:
                    self._absent(stores[target.dataset.store], target, outcome)
                if rule.destructive:
                    self._enforce(stores[target.dataset.store], target, outcome)
            if self.live:
                self._lingering(stores, outcomes)
                self._kept(stores, outcomes)
                self._purge(stores, datasets, outcomes)

        return self._session(body)

    def restore(self, source_run: str, rule: str | None = None) -> RunResult:
        """Put back what run `source_run` deleted from quarantined datasets (its rule `rule`
        only, when given), while their restore window lasts at the run's moment (what is past
        it waits for its purge): a run of its own, audited (a dry
        run only says what it would restore). Records whose key exists again are reported
        and left in quarantine."""

        def body(stores: Stores, outcomes: list[RuleOutcome]) -> None:
            for dataset in self.config.datasets.values():
                if dataset.config.quarantine is None:
                    continue
                if self._left_alone(RuleOutcome(RESTORE, dataset.name, RESTORE), outcomes):
                    continue
                store = stores[dataset.store]
                results = store.restore(dataset, source_run, rule, self.now, self._enforcement())
                self._quarantine_step(results, dataset.name, RESTORE, outcomes)

        return self._session(body)

    def replay(self, since: dt.datetime) -> RunResult:
        """Apply again every delete and anonymize the audit log recorded at or after `since`
        to the records a backup restore brought back (matched by their keys' HMAC under
        ``audit.keys: hmac``): a run of its own, audited; held records are never touched."""

        def body(stores: Stores, outcomes: list[RuleOutcome]) -> None:
            for group in recorded(self.audit, since):
                outcome = RuleOutcome(group.rule, group.dataset, group.action)
                outcomes.append(outcome)
                dataset = self.config.datasets.get(group.dataset)
                rule = next((r for r in self.config.rules if r.id == group.rule), None)
                if dataset is None or rule is None or rule.action != group.action:
                    outcome.status = RuleStatus.INVALID
                    outcome.message = "not replayed: the rule or dataset is no longer configured"
                    continue
                if not dataset.capabilities.replay:
                    outcome.status = RuleStatus.INVALID
                    outcome.message = f"not replayed: a {dataset.kind} dataset cannot replay"
                    continue
                if self._left_alone(outcome):
                    continue
                if group.unkeyed:
                    outcome.note(f"{group.unkeyed} recorded with no keys (audit.keys: none)")
                outcome.planned = len(group.keys)
                store = stores[dataset.store]
                results = store.replay(
                    Target(rule, dataset, self.now),
                    Matcher(self.audit, group.keys),
                    self._enforcement(),
                )
                self._steps(
                    target=Target(rule, dataset, self.now), outcome=outcome, results=results
                )

        return self._session(body)

    def _steps(
        self, *, target: Target, outcome: RuleOutcome, results: Iterator[BatchResult]
    ) -> None:
        """Record a replay's batches; a store that fails stops only this rule's replay."""
        tallies = _Tallies()
        broken: StoreError | None = None
        try:
            for result in results:
                self._record(target, outcome, result, tallies)
        except StoreError as exc:
            broken = exc
        self.ledger.flush()
        tallies.conclude(outcome, broken)

    def _session(self, body: Callable[[Stores, list[RuleOutcome]], None]) -> RunResult:
        """A run around `body`: the lease (live), recovery of interrupted runs, the run's row
        and its start and end entries in the chain."""
        if self.live:
            refuse_future(self.now, self.clock())
        own_lease = False
        if self.live and self.lease is None:
            self.lease = self.ledger.lease = self._whole_lease()
            own_lease = True
        try:
            if self.live:
                assert self.lease is not None
                if self.lease.epoch is None:
                    with state_errors():
                        self.lease.acquire()
            with Stores(self.config.settings, self._given_stores) as stores:
                reconciled = (
                    reconcile(self.ledger, self.config, stores, self.lease)
                    if self.live
                    else Reconciled()
                )
                self._in_flight = reconciled.in_flight
                return self._run(stores, body, reconciled.written)
        finally:
            self.audit.close()
            if own_lease and self.lease is not None:
                with suppress(StateDBError), state_errors():  # it expires by itself anyway
                    self.lease.release()
            if self._owns_state:
                self.state.dispose()

    def _whole_lease(self) -> Fence:
        """What a run of the whole configuration (the command line) must hold: the one lease,
        or every shard's when replicas share the work by shard."""
        if self.config.settings.service.lease_scope == "dataset":
            return Leadership(self.state, shards(self.config))
        return Lease(self.state)

    def _run(
        self,
        stores: Stores,
        body: Callable[[Stores, list[RuleOutcome]], None],
        recovered: int,
    ) -> RunResult:
        self._start_run()
        self._audit_expiries()
        outcomes: list[RuleOutcome] = []
        status = RunStatus.COMPLETE
        try:
            body(stores, outcomes)
        except Stopped:
            status = RunStatus.INTERRUPTED
        except StateDBError:
            raise  # the row cannot be written now: the next run marks this one interrupted
        except RetentionError:
            self._finish_run(RunStatus.FAILED, outcomes)
            raise
        if status == RunStatus.COMPLETE and any(o.status == RuleStatus.REFUSED for o in outcomes):
            status = RunStatus.REFUSED
        self._finish_run(status, outcomes)
        return RunResult(self.run_id, self.live, status, tuple(outcomes), recovered, self.now)

    def _enforcement(self) -> Enforcement:
        return Enforcement(
            holds=self._holds,
            commit=self.ledger if self.live else None,
            should_stop=self.should_stop,
            batch_size=self.config.settings.batch_size,
            batch_seconds=self.config.settings.batch_seconds,
            probe=self.ledger.probe,
            legal_holds=LegalHolds(self.ledger),
            run_id=self.run_id,
        )

    def _enforce(self, store: Store, target: Target, outcome: RuleOutcome) -> None:
        """One rule on one dataset: count, check the breakers, act batch by batch."""
        enforcement = self._enforcement()
        tallies = _Tallies()
        broken: StoreError | None = None
        stopped = False
        try:
            limits = self.config.settings.limits
            size = not self.force or (self.live and limits.approval_share is not None)
            tally = store.tally(target, self._holds(), size=size)
            outcome.planned, outcome.unreadable = tally.actionable, tally.unreadable
            if tally.actionable:
                if self.live:  # --force does not stand in for a person's approval
                    check_approval(
                        self.config,
                        target.rule,
                        target.dataset.name,
                        tally.actionable,
                        tally.size,
                    )
                if not self.force:
                    check_breakers(target, tally, limits, self.actions)
                self.actions += tally.actionable
            for result in store.enforce(target, enforcement):
                self._record(target, outcome, result, tallies)
        except Stopped:
            outcome.status, stopped = RuleStatus.STOPPED, True
        except (CircuitBreakerTripped, ApprovalRequired) as exc:
            self._refused(target, outcome, str(exc), count=outcome.planned)
        except ForeignKeyRefused as exc:
            self.ledger.flush()  # the batches before the refused one are final
            self._refused(target, outcome, str(exc), count=0)
        except StateDBError:
            raise  # nothing more can be audited: the run stops
        except StoreMisconfigured as exc:
            outcome.status, outcome.message = RuleStatus.INVALID, str(exc)
        except StoreFailed as exc:
            outcome.status = RuleStatus.FAILED
            outcome.note(str(exc))
        except StoreError as exc:
            broken = exc
        self.ledger.flush()  # batches that committed before any error are still audited
        tallies.conclude(outcome, broken)
        if stopped:
            raise Stopped

    def _absent(self, store: Store, target: Target, outcome: RuleOutcome) -> None:
        """assert_absent: what must never be stored and is, before its `then` removes it."""
        try:
            (counts,) = store.plan([target], self._holds(), SAMPLE_KEYS)
        except StateDBError:
            raise
        except StoreError as exc:
            outcome.status, outcome.message = RuleStatus.FAILED, str(exc)
            return
        outcome.violations, outcome.samples = counts.due - counts.done, counts.samples

    def _purge(self, stores: Stores, datasets: Sequence[str], outcomes: list[RuleOutcome]) -> None:
        """The second step of a quarantined delete: what is past its restore window goes for
        good, audited per rule and batch (``purge quarantine``)."""
        for dataset in self.config.datasets.values():
            if dataset.config.quarantine is None or (datasets and dataset.name not in datasets):
                continue
            if self._left_alone(RuleOutcome(PURGE, dataset.name, PURGE), outcomes):
                continue
            results = stores[dataset.store].purge_quarantine(dataset, self.now, self._enforcement())
            self._quarantine_step(results, dataset.name, PURGE, outcomes)

    def _quarantine_step(
        self,
        results: Iterator[BatchResult],
        dataset: str,
        action: str,
        outcomes: list[RuleOutcome],
    ) -> None:
        """Count a purge or restore batch by batch, per dataset (audited by the store when
        live; here when dry); a store that fails stops only this dataset's step."""
        found: dict[str, RuleOutcome] = {}
        conflicts: Counter[str] = Counter()

        def outcome(name: str) -> RuleOutcome:
            if name not in found:
                found[name] = RuleOutcome(action, name, action)
                outcomes.append(found[name])
            return found[name]

        try:
            for result in results:
                if not result.audited:
                    self.ledger.note(action, dataset, action, result)
                for note in result.notes:
                    name = note.dataset or dataset
                    if note.outcome in ("done", "would restore", "would purge"):
                        outcome(name).acted += result.acted
                        outcome(name).batches += 1
                    elif note.keys:
                        conflicts[name] += len(note.keys)
        except StoreError as exc:
            failed = outcome(dataset)
            failed.status, failed.message = RuleStatus.UNREACHABLE, str(exc)
        self.ledger.flush()
        for name, count in sorted(conflicts.items()):
            outcome(name).note(f"{count} {CONFLICT}")

    def _left_alone(self, outcome: RuleOutcome, outcomes: list[RuleOutcome] | None = None) -> bool:
        """Whether `outcome`'s dataset is left alone in this run, saying why in it (added to
        `outcomes` when given): recovery found a batch there that may still be committing in
        another process, and acting now could change the same records."""
        message = self._in_flight.get(outcome.dataset)
        if message is None:
            return False
        outcome.status, outcome.message = RuleStatus.UNREACHABLE, message
        if outcomes is not None:
            outcomes.append(outcome)
        return True

    def _holds(self) -> HoldsFile:
        """The holds file re-read now, judged at the run's moment (expired holds released)."""
        return self.config.holds_as_of(self.now)

    def _record(
        self, target: Target, outcome: RuleOutcome, result: BatchResult, tallies: _Tallies
    ) -> None:
        """Count (and, if the store did not, audit) what one batch did."""
        rule = target.rule
        if not result.audited:
            self.ledger.note(rule.id, target.dataset.name, rule.action, result)
        for remark in result.remarks:
            outcome.note(remark)
        tallies.kept.update(result.kept)
        tallies.failed.update(result.failed)
        if not result.acted:
            return
        outcome.acted += result.acted
        outcome.batches += 1
        for child, count in result.children.items():
            outcome.cascaded[child] = outcome.cascaded.get(child, 0) + count
        if self.progress is not None:
            self.progress(rule, outcome.dataset, outcome.acted, outcome.planned)

    def _refused(self, target: Target, outcome: RuleOutcome, message: str, count: int) -> None:
        outcome.status, outcome.message = RuleStatus.REFUSED, message
        self.ledger.append(
            rule=target.rule.id,
            dataset=target.dataset.name,
            action=target.rule.action,
            outcome="refused",
            count=count,
            detail=message,
        )

    def _lingering(self, stores: Stores, outcomes: list[RuleOutcome]) -> None:
        """Count again every rule that acted: anything still due and unheld is reported."""
        holds = self._holds()
        for outcome in outcomes:
            if outcome.status != RuleStatus.OK or not outcome.planned:
                continue
            dataset = self.config.datasets[outcome.dataset]
            store = stores[dataset.store]
            if not store.capabilities.recount_after_run:
                continue  # it counted what it could not do itself
            rule = self.config.rule(outcome.rule)
            target = Target(rule, dataset, self.now)
            outcome.lingering = store.tally(target, holds, size=False, unreadable=False).actionable
            if outcome.lingering:
                self.ledger.append(
                    rule=rule.id,
                    dataset=outcome.dataset,
                    action=rule.action,
                    outcome="lingering",
                    count=outcome.lingering,
                    detail="still due and unheld after the run",
                )

    def _kept(self, stores: Stores, outcomes: list[RuleOutcome]) -> None:
        """What the run kept, per dataset it acted on: per hold in force the records the hold
        covers, per keep rule the records whose minimum has not run out; one ``keep`` entry
        per dataset, the numbers in its detail (a record kept for two reasons is in both)."""
        holds = self._holds()
        for name in dict.fromkeys(o.dataset for o in outcomes if o.status == RuleStatus.OK):
            dataset = self.config.datasets[name]
            store = stores[dataset.store]
            keeps = dataset.keeps
            try:
                by_hold = {
                    hold.id: store.covered(dataset, hold)
                    for hold in holds.active()
                    if hold.covers_dataset(name)
                }
                targets = [Target(k, dataset, self.now) for k in keeps]
                counted = store.plan(targets, holds, 0) if targets else []
            except StoreError:
                continue  # the store went away after acting: the rules' outcomes say so
            by_keep = {keep.id: c.in_scope - c.due for keep, c in zip(keeps, counted, strict=True)}
            kept = {
                "holds": {k: n for k, n in by_hold.items() if n},
                "keep_rules": {k: n for k, n in by_keep.items() if n},
            }
            if kept["holds"] or kept["keep_rules"]:
                self.ledger.append(
                    dataset=name,
                    action="keep",
                    outcome="kept",
                    count=0,
                    detail=json.dumps(kept, sort_keys=True),
                )

    # -- run bookkeeping ---------------------------------------------------------------------

    def _start_run(self) -> None:
        """The run's row, its start entry in the chain and what it applies (rule packs, holds,
        settings: :mod:`retention.runcontents`), in one state-DB transaction."""
        holder = self.lease.holder if self.lease else default_holder()
        fingerprint = self.config.fingerprint()
        as_of, started_at = self.now.astimezone(dt.UTC), utcnow()
        with self.ledger.transaction() as connection:
            connection.execute(
                insert(runs).values(
                    id=self.run_id,
                    started_at=started_at,
                    as_of=as_of,
                    mode=self.mode,
                    status=RunStatus.RUNNING.value,
                    config_fingerprint=fingerprint,
                    counts="{}",
                    holder=holder,
                )
            )
            self.audit.append(
                **start_fields(
                    run_id=self.run_id,
                    mode=self.mode,
                    as_of=as_of,
                    started_at=started_at,
                    fingerprint=fingerprint,
                    holder=holder,
                ),
                connection=connection,
            )
            runcontents.record(connection, self.run_id, self.config)

    def _audit_expiries(self) -> None:
        """Audit, as a release, each hold whose `expires_on` came since the last run of this
        mode was evaluated (every expired hold, on the first run): once, not every run."""
        expired = self._holds().expired()
        if not expired:
            return
        zone = self.config.settings.zone()
        query = select(func.max(runs.c.as_of)).where(
            runs.c.mode == self.mode, runs.c.id != self.run_id
        )
        with self.ledger.transaction() as connection:
            previous = as_utc(connection.execute(query).scalar())
        for hold in expired:
            ends = hold.ends_at(zone)
            assert ends is not None, "only a hold with expires_on expires"
            if previous is not None and ends <= previous:
                continue  # an earlier run already judged it released, and audited that
            self.ledger.append(
                action="release hold",
                outcome="expired",
                count=0,
                detail=f"hold {hold.id} released by its expires_on "
                f"({ends.strftime('%Y-%m-%d %H:%M:%S %Z')})",
            )

    def _finish_run(self, status: RunStatus, outcomes: list[RuleOutcome]) -> None:
        """The run's final status and counts, on its row and as its end entry, together; none
        if another process's recovery ended the run already (this one was paused past its
        lease, and marked interrupted): its row and end entry stay as that one wrote them."""
        with state_errors():
            seq, digest = self.audit.head()
        counts = {
            "acted": sum(o.acted for o in outcomes),
            "rules": {f"{o.rule}@{o.dataset}": o.acted for o in outcomes},
            "audit_head": [seq, digest],
        }
        finished_at = utcnow()
        with self.ledger.transaction() as connection:
            changed = connection.execute(
                update(runs)
                .where(runs.c.id == self.run_id, runs.c.status == RunStatus.RUNNING.value)
                .values(status=status.value, finished_at=finished_at, counts=json.dumps(counts))
            ).rowcount
            if changed != 1:
                return
            self.audit.append(
                **finish_fields(
                    run_id=self.run_id,
                    mode=self.mode,
                    status=status.value,
                    finished_at=finished_at,
                    counts=counts,
                ),
                connection=connection,
            )


__all__ = ["Executor", "Progress", "RuleOutcome", "RunResult", "refuse_future"]
