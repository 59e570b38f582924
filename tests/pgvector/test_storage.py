"""``pgvector_storage="halfvec"`` and ``pgvector_quantization="binary"``: the column type, the
index definitions, the plans that use them, dimension limits and recall on a clustered set."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from memory_resources.config import VectorConfig
from memory_resources.errors import ConfigurationError
from memory_resources.stores.pgvector import PgVectorIndex
from memory_resources.stores.pgvector.filters import compile_filter
from memory_resources.stores.pgvector.statements import vector_literal
from memory_resources.vector_filter import parse_filter
from tests.fixtures.pgvector import (
    PlannerPool,
    clustered_vectors,
    cosine_top_k,
    postgres_config,
    vector_config,
)
from tests.fixtures.services import create_schema, drop_schema

Make = Callable[..., PgVectorIndex]
TOP_K = 10


def column_type(index: PgVectorIndex) -> str:
    """``format_type`` of the namespace table's ``embedding`` column."""
    pool, statements = index._ready()

    def read(cur: Any) -> str:
        cur.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = %s::regclass AND attname = 'embedding'",
                    (statements.table.as_string(cur),))
        row = cur.fetchone()
        assert row is not None
        return str(row[0])

    return pool.run(read, read_only=True)


def index_definitions(index: PgVectorIndex) -> list[str]:
    """``pg_indexes.indexdef`` of every HNSW index on the namespace table."""
    pool, _ = index._ready()

    def read(cur: Any) -> list[str]:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s "
                    "AND indexdef LIKE '%%USING hnsw%%'", (index.schema, index.table))
        return [row[0] for row in cur.fetchall()]

    return pool.run(read, read_only=True)


def explain(index: PgVectorIndex, query: np.ndarray[Any, Any],
            flt: dict[str, Any] | None = None) -> str:
    """The plan of the index's approximate search statement under its own settings."""
    pool, statements = index._ready()
    where, params = compile_filter(parse_filter(flt))
    literal = vector_literal(np.asarray(query, dtype=np.float32))
    candidates = index._candidates(TOP_K)

    def plan(cur: Any) -> str:
        setup = index._tune(candidates or TOP_K, filtered=where is not None)
        if setup is not None:
            cur.execute(setup[0], setup[1])
        if candidates is None:
            statement = statements.search(index.metric, where, exact=False)
            args = statements.search_params(literal, params, TOP_K)
        else:
            statement = statements.search_binary(index.metric, where)
            args = statements.search_binary_params(literal, params, TOP_K, candidates)
        cur.execute(b"EXPLAIN " + statement.as_string(cur).encode(), args)
        return "\n".join(row[0] for row in cur.fetchall())

    return pool.run(plan, read_only=True)


# -- halfvec -----------------------------------------------------------------------------


@pytest.mark.parametrize(("metric", "opclass"), [
    ("cosine", "halfvec_cosine_ops"), ("euclidean", "halfvec_l2_ops"),
    ("dotproduct", "halfvec_ip_ops"),
])
def test_halfvec_column_and_opclass(make_pgvector_index: Make, metric: str, opclass: str) -> None:
    """halfvec storage makes a ``halfvec(n)`` column and an HNSW index with the metric's
    halfvec operator class; vectors read back rounded to float16."""
    index = make_pgvector_index(4, metric, pgvector_storage="halfvec")
    assert column_type(index) == "halfvec(4)"
    (definition,) = index_definitions(index)
    assert opclass in definition
    index.upsert(["a", "b"], [[0.1, 0.2, 0.3, 0.4], [1.0, 0.0, 0.0, 0.0]])
    stored = index.get("a")
    assert stored is not None
    expected = np.asarray([0.1, 0.2, 0.3, 0.4], dtype=np.float16).astype(np.float32)
    assert stored[0].tolist() == expected.tolist()
    assert index.stats()["storage"] == "halfvec"


def test_vector_storage_is_the_default(make_pgvector_index: Make) -> None:
    """Without the option the column stays ``vector(n)`` (existing namespaces unchanged)."""
    index = make_pgvector_index(4, "cosine")
    assert column_type(index) == "vector(4)"
    assert index.stats()["quantization"] == "none"


def test_halfvec_hnsw_dimension_limit_is_a_configuration_error(make_pgvector_index: Make
                                                               ) -> None:
    """halfvec HNSW stops at 4000 dimensions: a wider halfvec config is refused before
    connecting, naming the field and the fix; binary quantization lifts the limit."""
    with pytest.raises(ConfigurationError, match=r"dimension.*4000.*pgvector_quantization"):
        PgVectorIndex.from_config(vector_config(4001, "cosine", "wide",
                                                pgvector_storage="halfvec"),
                                  postgres_config("postgresql://unused", "unused"))
    index = make_pgvector_index(4001, "cosine", pgvector_storage="halfvec",
                                pgvector_quantization="binary")
    assert column_type(index) == "halfvec(4001)"
    assert any("bit_hamming_ops" in d for d in index_definitions(index))
    rng = np.random.default_rng(3)
    index.upsert(["x", "y"], rng.standard_normal((2, 4001)))
    assert [m["id"] for m in index.query(index.get("y")[0], top_k=1)] == ["y"]  # type: ignore[index]


def test_storage_mismatch_with_an_existing_table(make_pgvector_index: Make) -> None:
    """Connecting to a vector namespace with halfvec storage (or back) names the option."""
    index = make_pgvector_index(4, "cosine")
    with pytest.raises(ConfigurationError, match=r"pgvector_storage.*stores vector"):
        make_pgvector_index(4, "cosine", namespace=index.namespace, pgvector_storage="halfvec")


def test_rerank_factor_bounds() -> None:
    """rerank_factor is a positive bounded integer (a typed error names it)."""
    from memory_resources.config import parse_config

    for bad in (0, 101):
        with pytest.raises(ConfigurationError, match="rerank_factor"):
            parse_config(VectorConfig, {"backend": "pgvector", "rerank_factor": bad},
                         "vector_config")


# -- binary quantization -------------------------------------------------------------------


@pytest.mark.parametrize("storage", ["vector", "halfvec"])
def test_binary_index_definition_and_plan(make_pgvector_index: Make,
                                          pgvector_postgres_config: Any, storage: str) -> None:
    """Binary quantization builds an HNSW index on ``binary_quantize(embedding)::bit(n)`` with
    ``bit_hamming_ops`` (and no float HNSW index); the search statement uses it."""
    index = make_pgvector_index(16, "cosine", pgvector_storage=storage,
                                pgvector_quantization="binary")
    (definition,) = index_definitions(index)
    assert "binary_quantize(embedding)" in definition and "bit(16)" in definition
    assert "bit_hamming_ops" in definition
    rng = np.random.default_rng(1)
    index.upsert([str(i) for i in range(200)], rng.standard_normal((200, 16)))
    pool = PlannerPool(pgvector_postgres_config,
                       {"enable_seqscan": "off", "enable_bitmapscan": "off"})
    try:
        forced = PgVectorIndex.from_pool(index.config, pool)
        forced.connect()
        plan = explain(forced, rng.standard_normal(16))
        assert f"{index.table}_hnsw_bq" in plan and "Index Scan" in plan
        filtered_plan = explain(forced, rng.standard_normal(16), {"n": 1})
        assert f"{index.table}_hnsw_bq" in filtered_plan
        forced.close()
    finally:
        pool.close()


def test_binary_results_are_reranked_exactly(make_pgvector_index: Make) -> None:
    """Scores are exact cosine similarities (not hamming), best first, and equal numpy's."""
    index = make_pgvector_index(32, "cosine", pgvector_quantization="binary")
    rng = np.random.default_rng(2)
    data = rng.standard_normal((300, 32)).astype(np.float32)
    index.upsert([str(i) for i in range(300)], data)
    query = rng.standard_normal(32).astype(np.float32)
    result = index.query(query, top_k=5)
    rows = data[[int(m["id"]) for m in result]]
    expected = rows @ query / (np.linalg.norm(rows, axis=1) * np.linalg.norm(query))
    scores = [m["score"] for m in result]
    assert scores == pytest.approx(expected.tolist(), abs=1e-5)
    assert scores == sorted(scores, reverse=True)
    assert index.stats()["rerank_factor"] == VectorConfig().rerank_factor


# -- recall on a clustered set -------------------------------------------------------------

ROWS, DIMENSION, CENTERS = 6000, 384, 60


@pytest.fixture(scope="module")
def clustered(pgvector_dsn: str) -> Iterator[tuple[str, np.ndarray[Any, Any]]]:
    """6000 x 384 clustered vectors bulk-loaded into one halfvec namespace with both a
    halfvec HNSW index and a binary one (module-scoped, read-only)."""
    schema = create_schema(pgvector_dsn)
    vectors, _ = clustered_vectors(ROWS, DIMENSION, centers=CENTERS, seed=4)
    try:
        config = vector_config(DIMENSION, "cosine", "clustered", pgvector_storage="halfvec")
        index = PgVectorIndex.from_config(config, postgres_config(pgvector_dsn, schema))
        index.connect()
        ids = [str(i) for i in range(ROWS)]
        metadata = [{"bucket": i % 10} for i in range(ROWS)]
        with index.bulk_load():
            index.upsert(ids, vectors, metadata)
        index.close()
        binary = PgVectorIndex.from_config(
            vector_config(DIMENSION, "cosine", "clustered", pgvector_storage="halfvec",
                          pgvector_quantization="binary"), postgres_config(pgvector_dsn, schema))
        binary.connect()  # builds the bit index over the loaded rows
        binary.close()
        yield schema, vectors
    finally:
        drop_schema(pgvector_dsn, schema)


def recall(found: list[list[str]], exact: np.ndarray[Any, Any]) -> float:
    hits = [len({int(i) for i in ids} & set(row.tolist()))
            for ids, row in zip(found, exact, strict=True)]
    return float(np.mean(hits)) / exact.shape[1]


@pytest.mark.topology
@pytest.mark.parametrize(("quantization", "floor"), [("none", 0.95), ("binary", 0.9)])
def test_recall_does_not_collapse(pgvector_dsn: str, clustered: tuple[str, Any],
                                  quantization: str, floor: float) -> None:
    """recall@10 vs exact float32 cosine stays high for halfvec HNSW and for binary + re-rank
    (default settings), unfiltered and under a 10% filter (where top_k also stays full),
    and the plan uses the option's index."""
    schema, vectors = clustered
    index = PgVectorIndex.from_config(
        vector_config(DIMENSION, "cosine", "clustered", pgvector_storage="halfvec",
                      pgvector_quantization=quantization), postgres_config(pgvector_dsn, schema))
    index.connect()
    try:
        rng = np.random.default_rng(8)
        queries = vectors[rng.integers(0, ROWS, 30)] + rng.standard_normal(
            (30, DIMENSION)).astype(np.float32)
        found = [[m["id"] for m in r] for r in index.query_batch(queries, top_k=TOP_K)]
        assert recall(found, cosine_top_k(vectors, queries, TOP_K)) >= floor
        filtered = index.query_batch(queries[:10], top_k=TOP_K, filter={"bucket": 3})
        assert [len(r) for r in filtered] == [TOP_K] * 10
        assert all(m["metadata"]["bucket"] == 3 for r in filtered for m in r)
        exact = cosine_top_k(vectors, queries[:10], TOP_K, mask=np.arange(ROWS) % 10 == 3)
        assert recall([[m["id"] for m in r] for r in filtered], exact) >= floor - 0.05
        name = "hnsw_bq" if quantization == "binary" else "hnsw_cosine"
        assert name in explain(index, queries[0])
    finally:
        index.close()


def test_index_build_at_connect_is_not_bound_by_the_call_deadline(
    make_pgvector_index: Make, pgvector_dsn: str, pgvector_schema: str
) -> None:
    """Switching a loaded namespace to binary builds the bit index at connect; the build
    may outlast ``operation_timeout`` (here it waits 2.5 s for a writer's lock with a 1 s
    deadline) and connect still succeeds, with the index built."""
    import threading

    import psycopg2

    base = make_pgvector_index(8, "cosine")
    base.upsert(["a", "b"], [[1.0] * 8, [1.0] * 7 + [0.0]])
    writer = psycopg2.connect(pgvector_dsn)
    timer = threading.Timer(2.5, writer.commit)
    try:
        with writer.cursor() as cur:  # an open write transaction: CREATE INDEX must wait
            cur.execute(f'INSERT INTO "{pgvector_schema}"."{base.table}" (id, embedding) '
                        "VALUES ('c', '[1,0,0,0,0,0,0,0]')")
        timer.start()
        slow = make_pgvector_index(8, "cosine", namespace=base.namespace,
                                   postgres=postgres_config(pgvector_dsn, pgvector_schema,
                                                            operation_timeout=1),
                                   pgvector_quantization="binary")
        assert any("bit_hamming_ops" in d for d in index_definitions(slow))
        assert [m["id"] for m in slow.query([1.0] * 8, top_k=3)] == ["a", "b", "c"]
    finally:
        if timer.ident is not None:
            timer.join()
        writer.close()


def test_bulk_load_drops_and_rebuilds_the_binary_index(make_pgvector_index: Make) -> None:
    """``bulk_load()`` on a binary namespace drops the bit index for the load (queries stay
    exact meanwhile) and rebuilds it afterwards."""
    index = make_pgvector_index(16, "cosine", pgvector_quantization="binary")
    rng = np.random.default_rng(5)
    data = rng.standard_normal((100, 16)).astype(np.float32)
    with index.bulk_load():
        assert index_definitions(index) == []
        index.upsert([str(i) for i in range(100)], data)
        assert [m["id"] for m in index.query(data[7], top_k=1)] == ["7"]
    (definition,) = index_definitions(index)
    assert "bit_hamming_ops" in definition
    assert index.stats()["hnsw_index"] is True
    assert [m["id"] for m in index.query(data[42], top_k=1)] == ["42"]
