"""Stores: where data lives. One backend module per kind, found in :data:`retention.kinds.KINDS`.

:class:`Stores` opens the configured stores on first use and closes them together; it also wires
object stores to the store that holds their subjects' lifecycle tables (a bucket reads "account
closed" from the accounts table), so no backend imports another.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any, cast

from ..datasets import SubjectType
from ..errors import StoreError
from ..kinds import KINDS
from ..settings import Settings
from .base import Store, SubjectSource


def store_class(kind: str) -> Any:
    """The backend class for stores of `kind` (imported only when a store of it is used)."""
    module, _, name = KINDS[kind].backend.partition(":")
    return getattr(importlib.import_module(module), name)


class Stores:
    """The stores of one configuration, opened on first use and closed together.

    `given` stores (tests, the service's probes) are used as they are and left open.
    """

    def __init__(self, settings: Settings, given: Mapping[str, Store] | None = None) -> None:
        self.settings = settings
        self._given = dict(given or {})
        self._open: dict[str, Store] = {}

    def __getitem__(self, name: str) -> Store:
        if name in self._given:
            return self._given[name]
        if name not in self._open:
            config = self.settings.stores[name]
            self._open[name] = store_class(config.kind)(name, config, self.settings, self.subjects)
        return self._open[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.settings.stores)

    def subjects(self, subject: SubjectType) -> SubjectSource:
        """The store holding `subject`'s lifecycle table."""
        store = self[subject.store]
        if not store.capabilities.subject_tables:
            raise StoreError(f"subject store {subject.store!r} holds no tables")
        return cast(SubjectSource, store)

    def __enter__(self) -> Stores:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for store in self._open.values():
            store.close()
        self._open.clear()


__all__ = ["Stores", "store_class"]
