"""`retention holds`: each legal hold, active or released, and how many records it covers now.

Holds are judged at the evaluation moment (``--now`` or the present): one whose ``expires_on``
has come is shown released by its expiry, one still in force shows when it will be released.

Coverage is counted by each dataset's store with the same predicate a run's hold exclusion uses
(:meth:`~retention.stores.base.Store.covered`); hold ids that match no subject are warnings
(:mod:`retention.holdcheck`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import Config
from .errors import StoreError, first_line
from .holdcheck import HoldWarning, unmatched_hold_ids
from .holds import Hold, HoldsFile
from .stores import Stores
from .stores.base import Store


@dataclass(frozen=True)
class HoldRow:
    id: str
    active: bool
    scope: str
    records: int
    reason: str | None
    review_by: dt.date | None
    review_overdue: bool
    expires_on: dt.date | None = None
    released_at: dt.datetime | None = None  # the moment `expires_on` releases it
    expired: bool = False  # marked active, but released by its expiry at the evaluation time
    blocks: tuple[str, ...] | None = None  # None: every destructive action

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "active": self.active,
            "expired": self.expired,
            "expires_on": self.expires_on.isoformat() if self.expires_on else None,
            "released_at": self.released_at.isoformat() if self.released_at else None,
            "blocks": list(self.blocks) if self.blocks is not None else None,
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
    now: dt.datetime,
    holds: HoldsFile | None = None,
    stores: Mapping[str, Store] | None = None,
) -> HoldsReport:
    """Each hold (active or released) and how many records it covers now (or would, if active),
    judged at `now` (an aware datetime)."""
    zone = config.settings.zone()
    holds = (config.load_holds() if holds is None else holds).as_of(now, zone)
    with Stores(config.settings, stores) as opened:
        return _hold_coverage(config, now, holds, opened)


def _hold_coverage(
    config: Config, now: dt.datetime, holds: HoldsFile, stores: Stores
) -> HoldsReport:
    zone = config.settings.zone()
    today = now.astimezone(zone).date()
    rows: list[HoldRow] = []
    skipped: dict[str, str] = {}
    for hold in holds.holds:
        total = 0
        for dataset in config.datasets.values():
            if not hold.covers_dataset(dataset.name) or dataset.store in skipped:
                continue
            try:
                total += stores[dataset.store].covered(dataset, hold)
            except StoreError as exc:
                skipped[dataset.store] = f"{dataset.store}: {first_line(exc)}"
        rows.append(
            HoldRow(
                id=hold.id,
                active=hold.active,
                scope=_describe_scope(hold),
                records=total,
                reason=hold.reason,
                review_by=hold.review_by,
                review_overdue=hold.review_overdue(today),
                expires_on=hold.expires_on,
                released_at=hold.ends_at(zone),
                expired=hold.expired(now, zone),
                blocks=tuple(hold.blocks) if hold.blocks is not None else None,
            )
        )
    warnings = tuple(unmatched_hold_ids(config, holds, stores))
    return HoldsReport(holds.freeze, tuple(rows), tuple(skipped.values()), warnings)


def _describe_scope(hold: Hold) -> str:
    parts = []
    for subject_type, ids in (hold.scoped_subjects() or {}).items():
        parts.append(f"{subject_type} {', '.join(str(i) for i in ids)}")
    if hold.datasets:
        parts.append("datasets " + ", ".join(hold.datasets))
    if hold.rules:
        parts.append("rules " + ", ".join(hold.rules))
    if hold.blocks is not None:
        parts.append("blocks " + ", ".join(hold.blocks))
    return "; ".join(parts) or "everything"


__all__ = ["HoldRow", "HoldsReport", "hold_coverage"]
