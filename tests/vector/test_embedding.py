"""embedding.py: conversion of embeddings to float32 and the errors naming the argument."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from memory_resources.embedding import (
    as_matrix,
    as_vector,
    require_dimension,
    require_ids,
    require_metric,
    require_top_k,
)
from memory_resources.errors import EmbeddingValidationError, MemoryValidationError


def test_as_vector_converts_lists_and_arrays_to_float32() -> None:
    """Lists of ints/floats and float64 arrays become contiguous float32 vectors."""
    for value in ([1, 2, 3], [1.5, 2.0, -3.25], np.arange(3, dtype=np.float64), (0, 0, 1)):
        vector = as_vector(value, 3)
        assert vector.dtype == np.float32 and vector.shape == (3,)
        assert vector.flags["C_CONTIGUOUS"]
    assert as_vector([[1, 2, 3]], 3).shape == (3,)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([0.1, 0.2, 0.3], "embedding: expected dimension 768, got 3"),
        ([float("nan")] * 768, "embedding: index 0 is NaN"),
        ([1.0] * 767 + [float("-inf")], "embedding: index 767 is an infinite value"),
        ([1e39] * 768, "overflows float32"),
        ([0.0] * 768, "zero vector"),
        (["x"] * 768, "must contain only numbers"),
        ([True] * 768, "booleans"),
        ([1j] * 768, "complex"),
        ([], "must not be empty"),
        ("0.1,0.2", "got str"),
        (None, "got NoneType"),
        ([[1.0] * 768] * 2, "shape (2, 768)"),
        ([[1.0], [1.0, 2.0]], "embedding"),
    ],
)
def test_bad_embeddings_name_the_argument(value: Any, message: str) -> None:
    """Each kind of bad embedding raises EmbeddingValidationError naming ``embedding``."""
    with pytest.raises(EmbeddingValidationError) as info:
        as_vector(value, 768, "cosine")
    assert info.value.field == "embedding"
    assert message in str(info.value)


def test_zero_vector_is_allowed_without_cosine() -> None:
    """The zero vector is valid under euclidean and dotproduct."""
    assert not as_vector([0, 0], 2, "euclidean").any()
    assert not as_vector([0, 0], 2, "dotproduct").any()


def test_as_matrix_batches_and_names_bad_rows() -> None:
    """Batches convert to (n, d); a bad row is named by its position."""
    assert as_matrix([[1, 2], [3, 4]], 2).shape == (2, 2)
    assert as_matrix([1, 2], 2).shape == (1, 2)
    assert as_matrix([], 2, allow_empty=True).shape == (0, 2)
    with pytest.raises(EmbeddingValidationError, match=r"vectors: row 1: expected dimension 2"):
        as_matrix([[1, 2], [1, 2, 3]], 2)
    with pytest.raises(EmbeddingValidationError, match=r"vectors: row 1, index 0 is NaN"):
        as_matrix([[1, 2], [float("nan"), 2]], 2)
    with pytest.raises(EmbeddingValidationError, match=r"row 2 is the zero vector"):
        as_matrix([[1, 2], [1, 0], [0, 0]], 2, "cosine")
    with pytest.raises(EmbeddingValidationError, match=r"must not be empty"):
        as_matrix([], 2)
    with pytest.raises(EmbeddingValidationError, match=r"2-D batch"):
        as_matrix(np.ones((2, 2, 2)), 2)


def test_require_ids_allows_any_text_but_checks_shape() -> None:
    """Ids may hold quotes and unicode; empty, non-string, NUL and duplicates are refused."""
    assert require_ids(["it's", '"q"', "ü→🚀"]) == ["it's", '"q"', "ü→🚀"]
    assert require_ids(["a", "a"], unique=False) == ["a", "a"]
    for bad, field in ((["a", ""], "ids[1]"), ([1], "ids[0]"), ("abc", "ids"),
                       (["a", "a"], "ids"), (["x\x00"], "ids[0]")):
        with pytest.raises(MemoryValidationError) as info:
            require_ids(bad)
        assert info.value.field == field


def test_scalar_checks() -> None:
    """top_k, dimension and metric checks accept good values and name the argument."""
    assert require_top_k(5) == 5 and require_top_k(np.int64(3)) == 3
    assert require_dimension(768) == 768 and require_metric("dotproduct") == "dotproduct"
    for check, bad in ((require_top_k, 0), (require_top_k, 10_001), (require_top_k, 1.0),
                       (require_dimension, 0), (require_dimension, 16001),
                       (require_metric, "dot"), (require_metric, "l2")):
        with pytest.raises(MemoryValidationError):
            check(bad)
