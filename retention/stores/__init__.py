"""Stores: where data lives. One module per backend; :func:`open_stores` builds them from config."""

from __future__ import annotations

from ..settings import Settings, SqlStoreConfig
from .sql import SqlStore


def open_sql_stores(settings: Settings) -> dict[str, SqlStore]:
    """A :class:`SqlStore` for every `sql` store in the settings (engines are created lazily)."""
    return {
        name: SqlStore(name, config)
        for name, config in settings.stores.items()
        if isinstance(config, SqlStoreConfig)
    }


__all__ = ["SqlStore", "open_sql_stores"]
