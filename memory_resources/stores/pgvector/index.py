"""``PgVectorIndex``: the VectorIndex engine on PostgreSQL + pgvector (HNSW).

One table per namespace (``<schema>.pgvector_<namespace>``, see :mod:`.naming`) with a
``vector(dimension)`` column (``halfvec(dimension)`` with ``pgvector_storage="halfvec"``: half
the size), an HNSW index with the metric's operator class and a GIN index on the JSONB
metadata. With ``pgvector_quantization="binary"`` the HNSW index is instead built on the
sign bits (``binary_quantize(embedding)::bit(dimension)``, hamming distance): a query takes
``top_k * rerank_factor`` candidates from it and re-ranks them by the exact distance on the
stored column, in one statement. Scores mean exactly what they mean on the numpy backend: cosine
similarity (``1 - <=>``), euclidean distance (``<->``) and dot product (``-(<#>)``).

Queries set ``hnsw.ef_search`` per transaction (``SET LOCAL``) and, on pgvector >= 0.8, an
iterative index scan (``relaxed_order``, re-sorted exactly in SQL), so a filtered query still
returns ``top_k`` rows when that many match. Whenever the index returns fewer rows than
``top_k`` (an older pgvector, a very selective filter exhausting ``max_scan_tuples``, or a
namespace smaller than ``top_k``) the query is re-run as an exact scan, so a short result
always means that fewer rows match.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg2 import sql

from ...config import PostgresConfig, VectorConfig
from ...decoding import build_records
from ...embedding import (
    Float32Vector,
    as_matrix,
    as_vector,
    require_ids,
    require_top_k,
    upsert_batch,
)
from ...errors import BackendError, ConfigurationError
from ...log import get_logger
from ...protocols import VectorFilter
from ...records import HealthReport, JSONDict, Metric, VectorMatch
from ...validation import require_id
from ...vector_filter import Condition, parse_filter
from ..postgres.pool import HEALTH_TIMEOUT, NO_DEADLINE, Cursor, PostgresPool, call_budget
from .filters import compile_filter, filter_keys
from .monitoring import namespace_counts, table_sizes
from .naming import hnsw_index_name, table_name
from .search import DEFAULT_MAX_SCAN_TUPLES, check_filter_keys, nearest, tune
from .setup import (
    ServerInfo,
    check_hnsw_options,
    ensure_extension,
    ensure_hnsw_index,
    ensure_schema,
    ensure_table,
    fetch_one,
    hnsw_key,
    index_exists,
)
from .statements import Statements, vector_literal
from .writes import COPY_THRESHOLD, encode_metadata, write_audit, write_rows

__all__ = ["COPY_THRESHOLD", "DEFAULT_MAINTENANCE_WORK_MEM", "DEFAULT_MAX_SCAN_TUPLES",
           "PgVectorIndex"]

_log = get_logger(__name__)

DEFAULT_MAINTENANCE_WORK_MEM = "256MB"
"""``maintenance_work_mem`` for HNSW builds (20k x 768: 29 s at the 64MB default, 18 s here)."""


class PgVectorIndex:
    """Embeddings of one namespace in PostgreSQL with pgvector, queried through HNSW.

    Build it with :meth:`from_config` (own connection pool) or :meth:`from_pool` (share a
    :class:`~memory_resources.stores.postgres.pool.PostgresPool`, e.g. ``PostgresStore.pool``),
    then :meth:`connect`: it creates the extension (``CREATE EXTENSION IF NOT EXISTS vector``),
    the namespace table and its indexes, and checks the dimension of an existing table.
    """

    backend_name = "pgvector"

    def __init__(
        self,
        config: VectorConfig,
        *,
        postgres: PostgresConfig | None = None,
        pool: PostgresPool | None = None,
        maintenance_work_mem: str = DEFAULT_MAINTENANCE_WORK_MEM,
        max_scan_tuples: int = DEFAULT_MAX_SCAN_TUPLES,
    ) -> None:
        if (postgres is None) == (pool is None):
            raise ConfigurationError(
                "PgVectorIndex needs exactly one of postgres (a PostgresConfig) or pool"
            )
        check_hnsw_options(config)
        if max_scan_tuples < 1:
            raise ConfigurationError(f"max_scan_tuples must be >= 1, got {max_scan_tuples}")
        self.config = config
        self.dimension: int = config.dimension
        self.metric: Metric = config.metric
        self.namespace: str = config.namespace
        self.ef_search = config.ef_search
        self.storage: str = config.pgvector_storage
        self.quantization: str = config.pgvector_quantization
        self.rerank_factor: int = config.rerank_factor
        self.maintenance_work_mem = maintenance_work_mem
        self.max_scan_tuples = max_scan_tuples
        self._postgres = postgres
        self._given_pool = pool
        self._pool: PostgresPool | None = None
        self._table = table_name(config.namespace)
        self._info: ServerInfo | None = None
        self._sql: Statements | None = None
        self._indexed = False
        self._audit = False
        self._lock = threading.Lock()

    # -- construction / lifecycle ------------------------------------------------------

    @classmethod
    def from_config(cls, config: VectorConfig, postgres: PostgresConfig | None = None,
                    **options: Any) -> PgVectorIndex:
        """An index with its own pool to ``postgres`` (default: ``config.postgres``)."""
        resolved = postgres if postgres is not None else config.postgres
        if resolved is None:
            raise ConfigurationError(
                "vector_config['backend']: 'pgvector' needs a PostgreSQL connection "
                "(give vector_config['postgres'] or postgres_config)"
            )
        return cls(config, postgres=resolved, **options)

    @classmethod
    def from_pool(cls, config: VectorConfig, pool: PostgresPool, **options: Any) -> PgVectorIndex:
        """An index sharing an existing pool (not closed by :meth:`close`)."""
        return cls(config, pool=pool, **options)

    @property
    def schema(self) -> str:
        """The PostgreSQL schema holding the namespace table."""
        if self._given_pool is not None:
            return self._given_pool.schema
        assert self._postgres is not None
        return self._postgres.schema_

    @property
    def table(self) -> str:
        """The namespace table's name (unqualified)."""
        return self._table

    def connect(self) -> None:
        """Open the pool, apply migrations (own pool, ``auto_migrate``), create the extension,
        table and indexes, and check the stored dimension. Idempotent."""
        with self._lock:
            if self._sql is not None:
                return
            pool = self._given_pool
            owned = pool is None
            if pool is None:
                assert self._postgres is not None
                config = self._postgres
                if config.local_server:  # a private embedded PostgreSQL (has pgvector)
                    from ..postgres.local import start_local_server

                    config = start_local_server(config)
                pool = PostgresPool(config)
            try:
                if owned and self._postgres is not None and self._postgres.auto_migrate:
                    from ..postgres.migrate import migrate

                    migrate(pool)
                info, indexed, audit = pool.run(self._setup)
                if indexed is None:  # missing: build it without the call's deadline
                    indexed = pool.run(self._build_index, timeout=NO_DEADLINE)
            except BaseException:
                if owned:
                    pool.close()
                raise
            self._pool, self._info, self._indexed, self._audit = pool, info, indexed, audit
            self._sql = Statements(schema=pool.schema, table=self._table,
                                   extension_schema=info.extension_schema,
                                   dimension=self.dimension, storage=self.storage)
            _log.info("pgvector index ready", namespace=self.namespace, table=self._table,
                      pgvector=info.version_text, hnsw=indexed, storage=self.storage,
                      quantization=self.quantization)

    def _setup(self, cur: Cursor) -> tuple[ServerInfo, bool | None, bool]:
        """Extension, schema and table; whether the HNSW index exists (None: missing and
        to be built, False: none possible); whether ``audit_log`` exists."""
        info = ensure_extension(cur)
        schema = self.schema
        ensure_schema(cur, schema)
        ensure_table(cur, schema=schema, table=self._table, namespace=self.namespace,
                     dimension=self.dimension, extension_schema=info.extension_schema,
                     storage=self.storage)
        self._info = info
        indexed: bool | None = False
        if hnsw_key(metric=self.metric, dimension=self.dimension,
                    extension_schema=info.extension_schema, storage=self.storage,
                    quantization=self.quantization) is not None:
            name = hnsw_index_name(self._table, self.metric, self.quantization)
            indexed = True if index_exists(cur, schema, name) else None
        cur.execute("SELECT to_regclass(%s) IS NOT NULL",
                    (sql.Identifier(schema, "audit_log").as_string(cur),))
        row = cur.fetchone()
        return info, indexed, bool(row and row[0])

    def close(self) -> None:
        """Release the pool if this index owns it. Idempotent; :meth:`connect` reopens."""
        with self._lock:
            pool, self._pool, self._sql = self._pool, None, None
            if pool is not None and self._given_pool is None:
                pool.close()

    def _ready(self) -> tuple[PostgresPool, Statements]:
        if self._sql is None:
            self.connect()
        pool, statements = self._pool, self._sql
        if pool is None or statements is None:
            raise BackendError(self.backend_name, "the index was closed while in use")
        return pool, statements

    @contextlib.contextmanager
    def bulk_load(self) -> Iterator[PgVectorIndex]:
        """Load many vectors, then build the HNSW index once (pgvector's advice: a bulk
        build is several times faster than inserting into a live HNSW graph).

        Drops this metric's HNSW index, yields, and rebuilds it with ``maintenance_work_mem``
        raised, also when the block raises. Queries meanwhile are exact scans (correct,
        slower), for every client of the namespace.
        """
        pool, _ = self._ready()
        name = sql.Identifier(self.schema,
                              hnsw_index_name(self._table, self.metric, self.quantization))
        pool.run(lambda cur: cur.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(name)))
        self._indexed = False
        try:
            yield self
        finally:
            # An HNSW build can take minutes: no client-side deadline (maintenance).
            self._indexed = pool.run(self._build_index, timeout=NO_DEADLINE)

    def _build_index(self, cur: Cursor) -> bool:
        assert self._info is not None
        return ensure_hnsw_index(
            cur, schema=self.schema, table=self._table, metric=self.metric,
            dimension=self.dimension, extension_schema=self._info.extension_schema,
            m=self.config.hnsw_m, ef_construction=self.config.hnsw_ef_construction,
            maintenance_work_mem=self.maintenance_work_mem, storage=self.storage,
            quantization=self.quantization,
        )

    # -- writes ------------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.ArrayLike,
        metadata: Sequence[JSONDict | None] | None = None,
    ) -> int:
        """Insert or replace vectors by id, all validated first, in one transaction.
        Returns the number of vectors written."""
        id_list, matrix = upsert_batch(ids, vectors, self.dimension, self.metric)
        if not id_list:
            return 0
        encoded = encode_metadata(metadata, len(id_list), max_bytes=self._max_payload_bytes())
        pool, statements = self._ready()

        def write(cur: Cursor) -> int:
            write_rows(cur, statements, id_list, matrix, encoded)
            self._write_audit(cur, "vector.upsert", id_list)
            return len(id_list)

        return pool.run(write, idempotent=True)

    def _max_payload_bytes(self) -> int:
        config = self._postgres if self._given_pool is None else self._given_pool.config
        assert config is not None
        return int(config.max_payload_bytes)

    def _write_audit(self, cur: Cursor, operation: str, ids: Sequence[str]) -> None:
        if self._audit:
            write_audit(cur, schema=self.schema, namespace=self.namespace,
                        operation=operation, ids=ids)

    def delete(self, ids: Sequence[str]) -> int:
        """Remove vectors by id; returns how many existed."""
        id_list = list(dict.fromkeys(require_ids(ids, "ids", unique=False)))
        if not id_list:
            return 0
        pool, statements = self._ready()

        def remove(cur: Cursor) -> int:
            cur.execute(statements.delete(), (id_list,))
            removed = int(cur.rowcount)
            if removed:
                self._write_audit(cur, "vector.delete", id_list)
            return removed

        return pool.run(remove, idempotent=True)

    # -- reads -------------------------------------------------------------------------

    def count(self) -> int:
        """Number of vectors in the namespace."""
        pool, statements = self._ready()

        def counted(cur: Cursor) -> int:
            cur.execute(statements.count())
            return int(fetch_one(cur)[0])

        return pool.run(counted, read_only=True)

    def get(self, id: str) -> tuple[np.ndarray[Any, np.dtype[np.float32]], JSONDict] | None:
        """The stored vector and metadata of ``id``, or None."""
        key = require_id(id, "id")
        pool, statements = self._ready()

        def fetch(cur: Cursor) -> tuple[Any, Any] | None:
            cur.execute(statements.get(), (key,))
            return cur.fetchone()

        row = pool.run(fetch, read_only=True)
        if row is None:
            return None
        return build_records([row], lambda r: (np.asarray(r[0], dtype=np.float32), dict(r[1])),
                             backend="pgvector", table="embeddings", key=lambda r: key,
                             columns={"metadata": 1})[0]

    def query(
        self, vector: npt.ArrayLike, top_k: int = 10, filter: VectorFilter | None = None
    ) -> list[VectorMatch]:
        """The ``top_k`` best matches, best first (see the module docstring)."""
        query = as_vector(vector, self.dimension, self.metric, field="vector")
        k = require_top_k(top_k)
        conditions = parse_filter(filter)
        return self._search_many([query], k, conditions)[0]

    def query_batch(
        self, vectors: npt.ArrayLike, top_k: int = 10, filter: VectorFilter | None = None
    ) -> list[list[VectorMatch]]:
        """:meth:`query` for each row of ``vectors``, in one transaction."""
        matrix = as_matrix(vectors, self.dimension, self.metric, field="vectors",
                           allow_empty=True)
        k = require_top_k(top_k)
        conditions = parse_filter(filter)
        if matrix.shape[0] == 0:
            return []
        return self._search_many(list(matrix), k, conditions)

    def _search_many(self, queries: Sequence[Float32Vector], top_k: int,
                     conditions: Sequence[Condition]) -> list[list[VectorMatch]]:
        where, filter_params = compile_filter(conditions)
        keys = filter_keys(conditions)
        literals = [vector_literal(query) for query in queries]
        pool, statements = self._ready()

        candidates = self._candidates(top_k)

        def search(cur: Cursor) -> list[list[VectorMatch]]:
            if keys:
                check_filter_keys(cur, statements, keys)
            return nearest(cur, statements, metric=self.metric, where=where,
                           filter_params=filter_params, literals=literals, top_k=top_k,
                           indexed=self._indexed, rerank_candidates=candidates,
                           setup=self._tune(candidates or top_k, filtered=where is not None))

        return pool.run(search, read_only=True)

    def _candidates(self, top_k: int) -> int | None:
        """Binary quantization: how many hamming candidates are re-ranked (else None)."""
        if self.quantization != "binary":
            return None
        return top_k * self.rerank_factor

    def _tune(self, top_k: int, *, filtered: bool) -> tuple[sql.Composable, list[Any]] | None:
        """The ``SET LOCAL`` statement of the HNSW search parameters (None: no index)."""
        if not self._indexed or self._info is None:
            return None
        return tune(self._info, ef_search=self.ef_search, top_k=top_k, filtered=filtered,
                    max_scan_tuples=self.max_scan_tuples)

    # -- monitoring --------------------------------------------------------------------

    def health_check(self) -> HealthReport:
        """Round trip to the namespace table; reports faults instead of raising them."""
        started = time.perf_counter()
        try:
            with call_budget(HEALTH_TIMEOUT):  # connecting included, as the store's check
                pool, statements = self._ready()
                pool.run(lambda cur: cur.execute(
                    sql.SQL("SELECT 1 FROM {} LIMIT 1").format(statements.table)),
                    read_only=True)
        except Exception as exc:
            return HealthReport(status="unhealthy", backend=self.backend_name, error=str(exc),
                                latency_ms=(time.perf_counter() - started) * 1000)
        return HealthReport(
            status="healthy", backend=self.backend_name,
            latency_ms=(time.perf_counter() - started) * 1000,
            details={"namespace": self.namespace, "table": f"{self.schema}.{self._table}",
                     "pgvector": self._info.version_text if self._info else None},
        )

    def stats(self) -> JSONDict:
        """``total_embeddings`` of this namespace (as on the numpy backend), ``namespaces``:
        counts of every pgvector namespace in the schema (``schema_embeddings`` their sum),
        index and table sizes, search settings, pool use."""
        pool, statements = self._ready()
        schema = self.schema

        def collect(cur: Cursor) -> JSONDict:
            namespaces = namespace_counts(cur, schema)
            return {
                "backend": self.backend_name,
                "namespace": self.namespace,
                "dimension": self.dimension,
                "metric": self.metric,
                "total_embeddings": namespaces.get(self.namespace, 0),
                "schema_embeddings": sum(namespaces.values()),
                "namespaces": namespaces,
                "table": f"{schema}.{self._table}",
                **table_sizes(cur, statements),
                "hnsw_index": self._indexed,
                "storage": self.storage,
                "quantization": self.quantization,
                "rerank_factor": self.rerank_factor if self.quantization == "binary" else None,
                "ef_search": self.ef_search,
                "hnsw_m": self.config.hnsw_m,
                "hnsw_ef_construction": self.config.hnsw_ef_construction,
                "pgvector_version": self._info.version_text if self._info else None,
                "iterative_scan": bool(self._info and self._info.iterative_scan),
            }

        result = pool.run(collect, read_only=True)
        with contextlib.suppress(Exception):
            result["pool"] = pool.stats()
        return result

    def __repr__(self) -> str:
        return (f"PgVectorIndex(namespace={self.namespace!r}, dimension={self.dimension}, "
                f"metric={self.metric!r}, connected={self._sql is not None})")
