"""The state DB's book of the S3 legal holds retention placed to mirror its own holds.

Only holds recorded here are ever released by retention: a legal hold somebody else placed,
before or after, is never touched. Placing and releasing them is audited in the run's chain.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import delete, insert, select

from .ledger import Ledger
from .statedb import utcnow
from .statetables import legal_holds
from .stores.base import PlacedHold


class LegalHolds:
    """:class:`~retention.stores.base.LegalHoldBook` over the state DB, for one run."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def placed(self, store: str, dataset: str) -> list[PlacedHold]:
        query = select(legal_holds.c.id, legal_holds.c.key, legal_holds.c.version_id).where(
            legal_holds.c.store == store, legal_holds.c.dataset == dataset
        )
        with self.ledger.transaction() as connection:
            return [PlacedHold(row[0], row[1], row[2]) for row in connection.execute(query)]

    def which_placed(self, ids: Sequence[str]) -> set[str]:
        query = select(legal_holds.c.id).where(legal_holds.c.id.in_(list(ids)))
        with self.ledger.transaction() as connection:
            return {row[0] for row in connection.execute(query)}

    def record(self, store: str, dataset: str, holds: Sequence[PlacedHold]) -> None:
        rows = [
            {
                "id": hold.id,
                "store": store,
                "dataset": dataset,
                "key": hold.key,
                "version_id": hold.version,
                "holds": json.dumps(list(hold.holds)),
                "placed_at": utcnow(),
                "run_id": self.ledger.run_id,
            }
            for hold in holds
        ]
        with self.ledger.transaction() as connection:
            connection.execute(insert(legal_holds), rows)

    def forget(self, ids: Sequence[str]) -> None:
        with self.ledger.transaction() as connection:
            connection.execute(delete(legal_holds).where(legal_holds.c.id.in_(list(ids))))

    def note(self, dataset: str, action: str, keys: Sequence[str], detail: str) -> None:
        live = self.ledger.live
        self.ledger.append(
            dataset=dataset,
            action=action,
            outcome="done" if live else f"would set {action}",
            keys=sorted(set(keys)),
            count=len(keys),
            detail=detail,
        )


__all__ = ["LegalHolds"]
