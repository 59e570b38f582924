"""HNSW quality on 20k x 768 clustered vectors: recall at the default ef_search, and filtered
queries that return the full top_k whichever plan PostgreSQL picks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from memory_resources.config import VectorConfig
from memory_resources.stores.pgvector import PgVectorIndex
from memory_resources.stores.pgvector.setup import ServerInfo
from tests.fixtures.pgvector import ClusteredSet, PlannerPool, cosine_top_k

pytestmark = pytest.mark.slow

QUERIES = 50
TOP_K = 10


def recall(found: list[list[str]], exact: np.ndarray[Any, Any]) -> float:
    """Mean fraction of the exact top-k ids present in the returned ids."""
    hits = [len({int(i) for i in ids} & set(truth.tolist())) for ids, truth in zip(
        found, exact, strict=True)]
    return float(np.mean(hits)) / exact.shape[1]


@pytest.fixture
def clustered_index(pgvector_clustered: ClusteredSet) -> Iterator[PgVectorIndex]:
    """A fresh connection to the shared clustered namespace (default ef_search)."""
    index = PgVectorIndex.from_config(pgvector_clustered.config(), pgvector_clustered.postgres())
    index.connect()
    yield index
    index.close()


def planned_index(data: ClusteredSet, settings: dict[str, str]) -> PgVectorIndex:
    """An index on the clustered namespace whose transactions run with ``settings``."""
    pool = PlannerPool(data.postgres(), settings)
    index = PgVectorIndex.from_pool(data.config(), pool)
    index.connect()
    return index


def test_recall_at_default_ef_search(
    clustered_index: PgVectorIndex, pgvector_clustered: ClusteredSet
) -> None:
    """recall@10 against exact cosine search is >= 0.95 at the default ef_search, and the
    HNSW index (not an exact scan) answered."""
    assert clustered_index.ef_search == VectorConfig().ef_search
    queries = pgvector_clustered.queries(QUERIES)
    exact = cosine_top_k(pgvector_clustered.vectors, queries, TOP_K)
    found = [[m["id"] for m in r] for r in clustered_index.query_batch(queries, top_k=TOP_K)]
    assert all(len(ids) == TOP_K for ids in found)
    assert recall(found, exact) >= 0.95
    assert explain(clustered_index, queries[0], None).count("hnsw_cosine") == 1


def test_scores_match_exact_cosine(
    clustered_index: PgVectorIndex, pgvector_clustered: ClusteredSet
) -> None:
    """Scores are cosine similarities equal to numpy's for the returned rows, best first."""
    query = pgvector_clustered.queries(1, seed=5)[0]
    result = clustered_index.query(query, top_k=TOP_K)
    rows = pgvector_clustered.vectors[[int(m["id"]) for m in result]]
    expected = rows @ query / (np.linalg.norm(rows, axis=1) * np.linalg.norm(query))
    scores = [m["score"] for m in result]
    assert scores == pytest.approx(expected.tolist(), abs=1e-5)
    assert scores == sorted(scores, reverse=True)


def explain(index: PgVectorIndex, query: np.ndarray[Any, Any], bucket: int | None) -> str:
    """The plan of the index's search statement under the index's own settings."""
    from memory_resources.stores.pgvector.filters import compile_filter
    from memory_resources.stores.pgvector.statements import vector_literal
    from memory_resources.vector_filter import parse_filter

    pool, statements = index._ready()
    where, params = compile_filter(parse_filter(None if bucket is None else {"bucket": bucket}))

    def plan(cur: Any) -> str:
        setup = index._tune(TOP_K, filtered=where is not None)
        if setup is not None:
            cur.execute(setup[0], setup[1])
        cur.execute(
            b"EXPLAIN " + statements.search(index.metric, where, exact=False).as_string(cur)
            .encode(), statements.search_params(vector_literal(query), params, TOP_K),
        )
        return "\n".join(row[0] for row in cur.fetchall())

    return pool.run(plan, read_only=True)


PLANS = {
    "planner-free": {},
    "index-forced": {"enable_seqscan": "off", "enable_bitmapscan": "off"},
    "scan-forced": {"enable_indexscan": "off"},
}


@pytest.mark.parametrize("plan", list(PLANS))
def test_filter_on_ten_percent_returns_full_top_k(
    pgvector_clustered: ClusteredSet, plan: str
) -> None:
    """A filter matching 10% of rows returns 10 matching rows, close to the exact filtered
    top 10, whether the planner is free, forced onto the HNSW index, or forced to scan."""
    index = planned_index(pgvector_clustered, PLANS[plan])
    try:
        queries = pgvector_clustered.queries(10, seed=21)
        plan_text = explain(index, queries[0], 3)
        if plan == "index-forced":
            assert "hnsw_cosine" in plan_text
        if plan == "scan-forced":
            assert "hnsw_cosine" not in plan_text
        results = index.query_batch(queries, top_k=TOP_K, filter={"bucket": 3})
        assert [len(r) for r in results] == [TOP_K] * len(queries)
        assert all(m["metadata"]["bucket"] == 3 for r in results for m in r)
        exact = cosine_top_k(pgvector_clustered.vectors, queries, TOP_K,
                             mask=pgvector_clustered.buckets == 3)
        assert recall([[m["id"] for m in r] for r in results], exact) >= 0.9
    finally:
        index.close()
        index._given_pool.close()  # type: ignore[union-attr]


def test_filter_without_iterative_scan_still_returns_full_top_k(
    pgvector_clustered: ClusteredSet,
) -> None:
    """With the index forced and iterative scans unavailable (pgvector < 0.8 behaviour),
    over-fetching and the exact re-query still return 10 rows for a 10% filter, and 5 for a
    filter that only 5 rows match."""
    index = planned_index(pgvector_clustered, PLANS["index-forced"])
    try:
        assert index._info is not None
        index._info = ServerInfo(index._info.extension_schema, (0, 7, 4))
        query = pgvector_clustered.queries(1, seed=33)[0]
        result = index.query(query, top_k=TOP_K, filter={"bucket": 7})
        assert len(result) == TOP_K and {m["metadata"]["bucket"] for m in result} == {7}
        few = index.query(query, top_k=TOP_K, filter={"row": {"$in": [1, 2, 3, 4, 19_999]}})
        assert sorted(m["id"] for m in few) == ["1", "19999", "2", "3", "4"]
    finally:
        index.close()
        index._given_pool.close()  # type: ignore[union-attr]


def test_plain_index_scan_without_iterative_scan_loses_rows(
    pgvector_clustered: ClusteredSet,
) -> None:
    """Control: the bare HNSW scan with iterative scans off and a small ef_search returns
    fewer than 10 rows for a 10% filter, so the tests above would catch a regression."""
    index = planned_index(pgvector_clustered, {
        **PLANS["index-forced"], "hnsw.iterative_scan": "off", "hnsw.ef_search": "20",
    })
    try:
        pool, statements = index._ready()
        from memory_resources.stores.pgvector.filters import compile_filter
        from memory_resources.stores.pgvector.statements import vector_literal
        from memory_resources.vector_filter import parse_filter

        where, params = compile_filter(parse_filter({"bucket": 3}))
        query = vector_literal(pgvector_clustered.queries(1, seed=44)[0])

        def bare(cur: Any) -> int:
            cur.execute(statements.search("cosine", where, exact=False),
                        statements.search_params(query, params, TOP_K))
            return len(cur.fetchall())

        assert pool.run(bare, read_only=True) < TOP_K
    finally:
        index.close()
        index._given_pool.close()  # type: ignore[union-attr]
