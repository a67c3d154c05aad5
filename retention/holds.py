"""Legal holds: owned by legal, toggled in a YAML file, re-read before every batch.

An active hold suspends every destructive action on the records it covers. A hold covers the
records that match all of its given scopes (subjects, datasets, rules); a hold with no scope at
all covers everything. ``freeze: true`` stops every destructive action anywhere. Subject ids
are compared in their canonical form (:mod:`retention.ids`): a hold on ``5`` covers the records
of ``"0005"`` and ``" 5"``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field

from .ids import canonical_ids
from .settings import Model


def _subject_id(value: object) -> object:
    """Ids are text: a whole number given in code becomes its decimal text; nothing else does."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise ValueError("a subject id is text or a whole number (a plain value, not a list)")
    return value


# A subject id exactly as written in the holds file ("0106" stays "0106"); stores compare ids
# by their canonical form, so "0106", "106" and 106 name the same subject.
HoldSubjectId = Annotated[str, BeforeValidator(_subject_id)]


class Hold(Model):
    """One legal hold. ``active: false`` keeps the record of the hold but releases it."""

    id: str = Field(min_length=1)
    active: bool = True
    reason: str | None = None
    subjects: dict[str, list[HoldSubjectId]] | None = None
    datasets: list[str] | None = None
    rules: list[str] | None = None
    placed_by: str | None = None
    placed_on: dt.date | None = None
    review_by: dt.date | None = None

    def scoped_subjects(self) -> dict[str, list[HoldSubjectId]] | None:
        """The subject scope, or None when the hold covers every subject."""
        return self.subjects or None

    def subject_ids(self, subject_type: str) -> frozenset[str]:
        """The canonical ids (:func:`~retention.ids.canonical_id`) this hold names for one
        subject type; empty when it names none of that type."""
        return canonical_ids((self.subjects or {}).get(subject_type, []))

    def covers_dataset(self, dataset: str) -> bool:
        return not self.datasets or dataset in self.datasets

    def covers_rule(self, rule_id: str) -> bool:
        return not self.rules or rule_id in self.rules

    def review_overdue(self, today: dt.date) -> bool:
        """True once the review date has passed (a reminder; never releases the hold)."""
        return self.review_by is not None and today > self.review_by


class HoldsFile(Model):
    """The whole holds file."""

    freeze: bool = False
    holds: list[Hold] = Field(default_factory=list)  # a file must say it: `holds: []`

    def active(self) -> list[Hold]:
        return [hold for hold in self.holds if hold.active]

    def applicable(self, dataset: str, rule_id: str) -> list[Hold]:
        """Active holds whose dataset and rule scopes include this rule × dataset."""
        return [h for h in self.active() if h.covers_dataset(dataset) and h.covers_rule(rule_id)]


NO_HOLDS = HoldsFile()


def holds_fingerprint(path: Path | None) -> tuple[int, int] | None:
    """A cheap change detector for the holds file (mtime, size)."""
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)
