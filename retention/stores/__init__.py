"""Stores: where data lives. One module per backend; :func:`sql_stores` builds them from config."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..settings import Settings, SqlStoreConfig
from .sql import SqlStore


def open_sql_stores(settings: Settings) -> dict[str, SqlStore]:
    """A :class:`SqlStore` for every `sql` store in the settings (engines are created lazily)."""
    return {
        name: SqlStore(name, config)
        for name, config in settings.stores.items()
        if isinstance(config, SqlStoreConfig)
    }


@contextmanager
def sql_stores(
    settings: Settings, given: dict[str, SqlStore] | None = None
) -> Iterator[dict[str, SqlStore]]:
    """`given` stores as they are, or new ones that are closed on exit."""
    if given is not None:
        yield given
        return
    stores = open_sql_stores(settings)
    try:
        yield stores
    finally:
        for store in stores.values():
            store.dispose()


__all__ = ["SqlStore", "open_sql_stores", "sql_stores"]
