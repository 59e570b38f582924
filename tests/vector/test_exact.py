"""The numpy index returns exactly numpy brute force's top-k, and float16 keeps recall."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from memory_resources.stores.numpy_index import NumpyVectorIndex
from memory_resources.vector_filter import matches, parse_filter

METRICS = ["cosine", "euclidean", "dotproduct"]


def brute_force(data: np.ndarray, query: np.ndarray, metric: str) -> np.ndarray:
    """Reference scores in float64 (metric meaning: similarity, distance, dot)."""
    x, q = data.astype(np.float64), query.astype(np.float64)
    if metric == "euclidean":
        return np.linalg.norm(x - q, axis=1)
    dots = x @ q
    if metric == "cosine":
        return dots / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))
    return dots


def assert_exact_top_k(result: list[Any], ids: list[str], ref: np.ndarray, metric: str,
                       top_k: int) -> None:
    """Result ids carry exactly the best ``top_k`` reference scores, in order (ties aside)."""
    order = np.argsort(ref if metric == "euclidean" else -ref, kind="stable")
    best = ref[order[:top_k]]
    position = {item: i for i, item in enumerate(ids)}
    got = np.array([ref[position[m["id"]]] for m in result])
    assert len(result) == min(top_k, len(ids))
    np.testing.assert_allclose(got, best, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose([m["score"] for m in result], best, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("metric", METRICS)
def test_top_k_equals_brute_force_on_random_data(metric: str) -> None:
    """On random data, single and batch queries return brute force's exact top-k and scores."""
    rng = np.random.default_rng(42)
    data = rng.standard_normal((3000, 48)).astype(np.float32)
    ids = [f"id{i}" for i in range(len(data))]
    index = NumpyVectorIndex(48, metric)
    index.upsert(ids, data)
    queries = rng.standard_normal((16, 48)).astype(np.float32)
    batch = index.query_batch(queries, top_k=25)
    for query, from_batch in zip(queries, batch, strict=True):
        ref = brute_force(data, query, metric)
        assert_exact_top_k(index.query(query, top_k=25), ids, ref, metric, 25)
        assert_exact_top_k(from_batch, ids, ref, metric, 25)


@pytest.mark.parametrize("metric", METRICS)
def test_top_k_stays_exact_after_churn(metric: str) -> None:
    """After interleaved upserts, replacements and swap-with-last deletes, results still
    equal brute force over a plain dict of the surviving vectors."""
    rng = np.random.default_rng(5)
    index = NumpyVectorIndex(16, metric)
    reference: dict[str, np.ndarray] = {}
    for step in range(30):
        new_ids = [f"k{rng.integers(0, 400)}" for _ in range(40)]
        new_ids = list(dict.fromkeys(new_ids))
        vectors = rng.standard_normal((len(new_ids), 16)).astype(np.float32)
        index.upsert(new_ids, vectors)
        reference.update(zip(new_ids, vectors, strict=True))
        doomed = [f"k{rng.integers(0, 400)}" for _ in range(15)]
        removed = index.delete(doomed)
        assert removed == len({d for d in doomed if d in reference})
        for item in doomed:
            reference.pop(item, None)
        assert index.count() == len(reference), step
    ids = list(reference)
    data = np.stack([reference[item] for item in ids])
    for item in ids[:20]:
        np.testing.assert_array_equal(index.get(item)[0], reference[item])
    for query in rng.standard_normal((8, 16)).astype(np.float32):
        assert_exact_top_k(index.query(query, top_k=10), ids, brute_force(data, query, metric),
                           metric, 10)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("flt", [
    {"bucket": 3},                                  # ~5 %: scores only candidate rows
    {"bucket": {"$nin": [1, 2]}},                   # ~90 %: full scan with a mask
    {"bucket": {"$in": [0, 1, 2, 3, 4, 5, 6]}, "weight": {"$gte": 0.5}},
    {"tag": {"$ne": "a"}, "weight": {"$lt": 0.3}},
])
def test_filtered_top_k_equals_brute_force(metric: str, flt: dict[str, Any]) -> None:
    """Filtered queries equal brute force over the rows that :func:`matches` accepts."""
    rng = np.random.default_rng(9)
    data = rng.standard_normal((2000, 12)).astype(np.float32)
    metadata = [{"bucket": int(rng.integers(0, 20)), "weight": float(rng.random()),
                 **({"tag": "a"} if i % 4 == 0 else {})} for i in range(2000)]
    ids = [f"r{i}" for i in range(2000)]
    index = NumpyVectorIndex(12, metric)
    index.upsert(ids, data, metadata)
    conditions = parse_filter(flt)
    keep = np.array([matches(conditions, meta) for meta in metadata])
    kept_ids = [item for item, ok in zip(ids, keep, strict=True) if ok]
    for query in rng.standard_normal((5, 12)).astype(np.float32):
        result = index.query(query, top_k=15, filter=flt)
        assert all(matches(conditions, m["metadata"]) for m in result)
        assert_exact_top_k(result, kept_ids, brute_force(data[keep], query, metric), metric, 15)


def gaussian_mixture(rng: np.random.Generator, n: int, dim: int, clusters: int) -> np.ndarray:
    """Clustered data like real embeddings: tight clusters around random centres."""
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    labels = rng.integers(0, clusters, n)
    return (centres[labels] + 0.25 * rng.standard_normal((n, dim))).astype(np.float32)


@pytest.mark.parametrize("metric", METRICS)
def test_float16_recall_at_10_on_clustered_data(metric: str) -> None:
    """float16 storage keeps recall@10 >= 0.99 against exact float32 on a Gaussian mixture."""
    rng = np.random.default_rng(1)
    data = gaussian_mixture(rng, 10000, 96, 50)
    queries = gaussian_mixture(rng, 100, 96, 50)
    ids = [str(i) for i in range(len(data))]
    exact = NumpyVectorIndex(96, metric)
    half = NumpyVectorIndex(96, metric, storage_dtype="float16")
    exact.upsert(ids, data)
    half.upsert(ids, data)
    want = exact.query_batch(queries, top_k=10)
    got = half.query_batch(queries, top_k=10)
    hits = sum(len({m["id"] for m in w} & {m["id"] for m in g})
               for w, g in zip(want, got, strict=True))
    recall = hits / (10 * len(queries))
    assert recall >= 0.99, recall
    assert half.stats()["memory_bytes"] < 0.55 * exact.stats()["memory_bytes"]
