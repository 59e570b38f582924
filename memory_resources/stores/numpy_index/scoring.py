"""Scoring: one matrix product per query (or per batch), top-k selection, exact re-rank.

The scan computes a ranking key where higher is better, from one BLAS product:

* ``dotproduct``: ``x . q``
* ``cosine``: ``(x . q) / ||x||`` (the constant ``1/||q||`` does not change the order)
* ``euclidean``: ``2 x . q - ||x||^2`` (``||x - q||^2 = ||q||^2 - key``)

``argpartition`` then picks a candidate pool a little larger than ``top_k``; the pool is
re-scored exactly in float64 from the stored rows and sorted, so reported scores are exact
(no cancellation error in the euclidean expansion) and the order is exact for the pool.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]

CHUNK_ROWS = 256
"""Rows gathered (filtered queries) or converted (float16) at a time into a float32
buffer that stays in cache for its matrix-vector product."""
BATCH_CHUNK_ROWS = 4096
"""The same for a batch of queries: larger blocks keep the matrix-matrix product efficient."""


def dot_products(data: Array, queries: Array, rows: Array | None = None) -> Array:
    """Raw dot products as float32 of ``data`` (or only its ``rows``): ``(n,)`` for one
    query ``(d,)``, ``(b, n)`` for a batch ``(b, d)``. One BLAS call for all float32 rows;
    a row subset or float16 storage goes through a cache-sized float32 buffer in chunks."""
    if rows is None and data.dtype == np.float32:
        return np.asarray(data @ queries if queries.ndim == 1 else queries @ data.T)
    count = data.shape[0] if rows is None else rows.shape[0]
    step = CHUNK_ROWS if queries.ndim == 1 else BATCH_CHUNK_ROWS
    out = np.empty((*queries.shape[:-1], count), dtype=np.float32)
    chunk = np.empty((min(step, count), data.shape[1]), dtype=np.float32)
    for start in range(0, count, step):
        stop = min(start + step, count)
        block = chunk[: stop - start]
        if rows is None:
            block[...] = data[start:stop]
        elif data.dtype == np.float32:
            np.take(data, rows[start:stop], axis=0, out=block)
        else:
            block[...] = data[rows[start:stop]]
        out[..., start:stop] = block @ queries if queries.ndim == 1 else queries @ block.T
    return out


def ranking_keys(dots: Array, metric: str, inv_norms: Array, sq_norms: Array) -> Array:
    """Turn raw dot products (``(n,)`` or ``(b, n)``) into higher-is-better keys in place."""
    if metric == "cosine":
        dots *= inv_norms
    elif metric == "euclidean":
        dots *= 2.0
        dots -= sq_norms
    return dots


def top_candidates(keys: Array, pool: int) -> Array:
    """Indices of the ``pool`` largest keys along the last axis (unordered)."""
    rows = keys.shape[-1]
    if pool >= rows:
        return np.broadcast_to(np.arange(rows), keys.shape)
    return np.argpartition(keys, rows - pool, axis=-1)[..., rows - pool:]


def exact_scores(rows: Array, queries: Array, metric: str) -> Array:
    """Exact float64 scores of ``rows`` (``(b, m, d)``) against ``queries`` (``(b, d)``) in
    the metric's meaning: cosine similarity, euclidean distance or dot product."""
    x = rows.astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "euclidean":
        diff = x - q[:, None, :]
        return np.asarray(np.sqrt(np.einsum("bmd,bmd->bm", diff, diff)))
    dots = np.einsum("bmd,bd->bm", x, q)
    if metric == "cosine":
        norms = np.sqrt(np.einsum("bmd,bmd->bm", x, x)) * np.sqrt(np.einsum("bd,bd->b", q, q))[
            :, None
        ]
        return np.asarray(dots / norms)
    return np.asarray(dots)


RERANK_ELEMENTS = 1 << 22
"""Largest float64 block (queries x pool x dimension) re-ranked at once (32 MiB)."""


def rerank(
    buffer: Array, rows: Array, queries: Array, metric: str, top_k: int
) -> tuple[Array, Array]:
    """Exact scores of candidate ``rows`` (``(b, pool)`` indices into ``buffer``) for each
    query; returns the ``top_k`` best rows and scores per query, best first.

    Ties are broken by row index so results are deterministic."""
    batch, pool = rows.shape
    step = max(1, RERANK_ELEMENTS // max(1, pool * buffer.shape[1]))
    best_rows, best_scores = [], []
    for start in range(0, batch, step):
        block = rows[start : start + step]
        scores = exact_scores(buffer[block], queries[start : start + step], metric)
        order_key = scores if metric == "euclidean" else -scores
        order = np.lexsort((block, order_key), axis=-1)[:, :top_k]
        lines = np.arange(order.shape[0])[:, None]
        best_rows.append(block[lines, order])
        best_scores.append(scores[lines, order])
    return np.concatenate(best_rows), np.concatenate(best_scores)


def pool_size(top_k: int, rows: int, half_precision: bool) -> int:
    """Candidates re-ranked exactly: a margin over ``top_k`` (larger for float16)."""
    pool = top_k * 4 + 64 if half_precision else top_k + max(8, top_k // 4)
    return min(rows, pool)
