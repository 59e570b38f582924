"""Memory use of the numpy index stays within 1.2x of the raw float32 matrix (not timing)."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

from memory_resources.stores.numpy_index import NumpyVectorIndex

ROWS, DIM = 10_000, 768


def traced_index_bytes(batch: int, storage_dtype: str = "float32") -> tuple[int, int]:
    """(bytes the index holds per tracemalloc, its capacity) after loading ROWS vectors
    with metadata in batches of ``batch``; the inputs are freed before measuring."""
    rng = np.random.default_rng(0)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        index = NumpyVectorIndex(DIM, "cosine", storage_dtype=storage_dtype)
        for start in range(0, ROWS, batch):
            stop = min(ROWS, start + batch)
            vectors = rng.standard_normal((stop - start, DIM), dtype=np.float32)
            index.upsert([f"doc-{i}" for i in range(start, stop)], vectors,
                         [{"type": "document", "n": i} for i in range(start, stop)])
            del vectors
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert index.count() == ROWS
    return used, int(index.stats()["capacity"])


@pytest.mark.parametrize("batch", [ROWS, 1000])
def test_memory_within_1_2x_of_raw_matrix(batch: int) -> None:
    """Vectors, norms, ids, metadata and filter columns take <= 1.2x the raw matrix bytes,
    for one bulk load and for incremental growth."""
    used, capacity = traced_index_bytes(batch)
    raw = ROWS * DIM * 4
    assert used / raw <= 1.2, f"{used / raw:.3f}x of raw (capacity {capacity})"
    assert capacity <= 1.13 * ROWS


def test_float16_storage_halves_memory() -> None:
    """float16 storage takes at most ~0.6x the raw float32 matrix bytes."""
    used, _ = traced_index_bytes(ROWS, "float16")
    assert used / (ROWS * DIM * 4) <= 0.62
