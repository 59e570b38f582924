"""Writes and reads of the pgvector backend beyond the contract suite: both upsert paths,
exact float32 round trips, metadata encoding, refused input and stats."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory_resources.errors import (
    MemoryValidationError,
    PayloadTooLargeError,
    SerializationError,
)
from memory_resources.stores.pgvector import PgVectorIndex
from memory_resources.stores.pgvector.index import COPY_THRESHOLD
from memory_resources.vector_filter import matches, parse_filter

MakeIndex = Callable[..., PgVectorIndex]


def awkward_float32(rows: int, dimension: int, seed: int) -> np.ndarray[Any, Any]:
    """float32 values across the whole range: subnormals, huge, negative zero, random."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((rows, dimension)).astype(np.float32)
    special = np.array([1e-45, -1e-45, 1.17549435e-38, 3.4028235e38, -3.4028235e38, -0.0,
                        0.1, 1 / 3], dtype=np.float32)
    values[:, : len(special)] = special
    return values


@pytest.mark.parametrize("rows", [3, COPY_THRESHOLD + 5])
def test_vectors_round_trip_bit_exact(make_pgvector_index: MakeIndex, rows: int) -> None:
    """Both upsert paths (VALUES for small batches, binary COPY for large) store every
    float32 bit-exactly, including subnormals and the largest finite values."""
    index = make_pgvector_index(16, "euclidean")
    vectors = awkward_float32(rows, 16, seed=rows)
    ids = [f"r{i}" for i in range(rows)]
    assert index.upsert(ids, vectors) == rows
    for i in (0, rows // 2, rows - 1):
        got = index.get(ids[i])
        assert got is not None
        assert got[0].tobytes() == vectors[i].tobytes()


@pytest.mark.parametrize("rows", [2, COPY_THRESHOLD + 1])
def test_tagged_metadata_round_trips(make_pgvector_index: MakeIndex, rows: int) -> None:
    """Metadata with datetimes, decimals, UUIDs, nested lists and unicode comes back as
    the same Python values through both upsert paths."""
    index = make_pgvector_index(4, "dotproduct")
    meta = {"when": dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.timezone.utc),
            "price": Decimal("12.50"), "ref": uuid.UUID(int=7), "tags": ["a", ["b"]],
            "text": "naïve ✓ 'quoted' \"double\""}
    index.upsert([f"m{i}" for i in range(rows)], np.ones((rows, 4)), [meta] * rows)
    got = index.get(f"m{rows - 1}")
    assert got is not None and got[1] == meta
    assert index.query([1, 1, 1, 1], top_k=1)[0]["metadata"] == meta


def test_upsert_of_a_large_batch_replaces_existing_rows(make_pgvector_index: MakeIndex) -> None:
    """A COPY-path upsert replaces rows that exist and inserts the rest, in one call."""
    index = make_pgvector_index(4, "cosine")
    index.upsert(["keep", "x0"], [[1, 0, 0, 0], [1, 0, 0, 0]], [{"v": 0}, {"v": 0}])
    count = COPY_THRESHOLD * 2
    vectors = np.tile(np.array([0, 1, 0, 0], dtype=np.float32), (count, 1))
    index.upsert([f"x{i}" for i in range(count)], vectors, [{"v": 1}] * count)
    assert index.count() == count + 1
    x0 = index.get("x0")
    assert x0 is not None and x0[1] == {"v": 1} and x0[0].tolist() == [0, 1, 0, 0]
    assert index.get("keep") is not None


@pytest.mark.parametrize(
    ("metadata", "error", "field"),
    [
        ([{"ok": 1}, {"bad": "nul\x00char"}], SerializationError, "metadata[1]"),
        ([{"ok": 1}, {"big": "x" * 2048}], PayloadTooLargeError, "metadata[1]"),
        ([{"ok": 1}, {"nan": float("nan")}], SerializationError, "metadata[1]"),
    ],
)
def test_unstorable_metadata_raises_and_writes_nothing(
    make_pgvector_index: MakeIndex, pgvector_postgres_config: Any, metadata: list[Any],
    error: type[Exception], field: str,
) -> None:
    """Metadata JSONB cannot hold (NUL), larger than max_payload_bytes, or non-finite raises
    naming the item, before any row of the batch is written."""
    small = pgvector_postgres_config.model_copy(update={"max_payload_bytes": 1024})
    index = make_pgvector_index(4, "cosine", postgres=small)
    with pytest.raises(error) as info:
        index.upsert(["a", "b"], [[1, 0, 0, 0], [0, 1, 0, 0]], metadata)
    assert isinstance(info.value, MemoryValidationError)
    assert info.value.field == field
    assert index.count() == 0


def test_bad_row_late_in_a_large_batch_writes_nothing(make_pgvector_index: MakeIndex) -> None:
    """One NaN in the last row of a COPY-sized batch refuses the whole batch."""
    index = make_pgvector_index(4, "euclidean")
    vectors = np.ones((COPY_THRESHOLD + 10, 4), dtype=np.float64)
    vectors[-1, 2] = np.nan
    with pytest.raises(MemoryValidationError, match="row 41, index 2 is NaN"):
        index.upsert([f"b{i}" for i in range(len(vectors))], vectors)
    assert index.count() == 0


FILTERS = [
    {"n": {"$gte": 10, "$lt": 30}},
    {"kind": {"$in": ["a", "c"]}, "flag": True},
    {"kind": {"$nin": ["a"]}, "n": {"$ne": 5}},
    {"maybe": None},
    {"maybe": {"$ne": None}},
    {"score": {"$gt": 0.5}},
    {"n": {"$in": [1, 2.0, "3"]}},
    {"kind": {"$ne": "a\x00"}},
    {"kind": {"$in": ["a\x00", "b"]}},
    {"kind": "b", "flag": {"$nin": ["x\x00"]}},
]


@pytest.fixture
def filter_index(
    make_pgvector_index: MakeIndex,
) -> tuple[PgVectorIndex, list[str], list[dict[str, Any]]]:
    """60 vectors whose metadata mixes numbers, numeric strings, bools, nulls and missing
    keys: ``(index, ids, metadata)``."""
    index = make_pgvector_index(4, "euclidean")
    rng = np.random.default_rng(8)
    metadata: list[dict[str, Any]] = []
    for i in range(60):
        meta: dict[str, Any] = {"n": i if i % 7 else str(i), "kind": "abc"[i % 3],
                                "flag": i % 2 == 0, "score": float(rng.random())}
        if i % 4 == 0:
            meta["maybe"] = None
        elif i % 4 == 1:
            meta["maybe"] = i
        metadata.append(meta)
    ids = [f"f{i}" for i in range(60)]
    index.upsert(ids, rng.standard_normal((60, 4)), metadata)
    return index, ids, metadata


@pytest.mark.parametrize("flt", FILTERS, ids=[str(f) for f in FILTERS])
def test_sql_filters_match_the_reference_semantics(
    filter_index: tuple[PgVectorIndex, list[str], list[dict[str, Any]]], flt: dict[str, Any]
) -> None:
    """Every filter selects exactly the rows the reference evaluator (vector_filter.matches)
    selects, over metadata mixing types, missing keys and nulls."""
    index, ids, metadata = filter_index
    expected = {id_ for id_, meta in zip(ids, metadata, strict=True)
                if matches(parse_filter(flt), meta)}
    found = {m["id"] for m in index.query([0, 0, 0, 0], top_k=100, filter=flt)}
    assert found == expected and expected


def test_filter_key_with_nul_is_a_validation_error(make_pgvector_index: MakeIndex) -> None:
    """A filter key containing NUL (no stored key can) raises naming the key, and a NUL
    operand simply matches nothing."""
    index = make_pgvector_index(4, "cosine")
    index.upsert(["a"], [[1, 0, 0, 0]], [{"k": "v"}])
    with pytest.raises(MemoryValidationError) as info:
        index.query([1, 0, 0, 0], filter={"k\x00": "v"})
    assert info.value.field == "filter['k\\x00']"
    assert index.query([1, 0, 0, 0], filter={"k": "v\x00"}) == []


def test_stats_report_counts_sizes_and_settings(make_pgvector_index: MakeIndex) -> None:
    """stats() gives this namespace's total_embeddings, every namespace's count, index
    sizes and the HNSW settings."""
    first = make_pgvector_index(4, "cosine", namespace="alpha", ef_search=64)
    second = make_pgvector_index(4, "cosine", namespace="beta")
    first.upsert(["a", "b", "c"], np.eye(4)[:3] + 0.1)
    second.upsert(["z"], [[1, 1, 1, 1]])
    stats = first.stats()
    assert stats["backend"] == "pgvector"
    assert stats["total_embeddings"] == 3
    assert stats["namespaces"] == {"alpha": 3, "beta": 1}
    assert stats["schema_embeddings"] == 4
    assert stats["index_size_bytes"] > 0 and stats["table_size_bytes"] >= stats[
        "index_size_bytes"]
    assert (stats["ef_search"], stats["hnsw_m"], stats["hnsw_ef_construction"]) == (64, 16, 64)
    assert stats["pgvector_version"].startswith("0.") and stats["iterative_scan"] is True


def test_close_then_use_reconnects(make_pgvector_index: MakeIndex) -> None:
    """After close(), the next call reconnects and sees the stored data."""
    index = make_pgvector_index(4, "cosine")
    index.upsert(["a"], [[1, 0, 0, 0]])
    index.close()
    index.close()
    assert index.count() == 1
    assert index.health_check()["status"] == "healthy"


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 30), st.sampled_from(
    [0.5, 1.0, 2.0, -1.5]), st.sampled_from(["a", "b", "c", "3", ""]))
CONDITIONS = st.one_of(
    SCALARS,
    st.fixed_dictionaries({}, optional={"$eq": SCALARS, "$ne": SCALARS}).filter(bool),
    st.fixed_dictionaries({"$in": st.lists(SCALARS, max_size=4)}),
    st.fixed_dictionaries({"$nin": st.lists(SCALARS, max_size=4)}),
    st.fixed_dictionaries({}, optional={
        op: st.one_of(st.integers(-5, 35), st.floats(-5, 35)) for op in
        ("$gt", "$gte", "$lt", "$lte")}).filter(bool),
)
FILTER_KEYS = ["n", "kind", "flag", "maybe", "score"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flt=st.dictionaries(st.sampled_from(FILTER_KEYS), CONDITIONS, min_size=1, max_size=3))
def test_random_filters_match_the_reference_semantics(
    filter_index: tuple[PgVectorIndex, list[str], list[dict[str, Any]]], flt: dict[str, Any]
) -> None:
    """For random filters (every operator, mixed operand types), SQL selects exactly the
    rows the reference evaluator selects."""
    index, ids, metadata = filter_index
    expected = {id_ for id_, meta in zip(ids, metadata, strict=True)
                if matches(parse_filter(flt), meta)}
    found = {m["id"] for m in index.query([0, 0, 0, 0], top_k=100, filter=flt)}
    assert found == expected
