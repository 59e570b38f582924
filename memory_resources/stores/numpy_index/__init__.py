"""The exact numpy vector index (backend ``numpy``, alias ``placeholder``) and its
persistence stores. No Prefect import here."""

from __future__ import annotations

from .file_store import FileVectorPersistence
from .index import NumpyVectorIndex
from .persistence import LoadedVectors, VectorPersistence
from .sqlite_store import SqliteVectorPersistence

__all__ = [
    "FileVectorPersistence",
    "LoadedVectors",
    "NumpyVectorIndex",
    "SqliteVectorPersistence",
    "VectorPersistence",
]
