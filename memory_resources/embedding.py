"""Validation and conversion of embeddings, ids and ``top_k`` for every vector backend.

Every function raises :class:`~memory_resources.errors.EmbeddingValidationError` (a
:class:`~memory_resources.errors.MemoryValidationError`) naming the argument and the problem,
e.g. ``embedding: expected dimension 768, got 3``, before anything is written.
Vectors come back as C-contiguous ``float32`` arrays: shape ``(dimension,)`` for one
embedding, ``(n, dimension)`` for a batch.

Rules: the values must be real numbers (bools, strings, complex numbers and objects are
refused), finite after conversion to float32 (so ``1e39`` is refused as well as NaN/inf),
of the configured dimension, and under ``cosine`` not the zero vector (it has no direction).
This module imports neither Prefect nor any index, so every backend shares it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import EmbeddingValidationError, MemoryValidationError
from .validation import require_id

METRICS: tuple[str, ...] = ("cosine", "euclidean", "dotproduct")
"""The metric names of the spec (``dotproduct``, not ``dot``)."""

MAX_TOP_K = 10_000
"""Largest ``top_k`` a query accepts."""

Float32Vector = np.ndarray[Any, np.dtype[np.float32]]
FLOAT32_MAX = float(np.finfo(np.float32).max)


def require_metric(value: Any, field: str = "metric") -> str:
    """One of :data:`METRICS`."""
    if value not in METRICS:
        raise MemoryValidationError(
            field, f"must be one of {', '.join(METRICS)}, got {value!r}"
        )
    return str(value)


def require_dimension(value: Any, field: str = "dimension") -> int:
    """A whole number of dimensions between 1 and 16000."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise MemoryValidationError(field, f"must be an integer, got {value!r}")
    if not 1 <= int(value) <= 16000:
        raise MemoryValidationError(field, f"must be between 1 and 16000, got {value}")
    return int(value)


def require_top_k(value: Any, field: str = "top_k") -> int:
    """A whole number between 1 and :data:`MAX_TOP_K`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise MemoryValidationError(field, f"must be an integer >= 1, got {value!r}")
    if value <= 0:
        raise MemoryValidationError(field, f"must be >= 1, got {value}")
    if value > MAX_TOP_K:
        raise MemoryValidationError(field, f"must be <= {MAX_TOP_K}, got {value}")
    return int(value)


def _to_float_array(value: Any, field: str) -> np.ndarray[Any, Any]:
    """``value`` as a float64 array, refusing anything that is not a real number."""
    if isinstance(value, (str, bytes, dict)) or value is None:
        raise EmbeddingValidationError(
            field, f"must be a list or array of numbers, got {type(value).__name__}"
        )
    if isinstance(value, np.ndarray):
        array = value
    else:
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as exc:  # ragged nesting
            raise EmbeddingValidationError(
                field, f"is not a regular array of numbers ({exc})"
            ) from None
    kind = array.dtype.kind
    if kind == "b":
        raise EmbeddingValidationError(field, "must contain numbers, got booleans")
    if kind == "c":
        raise EmbeddingValidationError(field, "must contain real numbers, got complex values")
    if kind not in "iuf":
        bad = _first_non_number(array)
        raise EmbeddingValidationError(
            field, f"must contain only numbers, found {bad!r}" if bad is not None
            else f"must contain only numbers, got dtype {array.dtype}"
        )
    return array


def _first_non_number(array: np.ndarray[Any, Any]) -> Any:
    for item in array.reshape(-1).tolist() if array.dtype.kind == "O" else array.reshape(-1):
        if isinstance(item, bool) or not isinstance(item, (int, float, np.number)):
            return item
    return None


def _check_values(
    array: np.ndarray[Any, Any], dimension: int, metric: str | None, field: str
) -> Float32Vector:
    """Shape-checked ``(n, d)`` input -> float32, checking finiteness and zero norms."""
    if array.shape[-1] != dimension:
        raise EmbeddingValidationError(
            field, f"expected dimension {dimension}, got {array.shape[-1]}"
        )
    if array.dtype.kind == "f" and array.dtype.itemsize > 4:
        # NaN, inf and values beyond float32 all fail this one comparison
        finite = np.abs(array) <= FLOAT32_MAX
    else:
        finite = np.isfinite(array)
    if not finite.all():
        position = np.argwhere(~finite)[0]
        where = f"row {position[0]}, " if array.ndim == 2 else ""
        index = int(position[-1])
        original = array[tuple(position)]
        problem = "NaN" if np.isnan(original) else (
            "an infinite value" if np.isinf(original)
            else f"{original!r}, which overflows float32"
        )
        raise EmbeddingValidationError(field, f"{where}index {index} is {problem}",
                                       hint="embeddings must be finite numbers")
    converted = np.ascontiguousarray(array, dtype=np.float32)
    if metric == "cosine":
        wide = converted.astype(np.float64)  # no underflow of tiny components
        squares = np.einsum("...i,...i->...", wide, wide)
        zero = np.flatnonzero(np.atleast_1d(squares) == 0.0)
        if zero.size:
            where = f"row {int(zero[0])} " if converted.ndim == 2 else ""
            raise EmbeddingValidationError(
                field, f"{where}is the zero vector, which has no direction under cosine",
                hint="use a non-zero embedding or the euclidean/dotproduct metric",
            )
    return converted


def as_vector(
    value: npt.ArrayLike, dimension: int, metric: str | None = None, *,
    field: str = "embedding",
) -> Float32Vector:
    """One embedding as a ``(dimension,)`` float32 array (a ``(1, d)`` array is accepted)."""
    array = _to_float_array(value, field)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1:
        raise EmbeddingValidationError(
            field, f"must be one vector (1-D), got an array of shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise EmbeddingValidationError(field, "must not be empty")
    return _check_values(array, dimension, metric, field)


def as_matrix(
    value: npt.ArrayLike, dimension: int, metric: str | None = None, *,
    field: str = "vectors", allow_empty: bool = False,
) -> Float32Vector:
    """A batch of embeddings as an ``(n, dimension)`` float32 array; one 1-D vector counts
    as a batch of one."""
    if isinstance(value, (list, tuple)):
        _check_rows(value, dimension, field)
    array = _to_float_array(value, field)
    if array.ndim == 1 and array.shape[0] != 0:
        array = array.reshape(1, -1)
    if array.ndim == 1 or (array.ndim == 2 and array.shape[0] == 0):
        if allow_empty:
            return np.empty((0, dimension), dtype=np.float32)
        raise EmbeddingValidationError(field, "must not be empty")
    if array.ndim != 2:
        raise EmbeddingValidationError(
            field, f"must be a 2-D batch (n, {dimension}), got shape {array.shape}"
        )
    return _check_values(array, dimension, metric, field)


def upsert_batch(
    ids: Any, vectors: npt.ArrayLike, dimension: int, metric: str | None = None
) -> tuple[list[str], Float32Vector]:
    """The ids and the ``(n, dimension)`` matrix of an upsert, checked: one vector per id
    (no ids and no vectors is an empty batch)."""
    id_list = require_ids(ids)
    matrix = as_matrix(vectors, dimension, metric, field="vectors", allow_empty=not id_list)
    if matrix.shape[0] != len(id_list):
        raise EmbeddingValidationError(
            "vectors", f"got {matrix.shape[0]} vectors for {len(id_list)} ids"
        )
    return id_list, matrix


def _check_rows(rows: Sequence[Any], dimension: int, field: str) -> None:
    """Name the first row of a list batch that is not a vector of ``dimension`` numbers."""
    if not rows or not any(isinstance(row, (list, tuple, np.ndarray)) for row in rows):
        return  # a single flat vector (or empty): checked as an array
    for index, row in enumerate(rows):
        if isinstance(row, (str, bytes)) or not isinstance(row, (Sequence, np.ndarray)):
            raise EmbeddingValidationError(
                field, f"row {index} must be a list of numbers, got {type(row).__name__}"
            )
        if len(row) != dimension:
            raise EmbeddingValidationError(
                field, f"row {index}: expected dimension {dimension}, got {len(row)}"
            )


def require_ids(value: Any, field: str = "ids", *, unique: bool = True) -> list[str]:
    """A sequence of ids (each checked by :func:`~memory_resources.validation.require_id`),
    without duplicates when ``unique``. Quotes, spaces and unicode are fine."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise MemoryValidationError(
            field, f"must be a list of string ids, got {type(value).__name__}"
        )
    ids = [require_id(item, f"{field}[{index}]") for index, item in enumerate(value)]
    if unique and len(set(ids)) != len(ids):
        seen: set[str] = set()
        for item in ids:
            if item in seen:
                raise MemoryValidationError(field, f"duplicate id {item!r} in one batch")
            seen.add(item)
    return ids


__all__ = [
    "MAX_TOP_K",
    "METRICS",
    "Float32Vector",
    "as_matrix",
    "as_vector",
    "require_dimension",
    "require_ids",
    "require_metric",
    "require_top_k",
]
