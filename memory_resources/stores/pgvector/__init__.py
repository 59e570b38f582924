"""The pgvector backend: embeddings in PostgreSQL, searched through HNSW indexes.

No Prefect import here (see :mod:`memory_resources.stores`).
"""

from __future__ import annotations

from .index import DEFAULT_MAINTENANCE_WORK_MEM, DEFAULT_MAX_SCAN_TUPLES, PgVectorIndex
from .naming import table_name

__all__ = [
    "DEFAULT_MAINTENANCE_WORK_MEM",
    "DEFAULT_MAX_SCAN_TUPLES",
    "PgVectorIndex",
    "table_name",
]
