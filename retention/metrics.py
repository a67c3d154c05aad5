"""The Prometheus metrics of `retention serve`, in a registry of their own.

Where each number comes from:

- ``retention_records_deleted_total`` / ``retention_records_anonymized_total`` {rule, dataset}:
  read back from the audit log after every batch this process ran (cascaded children count under
  their own dataset; entries settled after an interruption count in the run that settled them),
  so they are exactly what the audit log shows for this process's runs.
- ``retention_due_records`` / ``_overdue_records`` / ``_held_records`` {rule, dataset}: from a
  plan (:func:`~retention.planner.make_plan`) at start, after every run, after a config reload
  and after the holds file changes; ``retention_plan_timestamp_seconds`` says when.
- ``retention_unreadable_clock_records`` {rule, dataset}: from the same plan, every rule (keep
  rules too): records never acted on because a clock the rule needs holds a value that is no
  timestamp (SQLite text such as ``'yesterday'``, an S3 tag that does not parse).
- ``retention_assert_absent_violations`` {rule, dataset}: from the same plan, for each
  ``action: assert_absent`` rule, the records holding what must never be stored.
- ``retention_lingering_records`` {rule, dataset}: the reconciliation after a live run
  (:attr:`~retention.executor.RuleOutcome.lingering`), for the rules that run acted on.
- ``retention_runs_total`` {mode, status}, ``retention_run_duration_seconds`` {mode},
  ``retention_last_success_timestamp_seconds`` {mode}, ``retention_next_run_timestamp_seconds``.
- ``retention_lease_held`` {holder}: 1 while this replica holds the executor lease (with
  ``service.lease_scope: dataset``: while it leads at least one shard).
- ``retention_lease_shards_held`` {holder} and ``retention_lease_shard_held`` {holder, shard}
  (lease_scope: dataset): how many shards, and which, this replica leads now.
- ``retention_lease_changes_total`` {holder, change}: leases this replica ``acquired``,
  ``released`` or ``lost`` (taken over by another while it still ran): lease flapping.
- ``retention_holds_active``, ``retention_holds_review_overdue``, ``retention_holds_freeze``,
  ``retention_holds_valid``: from the holds file, re-read whenever it changes.
- ``retention_config_reload_success``: 0 after a SIGHUP whose config was rejected.
- ``retention_last_run_planned_records`` / ``retention_last_run_acted_records`` {mode}: what the
  last run found to act on when it started and what it did (a run that did no work where work
  was due shows planned > 0 and acted == 0).
- ``retention_build_info`` {version, python}: always 1; which release is running.
"""

from __future__ import annotations

import datetime as dt
import platform
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from . import __version__
from .holds import HoldsFile
from .planner import Plan

CONTENT_TYPE = CONTENT_TYPE_LATEST
_RULE = ("rule", "dataset")
_DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, float("inf"))


class Metrics:
    """Every metric of the service; `registry` is what /metrics renders."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.deleted = Counter(
            "retention_records_deleted",
            "Records deleted by this process, as audited.",
            _RULE,
            registry=registry,
        )
        self.anonymized = Counter(
            "retention_records_anonymized",
            "Records anonymized by this process, as audited.",
            _RULE,
            registry=registry,
        )
        self.due = Gauge("retention_due_records", "Records due (plan).", _RULE, registry=registry)
        self.overdue = Gauge(
            "retention_overdue_records",
            "Records past their deadline and still to act on (plan).",
            _RULE,
            registry=registry,
        )
        self.held = Gauge(
            "retention_held_records", "Due records kept by a hold (plan).", _RULE, registry=registry
        )
        self.absent_violations = Gauge(
            "retention_assert_absent_violations",
            "Records holding data an assert_absent rule says must never be stored (plan).",
            _RULE,
            registry=registry,
        )
        self.unreadable = Gauge(
            "retention_unreadable_clock_records",
            "Records never acted on because a clock the rule needs is unreadable (plan).",
            _RULE,
            registry=registry,
        )
        self.approvals_pending = Gauge(
            "retention_approval_pending_records",
            "Records a live run would act on once a person approves the rule (plan).",
            _RULE,
            registry=registry,
        )
        self.lingering = Gauge(
            "retention_lingering_records",
            "Records still due and unheld after the last live run that acted on the rule.",
            _RULE,
            registry=registry,
        )
        self.plan_time = Gauge(
            "retention_plan_timestamp_seconds",
            "When the due/overdue/held gauges were computed.",
            registry=registry,
        )
        self.runs = Counter(
            "retention_runs", "Runs, by mode and status.", ("mode", "status"), registry=registry
        )
        self.duration = Histogram(
            "retention_run_duration_seconds",
            "How long runs took.",
            ("mode",),
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self.last_success = Gauge(
            "retention_last_success_timestamp_seconds",
            "When the last run that completed finished.",
            ("mode",),
            registry=registry,
        )
        self.next_run = Gauge(
            "retention_next_run_timestamp_seconds",
            "The next scheduled fire time of any rule.",
            registry=registry,
        )
        self.lease_held = Gauge(
            "retention_lease_held",
            "1 while this replica holds the executor lease (or, by shard, leads any).",
            ("holder",),
            registry=registry,
        )
        self.shards_held = Gauge(
            "retention_lease_shards_held",
            "Shards this replica leads (service.lease_scope: dataset).",
            ("holder",),
            registry=registry,
        )
        self.shard_held = Gauge(
            "retention_lease_shard_held",
            "1 while this replica leads the shard (service.lease_scope: dataset).",
            ("holder", "shard"),
            registry=registry,
        )
        self.lease_changes = Counter(
            "retention_lease_changes",
            "Leases this replica acquired, released or lost (taken over while it ran).",
            ("holder", "change"),
            registry=registry,
        )
        self.holds_active = Gauge(
            "retention_holds_active", "Active legal holds.", registry=registry
        )
        self.holds_review_overdue = Gauge(
            "retention_holds_review_overdue",
            "Active holds past their review_by date.",
            registry=registry,
        )
        self.freeze = Gauge(
            "retention_holds_freeze", "1 when the holds file sets freeze.", registry=registry
        )
        self.holds_valid = Gauge(
            "retention_holds_valid", "0 when the holds file cannot be read.", registry=registry
        )
        self.reload_success = Gauge(
            "retention_config_reload_success",
            "0 when the last configuration reload was rejected.",
            registry=registry,
        )
        self.reload_success.set(1)
        self.last_planned = Gauge(
            "retention_last_run_planned_records",
            "Records the last run found to act on when it started.",
            ("mode",),
            registry=registry,
        )
        self.last_acted = Gauge(
            "retention_last_run_acted_records",
            "Records the last run acted on (or would have, in a dry run).",
            ("mode",),
            registry=registry,
        )
        self.build_info = Gauge(
            "retention_build_info",
            "Always 1: the release and Python running.",
            ("version", "python"),
            registry=registry,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    def declare(self, targets: Iterable[tuple[str, str, str]]) -> None:
        """Start the counters of every (rule, dataset, action) at 0, so rates exist at once."""
        for rule, dataset, action in targets:
            counter = self.deleted if action == "delete" else self.anonymized
            counter.labels(rule, dataset)

    def count_audited(self, entries: Iterable[tuple[str | None, str | None, str, int]]) -> None:
        """Add audit entries (rule, dataset, action, count) of acted-on records to the counters."""
        for rule, dataset, action, count in entries:
            counter = self.anonymized if action == "anonymize" else self.deleted
            counter.labels(rule or "", dataset or "").inc(count)

    def show_plan(self, plan: Plan) -> None:
        """Replace the due, overdue, held, unreadable and approval gauges with `plan`'s."""
        gauges = (self.due, self.overdue, self.held, self.unreadable, self.approvals_pending)
        for gauge in (*gauges, self.absent_violations):
            gauge.clear()
        waiting = {(a.rule, a.dataset) for a in plan.approvals}
        for row in plan.rules:
            self.unreadable.labels(row.rule, row.dataset).set(row.unreadable)
            if row.asserts_absent:
                self.absent_violations.labels(row.rule, row.dataset).set(row.violations)
            if row.action == "keep":
                continue
            self.due.labels(row.rule, row.dataset).set(row.due)
            self.overdue.labels(row.rule, row.dataset).set(row.overdue)
            self.held.labels(row.rule, row.dataset).set(row.held)
            if (row.rule, row.dataset) in waiting:
                self.approvals_pending.labels(row.rule, row.dataset).set(row.actionable)
        self.plan_time.set(plan.now.timestamp())

    def show_holds(self, holds: HoldsFile | None, today: dt.date) -> None:
        """The holds gauges; None when the file could not be read."""
        if holds is None:
            self.holds_valid.set(0)
            return
        active = holds.active()
        self.holds_valid.set(1)
        self.holds_active.set(len(active))
        self.holds_review_overdue.set(sum(1 for h in active if h.review_overdue(today)))
        self.freeze.set(1 if holds.freeze else 0)

    def show_shards(self, holder: str, every: list[str], held: list[str]) -> None:
        """Which of the shards `every` this replica leads now."""
        for shard in every:
            self.shard_held.labels(holder, shard).set(1 if shard in held else 0)
        self.shards_held.labels(holder).set(len(held))
        self.lease_held.labels(holder).set(1 if held else 0)

    def run_done(
        self,
        mode: str,
        status: str,
        seconds: float,
        finished: dt.datetime | None = None,
        *,
        planned: int | None = None,
        acted: int | None = None,
    ) -> None:
        """Count a run and its duration (and, when it got that far, what it planned and did);
        a complete one is the last success."""
        self.runs.labels(mode, status).inc()
        if planned is not None:
            self.last_planned.labels(mode).set(planned)
            self.last_acted.labels(mode).set(acted or 0)
        self.duration.labels(mode).observe(seconds)
        if status == "complete" and finished is not None:
            self.last_success.labels(mode).set(finished.timestamp())


__all__ = ["CONTENT_TYPE", "Metrics"]
