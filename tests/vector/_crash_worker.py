"""Worker for the SIGKILL test: writes batches to a file-persisted index forever.

Usage: python -m tests.vector._crash_worker DIR [usearch]. Batch ``i`` upserts ``ROWS`` new ids
``b{i}_{j}`` with vectors from ``expected_batch(i)`` and deletes the even ids of batch
``i - 2``; after each committed batch it prints ``i`` and flushes. With ``usearch`` the
index is the usearch HNSW one, its graph saved in DIR after every even batch (so a kill
may land in a graph save as well as in a log append or a compaction, and the graph on
disk may lag the store by a batch or two).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from memory_resources.stores.numpy_index import FileVectorPersistence, NumpyVectorIndex
from memory_resources.stores.usearch_index import UsearchVectorIndex

ROWS = 400
DIM = 64
COMPACT_BYTES = 600_000


def expected_batch(i: int) -> tuple[list[str], np.ndarray, list[str]]:
    """(ids, vectors, deleted ids) of batch ``i``."""
    ids = [f"b{i}_{j}" for j in range(ROWS)]
    vectors = np.random.default_rng(i).standard_normal((ROWS, DIM)).astype(np.float32)
    deleted = [f"b{i - 2}_{j}" for j in range(0, ROWS, 2)] if i >= 2 else []
    return ids, vectors, deleted


def expected_state(batches: int) -> dict[str, np.ndarray]:
    """The id -> vector state after ``batches`` committed batches."""
    state: dict[str, np.ndarray] = {}
    for i in range(batches):
        ids, vectors, deleted = expected_batch(i)
        state.update(zip(ids, vectors, strict=True))
        for item in deleted:
            state.pop(item, None)
    return state


def open_index(directory: str, backend: str, compact_min_bytes: int = COMPACT_BYTES) -> Any:
    """The crash test's index over ``directory``: numpy, or usearch with its graph there."""
    persistence = FileVectorPersistence(directory, compact_min_bytes=compact_min_bytes)
    if backend == "usearch":
        return UsearchVectorIndex(DIM, "euclidean", "crash", persistence=persistence,
                                  graph_directory=directory)
    return NumpyVectorIndex(DIM, "euclidean", "crash", persistence=persistence)


def main(directory: str, backend: str) -> None:
    index = open_index(directory, backend)
    i = 0
    while True:
        ids, vectors, deleted = expected_batch(i)
        index.upsert(ids, vectors, [{"batch": i}] * ROWS)
        if deleted:
            index.delete(deleted)
        if backend == "usearch" and i % 2 == 0:
            index.save()
        print(i, flush=True)
        i += 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "numpy")
