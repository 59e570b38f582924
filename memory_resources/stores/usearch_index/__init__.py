"""The usearch HNSW vector index (backend ``usearch``, extra ``usearch``): approximate
in-process search persisted beside the embedded store. No Prefect import here."""

from __future__ import annotations

from .index import UsearchVectorIndex

__all__ = ["UsearchVectorIndex"]
