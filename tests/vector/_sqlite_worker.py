"""Worker for the two-process SQLite test: upserts ``BATCHES`` batches of ids ``PREFIX-i``.

Usage: python -m tests.vector._sqlite_worker DB PREFIX. Prints the count its own index
sees at the end (it includes the other process's rows once they are committed).
"""

from __future__ import annotations

import sys

import numpy as np

from memory_resources.stores.numpy_index import NumpyVectorIndex, SqliteVectorPersistence

BATCHES, ROWS, DIM = 20, 25, 16


def main(db: str, prefix: str) -> None:
    index = NumpyVectorIndex(DIM, "cosine", "shared", persistence=SqliteVectorPersistence(db))
    rng = np.random.default_rng(abs(hash(prefix)) % 2**32)
    for batch in range(BATCHES):
        ids = [f"{prefix}-{batch}-{i}" for i in range(ROWS)]
        index.upsert(ids, rng.standard_normal((ROWS, DIM)) + 0.1, [{"p": prefix}] * ROWS)
    print(index.count(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
