"""The PostgreSQL engine: run history, task outputs, audit trail, context, events, locks.

``PostgresPool`` is shared with the pgvector engine. Nothing here imports Prefect.
"""

from __future__ import annotations

from .migrate import AppliedMigration, migrate
from .pool import PostgresPool
from .store import PostgresStore

__all__ = ["AppliedMigration", "PostgresPool", "PostgresStore", "migrate"]
