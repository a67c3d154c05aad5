"""Runs as audit-chain events, and the check that `retention_runs` says what the chain says.

Every run's life is in the chain: an entry when it starts (action ``run``, outcome
``started``) whose hashed ``detail`` carries its mode, as-of time (the evaluation moment: a
past ``--now`` shows here, and first, in ``audit show``), start time, config fingerprint and
holder; and one when it ends (outcome: its final status, ``count``: what it acted on), carrying
its status, finish time, counts and message, written in the same state-DB transaction as the
row's update, by the run itself or by recovery marking it interrupted. `audit verify` then
holds every row of ``retention_runs`` against the chain (:class:`RunEvents`): a row without a
start entry, a start entry without a row, or a row any of whose columns differs from what the
chain says fails, naming the run.

Runs written before this (state DBs of 0.1.0) have no events. The schema upgrade that
introduced them (revision 0002) appended one entry, the *upgrade marker*, listing each run that
existed then with a digest of its row (:func:`legacy_digest`): only those runs may lack events,
and their rows must still match their digests. Only one marker is accepted, and only before
any run event, so a marker cannot be slipped in later to excuse a forged or stripped run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .statedb import as_utc

RUN_ACTION = "run"
STARTED = "started"
MARKER_ACTION = "schema upgrade"
MARKER_OUTCOME = "runs before run events"
MARKER_RUN_ID = "state-db-revision-0002"


def canonical(data: Any) -> str:
    """The JSON text hashed into an entry's detail: sorted keys, no spaces."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def instant(value: dt.datetime | str | None) -> str | None:
    """A timestamp as the chain records it: ISO 8601 in UTC (naive values are UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    moment = as_utc(value)
    assert moment is not None
    return moment.astimezone(dt.UTC).isoformat()


def start_fields(
    *,
    run_id: str,
    mode: str,
    as_of: dt.datetime,
    started_at: dt.datetime,
    fingerprint: str,
    holder: str | None,
) -> dict[str, Any]:
    """The arguments of :meth:`AuditLog.append` for a run's start entry."""
    detail = {
        "mode": mode,
        "as_of": instant(as_of),
        "started_at": instant(started_at),
        "config_fingerprint": fingerprint,
        "holder": holder,
    }
    return {
        "run_id": run_id,
        "action": RUN_ACTION,
        "outcome": STARTED,
        "dry_run": mode != "live",
        "count": 0,
        "detail": f"as of {detail['as_of']}: {canonical(detail)}",
    }


def finish_fields(
    *,
    run_id: str,
    mode: str,
    status: str,
    finished_at: dt.datetime,
    counts: Mapping[str, Any],
    message: str | None = None,
) -> dict[str, Any]:
    """The arguments of :meth:`AuditLog.append` for a run's end (complete, interrupted, …)."""
    detail = {
        "status": status,
        "finished_at": instant(finished_at),
        "counts": dict(counts),
        "message": message,
    }
    acted = counts.get("acted", 0)
    return {
        "run_id": run_id,
        "action": RUN_ACTION,
        "outcome": status,
        "dry_run": mode != "live",
        "count": acted if isinstance(acted, int) else 0,
        "detail": canonical(detail),
    }


def legacy_digest(row: Mapping[str, Any], *, status: str | None = None) -> str:
    """A digest of a run row written before run events, as the upgrade marker records it.

    `status` overrides the row's (a run still ``running`` at the upgrade and ended since by
    recovery is digested as it was then, its end being in the chain).
    """
    data = {
        "id": row["id"],
        "mode": row["mode"],
        "as_of": instant(row["as_of"]),
        "status": status or row["status"],
        "counts": json.loads(row["counts"] or "{}") if status is None else {},
        "config_fingerprint": row["config_fingerprint"],
        "holder": row["holder"],
    }
    return hashlib.sha256(canonical(data).encode()).hexdigest()[:32]


def marker_detail(rows: Sequence[Mapping[str, Any]], entries: int, head: str) -> str:
    """The upgrade marker's detail: the chain it follows and every run that existed then."""
    return canonical(
        {
            "revision": "0002",
            "entries": entries,
            "head": head,
            "runs": {row["id"]: legacy_digest(row) for row in rows},
        }
    )


def _detail_json(detail: str | None) -> dict[str, Any]:
    """The JSON object of an event's detail (a start entry's follows an ``as of …:`` prefix)."""
    text = detail or "{}"
    text = text[text.index("{") :] if "{" in text else "{}"
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class RunProblem:
    """A run whose row and chain disagree: which run, the entry concerned (if any), why."""

    run_id: str
    seq: int | None
    reason: str


@dataclass
class RunEvents:
    """The run events of one walk along the chain; :meth:`check` holds the rows against them."""

    starts: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    ends: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    legacy: dict[str, str] = field(default_factory=dict)
    marker_seq: int | None = None
    problem: RunProblem | None = None

    def see(self, seq: int, run_id: str, action: str, outcome: str, detail: str | None) -> None:
        """Note one entry of the chain (in chain order)."""
        if self.problem is not None:
            return
        if action == MARKER_ACTION and run_id == MARKER_RUN_ID:
            if self.marker_seq is not None or self.starts:
                self.problem = RunProblem(
                    run_id,
                    seq,
                    "an upgrade marker after run events or a second one: it cannot excuse runs",
                )
                return
            self.marker_seq = seq
            self.legacy = dict(_detail_json(detail).get("runs", {}))
            return
        if action != RUN_ACTION:
            return
        data = _detail_json(detail)
        if outcome == STARTED:
            if run_id in self.starts:
                self.problem = RunProblem(run_id, seq, f"run {run_id} started twice in the chain")
                return
            self.starts[run_id] = (seq, data)
            return
        if run_id not in self.starts and run_id not in self.legacy:
            self.problem = RunProblem(
                run_id, seq, f"run {run_id} ends in the chain but never started there"
            )
            return
        self.ends[run_id] = (seq, data)

    def check(self, rows: Sequence[Mapping[str, Any]]) -> RunProblem | None:
        """The first run whose row disagrees with the chain, or that only one of them has."""
        if self.problem is not None:
            return self.problem
        seen: set[str] = set()
        for row in sorted(rows, key=lambda r: str(r["id"])):
            run_id = str(row["id"])
            seen.add(run_id)
            problem = self._check_row(run_id, row)
            if problem is not None:
                return problem
        for run_id, (seq, _) in sorted(self.starts.items(), key=lambda item: item[1][0]):
            if run_id not in seen:
                return RunProblem(
                    run_id, seq, f"run {run_id} started in the chain but its row was removed"
                )
        for run_id in sorted(self.legacy):
            if run_id not in seen:
                return RunProblem(
                    run_id,
                    self.marker_seq,
                    f"run {run_id}, recorded at the schema upgrade, has lost its row",
                )
        return None

    def _check_row(self, run_id: str, row: Mapping[str, Any]) -> RunProblem | None:
        end = self.ends.get(run_id)
        if run_id in self.starts:
            seq, start = self.starts[run_id]
            for name, found in (
                ("mode", row["mode"]),
                ("as_of", instant(row["as_of"])),
                ("started_at", instant(row["started_at"])),
                ("config_fingerprint", row["config_fingerprint"]),
                ("holder", row["holder"]),
            ):
                if start.get(name) != found:
                    return RunProblem(
                        run_id,
                        seq,
                        f"run {run_id}: its {name} in retention_runs is not the one its start "
                        f"entry records ({start.get(name)!r})",
                    )
        elif run_id in self.legacy:
            status = "running" if end is not None else None
            try:
                digest = legacy_digest(row, status=status)
            except (ValueError, TypeError):
                digest = None
            if digest != self.legacy[run_id]:
                return RunProblem(
                    run_id,
                    self.marker_seq,
                    f"run {run_id}: its row in retention_runs was changed since the schema "
                    "upgrade recorded it (mode, as_of, status or counts)",
                )
            if end is None:
                return None
        else:
            return RunProblem(
                run_id,
                None,
                f"run {run_id} is in retention_runs but has no start entry in the audit chain "
                "(its entries were removed, or the row was added)",
            )
        return self._check_end(run_id, row, end)

    def _check_end(
        self, run_id: str, row: Mapping[str, Any], end: tuple[int, dict[str, Any]] | None
    ) -> RunProblem | None:
        try:
            counts = json.loads(row["counts"] or "{}")
        except ValueError:
            counts = row["counts"]  # not JSON: differs from whatever the chain says
        if end is None:
            if row["status"] != "running" or counts or row["finished_at"] is not None:
                return RunProblem(
                    run_id,
                    self.starts[run_id][0],
                    f"run {run_id} is {row['status']} in retention_runs but the chain has no "
                    "entry for its end (entries were removed, or the row was changed)",
                )
            return None
        seq, data = end
        for name, found in (
            ("status", row["status"]),
            ("finished_at", instant(row["finished_at"])),
            ("counts", counts),
            ("message", row["message"]),
        ):
            if data.get(name) != found:
                return RunProblem(
                    run_id,
                    seq,
                    f"run {run_id}: its {name} in retention_runs is not the one its end entry "
                    f"records",
                )
        return None


__all__ = [
    "MARKER_ACTION",
    "MARKER_OUTCOME",
    "MARKER_RUN_ID",
    "RUN_ACTION",
    "STARTED",
    "RunEvents",
    "RunProblem",
    "finish_fields",
    "legacy_digest",
    "marker_detail",
    "start_fields",
]
