"""The embedded backend: every capability in one SQLite file (WAL), no server needed."""

from __future__ import annotations

from .store import DEFAULT_PURGE_INTERVAL, SQLiteStore

__all__ = ["DEFAULT_PURGE_INTERVAL", "SQLiteStore"]
