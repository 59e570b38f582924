"""The usearch HNSW graph of one namespace: creation, repair against the persistence store,
exact re-scoring of candidates, and filtered top-k.

Search candidates come from the graph; their scores are recomputed exactly in float64 from
the stored float32 vectors (same meaning as the numpy index: cosine similarity, euclidean
distance, dot product), so only the *membership* of the top k is approximate.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...errors import ConfigurationError
from ..numpy_index.scoring import exact_scores, pool_size
from .keys import KeyTable

Array = np.ndarray[Any, Any]
METRICS = {"cosine": "cos", "euclidean": "l2sq", "dotproduct": "ip"}
"""usearch metric of each configured metric."""
EXACT_ROWS = 2048
"""A filter matching at most this many vectors is answered by an exact scan of them."""
EXACT_FRACTION = 0.02
"""... as is one matching at most this share of the vectors."""
GET_CHUNK = 65536
"""Keys fetched from the graph at once when comparing stored vectors."""
AUTO_EXPANSION = 128
"""``expansion_search`` of an index of up to :data:`AUTO_EXPANSION_ROWS` vectors ..."""
AUTO_EXPANSION_ROWS = 125_000
"""... doubled for each 4x more vectors (recall@10 0.998 / 0.989 / 0.981 measured at
100k / 500k / 1M, benchmarks/results/usearch.md)."""
MAX_EXPANSION = 4096


def auto_expansion(size: int) -> int:
    """The ``expansion_search`` used when none is configured, for ``size`` vectors: 128 up
    to 125k, 256 up to 500k, 512 up to 2M, ... at most 4096 (HNSW needs a longer candidate
    list for the same recall as the graph grows)."""
    expansion, rows = AUTO_EXPANSION, AUTO_EXPANSION_ROWS
    while size > rows and expansion < MAX_EXPANSION:
        expansion, rows = expansion * 2, rows * 4
    return expansion


def usearch_index_class() -> Any:
    """``usearch.index.Index``, or ConfigurationError naming the extra to install."""
    try:
        from usearch.index import Index
    except ImportError as exc:
        raise ConfigurationError(
            "vector_config['backend']: 'usearch' needs the usearch package; install it with "
            "pip install 'memory-resources[usearch]' (or use backend 'numpy')"
        ) from exc
    return Index


def new_graph(dimension: int, metric: str, connectivity: int, expansion_add: int,
              expansion_search: int) -> Any:
    """An empty float32 graph."""
    index_class = usearch_index_class()
    return index_class(
        ndim=dimension, metric=METRICS[metric], dtype="f32", connectivity=connectivity,
        expansion_add=expansion_add, expansion_search=expansion_search,
    )


def stored_vectors(graph: Any, keys: Array) -> Array:
    """The float32 vectors stored under ``keys`` (all present), ``(len(keys), d)``."""
    out = np.empty((keys.shape[0], graph.ndim), dtype=np.float32)
    for start in range(0, keys.shape[0], GET_CHUNK):
        chunk = keys[start : start + GET_CHUNK].astype(np.uint64)
        got = graph.get(chunk)
        out[start : start + chunk.shape[0]] = np.stack(got) if chunk.shape[0] else out[:0]
    return out


def repair(graph: Any, known: dict[str, int], ids: list[str], vectors: Array) -> tuple[
    Array, int
]:
    """Make ``graph`` hold exactly ``vectors[i]`` under one key per ``ids[i]``.

    ``known`` maps ids to the keys the graph (saved or in memory) used for them. Keys whose
    vector equals the persisted one are kept; every other graph key is removed; the rest of
    the rows are added under free keys. Returns the key of each row and the number of graph
    entries changed (0: the graph already matched)."""
    count = len(ids)
    row_keys = np.fromiter((known.get(item, -1) for item in ids), dtype=np.int64, count=count)
    candidate = np.flatnonzero(row_keys >= 0)
    if candidate.size:
        present = np.asarray(graph.contains(row_keys[candidate].astype(np.uint64)), dtype=bool)
        candidate = candidate[present]
    # a key claimed by two rows (a damaged map) is kept for the first one only
    _, first = np.unique(row_keys[candidate], return_index=True)
    candidate = np.sort(candidate[first])
    if candidate.size:
        same = np.all(stored_vectors(graph, row_keys[candidate]) == vectors[candidate], axis=1)
        candidate = candidate[same]
    keep = row_keys[candidate]
    graph_keys = np.asarray(graph.keys, dtype=np.uint64)
    drop = graph_keys[~np.isin(graph_keys, keep.astype(np.uint64))]
    if drop.size:
        graph.remove(drop)
    need = np.ones(count, dtype=bool)
    need[candidate] = False
    missing = np.flatnonzero(need)
    if missing.size:
        free = np.setdiff1d(np.arange(count, dtype=np.int64), keep)[: missing.size]
        row_keys[missing] = free
        graph.add(free.astype(np.uint64), np.ascontiguousarray(vectors[missing]))
    return row_keys, int(drop.size + missing.size)


def best(graph: Any, metric: str, keys: Array, query: Array, top_k: int) -> list[
    tuple[int, float]
]:
    """The ``top_k`` of candidate ``keys`` by exact score, best first (ties: lower key)."""
    if keys.size == 0:
        return []
    vectors = stored_vectors(graph, keys)
    scores = exact_scores(vectors[None, :, :], query[None, :], metric)[0]
    order = np.lexsort((keys, scores if metric == "euclidean" else -scores))[:top_k]
    return [(int(keys[i]), float(scores[i])) for i in order]


def _candidates(matches: Any, row: int | None = None) -> Array:
    if row is None:  # Matches of one query: already cut to the keys found
        return np.asarray(matches.keys, dtype=np.int64)
    count = int(matches.counts[row])
    return np.asarray(matches.keys[row][:count], dtype=np.int64)


def search(graph: Any, table: KeyTable, metric: str, queries: Array, top_k: int) -> list[
    list[tuple[int, float]]
]:
    """Unfiltered top-k of each query row: HNSW candidates, re-scored exactly. Should the
    graph return fewer than ``top_k`` candidates (it never did in the tests; removed
    entries could cut a search short), the live keys are scanned exactly instead."""
    pool = pool_size(top_k, table.size, False)
    wanted = min(top_k, table.size)
    if queries.shape[0] == 1:
        candidates = [_candidates(graph.search(queries[0], pool))]
    else:
        found = graph.search(queries, pool)
        candidates = [_candidates(found, j) for j in range(queries.shape[0])]
    return [best(graph, metric, keys if keys.size >= wanted else np.flatnonzero(table.live),
                 query, top_k) for keys, query in zip(candidates, queries, strict=True)]


def filtered_search(
    graph: Any, table: KeyTable, metric: str, query: Array, top_k: int, mask: Array
) -> list[tuple[int, float]]:
    """Top-k among the keys of ``mask`` (full: k results whenever k keys match).

    A selective filter (at most :data:`EXACT_ROWS` matches, or :data:`EXACT_FRACTION` of
    the vectors) is scanned exactly. Otherwise the graph is asked for ``2 / share`` times
    the pool, the matches kept, and the request widened 4x until ``top_k`` of them are
    found; past an eighth of the index the matching subset is scanned exactly instead."""
    matching = np.flatnonzero(mask)
    eligible, total = int(matching.size), table.size
    if eligible == 0:
        return []
    if eligible <= max(EXACT_ROWS, total * EXACT_FRACTION) or eligible <= top_k:
        return best(graph, metric, matching, query, top_k)
    pool = pool_size(top_k, eligible, False)
    fetch = min(total, math.ceil(2 * pool * total / eligible))
    while True:
        keys = _candidates(graph.search(query, fetch))
        keys = keys[mask[keys]]
        if keys.size >= top_k:
            return best(graph, metric, keys, query, top_k)
        fetch *= 4
        if fetch > total // 8:
            return best(graph, metric, matching, query, top_k)
