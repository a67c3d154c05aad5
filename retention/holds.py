"""Legal holds: owned by legal, toggled in a YAML file, re-read before every batch.

An active hold suspends every destructive action on the records it covers — or, with
``blocks: [delete]`` (or ``[anonymize]``), only those actions: an anonymize rule proceeds during
an evidence hold that only forbids deleting. A hold covers the records that match all of its
given scopes (subjects, datasets, rules); a hold with no scope at all covers everything.
``freeze: true`` stops every destructive action anywhere.

A hold with ``expires_on: DATE`` is in force until 00:00:00 of that date in the configured time
zone and released from that second on, judged against the evaluation time (``--now`` or the
present) like every clock. Holds are judged at a moment only once :meth:`HoldsFile.as_of` has
given them one: without it every active hold is in force, so a caller that forgets the moment
keeps a hold longer, never shorter. ``review_by`` stays a reminder that releases nothing.

Subject ids are compared in their canonical form (:mod:`retention.ids`): a hold on ``5`` covers
the records of ``"0005"`` and ``" 5"``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, Field, PrivateAttr

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

# The destructive actions a hold can block (``keep`` rules destroy nothing, so nothing blocks them).
Blockable = Literal["delete", "anonymize"]


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
    expires_on: dt.date | None = None
    blocks: list[Blockable] | None = Field(default=None, min_length=1)  # None: every action

    def ends_at(self, zone: ZoneInfo) -> dt.datetime | None:
        """The moment the hold is released by its expiry: 00:00:00 of `expires_on` in `zone`."""
        if self.expires_on is None:
            return None
        return dt.datetime.combine(self.expires_on, dt.time.min, tzinfo=zone)

    def in_force(self, moment: dt.datetime | None, zone: ZoneInfo) -> bool:
        """Active, and not yet expired at `moment` (None: no moment given, never expired)."""
        ends = self.ends_at(zone)
        return self.active and (moment is None or ends is None or moment < ends)

    def expired(self, moment: dt.datetime | None, zone: ZoneInfo) -> bool:
        """Marked active, but released by its expiry at `moment`."""
        return self.active and not self.in_force(moment, zone)

    def blocks_action(self, action: str) -> bool:
        """Whether this hold suspends `action` (a hold without `blocks` suspends every one)."""
        return self.blocks is None or action in self.blocks

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
    _moment: dt.datetime | None = PrivateAttr(default=None)
    _zone: ZoneInfo = PrivateAttr(default=ZoneInfo("UTC"))

    def as_of(self, moment: dt.datetime, zone: ZoneInfo) -> HoldsFile:
        """The same holds judged at `moment` (timezone-aware), expiry dates read in `zone`."""
        judged = self.model_copy()
        judged._moment, judged._zone = moment, zone
        return judged

    @property
    def moment(self) -> dt.datetime | None:
        return self._moment

    def active(self) -> list[Hold]:
        """The holds in force: marked active and, at this file's moment, not expired."""
        return [hold for hold in self.holds if hold.in_force(self._moment, self._zone)]

    def expired(self) -> list[Hold]:
        """The holds marked active that their expiry released by this file's moment."""
        return [hold for hold in self.holds if hold.expired(self._moment, self._zone)]

    def ending(self) -> list[tuple[Hold, dt.datetime]]:
        """The holds in force that will expire, with the moment each is released."""
        return [(h, ends) for h in self.active() if (ends := h.ends_at(self._zone)) is not None]

    def applicable(self, dataset: str, rule_id: str, action: str) -> list[Hold]:
        """Holds in force whose dataset and rule scopes include this rule × dataset and that
        block its action."""
        return [
            h
            for h in self.active()
            if h.covers_dataset(dataset) and h.covers_rule(rule_id) and h.blocks_action(action)
        ]


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
