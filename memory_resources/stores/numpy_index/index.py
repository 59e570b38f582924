"""NumpyVectorIndex: the exact in-process vector index (backend ``numpy``).

One contiguous matrix per namespace; a query is one BLAS matrix-vector product plus
``argpartition``, a batch one matrix-matrix product. Scores (see
:class:`~memory_resources.records.VectorMatch`): cosine similarity (descending), euclidean
distance (ascending), dot product (descending), computed exactly in float64 for the
returned rows. Metadata filters (:mod:`memory_resources.vector_filter`) become a row mask
before ranking; a selective filter scores only its candidate rows.

Writes go to the persistence store first (one atomic batch) and then to memory, so a
failed write changes nothing. Data is loaded lazily on first use, and reloaded when the
persistence store reports that another writer (process) changed the namespace. One
``RLock`` guards the matrix: calls from several threads are safe and serialised.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from ...codec import DEFAULT_MAX_PAYLOAD_BYTES, TAG, decode, encode
from ...config import EmbeddedConfig, VectorConfig
from ...decoding import build_records
from ...embedding import (
    as_matrix,
    as_vector,
    require_dimension,
    require_ids,
    require_metric,
    require_top_k,
    upsert_batch,
)
from ...errors import (
    ConfigurationError,
    EmbeddingValidationError,
    MemoryResourcesError,
    MemoryValidationError,
)
from ...log import get_logger
from ...records import HealthReport, JSONDict, Metric, VectorMatch
from ...validation import optional_dict, require_id, require_identifier
from ...vector_filter import Condition, evaluate_mask, parse_filter
from .file_store import FileVectorPersistence
from .matrix import VectorMatrix
from .persistence import VectorPersistence
from .quantized import Int8Codes, kernel
from .scoring import dot_products, pool_size, ranking_keys, rerank, top_candidates
from .sqlite_store import SqliteVectorPersistence

SELECTIVE_FRACTION = 0.25
"""A filter matching at most this share of rows scores only the matching rows."""
FLOAT16_MAX = 65504.0
STORAGE_DTYPES: dict[str, type[np.floating[Any]]] = {
    "float32": np.float32, "float16": np.float16, "int8": np.float32,
}
"""In-memory matrix dtype per ``storage_dtype`` (int8 adds scan codes beside float32)."""

_log = get_logger("memory_resources.vector.numpy")


def decode_metadata(text: str) -> JSONDict:
    """Decode a row's metadata text (a fresh dict every time, so callers may mutate it);
    plain JSON takes the fast path, tagged codec values go through the codec."""
    if text == "{}":
        return {}
    return dict(decode(text)) if TAG in text else dict(json.loads(text))


def validate_metadata(
    metadata: Any, count: int, max_bytes: int
) -> tuple[list[str], list[JSONDict]]:
    """The codec JSON text and parsed form of each of ``count`` rows' metadata (None: all
    empty); MemoryValidationError naming ``metadata[i]`` for a bad entry."""
    if metadata is None:
        return ["{}"] * count, [{} for _ in range(count)]
    if isinstance(metadata, (str, bytes)) or not isinstance(metadata, Sequence):
        raise MemoryValidationError(
            "metadata", f"must be a list of dicts (one per id), got {type(metadata).__name__}"
        )
    if len(metadata) != count:
        raise MemoryValidationError("metadata", f"has {len(metadata)} entries for {count} ids")
    texts = [
        encode(optional_dict(item, f"metadata[{i}]"), field=f"metadata[{i}]",
               max_bytes=max_bytes)
        for i, item in enumerate(metadata)
    ]
    return texts, [decode(text) for text in texts]


class NumpyVectorIndex:
    """Exact vector index of one namespace, in memory, optionally persisted.

    Args:
        dimension: Embedding dimension (1..16000).
        metric: ``cosine``, ``euclidean`` or ``dotproduct``.
        namespace: Namespace of the embeddings (a safe identifier).
        persistence: Where vectors persist (:class:`SqliteVectorPersistence`,
            :class:`FileVectorPersistence`); None keeps them in memory only.
        storage_dtype: ``float32`` (default) or ``float16``: half the memory, scanned in
            float32 chunks and re-ranked exactly on the stored half-precision values;
            the persistence store keeps the float32 input. ``int8``: single queries scan
            int8 codes with SimSIMD's kernels (a quarter of the bytes) and re-rank a
            candidate pool exactly on the float32 rows kept beside them (1.25x the memory);
            without SimSIMD installed it scans float32 like the default.
        max_payload_bytes: Largest encoded metadata of one vector.
    """

    backend_name = "numpy"

    def __init__(
        self,
        dimension: int,
        metric: Metric | str = "cosine",
        namespace: str = "default",
        *,
        persistence: VectorPersistence | None = None,
        storage_dtype: str = "float32",
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.dimension = require_dimension(dimension)
        self.metric = cast(Metric, require_metric(metric))
        self.namespace = require_identifier(namespace, "namespace")
        if storage_dtype not in STORAGE_DTYPES:
            raise MemoryValidationError(
                "storage_dtype", f"must be float32, float16 or int8, got {storage_dtype!r}"
            )
        self.storage_dtype = storage_dtype
        self.max_payload_bytes = max_payload_bytes
        self._persistence = persistence
        self._lock = threading.RLock()
        self._matrix: VectorMatrix | None = None

    @classmethod
    def from_config(
        cls, config: VectorConfig, embedded: EmbeddedConfig | None = None
    ) -> NumpyVectorIndex:
        """Build from the vector config: persisted in ``config.path`` (a directory, crash-safe
        file store) when set, else in table ``vector_embeddings`` of the embedded SQLite file."""
        if config.backend not in ("numpy", "placeholder"):
            raise ConfigurationError(
                f"vector_config['backend']: {config.backend!r} is not the numpy index"
            )
        embedded = embedded or EmbeddedConfig.model_validate({})
        persistence: VectorPersistence
        if config.path:
            persistence = FileVectorPersistence(config.path)
        else:
            persistence = SqliteVectorPersistence(
                embedded.resolved_path(), busy_timeout=embedded.busy_timeout
            )
        return cls(
            config.dimension, config.metric, config.namespace, persistence=persistence,
            storage_dtype=config.storage_dtype, max_payload_bytes=embedded.max_payload_bytes,
        )

    # -- lifecycle ---------------------------------------------------------------------
    def _loaded(self) -> VectorMatrix:
        """The matrix, loading it from persistence on first use, and again when another
        writer changed the namespace (caller holds the lock)."""
        if self._matrix is not None:
            if self._persistence is None or not self._persistence.stale(self.namespace):
                return self._matrix
            _log.info("vectors changed by another writer; reloading", namespace=self.namespace)
        codes = (Int8Codes(self.dimension, self.metric)
                 if self.storage_dtype == "int8" and kernel() is not None else None)
        matrix = VectorMatrix(self.dimension, STORAGE_DTYPES[self.storage_dtype], codes)
        if self._persistence is not None:
            started = time.perf_counter()
            loaded = self._persistence.load(self.namespace, self.dimension)
            if loaded.ids:
                decoded = build_records(  # a corrupt row is named, never a raw ValueError
                    list(zip(loaded.ids, loaded.metadata, strict=True)),
                    lambda row: decode(row[1]), backend="numpy",
                    table=f"vectors of namespace {self.namespace}", key=lambda row: row[0],
                    columns={"metadata": 1})
                matrix.upsert(loaded.ids, loaded.vectors, loaded.metadata, decoded)
            _log.debug("vectors loaded", namespace=self.namespace, rows=matrix.size,
                       seconds=round(time.perf_counter() - started, 3),
                       location=self._persistence.location)
        self._matrix = matrix  # replaced only once loaded: a failed reload keeps the old copy
        return matrix

    def connect(self) -> None:
        """Check the persistence store is usable. Data loads lazily on first use."""
        if self._persistence is not None:
            self._persistence.ping()

    def load(self) -> None:
        """Load persisted vectors now instead of on first use."""
        with self._lock:
            self._loaded()

    def close(self) -> None:
        """Close the persistence store and drop the in-memory copy (it reloads on next use);
        without persistence the data stays in memory."""
        with self._lock:
            if self._persistence is not None:
                self._persistence.close()
                self._matrix = None

    def health_check(self) -> HealthReport:
        """Ping the persistence store and load the namespace; never raises."""
        started = time.perf_counter()
        try:
            self.connect()
            with self._lock:
                rows = self._loaded().size
        except (MemoryResourcesError, OSError) as exc:
            return {"status": "unhealthy", "backend": self.backend_name, "error": str(exc),
                    "latency_ms": (time.perf_counter() - started) * 1000}
        return {
            "status": "healthy", "backend": self.backend_name,
            "latency_ms": (time.perf_counter() - started) * 1000,
            "details": {"namespace": self.namespace, "total_embeddings": rows},
        }

    def stats(self) -> JSONDict:
        """Counts and sizes: ``total_embeddings`` (this namespace), ``namespaces`` (count per
        namespace: every namespace of a SQLite file, else this one), ``matrix_bytes`` (raw
        live rows), ``memory_bytes`` (allocated arrays), ``persisted_bytes``."""
        with self._lock:
            matrix = self._loaded()
            counts = getattr(self._persistence, "namespace_counts", None)
            namespaces: dict[str, int] = counts() if callable(counts) else {}
            namespaces[self.namespace] = matrix.size
            return {
                "backend": self.backend_name,
                "namespace": self.namespace,
                "dimension": self.dimension,
                "metric": self.metric,
                "storage_dtype": self.storage_dtype,
                "scan": "int8 (simsimd)" if matrix.codes is not None else str(matrix.dtype),
                "total_embeddings": matrix.size,
                "namespaces": namespaces,
                "capacity": matrix.capacity,
                "matrix_bytes": matrix.size * self.dimension * matrix.dtype.itemsize,
                "memory_bytes": matrix.nbytes(),
                "persistence": self._persistence.location if self._persistence else None,
                "persisted_bytes": self._persistence.size_bytes() if self._persistence else 0,
            }

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the lock; with persistence also without the in-memory copy
        (the unpickled index reloads it lazily)."""
        state = self.__dict__.copy()
        state["_lock"] = None
        if self._persistence is not None:
            state["_matrix"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # -- writes ------------------------------------------------------------------------
    def _validate_metadata(self, metadata: Any, count: int) -> tuple[list[str], list[JSONDict]]:
        return validate_metadata(metadata, count, self.max_payload_bytes)

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.ArrayLike,
        metadata: Sequence[JSONDict | None] | None = None,
    ) -> int:
        """Insert or replace vectors by id, all validated first; all or nothing."""
        id_list, matrix = upsert_batch(ids, vectors, self.dimension, self.metric)
        if self.storage_dtype == "float16" and matrix.size and (
            float(np.abs(matrix).max()) > FLOAT16_MAX
        ):
            raise EmbeddingValidationError(
                "vectors", f"values beyond ±{FLOAT16_MAX:g} do not fit storage_dtype float16"
            )
        texts, decoded = self._validate_metadata(metadata, len(id_list))
        if not id_list:
            return 0
        with self._lock:
            stored = self._loaded()
            if self._persistence is not None:
                self._persistence.write(self.namespace, self.dimension, id_list, matrix, texts, [])
            stored.upsert(id_list, matrix, texts, decoded)
        return len(id_list)

    def delete(self, ids: Sequence[str]) -> int:
        """Remove vectors by id; returns how many existed."""
        id_list = list(dict.fromkeys(require_ids(ids, unique=False)))
        with self._lock:
            stored = self._loaded()
            present = [item for item in id_list if item in stored.rows]
            if not present:
                return 0
            if self._persistence is not None:
                self._persistence.write(
                    self.namespace, self.dimension, [],
                    np.empty((0, self.dimension), dtype=np.float32), [], present,
                )
            return stored.delete(present)

    # -- reads -------------------------------------------------------------------------
    def count(self) -> int:
        """Number of vectors in the namespace."""
        with self._lock:
            return self._loaded().size

    def get(self, id: str) -> tuple[np.ndarray[Any, np.dtype[np.float32]], JSONDict] | None:
        """A copy of the stored vector (float32) and metadata of ``id``, or None."""
        require_id(id, "id")
        with self._lock:
            stored = self._loaded()
            row = stored.rows.get(id)
            if row is None:
                return None
            vector = np.array(stored.buffer[row], dtype=np.float32)
            return vector, decode_metadata(stored.metadata[row])

    def query(
        self, vector: npt.ArrayLike, top_k: int = 10, filter: Any = None
    ) -> list[VectorMatch]:
        """The ``top_k`` nearest vectors, best first, among those matching ``filter``."""
        query = as_vector(vector, self.dimension, self.metric, field="vector")
        k = require_top_k(top_k)
        conditions = parse_filter(filter)
        return self._search(query, k, conditions)[0]

    def query_batch(
        self, vectors: npt.ArrayLike, top_k: int = 10, filter: Any = None
    ) -> list[list[VectorMatch]]:
        """:meth:`query` for each row of ``vectors`` (one matrix product for all)."""
        queries = as_matrix(vectors, self.dimension, self.metric, field="vectors")
        k = require_top_k(top_k)
        conditions = parse_filter(filter)
        return self._search(queries, k, conditions)

    def _search(
        self, queries: np.ndarray[Any, Any], top_k: int, conditions: list[Condition]
    ) -> list[list[VectorMatch]]:
        batch = 1 if queries.ndim == 1 else queries.shape[0]
        with self._lock:
            stored = self._loaded()
            rows = stored.size
            if rows == 0:
                return [[] for _ in range(batch)]
            candidates: np.ndarray[Any, Any] | None = None
            excluded: np.ndarray[Any, Any] | None = None
            eligible = rows
            if conditions:
                mask = evaluate_mask(conditions, stored.columns, rows)
                candidates = np.flatnonzero(mask)
                eligible = int(candidates.size)
                if eligible == 0:
                    return [[] for _ in range(batch)]
                if eligible > rows * SELECTIVE_FRACTION:
                    excluded, candidates = ~mask, None
            pool = pool_size(top_k, eligible, stored.dtype == np.float16)
            rows_picked = None
            if queries.ndim == 1 and stored.codes is not None and candidates is None:
                rows_picked = self._scan_codes(stored, queries, top_k, eligible, excluded)
            if rows_picked is None:
                rows_picked = self._scan_exact(stored, queries, pool, candidates, excluded)
            if queries.ndim == 1:
                queries = queries[None, :]
            best, scores = rerank(stored.buffer, rows_picked, queries, self.metric, top_k)
            ids, metadata = stored.ids, stored.metadata
            return [
                [VectorMatch(id=ids[row], score=score, metadata=decode_metadata(metadata[row]))
                 for row, score in zip(best_j, scores_j, strict=True)]
                for best_j, scores_j in zip(best.tolist(), scores.tolist(), strict=True)
            ]

    def _scan_exact(
        self, stored: VectorMatrix, queries: np.ndarray[Any, Any], pool: int,
        candidates: np.ndarray[Any, Any] | None, excluded: np.ndarray[Any, Any] | None,
    ) -> np.ndarray[Any, Any]:
        """Candidate rows ``(b, pool)`` from the full-precision scan of the stored matrix
        (only the ``candidates`` rows when given; ``excluded`` rows never picked)."""
        rows = stored.size
        if candidates is not None:
            keys = dot_products(stored.buffer, queries, candidates)
            ranking_keys(keys, self.metric, stored.inv_norms[candidates],
                         stored.sq_norms[candidates])
        else:
            keys = dot_products(stored.data, queries)
            ranking_keys(keys, self.metric, stored.inv_norms[:rows], stored.sq_norms[:rows])
            if excluded is not None:
                keys[..., excluded] = -np.inf
        picked = top_candidates(keys, pool)
        if queries.ndim == 1:
            picked = picked[None, :]
        return picked if candidates is None else candidates[picked]

    def _scan_codes(
        self, stored: VectorMatrix, query: np.ndarray[Any, Any], top_k: int, eligible: int,
        excluded: np.ndarray[Any, Any] | None,
    ) -> np.ndarray[Any, Any] | None:
        """Candidate rows ``(1, pool)`` of one query from the int8 codes, or None (no
        kernel, or too few rows passing the filter: the caller scans exactly). A filter
        matching a share ``f`` of the rows over-fetches ``2 / f`` times the pool."""
        pool = pool_size(top_k, eligible, True)
        fetch = pool
        if excluded is not None:
            fetch = min(stored.size, -(-2 * pool * stored.size // eligible))
        picked = stored.scan_codes(query, fetch)
        if picked is None:
            return None
        if excluded is not None:
            picked = picked[~excluded[picked]][:pool]
        if picked.size < pool:
            return None
        return picked[None, :]
