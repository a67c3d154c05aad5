"""What became of a record that is no longer there: its deletion, as the audit log has it.

`explain` on a key its store no longer holds asks the audit log for the live batch that
deleted it: the entries of that dataset whose keys hold the key's HMAC (or the plain key under
``audit.keys: plain``; under ``none`` the log cannot say). The log holds no plain personal data
for this: the key is hashed with the same key the run used. Entries written since state-DB
revision 0004 also say when the record was due and whether it went late.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from .audit import AuditEntry, AuditLog
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
    due: dt.datetime | None = None  # when it was due (None: an entry from before 0004)
    late_seconds: int | None = None  # how long after its deadline it went (None: on time)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "run_id": self.run_id,
            "at": self.at.isoformat(),
            "rule": self.rule,
            "dataset": self.dataset,
            "due": self.due.isoformat() if self.due else None,
            "late_seconds": self.late_seconds,
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
            due, late = _facts(found, log.key_digest(key))
            return Disposal(found.seq, found.run_id, at, found.rule, dataset, due, late)
        finally:
            log.close()
    finally:
        engine.dispose()


def _facts(entry: AuditEntry, digest: str) -> tuple[dt.datetime | None, int | None]:
    """The due time and lateness the entry records for the key whose log form is `digest`."""
    try:
        index = json.loads(entry.keys).index(digest)
        _, due, late = entry.facts()[index]
        return (dt.datetime.fromisoformat(due) if due else None), late
    except (ValueError, IndexError, TypeError):
        return None, None


__all__ = ["Disposal", "disposal"]
