"""Which facts a settled SQL batch is owed: its audit notes' keys placed among its intent's keys.

A batch settled after an interruption (:mod:`.settle`) audits the keys it really changed; its
intent kept each key's facts, in the order of the intent's keys (a cascade child's in the order
of that child's keys). Giving each note its keys' places there lets the ledger carry exactly
those facts into the entry (:attr:`~retention.stores.base.Note.places`).
"""

from __future__ import annotations

import json
from dataclasses import replace

from ..base import PURGE, RESTORE, BatchResult, StoredIntent, places
from .keys import format_keys


def placed(result: BatchResult, intent: StoredIntent) -> BatchResult:
    """`result` (what :func:`.settle.settle` found) with each note's keys placed among the
    intent's keys, or its cascade child's; a note whose keys are not all there is left
    without places (audited without facts rather than with wrong ones)."""
    if intent.action in (PURGE, RESTORE) or not result.notes:
        return result
    own = format_keys([tuple(k) for k in json.loads(intent.payload)])
    children = {
        name: format_keys([tuple(k) for k in keys]) for name, keys in json.loads(intent.children)
    }
    notes = []
    for note in result.notes:
        keys = own if note.dataset in (None, intent.dataset) else children.get(note.dataset or "")
        if keys is None or note.keys is None:
            notes.append(note)
            continue
        try:
            notes.append(replace(note, places=places(keys, note.keys)))
        except KeyError:
            notes.append(note)
    return replace(result, notes=tuple(notes))


__all__ = ["placed"]
