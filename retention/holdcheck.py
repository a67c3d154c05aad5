"""Hold ids that match no subject: likely typos, reported as warnings by validate, plan and holds.

A hold on ``account: [4412]`` when the customer in dispute is 4411 protects nothing of theirs,
silently. Every id an active hold names is looked up in its subject type's table
(``subjects.<type>.table``, ``key`` column) with the canonical comparison the holds themselves
use (``"0042"`` finds 42); an id no row has is a
:class:`HoldWarning`. A warning, not an error: the subject may be gone already (its records
still held), and the exit code stays what it was. Ids of subject types that only appear in
object keys are still checked against the subject table only: listing buckets to look for them
is not cheap. Released holds are not checked (they protect nothing). A subject store that
cannot be reached is skipped here; `validate` and `plan` report it on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config
from .datasets import SubjectType
from .errors import StoreError
from .holds import Hold, HoldsFile, HoldSubjectId
from .ids import canonical_id, integer_id
from .stores import Stores


@dataclass(frozen=True)
class HoldWarning:
    """One hold id that no subject has."""

    hold: str
    subject_type: str
    id: str  # as the holds file gives it
    message: str

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict[str, str]:
        return {
            "hold": self.hold,
            "subject_type": self.subject_type,
            "id": self.id,
            "message": self.message,
        }


def unmatched_hold_ids(config: Config, holds: HoldsFile, stores: Stores) -> list[HoldWarning]:
    """The ids named by active holds that no row of their subject table has, in holds-file
    order (one query or two per subject type, not one per id)."""
    wanted: dict[str, list[tuple[Hold, HoldSubjectId]]] = {}
    for hold in holds.active():
        for subject_type, ids in (hold.scoped_subjects() or {}).items():
            wanted.setdefault(subject_type, []).extend((hold, value) for value in ids)
    warnings: list[HoldWarning] = []
    for name, named in wanted.items():
        config_of = config.settings.subjects.get(name)
        if config_of is None:
            continue
        zone = config.settings.zone()
        subject = SubjectType(name, config_of, zone)
        try:
            found, integers = stores.subjects(subject).known_subjects(
                subject, [str(value) for _, value in named]
            )
        except StoreError:
            continue
        for hold, value in named:
            if canonical_id(value) not in found:
                warnings.append(_warning(hold, subject, value, integers))
    return warnings


def _warning(hold: Hold, subject: SubjectType, value: HoldSubjectId, integers: bool) -> HoldWarning:
    written, subject_type = str(value), subject.name
    table, key = subject.config.table, subject.config.key
    why = f"no row of {table} has {key} {canonical_id(value)!r}"
    if integers and integer_id(value) is None:
        why = f"it is not an integer, and {table}.{key} holds integers"
    message = (
        f"hold {hold.id}: {subject_type} {written!r} matches no {subject_type} ({why}); "
        "a typo holds nothing"
    )
    return HoldWarning(hold.id, subject_type, written, message)


__all__ = ["HoldWarning", "unmatched_hold_ids"]
