"""Replay after a backup restore: what the audit log says was deleted or anonymized since a
moment, as the keys each rule acted on per dataset.

A database restored from last week's backup has last week's records back, among them those a
run deleted or anonymized since. The audit log knows which: every live batch's keys, plain or as
their HMAC (``audit.keys``), so the state DB never needs the plain personal data. :func:`recorded`
collects them; :class:`Matcher` tells a store which of its keys are among them (hashing them
under the same key when the log keeps HMACs), and the executor has each store act on those
again (:meth:`~retention.executor.Executor.replay`), held records still never touched.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from .audit import AuditLog

ACTIONS = ("delete", "anonymize")  # a cascade's children go again with their parent


@dataclass
class Recorded:
    """The keys (as logged) one rule acted on in one dataset since the moment asked for."""

    rule: str
    dataset: str
    action: str
    keys: set[str] = field(default_factory=set)
    unkeyed: int = 0  # records of entries that logged no keys (``audit.keys: none``)


def recorded(audit: AuditLog, since: dt.datetime) -> list[Recorded]:
    """Every live delete and anonymize the log recorded at or after `since`, by rule, dataset
    and action, in the order they first appear."""
    found: dict[tuple[str, str, str], Recorded] = {}
    for entry in audit.entries(since=since):
        if entry.dry_run or entry.outcome != "done" or entry.action not in ACTIONS:
            continue
        if entry.rule is None or entry.dataset is None:
            continue
        group = (entry.rule, entry.dataset, entry.action)
        into = found.setdefault(group, Recorded(*group))
        keys = json.loads(entry.keys)
        if keys:
            into.keys.update(str(k) for k in keys)
        else:
            into.unkeyed += entry.count
    return list(found.values())


class Matcher:
    """Which of a store's record keys (their text form) are among the recorded ones."""

    def __init__(self, audit: AuditLog, keys: set[str]) -> None:
        self.audit = audit
        self.keys = keys

    def __call__(self, texts: Sequence[str]) -> list[bool]:
        logged = self.audit.logged_form(texts)
        return [key in self.keys for key in logged]


__all__ = ["ACTIONS", "Matcher", "Recorded", "recorded"]
