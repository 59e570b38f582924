"""storage_dtype="int8": the SimSIMD int8 scan keeps recall, exact scores, filters and sync."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memory_resources.config import VectorConfig
from memory_resources.errors import MemoryValidationError
from memory_resources.stores.numpy_index import FileVectorPersistence, NumpyVectorIndex, quantized
from memory_resources.stores.numpy_index.quantized import Int8Codes

from .test_exact import METRICS, assert_exact_top_k, brute_force, gaussian_mixture

assert quantized.kernel() is not None, "the int8 tests need simsimd (the dev extra)"

DIM = 64


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record, per single query, whether the int8 kernel produced the candidates."""
    seen: list[bool] = []
    original = Int8Codes.scan

    def spy(self: Int8Codes, query: Any, size: int, pool: int) -> Any:
        result = original(self, query, size, pool)
        seen.append(result is not None)
        return result

    monkeypatch.setattr(Int8Codes, "scan", spy)
    return seen


@pytest.fixture
def no_simsimd(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make ``import simsimd`` fail, as if the library were not installed."""
    quantized.kernel.cache_clear()
    monkeypatch.setitem(sys.modules, "simsimd", None)
    yield
    quantized.kernel.cache_clear()


def pair(metric: str, data: np.ndarray, metadata: list[Any] | None = None
         ) -> tuple[NumpyVectorIndex, NumpyVectorIndex]:
    """A float32 index and an int8 index holding the same rows."""
    ids = [str(i) for i in range(len(data))]
    exact = NumpyVectorIndex(DIM, metric)
    fast = NumpyVectorIndex(DIM, metric, storage_dtype="int8")
    exact.upsert(ids, data, metadata)
    fast.upsert(ids, data, metadata)
    return exact, fast


def recall_at_10(want: list[list[Any]], got: list[list[Any]]) -> float:
    """Share of the exact top-10 ids the candidate found."""
    hits = sum(len({m["id"] for m in w} & {m["id"] for m in g})
               for w, g in zip(want, got, strict=True))
    return hits / sum(len(w) for w in want)


@pytest.mark.parametrize("metric", METRICS)
def test_int8_recall_and_exact_scores_on_clustered_data(metric: str, scans: list[bool]) -> None:
    """Single int8 queries reach recall@10 >= 0.99 vs float32 exact and report exact scores."""
    rng = np.random.default_rng(3)
    data = gaussian_mixture(rng, 6000, DIM, 40)
    queries = gaussian_mixture(rng, 60, DIM, 40)
    exact, fast = pair(metric, data)
    want = [exact.query(q, top_k=10) for q in queries]
    got = [fast.query(q, top_k=10) for q in queries]
    assert recall_at_10(want, got) >= 0.99
    assert scans and all(scans), "the int8 kernel was not used"
    for query, result in zip(queries, got, strict=True):
        ref = brute_force(data, query, metric)
        scores = np.array([m["score"] for m in result])
        assert np.allclose(scores, ref[[int(m["id"]) for m in result]], rtol=1e-12, atol=1e-12)
        assert list(scores) == sorted(scores, reverse=metric != "euclidean")
    assert fast.stats()["scan"] == "int8 (simsimd)"
    assert fast.stats()["memory_bytes"] <= 1.3 * exact.stats()["memory_bytes"]


@pytest.mark.parametrize("flt", [{"bucket": 3}, {"bucket": {"$lt": 6}}])
def test_int8_filters_return_only_matching_rows(flt: dict[str, Any], scans: list[bool]) -> None:
    """Filtered int8 queries (selective and broad) return only matching rows, recall >= 0.99."""
    rng = np.random.default_rng(4)
    data = gaussian_mixture(rng, 5000, DIM, 30)
    metadata = [{"bucket": i % 10} for i in range(len(data))]
    exact, fast = pair("cosine", data, metadata)
    queries = gaussian_mixture(rng, 40, DIM, 30)
    want = [exact.query(q, top_k=10, filter=flt) for q in queries]
    got = [fast.query(q, top_k=10, filter=flt) for q in queries]
    wanted = {3} if flt == {"bucket": 3} else set(range(6))
    assert all(m["metadata"]["bucket"] in wanted for result in got for m in result)
    assert all(len(result) == 10 for result in got)
    assert recall_at_10(want, got) >= 0.99
    if flt == {"bucket": 3}:
        assert not scans  # selective: only the matching rows are scored, in float32
    else:
        assert scans and all(scans)  # broad: over-fetched from the int8 codes


def test_int8_codes_stay_in_sync_with_upserts_and_deletes() -> None:
    """After mixed upserts and deletes every row's code equals its freshly quantised row."""
    rng = np.random.default_rng(5)
    data = gaussian_mixture(rng, 3000, DIM, 20)
    index = NumpyVectorIndex(DIM, "dotproduct", storage_dtype="int8")
    index.upsert([str(i) for i in range(3000)], data)
    index.delete([str(i) for i in range(0, 3000, 3)])
    moved = rng.standard_normal((200, DIM)).astype(np.float32)
    moved_ids = [str(i) for i in range(1, 1200, 6)]
    index.upsert(moved_ids, moved)
    index.upsert([f"new-{i}" for i in range(50)], data[:50])
    matrix = index._matrix
    assert matrix is not None and matrix.codes is not None
    codes = matrix.codes
    assert not codes.stale and codes.scales is not None
    expected = np.clip(np.rint(matrix.data / codes.scales), -127, 127).astype(np.int8)
    assert np.array_equal(codes.codes[: matrix.size], expected)
    assert index.count() == 3000 - 1000 + 50
    for vector, item in zip(moved[:20], moved_ids[:20], strict=True):
        best = index.query(vector, top_k=1)[0]
        assert best["id"] == item
    assert all(int(m["id"]) % 3 != 0 for m in index.query(data[0], top_k=50)
               if not m["id"].startswith("new-"))


def test_int8_refits_when_values_outgrow_the_scales(scans: list[bool]) -> None:
    """Rows far beyond the fitted range mark the codes stale; the next query re-fits them."""
    rng = np.random.default_rng(6)
    small = gaussian_mixture(rng, 500, DIM, 10)
    large = gaussian_mixture(rng, 500, DIM, 10) * 4.0
    index = NumpyVectorIndex(DIM, "euclidean", storage_dtype="int8")
    index.upsert([f"s{i}" for i in range(500)], small)
    index.upsert([f"l{i}" for i in range(500)], large)
    matrix = index._matrix
    assert matrix is not None and matrix.codes is not None and matrix.codes.stale
    for i in (0, 99, 499):
        assert index.query(large[i], top_k=1)[0]["id"] == f"l{i}"
        assert index.query(small[i], top_k=1)[0]["id"] == f"s{i}"
    assert not matrix.codes.stale and all(scans)


@pytest.mark.parametrize("metric", ["dotproduct", "cosine"])
def test_int8_refits_dimensions_first_seen_as_zero(metric: str, scans: list[bool]) -> None:
    """A first row with zeros in most dimensions does not freeze those dimensions' scales."""
    rng = np.random.default_rng(10)
    one_hot = np.zeros((1, DIM), dtype=np.float32)
    one_hot[0, 0] = 1.0
    data = gaussian_mixture(rng, 3000, DIM, 10) * 0.05
    data[:, 0] = 0.0
    index = NumpyVectorIndex(DIM, metric, storage_dtype="int8")
    exact = NumpyVectorIndex(DIM, metric)
    for target in (index, exact):
        target.upsert(["first"], one_hot)
        target.upsert([str(i) for i in range(3000)], data)
    queries = gaussian_mixture(rng, 30, DIM, 10)
    want = [exact.query(q, top_k=10) for q in queries]
    got = [index.query(q, top_k=10) for q in queries]
    assert recall_at_10(want, got) >= 0.99
    assert scans and all(scans)


def test_int8_refits_when_rows_double(scans: list[bool]) -> None:
    """Scales fitted on a small unrepresentative first batch are re-fitted once rows double."""
    rng = np.random.default_rng(11)
    first = gaussian_mixture(rng, 10, DIM, 2) * 3.0
    data = gaussian_mixture(rng, 3000, DIM, 10)
    index = NumpyVectorIndex(DIM, "dotproduct", storage_dtype="int8")
    index.upsert([f"f{i}" for i in range(10)], first)
    index.upsert([str(i) for i in range(3000)], data)
    matrix = index._matrix
    assert matrix is not None and matrix.codes is not None
    assert matrix.codes.stale and matrix.codes.fitted_rows == 10
    index.query(data[0], top_k=10)
    assert not matrix.codes.stale and matrix.codes.fitted_rows == 3010
    assert matrix.codes.scales is not None
    peak = np.abs(np.concatenate([first, data])).max(axis=0)
    assert np.allclose(matrix.codes.scales * 127, peak * 1.25, rtol=1e-5)
    assert scans and all(scans)


@pytest.mark.usefixtures("no_simsimd")
def test_int8_falls_back_to_exact_float32_without_simsimd() -> None:
    """Without simsimd an int8 index keeps no codes and returns exactly the float32 top-k."""
    rng = np.random.default_rng(7)
    data = rng.standard_normal((2000, DIM)).astype(np.float32)
    index = NumpyVectorIndex(DIM, "cosine", storage_dtype="int8")
    ids = [str(i) for i in range(len(data))]
    index.upsert(ids, data)
    assert index.stats()["scan"] == "float32"
    assert index._matrix is not None and index._matrix.codes is None
    for query in rng.standard_normal((5, DIM)).astype(np.float32):
        assert_exact_top_k(index.query(query, top_k=10), ids,
                           brute_force(data, query, "cosine"), "cosine", 10)


def test_int8_batch_queries_are_exact() -> None:
    """Batch queries on an int8 index use the float32 matrix product: exactly the top-k."""
    rng = np.random.default_rng(8)
    data = rng.standard_normal((2000, DIM)).astype(np.float32)
    index = NumpyVectorIndex(DIM, "euclidean", storage_dtype="int8")
    ids = [str(i) for i in range(len(data))]
    index.upsert(ids, data)
    queries = rng.standard_normal((4, DIM)).astype(np.float32)
    for query, result in zip(queries, index.query_batch(queries, top_k=10), strict=True):
        assert_exact_top_k(result, ids, brute_force(data, query, "euclidean"), "euclidean", 10)


def test_int8_index_reloads_from_persistence(tmp_path: Path) -> None:
    """An int8 index built from the config reloads its rows and rebuilds codes after close."""
    config = VectorConfig.model_validate(
        {"backend": "numpy", "dimension": DIM, "metric": "cosine",
         "path": str(tmp_path / "vectors"), "storage_dtype": "int8"})
    index = NumpyVectorIndex.from_config(config)
    rng = np.random.default_rng(9)
    data = gaussian_mixture(rng, 800, DIM, 8)
    index.upsert([str(i) for i in range(800)], data)
    index.close()
    again = NumpyVectorIndex(DIM, "cosine", persistence=FileVectorPersistence(
        tmp_path / "vectors"), storage_dtype="int8")
    assert again.count() == 800 and again.stats()["scan"] == "int8 (simsimd)"
    assert again.query(data[123], top_k=1)[0]["id"] == "123"
    again.close()


def test_unknown_storage_dtype_is_rejected() -> None:
    """An unknown storage_dtype raises a validation error naming the argument."""
    with pytest.raises(MemoryValidationError, match="storage_dtype"):
        NumpyVectorIndex(DIM, "cosine", storage_dtype="int4")
