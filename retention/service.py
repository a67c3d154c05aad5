"""The daemon behind `retention serve`: schedules, the lease, holds, signals, health and metrics.

Three threads:

- The **main loop** sleeps until the next fire time of any rule (:mod:`retention.schedule`), a
  signal, or a change of the holds file. When rules are due it takes the executor lease, reads
  again what has run (another replica may have run it meanwhile), runs every due rule in one
  :class:`~retention.executor.Executor` run, records them as run, writes a checkpoint of the
  audit chain after a live run (``audit.checkpoints``, :mod:`retention.checkpoints`), and gives
  the lease back. A
  replica that cannot take the lease waits and tries again; the executor fences every batch on
  the lease, so a replica that lost it cannot commit anything more.
  With ``service.lease_scope: dataset`` the replica instead leads a fair share of the shards
  (:mod:`retention.leadership`), rebalanced between runs, and runs the rules due on the shards
  it leads, each shard's batches fenced on that shard's lease.
- A **watcher**, once a second: renews the lease while a run holds it, re-reads the holds file
  when it changes (the executor re-reads it before every batch as well), and bounds shutdown.
- The **HTTP** thread (:mod:`retention.health`).

Signals: SIGTERM and SIGINT let the current batch finish, record the run as interrupted (the
next start catches it up and reconciles it), release the lease and exit 0; if the batch does not
finish within ``service.stop_timeout`` the process exits 1. SIGHUP reloads the configuration
between runs; one that does not validate is rejected with a log line and the old one stays.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import select
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from sqlalchemy import Engine, func, text
from sqlalchemy import select as sql_select
from sqlalchemy.exc import SQLAlchemyError

from .audit import AuditLog
from .checkpoints import write as write_checkpoint
from .config import Config, load_config
from .errors import ConfigError, LeaseLost, RetentionError
from .executor import Executor, RunResult
from .health import Endpoints, HealthServer
from .holds import HoldsFile, holds_fingerprint
from .kinds import capabilities
from .leadership import Leadership
from .lease import Fence, Lease, default_holder
from .logs import configure, describe_error, get_logger
from .metrics import CONTENT_TYPE, Metrics
from .planner import Refusal, make_plan, rule_targets
from .rules import Rule
from .schedule import (
    Pair,
    due_rules,
    mark_covered,
    mark_shard_covered,
    next_due,
    next_fire,
    read_covered,
    read_shard_covered,
    register,
    register_shards,
    rule_schedules,
)
from .shards import shard_of, shards
from .statedb import open_state
from .statetables import audit
from .stores import Stores

MAX_SLEEP = 60.0  # read the clock again at least this often (suspend, clock steps)
WATCH_INTERVAL = 1.0
# Settings that only take effect at start: a reload that changes them is rejected.
_FIXED = ("state_db", "service.host", "service.port", "service.lease_scope")


class Clock(Protocol):
    """Where the service reads the time; tests pin it."""

    def now(self) -> dt.datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class Wakeup:
    """A self-pipe: :meth:`set` (safe in a signal handler and from any thread) ends :meth:`wait`."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def set(self) -> None:
        if self._write < 0:
            return  # closed: a late signal must not write to a reused descriptor
        with suppress(BlockingIOError, OSError):
            os.write(self._write, b"\0")

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds; True when woken early."""
        ready, _, _ = select.select([self._read], [], [], max(0.0, timeout))
        if ready:
            with suppress(BlockingIOError):
                while os.read(self._read, 512):
                    pass
        return bool(ready)

    def close(self) -> None:
        write, self._write = self._write, -1
        if write >= 0:
            os.close(write)
            os.close(self._read)


class Service:
    """One replica of the daemon, over one configuration and one state DB."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        holder: str | None = None,
        state: Engine | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self._owns_state = state is None
        self.state = state or open_state(config.settings.state_db.get_secret_value())
        _check_audit_keys(config, self.state)
        ttl = dt.timedelta(seconds=config.settings.service.lease_ttl)
        holder = holder or default_holder()
        self.lease = Lease(self.state, holder=holder, ttl=ttl, clock=self.clock.now)
        # lease_scope: dataset — the shards this replica leads, else None (the one lease)
        self.leadership: Leadership | None = None
        if config.settings.service.lease_scope == "dataset":
            self.leadership = Leadership(
                self.state, shards(config), holder=holder, ttl=ttl, clock=self.clock.now
            )
        self._shard_covered: dict[Pair, dt.datetime] = {}
        self._replicas = 1
        self._join_until = 0.0
        self.metrics = Metrics()
        self.log = get_logger(holder=self.lease.holder)
        self.started = self.clock.now()
        self._covered: dict[str, dt.datetime] = {}
        self._wakeup = Wakeup()
        self._lease_lock = threading.Lock()
        self._holding = False
        self._renew_at = 0.0
        self._lease_lost = False
        self._waiting_for: str | None = None
        self._stopping = False
        self._stop_requested: float | None = None
        self._stop_logged = False
        self._reload = False
        self._replan = True
        self._reload_error: str | None = None
        self._holds_seen = holds_fingerprint(config.holds_path)
        self._holds_refused = False
        self._approvals: tuple[Refusal, ...] = ()  # from the last plan refresh
        self._probe_stores: Stores | None = None
        self._watch_stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="retention-watch", daemon=True)

    # -- life ------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Put the rules on the books, read what has run, fill the metrics from config and holds."""
        schedules = rule_schedules(self.config)
        register(self.state, schedules, self.started)
        self._covered = read_covered(self.state, schedules, self.started)
        self._declare_metrics()
        self._load_holds()
        self.metrics.lease_held.labels(self.lease.holder).set(0)
        if self.leadership is not None:
            self._prepare_shards()
        self.log.info(
            "service started",
            rules=len(schedules),
            mode="dry-run" if self.config.settings.dry_run else "live",
            timezone=self.config.settings.timezone,
            state_db=self.state.dialect.name,
            fingerprint=self.config.fingerprint()[:16],
        )

    def run(self) -> None:
        """Serve until asked to stop: the main loop."""
        self.prepare()
        self._watcher.start()
        try:
            while not self._stopping:
                self._between_runs()
                if self._stopping:
                    break
                delay = self.step()
                if delay > 0 and not self._stopping:
                    self._wakeup.wait(delay)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the watcher, give the lease back, close connections."""
        self._watch_stop.set()
        if self._watcher.is_alive():
            self._watcher.join(timeout=5)
        self._release()
        if self._probe_stores is not None:
            self._probe_stores.close()
        self._probe_stores = None
        self.log.info("service stopped", signalled=self._stop_requested is not None)
        if self._owns_state:
            self.state.dispose()
        self._wakeup.close()

    def request_stop(self) -> None:
        """Finish the current batch, then stop (safe in a signal handler: no locks, no logs)."""
        if self._stop_requested is None:
            self._stop_requested = time.monotonic()
        self._stopping = True
        self._wakeup.set()

    def request_reload(self) -> None:
        """Reload the configuration between runs (safe in a signal handler)."""
        self._reload = True
        self._wakeup.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    # -- one turn of the loop ----------------------------------------------------------------

    def step(self) -> float:
        """Run what is due now, if the lease allows; the seconds to sleep before the next turn."""
        if self.leadership is not None:
            return self._sharded_step(self.leadership)
        schedules = rule_schedules(self.config)
        zone = self.config.settings.zone()
        covered = {rule: self._covered.get(rule, self.started) for rule in schedules}
        now = self.clock.now()
        if not due_rules(schedules, covered, now, zone):
            upcoming = next_due(schedules, covered, zone)
            if upcoming is None:
                return MAX_SLEEP
            self.metrics.next_run.set(upcoming.timestamp())
            return min(MAX_SLEEP, max(0.0, (upcoming - self.clock.now()).total_seconds()))
        if not self._holds_usable():
            return MAX_SLEEP  # the watcher wakes the loop once the file is whole again
        if not self._acquire():
            return self._retry_interval()
        try:
            # Under the lease: what has run is now certain (a replica may have run it meanwhile).
            self._covered.update(read_covered(self.state, schedules, self.started))
            covered = {rule: self._covered[rule] for rule in schedules}
            now = self.clock.now()
            due = due_rules(schedules, covered, now, zone)
            if due:
                self._run(due, now)
        except SQLAlchemyError as exc:
            self.log.error("state db unreachable", error=describe_error(exc))
            return self._retry_interval()
        finally:
            self._release()
        return 0.0

    def _holds_usable(self) -> bool:
        """Whether the holds file can be read now. Fail closed: with no readable holds file no
        run starts (due rules stay due, and run once the file is fixed); `/readyz` says why."""
        try:
            self.config.load_holds()
        except ConfigError as exc:
            if not self._holds_refused:
                self._holds_refused = True
                self.log.error(
                    "runs postponed: the holds file is unusable", errors=str(exc).splitlines()
                )
            return False
        if self._holds_refused:
            self._holds_refused = False
            self.log.info("holds file usable again: postponed runs resume")
        return True

    def _between_runs(self) -> None:
        if self._reload:
            self._reload = False
            self.reload()
        if self._replan and not self._stopping:
            self._replan = False
            self.refresh_plan()

    def _retry_interval(self) -> float:
        return min(15.0, max(0.5, self.config.settings.service.lease_ttl / 4))

    # -- the run -------------------------------------------------------------------------------

    # -- shards (lease_scope: dataset) ----------------------------------------------------------

    def _prepare_shards(self, *, joining: bool = True) -> None:
        """Count this replica among the alive, put the (rule, shard) pairs on the books. On
        joining, the first rebalance waits one lease_ttl, so replicas started together see each
        other before any takes shards (none grabs them all)."""
        assert self.leadership is not None
        self.leadership.join()
        pairs = self._pairs()
        register_shards(self.state, pairs, self.started)
        self._shard_covered = read_shard_covered(self.state, pairs, self.started)
        if joining:
            self._join_until = time.monotonic() + self.leadership.ttl.total_seconds()
        self._show_shards()

    def _pairs(self, held: list[str] | None = None) -> list[Pair]:
        """Each (rule, shard) that a scheduled rule acts on (on the shards `held` only)."""
        assert self.leadership is not None
        owner = shard_of(self.leadership.units)
        found: dict[Pair, None] = {}
        for rule in self.config.rules:
            if rule.destructive:
                for dataset in self.config.datasets_for(rule):
                    if held is None or owner[dataset] in held:
                        found[(rule.id, owner[dataset])] = None
        return list(found)

    def _sharded_step(self, leadership: Leadership) -> float:
        """Rebalance, then run the rules due on the shards this replica leads: one run per set
        of shards with the same rules due."""
        retry = self._retry_interval()
        self._rebalance(leadership)
        held = leadership.held()
        if not held:
            return retry
        schedules = rule_schedules(self.config)
        zone = self.config.settings.zone()
        pairs = self._pairs(held)

        def due_now(now: dt.datetime) -> list[Pair]:
            return [
                pair
                for pair in pairs
                if next_fire(schedules[pair[0]], self._shard_covered.get(pair, self.started), zone)
                <= now
            ]

        if not due_now(self.clock.now()):
            upcoming = min(
                (
                    next_fire(schedules[p[0]], self._shard_covered.get(p, self.started), zone)
                    for p in pairs
                ),
                default=None,
            )
            if upcoming is None:
                return retry
            self.metrics.next_run.set(upcoming.timestamp())
            return min(retry, max(0.0, (upcoming - self.clock.now()).total_seconds()))
        if not self._holds_usable():
            return retry
        try:
            # what has run is certain only now: the shard's previous leader may have run it
            self._shard_covered.update(read_shard_covered(self.state, pairs, self.started))
            now = self.clock.now()
            groups: dict[tuple[str, ...], list[str]] = {}
            for shard in held:
                rules = tuple(rule for rule, of in due_now(now) if of == shard)
                if rules:
                    groups.setdefault(rules, []).append(shard)
            for rules, group in groups.items():
                if self._stopping or self._lease_lost:
                    break
                self._run(list(rules), now, group)
        except SQLAlchemyError as exc:
            self.log.error("state db unreachable", error=describe_error(exc))
            return retry
        return 0.0

    def _rebalance(self, leadership: Leadership) -> None:
        """Take free shards up to the fair share, give back those beyond it (between runs)."""
        if time.monotonic() < self._join_until:
            return
        with self._lease_lock:
            try:
                self._replicas = len(set(leadership.alive()) | {leadership.holder})
                taken, given = leadership.rebalance()
            except SQLAlchemyError as exc:
                self.log.error("state db unreachable", error=describe_error(exc))
                return
            self._lease_lost = False
        for change, changed in (("acquired", taken), ("released", given)):
            for shard in changed:
                self.metrics.lease_changes.labels(leadership.holder, change).inc()
                self.log.info(f"shard {change}", shard=shard, epoch=leadership.leases[shard].epoch)
        if taken or given:
            self.log.info("shards rebalanced", shards=leadership.held(), replicas=self._replicas)
        self._show_shards()

    def _show_shards(self) -> None:
        leadership = self.leadership
        assert leadership is not None
        held = leadership.held()
        self.metrics.show_shards(leadership.holder, sorted(leadership.units), held)

    def _run(
        self, due: list[str], now: dt.datetime, group: list[str] | None = None
    ) -> RunResult | None:
        """One executor run of the `due` rules: on every dataset, or on the shards `group`."""
        config = self.config
        fence: Fence = self.lease
        datasets: list[str] = []
        if group is not None:
            assert self.leadership is not None
            fence = self.leadership
            datasets = sorted(d for shard in group for d in self.leadership.units[shard])
        live = not config.settings.dry_run
        mode = "live" if live else "dry-run"
        executor = Executor(
            config,
            now=now,
            live=live,
            state=self.state,
            lease=fence,
            should_stop=lambda: self._stopping or self._lease_lost,
            clock=self.clock.now,
        )
        log = self.log.bind(run_id=executor.run_id)
        counted = [self._audit_head()]
        done: dict[tuple[str, str], int] = {}

        def progress(rule: Rule, dataset: str, acted: int, planned: int) -> None:
            count = acted - done.get((rule.id, dataset), 0)
            done[(rule.id, dataset)] = acted
            log.info(
                "batch audited",
                rule=rule.id,
                dataset=dataset,
                action=rule.action,
                count=count,
                done=acted,
                planned=planned,
                dry_run=not live,
            )
            counted[0] = self._count_audited(counted[0])

        executor.progress = progress
        log.info("run started", rules=due, mode=mode, **({"shards": group} if group else {}))
        began = time.monotonic()
        result: RunResult | None = None
        status = "failed"
        try:
            result = executor.run(due, datasets)
            status = result.status
        except LeaseLost as exc:
            status = "lease lost"
            log.error("lease lost", error=str(exc))
        except ConfigError as exc:  # the holds file became unusable between two batches
            status = "interrupted"
            log.error("run stopped: unusable input", error=describe_error(exc))
        except RetentionError as exc:
            log.error("run failed", error=describe_error(exc))
        except SQLAlchemyError as exc:
            log.error("run failed", error=describe_error(exc))
        except Exception as exc:  # a bug: keep serving, say where
            log.error("run crashed", error=describe_error(exc))
        seconds = time.monotonic() - began
        with suppress(SQLAlchemyError):
            self._count_audited(counted[0])
        planned = sum(o.planned for o in result.outcomes) if result is not None else None
        acted = sum(o.acted for o in result.outcomes) if result is not None else None
        self.metrics.run_done(mode, status, seconds, self.clock.now(), planned=planned, acted=acted)
        if result is not None:
            self._report(result, log, seconds)
        if live and status != "lease lost" and config.settings.audit.checkpoints:
            self._checkpoint(log)
        if status not in ("interrupted", "lease lost"):
            # An interrupted run stays due: the next start (or replica) catches it up.
            if group is None:
                mark_covered(self.state, due, now, executor.run_id)
                self._covered.update(dict.fromkeys(due, now))
            else:
                pairs = [pair for pair in self._pairs(group) if pair[0] in due]
                mark_shard_covered(self.state, pairs, now, executor.run_id)
                self._shard_covered.update(dict.fromkeys(pairs, now))
        self._replan = True
        return result

    def _checkpoint(self, log: Any) -> None:
        """Anchor the chain outside the state DB after a live run (audit.checkpoints)."""
        try:
            checkpoint, location = write_checkpoint(
                self.state, self.config.settings, None, now=self.clock.now()
            )
        except (RetentionError, SQLAlchemyError) as exc:
            log.error("checkpoint failed", error=describe_error(exc))
            return
        log.info(
            "checkpoint written", seq=checkpoint.seq, key_id=checkpoint.key_id, location=location
        )

    def _report(self, result: RunResult, log: Any, seconds: float) -> None:
        for outcome in result.outcomes:
            where = {"rule": outcome.rule, "dataset": outcome.dataset}
            if result.live and outcome.status == "ok" and outcome.planned:
                self.metrics.lingering.labels(outcome.rule, outcome.dataset).set(outcome.lingering)
            if outcome.lingering:
                log.warning("lingering", count=outcome.lingering, action=outcome.action, **where)
            if outcome.status not in ("ok", "stopped"):
                log.warning(
                    "rule not completed", status=outcome.status, message=outcome.message, **where
                )
        totals = result.as_dict()["totals"]
        log.info(
            "run finished",
            status=result.status,
            mode="live" if result.live else "dry-run",
            acted=totals["acted"],
            cascaded=totals["cascaded"],
            lingering=totals["lingering"],
            recovered=result.recovered,
            seconds=round(seconds, 3),
        )

    def _audit_head(self) -> int:
        with self.state.connect() as connection:
            return int(connection.execute(sql_select(func.max(audit.c.seq))).scalar() or 0)

    def _count_audited(self, after: int) -> int:
        """Add this run's audited actions after entry `after` to the counters; the new head."""
        query = (
            sql_select(
                audit.c.seq,
                audit.c.rule,
                audit.c.dataset,
                audit.c.action,
                audit.c.count,
                audit.c.outcome,
                audit.c.dry_run,
            )
            .where(audit.c.seq > after)
            .order_by(audit.c.seq)
        )
        with self.state.connect() as connection:
            rows = connection.execute(query).all()
        self.metrics.count_audited(
            (rule, dataset, action, count)
            for _, rule, dataset, action, count, outcome, dry_run in rows
            if outcome == "done" and not dry_run
        )
        return max((int(row[0]) for row in rows), default=after)

    # -- the lease -----------------------------------------------------------------------------

    def _acquire(self) -> bool:
        with self._lease_lock:
            try:
                got = self.lease.try_acquire()
            except SQLAlchemyError as exc:
                self.log.error("state db unreachable", error=describe_error(exc))
                return False
            if not got:
                current = self.lease.current()
                holder = current[0] if current else None
                if holder != self._waiting_for:
                    self._waiting_for = holder
                    self.log.info("lease busy, waiting", current_holder=holder)
                return False
            self._holding, self._lease_lost, self._waiting_for = True, False, None
            self._renew_at = time.monotonic() + self.lease.ttl.total_seconds() / 3
        self.metrics.lease_held.labels(self.lease.holder).set(1)
        self.metrics.lease_changes.labels(self.lease.holder, "acquired").inc()
        self.log.info("lease acquired", epoch=self.lease.epoch)
        return True

    def _release(self) -> None:
        if self.leadership is not None:
            self._leave(self.leadership)
            return
        with self._lease_lock:
            if not self._holding:
                return
            self._holding = False
            try:
                self.lease.release()
            except SQLAlchemyError as exc:
                self.log.warning("lease release failed", error=describe_error(exc))
        self.metrics.lease_held.labels(self.lease.holder).set(0)
        self.metrics.lease_changes.labels(self.lease.holder, "released").inc()
        self.log.info("lease released")

    def _leave(self, leadership: Leadership) -> None:
        """A clean stop: every shard back, this replica no longer counted (others take over
        at once instead of after lease_ttl)."""
        with self._lease_lock:
            given = leadership.held()
            try:
                leadership.release()
                leadership.leave()
            except SQLAlchemyError as exc:
                self.log.warning("lease release failed", error=describe_error(exc))
                return
        if given:
            self.metrics.lease_changes.labels(leadership.holder, "released").inc(len(given))
        self._show_shards()
        self.log.info("shards released", shards=given)

    def _renew_shards(self, leadership: Leadership) -> None:
        """Renew every shard held and this replica's row; a shard taken over stops the run."""
        with self._lease_lock:
            if time.monotonic() < self._renew_at:
                return
            try:
                lost = leadership.renew()
            except SQLAlchemyError as exc:
                self.log.warning("lease renewal failed", error=describe_error(exc))
                return
            self._renew_at = time.monotonic() + leadership.ttl.total_seconds() / 3
            if lost:
                self._lease_lost = True
        if lost:
            self.metrics.lease_changes.labels(leadership.holder, "lost").inc(len(lost))
            self._show_shards()
            self.log.error("lease lost", shards=lost, error="taken over while renewing")

    def _renew(self) -> None:
        if self.leadership is not None:
            self._renew_shards(self.leadership)
            return
        with self._lease_lock:
            if not self._holding or time.monotonic() < self._renew_at:
                return
            try:
                self.lease.check()
                self._renew_at = time.monotonic() + self.lease.ttl.total_seconds() / 3
            except LeaseLost:
                self._holding, self._lease_lost = False, True
                self.metrics.lease_held.labels(self.lease.holder).set(0)
                self.metrics.lease_changes.labels(self.lease.holder, "lost").inc()
                self.log.error("lease lost", error="taken over while renewing; stopping the run")
            except SQLAlchemyError as exc:
                self.log.warning("lease renewal failed", error=describe_error(exc))

    # -- the watcher ---------------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._watch_stop.wait(WATCH_INTERVAL):
            try:
                self._renew()
                self._check_holds_file()
                self._check_stop()
            except Exception as exc:  # never let the watcher die silently
                self.log.error("watcher error", error=describe_error(exc))

    def _check_holds_file(self) -> None:
        seen = holds_fingerprint(self.config.holds_path)
        if seen != self._holds_seen:
            self._holds_seen = seen
            if self._load_holds():
                self._replan = True
                self._wakeup.set()

    def _load_holds(self) -> bool:
        """Read the holds file into the metrics and the log; False when it is unusable."""
        now = self.clock.now()
        today = now.astimezone(self.config.settings.zone()).date()
        try:
            holds: HoldsFile = self.config.holds_as_of(now)
        except ConfigError as exc:
            self.metrics.show_holds(None, today)
            self.log.error("holds rejected", errors=str(exc).splitlines())
            return False
        self.metrics.show_holds(holds, today)
        active = holds.active()
        self.log.info(
            "holds loaded",
            active=[hold.id for hold in active],
            freeze=holds.freeze,
            review_overdue=[hold.id for hold in active if hold.review_overdue(today)],
        )
        return True

    def _check_stop(self) -> None:
        if self._stop_requested is None:
            return
        if not self._stop_logged and self._holding:
            self._stop_logged = True
            self.log.info("stop requested, finishing the current batch")
        timeout = self.config.settings.service.stop_timeout
        if time.monotonic() - self._stop_requested > timeout:
            self.log.error("stop timed out", seconds=timeout)
            os._exit(1)

    # -- configuration -------------------------------------------------------------------------

    def reload(self) -> bool:
        """Load the configuration file again; keep the old one if the new one is invalid."""
        try:
            new = load_config(self.config.path)
            _check_audit_keys(new, self.state)
        except ConfigError as exc:
            return self._reject(str(exc).splitlines())
        changed = [name for name in _FIXED if _setting(new, name) != _setting(self.config, name)]
        if changed:
            return self._reject([f"{', '.join(changed)} only change on restart"])
        self.config = new
        self._reload_error = None
        self.metrics.reload_success.set(1)
        self.lease.ttl = dt.timedelta(seconds=new.settings.service.lease_ttl)
        schedules = rule_schedules(new)
        now = self.clock.now()
        register(self.state, schedules, now)
        self._covered = read_covered(self.state, schedules, now)
        if self.leadership is not None:
            self._reshard(self.leadership)
        self._holds_seen = holds_fingerprint(new.holds_path)
        if self._probe_stores is not None:
            self._probe_stores.close()
        self._probe_stores = None
        self._declare_metrics()
        self._load_holds()
        self._replan = True
        self.log.info(
            "config reloaded",
            rules=len(schedules),
            mode="dry-run" if new.settings.dry_run else "live",
            fingerprint=new.fingerprint()[:16],
        )
        return True

    def _reshard(self, leadership: Leadership) -> None:
        """After a reload: the new lease_ttl, and new shards if the datasets changed (every
        shard given back first; the next turns take a fair share of the new ones)."""
        leadership.ttl = self.lease.ttl
        units = shards(self.config)
        changed = units != leadership.units
        if changed:
            self._leave(leadership)
            self.leadership = Leadership(
                self.state,
                units,
                holder=leadership.holder,
                ttl=self.lease.ttl,
                clock=self.clock.now,
            )
        self._prepare_shards(joining=changed)

    def _reject(self, errors: list[str]) -> bool:
        self._reload_error = "; ".join(errors)
        self.metrics.reload_success.set(0)
        self.log.error("config rejected", errors=errors, keeping=self.config.fingerprint()[:16])
        return False

    def _declare_metrics(self) -> None:
        self.metrics.declare(
            (rule.id, dataset, rule.action)
            for rule, dataset in rule_targets(self.config)
            if rule.destructive
        )

    def refresh_plan(self) -> None:
        """Recompute the due, overdue and held gauges from a plan (read-only, no lease)."""
        try:
            plan = make_plan(self.config, self.clock.now(), samples=0)
        except (RetentionError, SQLAlchemyError) as exc:
            self.log.warning("plan failed", error=describe_error(exc))
            return
        self.metrics.show_plan(plan)
        self._approvals = plan.approvals
        for waiting in plan.approvals:
            self.log.warning(
                "approval pending",
                rule=waiting.rule,
                dataset=waiting.dataset,
                message=waiting.message,
            )
        totals = plan.as_dict()["totals"]
        self.log.info(
            "plan refreshed", due=totals["due"], overdue=totals["overdue"], held=totals["held"]
        )
        for skipped in plan.skipped:
            self.log.warning("plan skipped store", store=skipped.store, message=skipped.message)

    # -- readiness -------------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether this replica could do its work now, and each check's result."""
        config = self.config
        checks: dict[str, Any] = {
            "config": {"ok": True, "fingerprint": config.fingerprint()[:16]},
            "state_db": _check(self._ping_state),
            "holds": _check(config.load_holds),
        }
        if self._reload_error:
            checks["config"]["last_reload"] = f"rejected, old config in force: {self._reload_error}"
        if self._probe_stores is None:
            self._probe_stores = Stores(config.settings)
        stores: dict[str, Any] = {}
        for name, store_config in config.settings.stores.items():
            if not capabilities(store_config.kind).probed_when_ready:
                stores[name] = {"ok": True, "note": f"{store_config.kind} stores are not probed"}
                continue
            problems = self._probe_stores[name].check([])
            stores[name] = {"ok": False, "error": problems[0].message} if problems else {"ok": True}
        checks["stores"] = stores
        checks["lease"] = self._lease_detail()
        # a rule waiting for a person's approval is not a fault of this replica: detail only
        checks["approvals"] = {
            "ok": True,
            "pending": [dataclasses.asdict(waiting) for waiting in self._approvals],
        }
        ready = all(c["ok"] for c in (checks["state_db"], checks["holds"], *stores.values()))
        return ready, {"ready": ready, "checks": checks}

    def _lease_detail(self) -> dict[str, Any]:
        """What this replica leads (detail only: a replica leading nothing is a ready standby)."""
        leadership = self.leadership
        if leadership is None:
            return {
                "ok": True,
                "scope": "state_db",
                "holder": self.lease.holder,
                "held": self._holding,
            }
        held = leadership.held()
        return {
            "ok": True,
            "scope": "dataset",
            "holder": leadership.holder,
            "replicas": self._replicas,
            "shards": {shard: list(leadership.units[shard]) for shard in held},
            "datasets": leadership.datasets(),
            "of_shards": len(leadership.units),
        }

    def _ping_state(self) -> None:
        with self.state.connect() as connection:
            connection.execute(text("SELECT 1"))


def _check_audit_keys(config: Config, state: Engine) -> None:
    """Fail at start, not at the first fire time, when audit.keys needs a key that is missing."""
    AuditLog.from_settings(state, config.settings, writing=True)


def _check(probe: Any) -> dict[str, Any]:
    try:
        probe()
    except (ConfigError, RetentionError, SQLAlchemyError, OSError) as exc:
        return {"ok": False, "error": describe_error(exc)}
    return {"ok": True}


def _setting(config: Config, dotted: str) -> Any:
    value: Any = config.settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value.get_secret_value() if hasattr(value, "get_secret_value") else value


# -- the process ---------------------------------------------------------------------------------


@contextmanager
def _signals(service: Service) -> Iterator[None]:
    """SIGTERM/SIGINT stop, SIGHUP reloads; the previous handlers come back on exit."""

    def stop(signum: int, frame: FrameType | None) -> None:
        service.request_stop()

    def reload(signum: int, frame: FrameType | None) -> None:
        service.request_reload()

    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, stop),
        signal.SIGINT: signal.signal(signal.SIGINT, stop),
        signal.SIGHUP: signal.signal(signal.SIGHUP, reload),
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def serve(path: Path | None, *, log_format: str = "auto") -> int:
    """Run the daemon in this process until SIGTERM or SIGINT; the exit code (0: clean stop).

    A configuration that does not validate raises ConfigErrors before anything starts, and an
    unreachable state DB a StoreError: both are for the caller to report.
    """
    configure(json=None if log_format == "auto" else log_format == "json")
    config = load_config(path)
    service = Service(config)
    host, port = config.settings.service.host, config.settings.service.port
    endpoints = Endpoints(service.readiness, service.metrics.render, CONTENT_TYPE)
    try:
        server = HealthServer(host, port, endpoints)
    except OSError as exc:
        service.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}", field="service.port"
        ) from None
    with _signals(service):
        server.start()
        bound_host, bound_port = server.address
        service.log.info("http listening", host=bound_host, port=bound_port)
        try:
            service.run()
        finally:
            server.close()
    return 0


__all__ = ["Clock", "Service", "SystemClock", "serve"]
