"""Contract suite of the VectorIndex Protocol, run against every vector backend.

The ``vector_index`` fixture (the project's ``memory_vector_index``) is a **factory**::

    make(dimension=8, metric="cosine", *, namespace=None) -> VectorIndex

Each call without ``namespace`` returns a fresh, empty index in its own namespace; a call
with an existing index's ``namespace`` returns a new instance over the same stored data
(used by the persistence tests). The factory closes what it built after the test.

Only Protocol methods are used (plus ``stats()`` of Lifecycle). Errors must be
:class:`MemoryValidationError` whose ``field`` starts with the argument name: ``vectors``
(upsert, query_batch), ``vector`` (query), ``ids`` (upsert/delete), ``id`` (get),
``metadata``, ``top_k``, ``filter`` (e.g. ``filter['year']``). Scores: cosine similarity
(higher first), euclidean distance (lower first), dot product (higher first).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from memory_resources.errors import MemoryValidationError
from memory_resources.protocols import Lifecycle, VectorIndex
from memory_resources.testing.suites import roles

vector_index = roles.vector_index

TOL = 1e-5


def ids_of(matches: list[Any]) -> list[str]:
    """The ids of query results, in order."""
    return [match["id"] for match in matches]


def unit(dimension: int, axis: int, scale: float = 1.0) -> list[float]:
    """A vector with ``scale`` on ``axis`` and zeros elsewhere."""
    vector = [0.0] * dimension
    vector[axis] = scale
    return vector


@pytest.fixture
def filtered(vector_index: Any) -> Any:
    """A 4-d cosine index of 20 vectors with varied metadata for filter tests."""
    index = vector_index(4, "cosine")
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((20, 4)).astype(np.float32) + 3.0  # all near one direction
    metadata: list[dict[str, Any]] = []
    for i in range(20):
        meta: dict[str, Any] = {"n": i, "kind": "even" if i % 2 == 0 else "odd",
                                "flag": i % 3 == 0}
        if i < 5:
            meta["rare"] = "yes"
        if i == 19:
            meta["n"] = "nineteen"  # a string where others have numbers
        metadata.append(meta)
    index.upsert([f"v{i}" for i in range(20)], vectors, metadata)
    return index


def filtered_ids(index: Any, flt: dict[str, Any]) -> set[str]:
    """Ids matching ``flt`` (top_k large enough to return all)."""
    return set(ids_of(index.query([1.0, 1.0, 1.0, 1.0], top_k=100, filter=flt)))


def test_implements_protocols(vector_index: Any) -> None:
    """A built index satisfies the VectorIndex and Lifecycle Protocols."""
    index = vector_index(8, "cosine")
    assert isinstance(index, VectorIndex)
    assert isinstance(index, Lifecycle)
    assert (index.dimension, index.metric) == (8, "cosine")


def test_cosine_scores_are_similarities_best_first(vector_index: Any) -> None:
    """Cosine scores are similarities in [-1, 1], highest first, independent of length."""
    index = vector_index(4, "cosine")
    index.upsert(["same", "diag", "orth", "opposite"],
                 [[5, 0, 0, 0], [1, 1, 0, 0], [0, 2, 0, 0], [-3, 0, 0, 0]])
    result = index.query([1, 0, 0, 0], top_k=4)
    assert ids_of(result) == ["same", "diag", "orth", "opposite"]
    scores = [match["score"] for match in result]
    assert scores == pytest.approx([1.0, math.sqrt(0.5), 0.0, -1.0], abs=TOL)
    assert all(isinstance(score, float) for score in scores)


def test_euclidean_scores_are_distances_lowest_first(vector_index: Any) -> None:
    """Euclidean scores are distances, smallest first, exact for identical vectors."""
    index = vector_index(4, "euclidean")
    index.upsert(["far", "near", "exact"], [[0, 0, 0, 5], [1, 0, 0, 1], [1, 0, 0, 0]])
    result = index.query([1, 0, 0, 0], top_k=3)
    assert ids_of(result) == ["exact", "near", "far"]
    assert [m["score"] for m in result] == pytest.approx([0.0, 1.0, math.sqrt(26)], abs=TOL)


def test_dotproduct_scores_are_dot_products_highest_first(vector_index: Any) -> None:
    """Dot-product scores are the raw dot products, highest first (length matters)."""
    index = vector_index(4, "dotproduct")
    index.upsert(["long", "short", "negative"], [[3, 0, 0, 0], [1, 1, 0, 0], [-2, 0, 0, 0]])
    result = index.query([2, 0, 0, 0], top_k=3)
    assert ids_of(result) == ["long", "short", "negative"]
    assert [m["score"] for m in result] == pytest.approx([6.0, 2.0, -4.0], abs=TOL)


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dotproduct"])
def test_top_k_limits_results_and_returns_metadata(vector_index: Any, metric: str) -> None:
    """``top_k`` caps the results; fewer stored vectors return all; metadata comes back."""
    index = vector_index(8, metric)
    index.upsert([f"d{i}" for i in range(6)], [unit(8, i, 1.0 + i) for i in range(6)],
                 [{"i": i} for i in range(6)])
    assert len(index.query(unit(8, 0), top_k=3)) == 3
    everything = index.query(unit(8, 0), top_k=50)
    assert sorted(ids_of(everything)) == [f"d{i}" for i in range(6)]
    assert {m["id"]: m["metadata"] for m in everything}["d4"] == {"i": 4}


def test_upsert_replaces_vector_and_metadata(vector_index: Any) -> None:
    """Upserting an existing id replaces its vector and metadata without adding a row."""
    index = vector_index(4, "cosine")
    assert index.upsert(["a", "b"], [[1, 0, 0, 0], [0, 1, 0, 0]], [{"v": 1}, {"v": 1}]) == 2
    index.upsert(["a"], [[0, 0, 1, 0]], [{"v": 2}])
    assert index.count() == 2
    vector, metadata = index.get("a")
    assert np.allclose(vector, [0, 0, 1, 0]) and metadata == {"v": 2}
    assert index.query([0, 0, 1, 0], top_k=1)[0]["id"] == "a"


def test_delete_count_and_get(vector_index: Any) -> None:
    """delete returns how many existed, deleted ids vanish from get/query/count."""
    index = vector_index(4, "euclidean")
    index.upsert(["a", "b", "c"], [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])
    assert index.count() == 3
    assert index.delete(["a", "missing", "c"]) == 2
    assert index.delete(["a"]) == 0
    assert index.count() == 1
    assert index.get("a") is None
    assert ids_of(index.query([1, 0, 0, 0], top_k=10)) == ["b"]
    got = index.get("b")
    assert got is not None and np.allclose(got[0], [0, 1, 0, 0]) and got[1] == {}


def test_get_returns_float32_vector(vector_index: Any) -> None:
    """get returns the stored vector as float32 with its metadata."""
    index = vector_index(3, "dotproduct")
    index.upsert(["x"], [[0.25, -1.5, 3.0]], [{"k": "v"}])
    vector, metadata = index.get("x")
    assert vector.dtype == np.float32 and vector.tolist() == [0.25, -1.5, 3.0]
    assert metadata == {"k": "v"}


def test_empty_index_returns_nothing(vector_index: Any) -> None:
    """A query on an empty namespace returns [], also with a filter."""
    index = vector_index(4, "cosine")
    assert index.query([1, 0, 0, 0]) == []
    assert index.query([1, 0, 0, 0], filter={"anything": 1}) == []
    assert index.query_batch([[1, 0, 0, 0], [0, 1, 0, 0]]) == [[], []]


def test_ids_with_quotes_and_unicode(vector_index: Any) -> None:
    """Ids with quotes, backslashes, spaces and unicode are plain data."""
    index = vector_index(4, "cosine")
    ids = ["it's", 'say "hi"', "back\\slash; DROP TABLE x;--", "日本語 ✓", "emoji 🚀"]
    index.upsert(ids, [unit(4, i % 4, 1 + i) for i in range(len(ids))],
                 [{"name": name} for name in ids])
    assert index.count() == len(ids)
    for name in ids:
        got = index.get(name)
        assert got is not None and got[1] == {"name": name}
    assert index.delete(["日本語 ✓", "it's"]) == 2
    assert sorted(ids_of(index.query(unit(4, 1), top_k=10))) == sorted(
        ["say \"hi\"", "back\\slash; DROP TABLE x;--", "emoji 🚀"]
    )


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dotproduct"])
def test_batch_query_equals_single_queries(vector_index: Any, metric: str) -> None:
    """query_batch returns, per query vector, exactly what query returns."""
    index = vector_index(8, metric)
    rng = np.random.default_rng(3)
    index.upsert([f"r{i}" for i in range(60)], rng.standard_normal((60, 8)),
                 [{"g": i % 3} for i in range(60)])
    queries = rng.standard_normal((5, 8))
    for flt in (None, {"g": 1}):
        batch = index.query_batch(queries, top_k=7, filter=flt)
        singles = [index.query(q, top_k=7, filter=flt) for q in queries]
        assert [ids_of(r) for r in batch] == [ids_of(r) for r in singles]
        for got, want in zip(batch, singles, strict=True):
            assert [m["score"] for m in got] == pytest.approx(
                [m["score"] for m in want], abs=TOL
            )


# -- filters --------------------------------------------------------------------------


def test_filter_equality_and_eq(filtered: Any) -> None:
    """A bare value and $eq both mean equality."""
    evens = {f"v{i}" for i in range(0, 20, 2)}
    assert filtered_ids(filtered, {"kind": "even"}) == evens
    assert filtered_ids(filtered, {"kind": {"$eq": "even"}}) == evens
    assert filtered_ids(filtered, {"n": 3}) == {"v3"}


def test_filter_ne_includes_missing_key(filtered: Any) -> None:
    """$ne matches vectors with another value and vectors lacking the key."""
    assert filtered_ids(filtered, {"rare": {"$ne": "yes"}}) == {f"v{i}" for i in range(5, 20)}
    assert filtered_ids(filtered, {"kind": {"$ne": "even"}}) == {
        f"v{i}" for i in range(1, 20, 2)
    }


def test_filter_in_and_nin(filtered: Any) -> None:
    """$in matches any listed value; $nin matches none of them (or a missing key)."""
    assert filtered_ids(filtered, {"n": {"$in": [1, 2, 30]}}) == {"v1", "v2"}
    assert filtered_ids(filtered, {"n": {"$in": ["nineteen", 0]}}) == {"v19", "v0"}
    assert filtered_ids(filtered, {"n": {"$nin": list(range(2, 19))}}) == {"v0", "v1", "v19"}


def test_filter_numeric_comparisons(filtered: Any) -> None:
    """$gt/$gte/$lt/$lte compare numbers only (a string value never matches)."""
    assert filtered_ids(filtered, {"n": {"$gt": 16}}) == {"v17", "v18"}
    assert filtered_ids(filtered, {"n": {"$gte": 16}}) == {"v16", "v17", "v18"}
    assert filtered_ids(filtered, {"n": {"$lt": 2}}) == {"v0", "v1"}
    assert filtered_ids(filtered, {"n": {"$lte": 1.5}}) == {"v0", "v1"}
    assert filtered_ids(filtered, {"n": {"$gte": 4, "$lt": 7}}) == {"v4", "v5", "v6"}


def test_filter_bool_is_not_a_number(filtered: Any) -> None:
    """A bool filter matches stored bools only; a number never equals a bool."""
    assert filtered_ids(filtered, {"flag": True}) == {f"v{i}" for i in range(0, 20, 3)}
    assert filtered_ids(filtered, {"flag": 1}) == set()


def test_filter_combines_keys_with_and(filtered: Any) -> None:
    """Several keys are combined with AND."""
    assert filtered_ids(filtered, {"kind": "odd", "n": {"$lt": 8}, "flag": False}) == {
        "v1", "v5", "v7"
    }
    assert filtered_ids(filtered, {"rare": "yes", "kind": "even"}) == {"v0", "v2", "v4"}


def test_filter_returns_full_top_k_when_enough_match(vector_index: Any) -> None:
    """A filter matching 10% of rows still returns top_k results when that many match."""
    index = vector_index(8, "cosine")
    rng = np.random.default_rng(11)
    index.upsert([f"p{i}" for i in range(300)], rng.standard_normal((300, 8)),
                 [{"bucket": i % 10} for i in range(300)])
    result = index.query(rng.standard_normal(8), top_k=10, filter={"bucket": 4})
    assert len(result) == 10
    assert all(match["metadata"]["bucket"] == 4 for match in result)


@pytest.mark.parametrize(
    ("flt", "field"),
    [
        ({"nokey": 1}, "filter['nokey']"),
        ({"n": {"$regex": "x"}}, "filter['n']"),
        ({"n": {"$in": 3}}, "filter['n']"),
        ({"n": {"$gt": "ten"}}, "filter['n']"),
        ({"n": {"$lt": float("nan")}}, "filter['n']"),
        ({"n": {"$eq": [1, 2]}}, "filter['n']"),
        ({"n": {}}, "filter['n']"),
        ({"$or": [{"n": 1}]}, "filter['$or']"),
        ("kind=even", "filter"),
    ],
)
def test_bad_filter_is_a_validation_error(filtered: Any, flt: Any, field: str) -> None:
    """A missing key, unknown operator or bad operand raises naming the filter key."""
    with pytest.raises(MemoryValidationError) as info:
        filtered.query([1, 1, 1, 1], filter=flt)
    assert info.value.field == field


# -- bad input ------------------------------------------------------------------------

BAD_VECTORS = [
    ([1.0, 2.0, 3.0], "dimension"),
    ([1.0, float("nan"), 0.0, 0.0], "NaN"),
    ([1.0, float("inf"), 0.0, 0.0], "infinite"),
    ([0.0, 0.0, 0.0, 0.0], "zero vector"),
    (["a", "b", "c", "d"], "number"),
    ([], ""),
    ([[1.0, 0.0], [0.0, 1.0]], ""),
    ("1,2,3,4", ""),
    (None, ""),
]


@pytest.mark.parametrize(("vector", "words"), BAD_VECTORS)
def test_bad_vector_in_upsert_raises_and_writes_nothing(
    vector_index: Any, vector: Any, words: str
) -> None:
    """A bad vector in a batch raises naming ``vectors``; no vector of the batch is written."""
    index = vector_index(4, "cosine")
    index.upsert(["keep"], [[1, 0, 0, 0]])
    with pytest.raises(MemoryValidationError) as info:
        index.upsert(["new1", "new2"], [[0, 1, 0, 0], vector])
    assert info.value.field.startswith("vectors")
    assert words.lower() in str(info.value).lower()
    assert index.count() == 1 and index.get("new1") is None


@pytest.mark.parametrize(("vector", "words"), [*BAD_VECTORS, ([], "empty")])
def test_bad_query_vector_raises(vector_index: Any, vector: Any, words: str) -> None:
    """A bad query vector raises a validation error naming ``vector``."""
    index = vector_index(4, "cosine")
    index.upsert(["keep"], [[1, 0, 0, 0]])
    with pytest.raises(MemoryValidationError) as info:
        index.query(vector)
    assert info.value.field.startswith("vector")
    assert words.lower() in str(info.value).lower()


def test_wrong_dimension_message_names_both(vector_index: Any) -> None:
    """The dimension error says which dimension was expected and which was given."""
    index = vector_index(6, "euclidean")
    with pytest.raises(MemoryValidationError, match="expected dimension 6, got 3"):
        index.query([1, 2, 3])


def test_zero_vector_is_fine_for_other_metrics(vector_index: Any) -> None:
    """The zero vector is only refused under cosine; euclidean accepts it."""
    index = vector_index(4, "euclidean")
    index.upsert(["origin"], [[0, 0, 0, 0]])
    assert index.query([0, 0, 0, 0], top_k=1)[0]["score"] == pytest.approx(0.0, abs=TOL)


@pytest.mark.parametrize("top_k", [0, -1, "3", 2.5, True, None])
def test_bad_top_k_raises(vector_index: Any, top_k: Any) -> None:
    """top_k must be a positive integer; anything else raises naming ``top_k``."""
    index = vector_index(4, "cosine")
    index.upsert(["a"], [[1, 0, 0, 0]])
    with pytest.raises(MemoryValidationError) as info:
        index.query([1, 0, 0, 0], top_k=top_k)
    assert info.value.field == "top_k"
    with pytest.raises(MemoryValidationError):
        index.query_batch([[1, 0, 0, 0]], top_k=top_k)


@pytest.mark.parametrize(
    ("ids", "metadata", "field"),
    [
        ([""], None, "ids"),
        ([7], None, "ids"),
        (["a\x00b"], None, "ids"),
        ("ab", None, "ids"),
        (["dup", "dup"], None, "ids"),
        (["a", "b"], None, "vectors"),
        (["a"], ["not a dict"], "metadata"),
        (["a"], [{"k": object()}], "metadata"),
        (["a"], [{1: "int key"}], "metadata"),
        (["a"], [{}, {}], "metadata"),
    ],
)
def test_bad_upsert_arguments_raise_and_write_nothing(
    vector_index: Any, ids: Any, metadata: Any, field: str
) -> None:
    """Bad ids, count mismatches and bad metadata raise naming the argument; nothing written."""
    index = vector_index(4, "cosine")
    vectors = [[1, 0, 0, 0]] * (2 if ids == ["dup", "dup"] else 1)
    with pytest.raises(MemoryValidationError) as info:
        index.upsert(ids, vectors, metadata)
    assert info.value.field.startswith(field)
    assert index.count() == 0


def test_bad_ids_in_get_and_delete_raise(vector_index: Any) -> None:
    """get and delete validate their ids too."""
    index = vector_index(4, "cosine")
    with pytest.raises(MemoryValidationError):
        index.get("")
    with pytest.raises(MemoryValidationError):
        index.delete([""])
    with pytest.raises(MemoryValidationError):
        index.delete("abc")


# -- persistence ----------------------------------------------------------------------


def test_new_instance_sees_persisted_data(vector_index: Any) -> None:
    """A new instance over the same namespace sees upserts, replacements and deletes."""
    first = vector_index(4, "cosine")
    first.upsert(["a", "b", "c"], [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]],
                 [{"n": 1}, {"n": 2}, {"n": 3}])
    first.upsert(["b"], [[0, 0, 0, 1]], [{"n": 20}])
    first.delete(["c"])
    second = vector_index(4, "cosine", namespace=first.namespace)
    assert second.count() == 2
    assert second.get("b")[1] == {"n": 20}
    assert np.allclose(second.get("b")[0], [0, 0, 0, 1])
    assert second.get("c") is None
    assert ids_of(second.query([0, 0, 0, 1], top_k=1)) == ["b"]


def test_namespaces_are_isolated(vector_index: Any) -> None:
    """Two namespaces on the same storage never see each other's vectors."""
    one = vector_index(4, "cosine")
    two = vector_index(4, "cosine")
    one.upsert(["shared-id"], [[1, 0, 0, 0]], [{"owner": "one"}])
    two.upsert(["shared-id"], [[0, 1, 0, 0]], [{"owner": "two"}])
    assert one.get("shared-id")[1] == {"owner": "one"}
    assert two.count() == 1 and two.get("shared-id")[1] == {"owner": "two"}
    one.delete(["shared-id"])
    assert two.count() == 1


def test_stats_report_total_embeddings(vector_index: Any) -> None:
    """stats() reports the spec's ``total_embeddings`` key."""
    index = vector_index(4, "dotproduct")
    index.upsert(["a", "b"], [[1, 0, 0, 0], [0, 1, 0, 0]])
    assert index.stats()["total_embeddings"] == 2
