"""Names and per-metric SQL pieces of the pgvector backend.

Each namespace lives in its own table ``<schema>.pgvector_<namespace>`` with a
``vector(dimension)`` (or ``halfvec(dimension)``) column, so the dimension is part of the
table's type and a mismatch is visible at connect. Names longer than PostgreSQL's 63-byte
limit are shortened with a hash suffix (PostgreSQL would silently truncate them, and two
namespaces could collide).
"""

from __future__ import annotations

import dataclasses
import hashlib

from ...records import Metric

TABLE_PREFIX = "pgvector_"
TABLE_COMMENT_PREFIX = "memory_resources pgvector namespace="
"""``COMMENT ON TABLE`` text marking a table as a pgvector namespace (read by ``stats()``)."""
MAX_IDENTIFIER = 63
MAX_HNSW_DIMENSION = 2000
"""pgvector's HNSW limit for the ``vector`` type; wider vectors are searched exactly."""
MAX_HALFVEC_HNSW_DIMENSION = 4000
"""pgvector's HNSW limit for ``halfvec``."""
MAX_BIT_HNSW_DIMENSION = 64000
"""pgvector's HNSW limit for ``bit`` (the binary-quantized index)."""


def bounded_identifier(name: str) -> str:
    """``name`` itself when it fits in 63 bytes, else a prefix plus an 8-hex-digit hash."""
    if len(name.encode("utf-8")) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    return f"{name[: MAX_IDENTIFIER - 9]}_{digest}"


def table_name(namespace: str) -> str:
    """The table holding ``namespace``'s embeddings."""
    return bounded_identifier(TABLE_PREFIX + namespace)


def metadata_index_name(table: str) -> str:
    """The GIN index on the metadata column."""
    return bounded_identifier(f"{table}_metadata_gin")


def hnsw_index_name(table: str, metric: Metric, quantization: str = "none") -> str:
    """The HNSW index of ``metric`` on ``table`` (one per metric used on a namespace), or
    with ``quantization="binary"`` the metric-independent hamming index on the sign bits."""
    if quantization == "binary":
        return bounded_identifier(f"{table}_hnsw_bq")
    return bounded_identifier(f"{table}_hnsw_{metric}")


@dataclasses.dataclass(frozen=True)
class MetricSQL:
    """How one metric maps onto pgvector: operator, operator class and score conversion."""

    operator: str
    """``<=>`` cosine distance, ``<->`` L2 distance, ``<#>`` negative inner product."""
    opclass: str
    score_sign: float
    score_offset: float
    """``score = score_offset + score_sign * distance``."""
    ascending_score: bool
    """True when a lower score is closer (euclidean)."""

    def score(self, distance: float) -> float:
        """The library's score for a pgvector distance."""
        return self.score_offset + self.score_sign * distance

    def opclass_for(self, storage: str) -> str:
        """The operator class for a column of type ``storage`` (``vector`` or ``halfvec``)."""
        return self.opclass if storage == "vector" else f"halfvec_{self.opclass[7:]}"


METRICS: dict[str, MetricSQL] = {
    # cosine similarity = 1 - cosine distance
    "cosine": MetricSQL("<=>", "vector_cosine_ops", -1.0, 1.0, False),
    # euclidean distance, lower is closer
    "euclidean": MetricSQL("<->", "vector_l2_ops", 1.0, 0.0, True),
    # dot product = -(negative inner product)
    "dotproduct": MetricSQL("<#>", "vector_ip_ops", -1.0, 0.0, False),
}


HNSW_LIMITS: dict[str, int] = {"vector": MAX_HNSW_DIMENSION, "halfvec": MAX_HALFVEC_HNSW_DIMENSION}
"""HNSW dimension limit per column type (``pgvector_storage``)."""
