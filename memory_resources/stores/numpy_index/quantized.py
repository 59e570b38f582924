"""int8 scan codes for ``storage_dtype="int8"``: a quarter of the bytes per query scan.

The float32 matrix stays in memory (exact re-rank, ``get()``); beside it each row also has
an int8 code, row-aligned with :class:`~.matrix.VectorMatrix` (a delete moves the last
code into the hole, like the matrix). A single query scores every code with SimSIMD's int8
kernels (``simsimd.cdist``: exact integer dot products or squared distances, SIMD, on every
core), takes the best candidates with ``argpartition``, and re-ranks that pool exactly on the
float32 rows.

Quantisation, per metric (``q`` the query, ``s`` the scales):

* ``dotproduct``: ``code = round(x / s)`` with one scale per dimension; the scan computes
  ``code . round(q * s / t)``, proportional to ``x . q`` up to rounding.
* ``cosine``: the same on the unit-normalised row, so the scan ranks by cosine.
* ``euclidean``: one global scale (a per-dimension one would weight the distance), L2 on
  the codes; query components beyond the data's range are clipped.

Scales come from the data: the first write fits them (with 25 % headroom); later values
beyond them are clipped. The codes go stale when the row count doubles since the last fit
(so scales fitted on a small first batch follow the data; amortised O(1) per row) or when
a write has values beyond twice the fitted range: the next query then re-fits and
re-quantises every row once (≈ 0.3 s at 100k x 768).

Without SimSIMD (``kernel()`` is None) no codes are kept and the index scans float32.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Protocol, cast

import numpy as np

Array = np.ndarray[Any, Any]


class PairwiseDistances(Protocol):
    """The signature of ``simsimd.cdist`` used here."""

    def __call__(self, a: Array, b: Array, /, metric: str, *, out_dtype: str,
                 threads: int) -> Any: ...


@cache
def kernel() -> PairwiseDistances | None:
    """SimSIMD's ``cdist`` (int8 dot / squared L2 on every core), or None when absent."""
    try:
        from simsimd import cdist
    except ImportError:
        return None
    return cast(PairwiseDistances, cdist)


ALL_CORES = 0
"""``threads=0``: SimSIMD splits the scan over every core (the bare float32 matmul's BLAS
uses them all too)."""


LIMIT = 127.0
HEADROOM = 1.25
"""Scales are fitted at this multiple of the data's peak, so later rows rarely exceed them."""
MIN_SCALE = 1e-30
"""Scale of a dimension that is zero in every fitted row: any later non-zero value there
is beyond the range and triggers a re-fit (a scale of 1 would quantise it to 0 forever)."""
CLIP_FACTOR = 2.0
"""A later value up to this multiple of the fitted range is clipped; beyond it the codes
are re-fitted (once, before the next scan)."""


class Int8Codes:
    """int8 codes of a matrix's rows, their scales and the scan over them."""

    def __init__(self, dimension: int, metric: str) -> None:
        self.dimension = dimension
        self.metric = metric
        self.codes = np.empty((0, dimension), dtype=np.int8)
        self.scales: Array | None = None
        """Per dimension (``(d,)``), or one value (``(1,)``) for euclidean."""
        self.stale = False
        """Re-fit and re-quantise every row before the next scan."""
        self.fitted_rows = 0
        """Rows the scales were fitted on; at twice as many rows they are re-fitted."""

    def nbytes(self) -> int:
        """Bytes held by the codes."""
        return int(self.codes.nbytes)

    def reserve(self, capacity: int, size: int) -> None:
        """Grow the code buffer to ``capacity`` rows, keeping the first ``size``."""
        codes = np.empty((capacity, self.dimension), dtype=np.int8)
        codes[:size] = self.codes[:size]
        self.codes = codes

    def _prepared(self, vectors: Array, inv_norms: Array) -> Array:
        """Rows as scanned: unit-normalised for cosine, else as stored (float32)."""
        rows = np.asarray(vectors, dtype=np.float32)
        return rows * inv_norms[:, None] if self.metric == "cosine" else rows

    def _fit(self, prepared: Array) -> Array:
        peak = np.abs(prepared).max(axis=0) if prepared.size else np.zeros(self.dimension)
        if self.metric == "euclidean":
            peak = np.array([peak.max() if peak.size else 0.0])
        scales = (peak * HEADROOM / LIMIT).astype(np.float32)
        scales[scales <= 0] = MIN_SCALE
        return scales

    def _quantise(self, prepared: Array) -> Array:
        assert self.scales is not None
        with np.errstate(over="ignore"):  # beyond the range: clipped
            return np.clip(np.rint(prepared / self.scales), -LIMIT, LIMIT).astype(np.int8)

    def write(self, rows: Array, vectors: Array, inv_norms: Array, size: int) -> None:
        """Set the codes of ``rows`` (``size`` live rows before this write). The codes go
        stale (re-fit at the next scan) when the rows double since the last fit, or when a
        value lies beyond ``CLIP_FACTOR`` times the fitted range."""
        prepared = self._prepared(vectors, inv_norms)
        live = max(size, int(rows.max()) + 1) if rows.size else size
        if self.scales is None or size == 0:
            self.scales, self.stale, self.fitted_rows = self._fit(prepared), False, live
        elif live >= 2 * self.fitted_rows or (prepared.size and bool(
                (np.abs(prepared) > self.scales * LIMIT * CLIP_FACTOR).any())):
            self.stale = True
        if not self.stale:
            self.codes[rows] = self._quantise(prepared)

    def move(self, source: int, target: int) -> None:
        """Copy the code of row ``source`` to row ``target`` (delete by swap-with-last)."""
        self.codes[target] = self.codes[source]

    def rebuild(self, data: Array, inv_norms: Array) -> None:
        """Re-fit the scales on all live rows and re-quantise them."""
        prepared = self._prepared(data, inv_norms)
        self.scales = self._fit(prepared)
        self.codes[: data.shape[0]] = self._quantise(prepared)
        self.stale, self.fitted_rows = False, data.shape[0]

    def _query_code(self, query: Array) -> Array:
        assert self.scales is not None
        q = np.asarray(query, dtype=np.float32)
        if self.metric == "euclidean":
            return np.asarray(self._quantise(q))
        weighted = q * self.scales
        peak = float(np.abs(weighted).max())
        return np.rint(weighted * (LIMIT / peak)).astype(np.int8) if peak > 0 else (
            np.zeros(self.dimension, dtype=np.int8))

    def scan(self, query: Array, size: int, pool: int) -> Array | None:
        """Rows (int64) of the ``pool`` best codes among the first ``size`` for one query
        ``(d,)``, best first (a filtering caller keeps a prefix); None when the kernel is
        unavailable."""
        cdist = kernel()
        if cdist is None or self.scales is None or self.stale:
            return None
        pool = min(pool, size)
        if pool <= 0:
            return np.empty(0, dtype=np.int64)
        code = self._query_code(query)[None, :]
        if self.metric == "euclidean":  # squared distances up to ~5e7: float64 keeps them exact
            keys = np.asarray(cdist(code, self.codes[:size], "sqeuclidean",
                                    out_dtype="float64", threads=ALL_CORES)).reshape(-1)
        else:  # int8 dot products stay below 2**24: exact in float32
            keys = -np.asarray(cdist(code, self.codes[:size], "dot",
                                     out_dtype="float32", threads=ALL_CORES)).reshape(-1)
        best = np.argpartition(keys, pool - 1)[:pool]
        return best[np.argsort(keys[best], kind="stable")].astype(np.int64, copy=False)
