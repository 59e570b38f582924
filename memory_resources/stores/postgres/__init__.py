"""The PostgreSQL engine: run history, task outputs, audit trail, context, events, locks.

``PostgresPool`` is shared with the pgvector engine. Nothing here imports Prefect.
"""

from __future__ import annotations

from .pool import PostgresPool

__all__ = ["PostgresPool"]
