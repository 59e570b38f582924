"""The ``VectorMemory`` Prefect block: vector index configuration plus a store factory."""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import Field, HttpUrl

from ..backends import BuildContext, resolve_backend
from ..clock import SYSTEM_CLOCK
from ..config import EmbeddedConfig, VectorConfig
from ..protocols import VectorIndex
from . import form
from .base import DeploySafeLoad, StoreFactoryMixin
from .form import FormLayout
from .postgres import PostgresMemory


class VectorMemory(  # type: ignore[misc]  # model_json_schema overridden as Block does
    FormLayout, DeploySafeLoad, StoreFactoryMixin[VectorIndex], Block, VectorConfig
):
    """Embeddings with metadata, queried by cosine, euclidean or dot-product similarity.

    The fields are the spec's ``vector_config`` keys (backend, dimension, metric, namespace)
    plus the numpy index's ``path`` and ``storage_dtype`` and the pgvector options
    (``hnsw_m``, ``hnsw_ef_construction``, ``ef_search``, ``pgvector_storage``,
    ``pgvector_quantization``, ``rerank_factor`` and ``postgres``, a nested
    ``PostgresMemory`` block). ``backend`` is ``numpy`` (exact, in process; ``placeholder``
    is an alias), ``pgvector`` (HNSW in PostgreSQL) or a backend installed through the
    ``memory_resources.backends`` entry point group. Scores: cosine similarity
    (higher is closer), euclidean distance (lower is closer), dot product (higher is
    closer), identical on every backend. One index is kept per block instance (built on
    first use, dropped when the block is pickled).

    Examples:
        Load a saved block, index an embedding and query it:
        ```python
        from memory_resources.blocks.vector import VectorMemory

        vector_memory = VectorMemory.load("BLOCK_NAME")
        index = vector_memory.get_store()
        index.upsert(["doc-1"], [[0.1] * vector_memory.dimension], [{"type": "document"}])
        print(index.query([0.1] * vector_memory.dimension, top_k=5,
                          filter={"type": "document"}))
        ```
    """

    _block_type_name: ClassVar[str] = "Vector Memory"
    _block_type_slug: ClassVar[str] = "vector-memory"
    _logo_url = HttpUrl("https://numpy.org/images/logo.svg")
    _documentation_url = HttpUrl(
        "https://github.com/memory-resources/memory-resources/blob/main/docs/pgvector.md"
    )
    _description: ClassVar[str] = (
        "Agent memory embeddings: an exact in-process numpy index or pgvector (HNSW) in "
        "PostgreSQL, with metadata filters and identical scores on both."
    )
    _form = form.VECTOR

    postgres: PostgresMemory | None = Field(
        None,
        description="pgvector: the PostgreSQL connection, a PostgresMemory block "
        "(empty: the MemoryStore's / MemoryAPI's postgres_config).",
    )

    def to_config(self) -> VectorConfig:
        """The plain :class:`VectorConfig` this block carries (the nested PostgresMemory
        block becomes its plain PostgresConfig)."""
        values = {name: getattr(self, name) for name in VectorConfig.model_fields}
        values["postgres"] = self.postgres.to_config() if self.postgres is not None else None
        return VectorConfig.model_validate(values)

    def _build_store(self) -> VectorIndex:
        backend = resolve_backend(self.backend, "vectors", "backend")
        context = BuildContext(SYSTEM_CLOCK, EmbeddedConfig.model_validate({}))
        index: VectorIndex = backend.create(self.to_config(), context, "vector_config")
        return index
