"""What became of a record that is no longer there: its deletion, as the audit log has it.

`explain` on a key its store no longer holds asks the audit log for the live batch that
deleted it: the entries of that dataset whose keys hold the key's HMAC (or the plain key under
``audit.keys: plain``; under ``none`` the log cannot say). The log holds no plain personal data
for this: the key is hashed with the same key the run used.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .audit import AuditLog
from .config import Config
from .statedb import open_state


@dataclass(frozen=True)
class Disposal:
    """The audit entry of the batch that deleted one record."""

    seq: int
    run_id: str
    at: dt.datetime
    rule: str | None
    dataset: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "run_id": self.run_id,
            "at": self.at.isoformat(),
            "rule": self.rule,
            "dataset": self.dataset,
        }


def disposal(config: Config, dataset: str, key: str) -> Disposal | None:
    """The live audit entry that deleted record `key` of `dataset`, if the log has one."""
    settings = config.settings
    engine = open_state(settings.state_db.get_secret_value())
    try:
        log = AuditLog.from_settings(engine, settings)
        try:
            if log.key_mode == "none":
                return None
            found = None
            for entry in log.entries(dataset=dataset, key=key):
                if entry.action == "delete" and entry.outcome == "done" and not entry.dry_run:
                    found = entry
            if found is None:
                return None
            at = dt.datetime.fromisoformat(found.at)
            return Disposal(found.seq, found.run_id, at, found.rule, dataset)
        finally:
            log.close()
    finally:
        engine.dispose()


__all__ = ["Disposal", "disposal"]
