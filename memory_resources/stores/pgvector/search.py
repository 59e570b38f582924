"""Nearest-neighbour search of the pgvector backend (inside the caller's transaction).

Per transaction: ``hnsw.ef_search`` (at least ``top_k``, or the number of candidates to
re-rank with binary quantization), and on pgvector >= 0.8 an
iterative index scan in ``relaxed_order`` bounded by ``hnsw.max_scan_tuples``; on older
versions filtered queries over-fetch by raising ``ef_search``. When the index returns fewer
than ``top_k`` rows the query is re-run as an exact scan, so a short result means fewer
rows match.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg2 import sql

from ...decoding import build_records
from ...errors import MemoryValidationError
from ...records import VectorMatch
from ..postgres.pool import Cursor
from .naming import METRICS
from .setup import MAX_EF_SEARCH, ServerInfo
from .statements import Statements

DEFAULT_MAX_SCAN_TUPLES = 20_000
"""``hnsw.max_scan_tuples``: how far an iterative scan may go before the exact fallback."""
OVERFETCH = 10
"""pgvector < 0.8: filtered queries raise ``ef_search`` to ``top_k * OVERFETCH`` (max 1000)."""


def tune(info: ServerInfo, *, ef_search: int, top_k: int, filtered: bool,
         max_scan_tuples: int) -> tuple[sql.Composable, list[Any]]:
    """The statement that ``SET LOCAL``s the HNSW search parameters for this transaction,
    and its parameters (sent in the same round trip as the first search). ``top_k`` is
    the number of rows the index scan must yield (with binary quantization: the
    candidates to re-rank)."""
    ef = max(ef_search, min(top_k, MAX_EF_SEARCH))
    if info.iterative_scan:
        return sql.SQL(
            "SELECT set_config('hnsw.ef_search', %s, true), "
            "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
            "set_config('hnsw.max_scan_tuples', %s, true)"
        ), [str(ef), str(max_scan_tuples)]
    if filtered:
        ef = max(ef, min(top_k * OVERFETCH, MAX_EF_SEARCH))
    return sql.SQL("SELECT set_config('hnsw.ef_search', %s, true)"), [str(ef)]


def check_filter_keys(cur: Cursor, statements: Statements, keys: list[str]) -> None:
    """MemoryValidationError naming ``filter[key]`` for a key no stored row carries (a typo
    must not silently match nothing, or everything under ``$ne``); none on an empty table."""
    cur.execute(statements.missing_keys(), (keys,))
    missing = [row[0] for row in cur.fetchall()]
    if missing:
        raise MemoryValidationError(
            f"filter[{missing[0]!r}]",
            "no stored vector in this namespace has this metadata key",
            hint="check the key's spelling",
        )


def nearest(cur: Cursor, statements: Statements, *, metric: str, where: sql.Composable | None,
            filter_params: Sequence[Any], literals: Sequence[str], top_k: int,
            indexed: bool, setup: tuple[sql.Composable, list[Any]] | None = None,
            rerank_candidates: int | None = None) -> list[list[VectorMatch]]:
    """The ``top_k`` best matches of each query literal, best first. ``setup`` (e.g.
    :func:`tune`'s statement) is sent in the same round trip as the first search.
    ``rerank_candidates`` (binary quantization, ``indexed`` only): how many hamming
    candidates the exact distance re-ranks."""
    score = METRICS[metric].score
    binary = indexed and rerank_candidates is not None
    if binary:
        approximate = statements.search_binary(metric, where)
    else:
        approximate = statements.search(metric, where, exact=not indexed)
    exact = statements.search(metric, where, exact=True)
    results: list[list[VectorMatch]] = []
    for position, literal in enumerate(literals):
        params = statements.search_params(literal, filter_params, top_k)
        first = (statements.search_binary_params(literal, filter_params, top_k,
                                                 rerank_candidates or top_k)
                 if binary else params)
        if position == 0 and setup is not None:
            cur.execute(sql.Composed([setup[0], sql.SQL("; "), approximate]),
                        [*setup[1], *first])
        else:
            cur.execute(approximate, first)
        rows = cur.fetchall()
        if len(rows) < top_k and indexed:
            cur.execute(exact, params)
            rows = cur.fetchall()
        results.append(build_records(
            rows, lambda row: VectorMatch(id=row[0], score=score(float(row[2])),
                                          metadata=dict(row[1])),
            backend="pgvector", table="embeddings", key=lambda row: str(row[0]),
            columns={"metadata": 1}))
    return results
