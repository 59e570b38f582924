"""UsearchVectorIndex: approximate in-process search on a usearch HNSW graph (backend
``usearch``), between the exact numpy index and pgvector.

Ids, vectors and metadata persist exactly as the numpy index's do (the embedded SQLite
file, or the crash-safe snapshot + log directory of ``vector_config['path']``); every write
goes there first, as one atomic batch. The HNSW graph is kept beside it
(:mod:`.graph_file`) as a cache: saved atomically on :meth:`UsearchVectorIndex.close`,
:meth:`~UsearchVectorIndex.save` and after every ``max(1000, size / 10)`` changed vectors,
and on load checked vector by vector against the store and repaired (missing, stale and
extra entries), so a crash between the two writes never serves a graph that disagrees
with the metadata. Scores are exact (re-scored in float64); membership of the top k is
approximate (recall@10 measured in benchmarks/results/usearch.md). One ``RLock`` guards
the graph; the async API reaches it through worker threads (``ThreadOffload``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from ...codec import DEFAULT_MAX_PAYLOAD_BYTES, decode
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
from ...errors import ConfigurationError, MemoryResourcesError
from ...log import get_logger
from ...records import HealthReport, JSONDict, Metric, VectorMatch
from ...validation import require_id, require_identifier
from ...vector_filter import parse_filter
from ..numpy_index import FileVectorPersistence, SqliteVectorPersistence, VectorPersistence
from ..numpy_index.index import decode_metadata, validate_metadata
from . import graph as hnsw
from .graph_file import graph_path, read_graph, write_graph
from .keys import KeyTable

SAVE_EVERY_MIN = 1000
"""The graph is saved after at least this many changed vectors ..."""
SAVE_EVERY_SHARE = 0.1
"""... and at least this share of the index (a save rewrites the whole graph)."""

_log = get_logger("memory_resources.vector.usearch")


@dataclass
class _State:
    graph: Any
    table: KeyTable
    unsaved: int = 0
    repaired: int = 0
    """Graph entries the last load added or removed to match the store (0: it matched)."""


class UsearchVectorIndex:
    """HNSW vector index of one namespace on usearch, persisted (see the module docstring).

    Args:
        dimension: Embedding dimension (1..16000).
        metric: ``cosine``, ``euclidean`` or ``dotproduct``.
        namespace: Namespace of the embeddings (a safe identifier).
        persistence: Where ids, vectors and metadata persist (the numpy index's stores).
        graph_directory: Directory of the graph file ``<namespace>.usearch``.
        connectivity: HNSW edges per node (usearch ``connectivity``, pgvector's ``m``).
        expansion_add: Candidate list while inserting (``ef_construction``).
        expansion_search: Candidate list while searching (``ef_search``): recall vs speed;
            None: :func:`~.graph.auto_expansion` of the vector count.
        max_payload_bytes: Largest encoded metadata of one vector.
    """

    backend_name = "usearch"

    def __init__(
        self,
        dimension: int,
        metric: Metric | str = "cosine",
        namespace: str = "default",
        *,
        persistence: VectorPersistence,
        graph_directory: str | Path,
        connectivity: int = 32,
        expansion_add: int = 128,
        expansion_search: int | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        hnsw.usearch_index_class()  # a missing package fails here, not on first use
        self.dimension = require_dimension(dimension)
        self.metric = cast(Metric, require_metric(metric))
        self.namespace = require_identifier(namespace, "namespace")
        self.connectivity = connectivity
        self.expansion_add = expansion_add
        self.expansion_search = expansion_search
        self.max_payload_bytes = max_payload_bytes
        self.graph_file = graph_path(Path(graph_directory).expanduser(), self.namespace)
        self._persistence = persistence
        self._lock = threading.RLock()
        self._state: _State | None = None

    @classmethod
    def from_config(
        cls, config: VectorConfig, embedded: EmbeddedConfig | None = None
    ) -> UsearchVectorIndex:
        """Persisted like the numpy index: in ``config.path`` (a directory: snapshot + log,
        graph beside them) when set, else in the embedded SQLite file, the graph in the
        directory ``<file>.hnsw`` next to it."""
        if config.backend != "usearch":
            raise ConfigurationError(
                f"vector_config['backend']: {config.backend!r} is not the usearch index")
        embedded = embedded or EmbeddedConfig.model_validate({})
        persistence: VectorPersistence
        if config.path:
            directory = Path(config.path).expanduser()
            persistence = FileVectorPersistence(directory)
        else:
            database = embedded.resolved_path()
            persistence = SqliteVectorPersistence(database, busy_timeout=embedded.busy_timeout)
            directory = database.with_name(database.name + ".hnsw")
        return cls(
            config.dimension, config.metric, config.namespace, persistence=persistence,
            graph_directory=directory, connectivity=config.usearch_connectivity,
            expansion_add=config.usearch_expansion_add,
            expansion_search=config.usearch_expansion_search,
            max_payload_bytes=embedded.max_payload_bytes,
        )

    # -- loading and saving ---------------------------------------------------------------
    def _loaded(self) -> _State:
        """The graph and key table, loaded (and repaired) on first use and again when
        another writer changed the namespace (caller holds the lock)."""
        state = self._state
        if state is not None and not self._persistence.stale(self.namespace):
            return state
        started = time.perf_counter()
        loaded = self._persistence.load(self.namespace, self.dimension)
        decoded = build_records(  # a corrupt row is named, never a raw ValueError
            list(zip(loaded.ids, loaded.metadata, strict=True)), lambda row: decode(row[1]),
            backend="usearch", table=f"vectors of namespace {self.namespace}",
            key=lambda row: row[0], columns={"metadata": 1})
        if state is None:
            graph, known = self._open_graph()
        else:
            _log.info("vectors changed by another writer; repairing", namespace=self.namespace)
            graph, known = state.graph, state.table.keys
        vectors = loaded.vectors.reshape(len(loaded.ids), self.dimension)
        try:
            keys, changed = hnsw.repair(graph, known, loaded.ids, vectors)
        except BaseException:
            self._state = None  # a half-repaired graph is never served: start over next time
            raise
        table = KeyTable()
        for item, key, text, meta in zip(loaded.ids, keys.tolist(), loaded.metadata, decoded,
                                         strict=True):
            table.assign(key, item, text, meta)
        table.finish_loading()
        fresh = _State(graph, table, (state.unsaved if state else 0) + changed, changed)
        self._state = fresh
        _log.debug("vectors loaded", namespace=self.namespace, rows=table.size,
                   repaired=changed, seconds=round(time.perf_counter() - started, 3))
        if state is None and changed:
            self._save(fresh)
        return fresh

    def _open_graph(self) -> tuple[Any, dict[str, int]]:
        graph = hnsw.new_graph(self.dimension, self.metric, self.connectivity,
                               self.expansion_add, hnsw.AUTO_EXPANSION)
        saved = read_graph(self.graph_file, self.dimension, self.metric)
        if saved is None:
            return graph, {}
        try:
            graph.load(saved.blob)
        except (RuntimeError, ValueError) as exc:
            _log.warning("graph unreadable by usearch; rebuilding", path=str(self.graph_file),
                         error=str(exc))
            return hnsw.new_graph(self.dimension, self.metric, self.connectivity,
                                  self.expansion_add, hnsw.AUTO_EXPANSION), {}
        return graph, {item: key for key, item in enumerate(saved.ids) if item is not None}

    def _save(self, state: _State) -> None:
        write_graph(self.graph_file, self.dimension, self.metric, list(state.table.ids),
                    state.graph.save())
        state.unsaved = 0

    def _changed(self, state: _State, count: int) -> None:
        state.unsaved += count
        if state.unsaved >= max(SAVE_EVERY_MIN, state.table.size * SAVE_EVERY_SHARE):
            self._save(state)

    def save(self) -> None:
        """Write the graph file now (also done on close and every few thousand changes)."""
        with self._lock:
            self._save(self._loaded())

    # -- lifecycle ---------------------------------------------------------------------
    def connect(self) -> None:
        """Check the persistence store is usable. Data loads lazily on first use."""
        self._persistence.ping()

    def load(self) -> None:
        """Load (building or repairing the graph) now instead of on first use."""
        with self._lock:
            self._loaded()

    def close(self) -> None:
        """Save the graph if it changed, close the store and drop the in-memory copy (it
        reloads on next use)."""
        with self._lock:
            state, self._state = self._state, None
            try:
                if state is not None and state.unsaved:
                    self._save(state)
            finally:
                self._persistence.close()

    def health_check(self) -> HealthReport:
        """Ping the persistence store and load the namespace; never raises."""
        started = time.perf_counter()
        try:
            self.connect()
            with self._lock:
                rows = self._loaded().table.size
        except (MemoryResourcesError, OSError) as exc:
            return {"status": "unhealthy", "backend": self.backend_name, "error": str(exc),
                    "latency_ms": (time.perf_counter() - started) * 1000}
        return {"status": "healthy", "backend": self.backend_name,
                "latency_ms": (time.perf_counter() - started) * 1000,
                "details": {"namespace": self.namespace, "total_embeddings": rows}}

    def stats(self) -> JSONDict:
        """Counts and sizes: ``total_embeddings``, ``namespaces``, ``memory_bytes`` (usearch's
        own figure), ``graph_bytes`` (file), ``persisted_bytes``, the HNSW settings,
        ``unsaved_changes`` (since the graph file was written) and ``repaired_on_load``
        (graph entries the last load fixed to match the store)."""
        with self._lock:
            state = self._loaded()
            counts = getattr(self._persistence, "namespace_counts", None)
            namespaces: dict[str, int] = counts() if callable(counts) else {}
            namespaces[self.namespace] = state.table.size
            graph_file = self.graph_file
            return {
                "backend": self.backend_name, "namespace": self.namespace,
                "dimension": self.dimension, "metric": self.metric,
                "total_embeddings": state.table.size, "namespaces": namespaces,
                "connectivity": int(state.graph.connectivity),
                "expansion_add": self.expansion_add,
                "expansion_search": self._expansion(state),
                "expansion_search_auto": self.expansion_search is None,
                "memory_bytes": int(state.graph.memory_usage),
                "graph_file": str(graph_file),
                "graph_bytes": graph_file.stat().st_size if graph_file.exists() else 0,
                "unsaved_changes": state.unsaved, "repaired_on_load": state.repaired,
                "persistence": self._persistence.location,
                "persisted_bytes": self._persistence.size_bytes(),
            }

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the configuration only; the unpickled index loads the graph lazily."""
        state = self.__dict__.copy()
        state["_lock"], state["_state"] = None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def _expansion(self, state: _State) -> int:
        """The ``expansion_search`` of the next search: configured, or by the count."""
        if self.expansion_search is not None:
            return self.expansion_search
        return hnsw.auto_expansion(state.table.size)

    # -- writes ------------------------------------------------------------------------
    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.ArrayLike,
        metadata: Sequence[JSONDict | None] | None = None,
    ) -> int:
        """Insert or replace vectors by id, all validated first; all or nothing."""
        id_list, matrix = upsert_batch(ids, vectors, self.dimension, self.metric)
        texts, decoded = validate_metadata(metadata, len(id_list), self.max_payload_bytes)
        if not id_list:
            return 0
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        with self._lock:
            state = self._loaded()
            self._persistence.write(self.namespace, self.dimension, id_list, matrix, texts, [])
            try:
                table = state.table
                old = [table.keys[item] for item in id_list if item in table.keys]
                if old:
                    state.graph.remove(np.array(old, dtype=np.uint64))
                fresh = iter(table.allocate(len(id_list) - len(old)))
                keys = [table.keys[item] if item in table.keys else next(fresh)
                        for item in id_list]
                state.graph.add(np.array(keys, dtype=np.uint64), matrix)
                for item, key, text, meta in zip(id_list, keys, texts, decoded, strict=True):
                    table.assign(key, item, text, meta)
            except BaseException:
                self._state = None  # reload and repair from the store on next use
                raise
            self._changed(state, len(id_list))
        return len(id_list)

    def delete(self, ids: Sequence[str]) -> int:
        """Remove vectors by id; returns how many existed."""
        id_list = list(dict.fromkeys(require_ids(ids, unique=False)))
        with self._lock:
            state = self._loaded()
            present = [item for item in id_list if item in state.table.keys]
            if not present:
                return 0
            self._persistence.write(self.namespace, self.dimension, [],
                                    np.empty((0, self.dimension), dtype=np.float32), [], present)
            try:
                keys = [state.table.keys[item] for item in present]
                state.graph.remove(np.array(keys, dtype=np.uint64))
                for key in keys:
                    state.table.release(key)
            except BaseException:
                self._state = None
                raise
            self._changed(state, len(present))
            return len(present)

    # -- reads -------------------------------------------------------------------------
    def count(self) -> int:
        """Number of vectors in the namespace."""
        with self._lock:
            return self._loaded().table.size

    def get(self, id: str) -> tuple[np.ndarray[Any, np.dtype[np.float32]], JSONDict] | None:
        """A copy of the stored vector (float32) and metadata of ``id``, or None."""
        require_id(id, "id")
        with self._lock:
            state = self._loaded()
            key = state.table.keys.get(id)
            if key is None:
                return None
            vector = np.array(state.graph.get(key), dtype=np.float32)
            return vector, decode_metadata(state.table.metadata[key])

    def query(
        self, vector: npt.ArrayLike, top_k: int = 10, filter: Any = None
    ) -> list[VectorMatch]:
        """The ``top_k`` nearest vectors (approximately), best first, among those matching
        ``filter`` (k results whenever at least k match)."""
        query = as_vector(vector, self.dimension, self.metric, field="vector")
        k = require_top_k(top_k)
        return self._search(query[None, :], k, filter)[0]

    def query_batch(
        self, vectors: npt.ArrayLike, top_k: int = 10, filter: Any = None
    ) -> list[list[VectorMatch]]:
        """:meth:`query` for each row of ``vectors``."""
        queries = as_matrix(vectors, self.dimension, self.metric, field="vectors")
        k = require_top_k(top_k)
        return self._search(queries, k, filter)

    def _search(self, queries: np.ndarray[Any, Any], top_k: int,
                filter: Any) -> list[list[VectorMatch]]:
        conditions = parse_filter(filter)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        with self._lock:
            state = self._loaded()
            table = state.table
            if table.size == 0:
                return [[] for _ in range(queries.shape[0])]
            expansion = self._expansion(state)
            if state.graph.expansion_search != expansion:
                state.graph.expansion_search = expansion
            if conditions:
                mask = table.matching(conditions)
                found = [hnsw.filtered_search(state.graph, table, self.metric, query, top_k,
                                              mask) for query in queries]
            else:
                found = hnsw.search(state.graph, table, self.metric, queries, top_k)
            ids, metadata = table.ids, table.metadata
            return [[VectorMatch(id=cast(str, ids[key]), score=score,
                                 metadata=decode_metadata(metadata[key]))
                     for key, score in row] for row in found]

