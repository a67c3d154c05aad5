"""SQL stores: tables in any database SQLAlchemy 2 reaches, evaluated set-based where they are."""

from __future__ import annotations

from .engine import make_engine
from .store import SqlStore

__all__ = ["SqlStore", "make_engine"]
