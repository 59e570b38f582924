"""Thread safety of the numpy index: concurrent writers and readers stay consistent."""

from __future__ import annotations

import functools

import numpy as np

from memory_resources.stores.numpy_index import NumpyVectorIndex
from tests.concurrency import run_in_threads


def test_concurrent_upserts_deletes_and_queries_stay_consistent() -> None:
    """Writers and readers on several threads lose no write and never see a torn row."""
    index = NumpyVectorIndex(8, "euclidean")

    def writer(worker: int) -> None:
        for step in range(60):
            ids = [f"w{worker}-{step}-{i}" for i in range(5)]
            # each vector is constant, so a torn row would show mixed values
            vectors = np.repeat(np.arange(5, dtype=np.float32)[:, None] + worker, 8, axis=1)
            index.upsert(ids, vectors, [{"w": worker}] * 5)
            index.delete([ids[0]])

    def reader() -> None:
        for _ in range(80):
            for match in index.query(np.full(8, 2.0, dtype=np.float32), top_k=20):
                vector, _ = index.get(match["id"]) or (np.zeros(8), {})
                assert np.all(vector == vector[0])

    errors = run_in_threads(*(functools.partial(writer, w) for w in range(4)), reader, reader)
    assert not errors, errors
    assert index.count() == 4 * 60 * 4
