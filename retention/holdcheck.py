"""Hold ids that match no subject: likely typos, reported as warnings by validate, plan and holds.

A hold on ``account: [4412]`` when the customer in dispute is 4411 protects nothing of theirs,
silently. Every id an active hold names is looked up in its subject type's table
(``subjects.<type>.table``, ``key`` column) with the canonical comparison the holds themselves
use (:mod:`retention.stores.sqlids`: ``"0042"`` finds 42); an id no row has is a
:class:`HoldWarning`. A warning, not an error: the subject may be gone already (its records
still held), and the exit code stays what it was. Ids of subject types that only appear in
object keys are still checked against the subject table only: listing buckets to look for them
is not cheap. Released holds are not checked (they protect nothing). A subject store that
cannot be reached is skipped here; `validate` and `plan` report it on their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import False_, select
from sqlalchemy.exc import SQLAlchemyError

from .config import Config
from .errors import StoreError
from .holds import Hold, HoldsFile, HoldSubjectId
from .ids import canonical_id, canonical_ids, integer_id
from .settings import SubjectConfig
from .stores import SqlStore
from .stores.sqlids import id_kind, id_matches, in_values


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


def unmatched_hold_ids(
    config: Config, holds: HoldsFile, stores: dict[str, SqlStore]
) -> list[HoldWarning]:
    """The ids named by active holds that no row of their subject table has, in holds-file
    order (one query or two per subject type, not one per id)."""
    wanted: dict[str, list[tuple[Hold, HoldSubjectId]]] = {}
    for hold in holds.active():
        for subject_type, ids in (hold.scoped_subjects() or {}).items():
            wanted.setdefault(subject_type, []).extend((hold, value) for value in ids)
    warnings: list[HoldWarning] = []
    for subject_type, named in wanted.items():
        subject = config.settings.subjects.get(subject_type)
        store = stores.get(subject.store) if subject is not None else None
        if subject is None or store is None:
            continue
        try:
            found, integers = _known_ids(store, subject, [value for _, value in named])
        except (StoreError, SQLAlchemyError):
            continue
        for hold, value in named:
            if canonical_id(value) not in found:
                warnings.append(_warning(hold, subject_type, subject, value, integers))
    return warnings


def _known_ids(
    store: SqlStore, subject: SubjectConfig, ids: Iterable[HoldSubjectId]
) -> tuple[set[str], bool]:
    """Which of `ids` (canonical) the subject table has, and whether its key is an integer."""
    ids = list(ids)
    table = store.table(subject.table)
    key = store.column(table, subject.key)
    kind = id_kind(key)
    found: set[str] = set()
    with store.engine.connect() as connection:
        rest = ids
        if kind == "text":
            # first the ids as written and in canonical form, on the key's index; the canonical
            # comparison (a scan) only for those not found so
            exact = sorted({str(value) for value in ids} | canonical_ids(ids))
            query = select(key).where(in_values(key, exact)).distinct()
            found |= {canonical_id(row[0]) for row in connection.execute(query)}
            rest = [value for value in ids if canonical_id(value) not in found]
        matches = id_matches(key, rest, store.dialect) if rest else None
        if matches is not None and not isinstance(matches, False_):
            query = select(key).where(matches).distinct()
            found |= {canonical_id(row[0]) for row in connection.execute(query)}
    return found, kind == "integer"


def _warning(
    hold: Hold, subject_type: str, subject: SubjectConfig, value: HoldSubjectId, integers: bool
) -> HoldWarning:
    written = str(value)
    why = f"no row of {subject.table} has {subject.key} {canonical_id(value)!r}"
    if integers and integer_id(value) is None:
        why = f"it is not an integer, and {subject.table}.{subject.key} holds integers"
    message = (
        f"hold {hold.id}: {subject_type} {written!r} matches no {subject_type} ({why}); "
        "a typo holds nothing"
    )
    return HoldWarning(hold.id, subject_type, written, message)


__all__ = ["HoldWarning", "unmatched_hold_ids"]
