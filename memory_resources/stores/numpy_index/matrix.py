"""The in-memory storage of one namespace: a contiguous matrix plus row bookkeeping.

Rows ``0 .. size-1`` of :attr:`VectorMatrix.buffer` are live. Growth is amortised
(doubling while small, then +12.5 %, so memory stays close to the raw matrix); a delete
moves the last row into the hole (O(1)); an upsert of a known id overwrites its row.
Per row it keeps the inverse L2 norm (cosine) and the squared norm (euclidean) of the
*stored* values, each row's metadata as its codec JSON text (compact; decoded on read) and
row-aligned metadata columns for filters. With ``codes`` (``storage_dtype="int8"``) it also
keeps each row's int8 scan code (:mod:`.quantized`), moved and grown with the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...records import JSONDict
from ...vector_filter import MetadataColumns
from .quantized import Int8Codes

SMALL_CAPACITY = 4096
"""Below this many rows capacity doubles; above it grows by 1/8."""


def next_capacity(current: int, needed: int) -> int:
    """Capacity to allocate for ``needed`` rows, given ``current``."""
    if needed <= current:
        return current
    step = current if current < SMALL_CAPACITY else current // 8
    return max(needed, current + max(step, 16))


class VectorMatrix:
    """Vectors, ids and metadata of one namespace, row-aligned."""

    def __init__(
        self,
        dimension: int,
        dtype: type[np.floating[Any]] = np.float32,
        codes: Int8Codes | None = None,
    ) -> None:
        self.dimension = dimension
        self.codes = codes
        self.dtype = np.dtype(dtype)
        self.size = 0
        self.buffer: np.ndarray[Any, Any] = np.empty((0, dimension), dtype=self.dtype)
        self.inv_norms = np.empty(0, dtype=np.float32)
        self.sq_norms = np.empty(0, dtype=np.float32)
        self.ids: list[str] = []
        self.rows: dict[str, int] = {}
        self.metadata: list[str] = []
        """Codec JSON text of each row's metadata."""
        self.columns = MetadataColumns()

    @property
    def capacity(self) -> int:
        """Rows allocated."""
        return int(self.buffer.shape[0])

    @property
    def data(self) -> np.ndarray[Any, Any]:
        """The live rows (a view)."""
        return self.buffer[: self.size]

    def nbytes(self) -> int:
        """Bytes held by the arrays (allocated capacity)."""
        codes = self.codes.nbytes() if self.codes is not None else 0
        return int(self.buffer.nbytes + self.inv_norms.nbytes + self.sq_norms.nbytes + codes)

    def _reserve(self, needed: int) -> None:
        capacity = next_capacity(self.capacity, needed)
        if capacity == self.capacity:
            return
        buffer = np.empty((capacity, self.dimension), dtype=self.dtype)
        buffer[: self.size] = self.buffer[: self.size]
        inv = np.zeros(capacity, dtype=np.float32)
        inv[: self.size] = self.inv_norms[: self.size]
        sq = np.zeros(capacity, dtype=np.float32)
        sq[: self.size] = self.sq_norms[: self.size]
        self.buffer, self.inv_norms, self.sq_norms = buffer, inv, sq
        if self.codes is not None:
            self.codes.reserve(capacity, self.size)
        self.columns.reserve(capacity, self.size)

    def _write_rows(self, rows: np.ndarray[Any, Any], vectors: np.ndarray[Any, Any]) -> None:
        self.buffer[rows] = vectors
        stored = self.buffer[rows].astype(np.float64)
        sq = np.einsum("ij,ij->i", stored, stored)
        norms = np.sqrt(sq)
        with np.errstate(divide="ignore"):
            inv = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
        self.sq_norms[rows] = sq
        self.inv_norms[rows] = inv
        if self.codes is not None:
            self.codes.write(rows, self.buffer[rows], self.inv_norms[rows], self.size)

    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray[Any, Any],
        metadata: Sequence[str],
        decoded: Sequence[JSONDict],
    ) -> None:
        """Insert or replace rows by id (inputs already validated, ids unique); ``metadata``
        is the JSON text of each row's metadata and ``decoded`` its parsed form."""
        existing = [i for i, item in enumerate(ids) if item in self.rows]
        fresh = [i for i, item in enumerate(ids) if item not in self.rows]
        if existing:
            rows = np.array([self.rows[ids[i]] for i in existing], dtype=np.int64)
            self._write_rows(rows, vectors[existing])
            for i, row in zip(existing, rows.tolist(), strict=True):
                self.metadata[row] = metadata[i]
                self.columns.set_row(row, decoded[i])
        if fresh:
            start = self.size
            self._reserve(start + len(fresh))
            rows = np.arange(start, start + len(fresh), dtype=np.int64)
            if len(fresh) == len(ids):
                self._write_rows(rows, vectors)
            else:
                self._write_rows(rows, vectors[fresh])
            for offset, i in enumerate(fresh):
                row = start + offset
                self.rows[ids[i]] = row
                self.ids.append(ids[i])
                self.metadata.append(metadata[i])
                self.columns.set_row(row, decoded[i], fresh=True)
            self.size = start + len(fresh)

    def scan_codes(self, query: np.ndarray[Any, Any], pool: int) -> np.ndarray[Any, Any] | None:
        """Candidate rows of one query from the int8 codes (re-fitted first when stale), or
        None without codes or scan kernel."""
        if self.codes is None:
            return None
        if self.codes.stale:
            self.codes.rebuild(self.data, self.inv_norms[: self.size])
        return self.codes.scan(query, self.size, pool)

    def delete(self, ids: Sequence[str]) -> int:
        """Remove rows by id, moving the last row into each hole; returns rows removed."""
        removed = 0
        for item in ids:
            row = self.rows.pop(item, None)
            if row is None:
                continue
            removed += 1
            last = self.size - 1
            self.columns.clear_row(row)
            if row != last:
                moved = self.ids[last]
                self.buffer[row] = self.buffer[last]
                self.inv_norms[row] = self.inv_norms[last]
                self.sq_norms[row] = self.sq_norms[last]
                if self.codes is not None:
                    self.codes.move(last, row)
                self.ids[row] = moved
                self.metadata[row] = self.metadata[last]
                self.rows[moved] = row
                self.columns.move_row(last, row)
            self.ids.pop()
            self.metadata.pop()
            self.size = last
        return removed
