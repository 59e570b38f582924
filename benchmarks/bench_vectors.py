"""Benchmark of the numpy vector index against bare numpy, faiss and usearch.

    python benchmarks/bench_vectors.py [--n 100000 --dim 768 --queries 30 --batch 64]

Runs in one process on the same matrix: ms per query for single queries and for a batch
of ``--batch`` queries, for the index (cosine and dotproduct) and for a bare
``matmul + argpartition`` (+ sort of the top k), faiss ``IndexFlatIP`` and usearch exact
search beside it (skipped with a note when not installed); float16 and int8 storage speed
and recall@10 on clustered data (a Gaussian mixture); insert throughput (memory only, SQLite,
file store); memory per tracemalloc. Single-query timings interleave the contenders query
by query, so load from other processes hits them alike. Writes benchmarks/results/vectors.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from memory_resources.stores.numpy_index import (
    FileVectorPersistence,
    NumpyVectorIndex,
    SqliteVectorPersistence,
)

TOP_K = 10
RESULTS = Path(__file__).resolve().parent / "results" / "vectors.md"
NOTES_HEADING = "## Reading these figures"


def clustered(rng: np.random.Generator, n: int, dim: int, clusters: int = 100) -> Any:
    """Gaussian-mixture float32 data, like real embeddings."""
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    labels = rng.integers(0, clusters, n)
    out = centres[labels]
    out += 0.3 * rng.standard_normal((n, dim), dtype=np.float32)
    return out


def bare_single(matrix: Any, query: Any) -> Any:
    """The baseline: one matmul, argpartition, sort of the top k."""
    scores = matrix @ query
    top = np.argpartition(scores, len(scores) - TOP_K)[-TOP_K:]
    return top[np.argsort(-scores[top])]


def bare_batch(matrix: Any, queries: Any) -> Any:
    """The batch baseline: one GEMM, row-wise argpartition, sort of each top k."""
    scores = queries @ matrix.T
    top = np.argpartition(scores, scores.shape[1] - TOP_K, axis=1)[:, -TOP_K:]
    picked = np.take_along_axis(scores, top, axis=1)
    return np.take_along_axis(top, np.argsort(-picked, axis=1), axis=1)


Timing = tuple[float, float]
"""(best, median) milliseconds."""


def interleaved(contenders: dict[str, Callable[[Any], Any]], queries: Any,
                block: int = 1, settle: float = 0.0) -> dict[str, Timing]:
    """(best, median) ms per call of each contender, alternating contenders every ``block``
    queries, pausing ``settle`` seconds between blocks. On a shared machine the best run is
    the closest to the unloaded cost. OpenBLAS and OpenMP workers spin for up to ~0.1 s
    after a call, competing for the cores with whatever runs next; blocks with a pause let
    each contender run as it would on its own."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        fn(queries[0])  # warm-up
    for start in range(0, len(queries), block):
        for name, fn in contenders.items():
            if settle:
                time.sleep(settle)
            for query in queries[start:start + block]:
                started = time.perf_counter()
                fn(query)
                times[name].append((time.perf_counter() - started) * 1000)
    return {name: (min(values), statistics.median(values)) for name, values in times.items()}


def scaled(timing: Timing, factor: float) -> Timing:
    """``timing`` multiplied by ``factor``."""
    return timing[0] * factor, timing[1] * factor


def ratios(numerator: Timing, denominator: Timing, word: str = "") -> str:
    """``numerator / denominator`` of the best and of the median runs, as report text:
    ``"2.50x{word} on best, 2.40x on median"``."""
    return (f"{numerator[0] / denominator[0]:.2f}x{word} on best, "
            f"{numerator[1] / denominator[1]:.2f}x on median")


def optional_contenders(matrix: Any, notes: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """faiss and usearch single/batch callables, when installed."""
    single: dict[str, Any] = {}
    batch: dict[str, Any] = {}
    try:
        import faiss

        flat = faiss.IndexFlatIP(matrix.shape[1])
        flat.add(matrix)
        single["faiss IndexFlatIP"] = lambda q: flat.search(q[None, :], TOP_K)
        batch["faiss IndexFlatIP"] = lambda qs: flat.search(qs, TOP_K)
        notes.append(f"faiss {faiss.__version__}, omp threads {faiss.omp_get_max_threads()}")
    except ImportError:
        notes.append("faiss not installed: skipped")
    try:
        import usearch
        from usearch.compiled import MetricKind
        from usearch.index import search

        single["usearch exact"] = lambda q: search(matrix, q, TOP_K, MetricKind.IP, exact=True)
        batch["usearch exact"] = lambda qs: search(matrix, qs, TOP_K, MetricKind.IP, exact=True)
        notes.append(f"usearch {usearch.__version__}")
    except ImportError:
        notes.append("usearch not installed: skipped")
    return single, batch


def batches_of(queries: Any, batch: int, reps: int) -> list[Any]:
    """``reps`` batches of ``batch`` query rows (wrapping around ``queries``)."""
    return [np.take(queries, np.arange(rep * batch, (rep + 1) * batch), axis=0, mode="wrap")
            for rep in range(reps)]


def insert_rate(make: Callable[[], NumpyVectorIndex], data: Any, batch: int = 1000) -> float:
    """Rows per second upserting ``data`` in batches (ids and metadata included), timed up
    to the end of one query after the last batch (int8 codes re-fit lazily at that query)."""
    index = make()
    ids = [f"doc-{i}" for i in range(len(data))]
    metadata = [{"type": "document", "n": i} for i in range(len(data))]
    started = time.perf_counter()
    for start in range(0, len(data), batch):
        index.upsert(ids[start:start + batch], data[start:start + batch],
                     metadata[start:start + batch])
    index.query(data[0], TOP_K)
    elapsed = time.perf_counter() - started
    index.close()
    return len(data) / elapsed


def traced_memory(data: Any) -> tuple[float, int]:
    """(tracemalloc bytes / raw matrix bytes, bytes) of an index holding ``data``."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = NumpyVectorIndex(data.shape[1], "cosine")
    for start in range(0, len(data), 10_000):
        stop = min(len(data), start + 10_000)
        index.upsert([f"doc-{i}" for i in range(start, stop)], data[start:stop],
                     [{"type": "document", "n": i} for i in range(start, stop)])
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / data.nbytes, used


def blas_info() -> str:
    """Which BLAS numpy uses (threadpoolctl's view when installed)."""
    try:
        from threadpoolctl import threadpool_info

        return "; ".join(
            f"{i.get('internal_api')} {i.get('version')} kernel={i.get('architecture')} "
            f"threads={i.get('num_threads')}" for i in threadpool_info()
        )
    except ImportError:
        config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return (f"{config.get('name')} {config.get('version')} (threadpoolctl not installed: "
                "kernel not reported)")


def recall(want: list[list[Any]], got: list[list[Any]]) -> float:
    """Mean share of ``want``'s ids found in ``got``."""
    hits = sum(len({m["id"] for m in w} & {m["id"] for m in g}) for w, g in zip(want, got,
                                                                                 strict=True))
    return hits / sum(len(w) for w in want)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    notes: list[str] = []
    total = time.perf_counter()

    data = clustered(rng, args.n, args.dim)
    queries = clustered(rng, max(args.queries, args.batch * 3), args.dim)
    single, batch, f16_recall, stats, f16_stats = measure_queries(args, data, queries, notes)
    gc.collect()

    ratio, used = traced_memory(data)
    subset = data[: min(args.n, 20_000)]
    with tempfile.TemporaryDirectory() as tmp:
        inserts = {
            "memory only": insert_rate(lambda: NumpyVectorIndex(args.dim, "cosine"), data),
            "memory only, int8 storage": insert_rate(lambda: NumpyVectorIndex(
                args.dim, "cosine", storage_dtype="int8"), data),
            "SQLite (embedded default)": insert_rate(lambda: NumpyVectorIndex(
                args.dim, "cosine", persistence=SqliteVectorPersistence(Path(tmp) / "v.db")),
                subset),
            "file store (snapshot + log)": insert_rate(lambda: NumpyVectorIndex(
                args.dim, "cosine", persistence=FileVectorPersistence(Path(tmp) / "files")),
                subset),
        }
    write_report(args, single, batch, f16_recall, stats, f16_stats, ratio, used, inserts, notes,
                 time.perf_counter() - total)


def measure_queries(args: Any, data: Any, queries: Any, notes: list[str]) -> tuple[Any, ...]:
    """Single and batch ms/query of every contender, float16 recall and index stats."""
    ids = [f"doc-{i}" for i in range(args.n)]
    indexes = {metric: NumpyVectorIndex(args.dim, metric) for metric in ("cosine", "dotproduct")}
    buckets = [{"bucket": i % 10} for i in range(args.n)]
    for index in indexes.values():
        index.upsert(ids, data, buckets)
    half = NumpyVectorIndex(args.dim, "cosine", storage_dtype="float16")
    half.upsert(ids, data)
    started = time.perf_counter()
    int8 = {metric: NumpyVectorIndex(args.dim, metric, storage_dtype="int8")
            for metric in ("cosine", "euclidean", "dotproduct")}
    for index in int8.values():
        index.upsert(ids, data, buckets)
    notes.append(f"int8 storage: scan kernel {int8['cosine'].stats()['scan']}; upserting "
                 f"{args.n:,} rows into the 3 int8 indexes (quantising included) took "
                 f"{time.perf_counter() - started:.1f} s")
    extra_single, extra_batch = optional_contenders(data, notes)

    single = interleaved({
        "bare numpy matmul + argpartition": lambda q: bare_single(data, q),
        "numpy index, dotproduct": lambda q: indexes["dotproduct"].query(q, TOP_K),
        "numpy index, cosine": lambda q: indexes["cosine"].query(q, TOP_K),
        "numpy index, cosine, filter matching 10%": lambda q: indexes["cosine"].query(
            q, TOP_K, filter={"bucket": 3}),
        "numpy index, dotproduct, int8": lambda q: int8["dotproduct"].query(q, TOP_K),
        "numpy index, cosine, int8": lambda q: int8["cosine"].query(q, TOP_K),
        "numpy index, euclidean, int8": lambda q: int8["euclidean"].query(q, TOP_K),
        "numpy index, cosine, int8, filter matching 50%": lambda q: int8["cosine"].query(
            q, TOP_K, filter={"bucket": {"$lt": 5}}),
        **extra_single,
    }, queries[: args.queries])
    for round_ in (1, 2, 3):
        focus = interleaved({
            "bare": lambda q: bare_single(data, q),
            "int8": lambda q: int8["cosine"].query(q, TOP_K),
        }, queries[: 2 * args.queries], block=10, settle=0.3)
        notes.append(
            f"int8 target check, round {round_} ({2 * args.queries} single queries, bare vs "
            f"int8 cosine index alternating every 10 queries, 0.3 s pause between blocks): "
            f"bare {focus['bare'][0]:.2f} "
            f"({focus['bare'][1]:.2f}) ms, int8 {focus['int8'][0]:.2f} ({focus['int8'][1]:.2f}) "
            f"ms: {ratios(focus['bare'], focus['int8'], ' faster')}")
    single_f16 = interleaved({
        "bare numpy matmul + argpartition": lambda q: bare_single(data, q),
        "numpy index, cosine, float16": lambda q: half.query(q, TOP_K),
    }, queries[:5])
    single["numpy index, cosine, float16"] = scaled(
        single_f16["numpy index, cosine, float16"],
        single["bare numpy matmul + argpartition"][0]
        / single_f16["bare numpy matmul + argpartition"][0],
    )

    chunks = batches_of(queries, args.batch, 8)
    batch = {name: scaled(ms, 1 / args.batch) for name, ms in interleaved({
        "bare numpy matmul + argpartition": lambda qs: bare_batch(data, qs),
        "numpy index, dotproduct": lambda qs: indexes["dotproduct"].query_batch(qs, TOP_K),
        "numpy index, cosine": lambda qs: indexes["cosine"].query_batch(qs, TOP_K),
        "numpy index, cosine, int8": lambda qs: int8["cosine"].query_batch(qs, TOP_K),
    }, chunks).items()}
    focus = interleaved({
        "bare": lambda qs: bare_batch(data, qs),
        "dotproduct": lambda qs: indexes["dotproduct"].query_batch(qs, TOP_K),
        "cosine": lambda qs: indexes["cosine"].query_batch(qs, TOP_K),
    }, batches_of(queries, args.batch, 30))
    notes.append(
        f"batch target check ({30 * args.batch} queries in batches of {args.batch}; bare, "
        f"dotproduct and cosine index alternating batch by batch): dotproduct "
        f"{ratios(focus['dotproduct'], focus['bare'])}; cosine "
        f"{ratios(focus['cosine'], focus['bare'])}")
    slow = interleaved({
        "bare": lambda qs: bare_batch(data, qs),
        **extra_batch,
        "numpy index, cosine, float16": lambda qs: half.query_batch(qs, TOP_K),
    }, chunks[:2])
    for name in slow.keys() - {"bare"}:
        batch[name] = scaled(slow[name], batch["bare numpy matmul + argpartition"][0]
                             / slow["bare"][0])
    recall_queries = queries[: args.batch]
    f16_recall = recall(indexes["cosine"].query_batch(recall_queries, TOP_K),
                        half.query_batch(recall_queries, TOP_K))
    exact_euclidean = NumpyVectorIndex(args.dim, "euclidean")
    exact_euclidean.upsert(ids, data)
    exact = {**indexes, "euclidean": exact_euclidean}
    for metric, index in int8.items():
        got = [index.query(q, TOP_K) for q in recall_queries]
        want = [exact[metric].query(q, TOP_K) for q in recall_queries]
        notes.append(f"int8 storage, {metric}: recall@10 of single queries vs float32 exact "
                     f"= {recall(want, got):.4f} ({len(recall_queries)} queries)")
    notes.append(f"int8 storage memory: {int8['cosine'].stats()['memory_bytes'] / 2**20:.0f} "
                 "MiB (float32 matrix kept for the exact re-rank + int8 codes)")
    notes.append("float16 (single and batch), faiss and usearch (batch) rows: timed in a "
                 "shorter interleaved run beside the bare baseline (5 single queries / 2 "
                 "batches) and expressed against the main run's best bare time")
    return single, batch, f16_recall, indexes["cosine"].stats(), half.stats()


def write_report(args: Any, single: dict[str, Timing], batch: dict[str, Timing],
                 f16_recall: float, stats: dict[str, Any], f16_stats: dict[str, Any],
                 ratio: float, used: int, inserts: dict[str, float], notes: list[str],
                 seconds: float) -> None:
    """Print and write the markdown report."""
    base_single = single["bare numpy matmul + argpartition"][0]
    base_batch = batch["bare numpy matmul + argpartition"][0]
    lines = [
        "# Vector benchmarks (numpy backend)",
        "",
        f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · "
        f"`python benchmarks/bench_vectors.py --n {args.n} --dim {args.dim}` · "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared) · "
        f"numpy {np.__version__} · BLAS: {blas_info()} · "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} · "
        f"load average at the end {os.getloadavg()[0]:.1f}",
        "",
        f"{args.n} x {args.dim} float32, clustered (Gaussian mixture), top_k={TOP_K}. "
        "ms per query as best (median) over the runs; ratios use the best runs. Contenders "
        "are interleaved query by query (batch by batch), so load from other processes hits "
        "them alike.",
        "",
        f"| contender | single ms/query | vs bare | batch of {args.batch} ms/query | vs bare |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (best, median) in single.items():
        cell = f"| {name} | {best:.2f} ({median:.2f}) | {best / base_single:.2f}x | "
        if name in batch:
            b_best, b_median = batch[name]
            cell += f"{b_best:.2f} ({b_median:.2f}) | {b_best / base_batch:.2f}x |"
        else:
            cell += "- | - |"
        lines.append(cell)
    lines += [
        "",
        f"float16 storage: recall@10 vs float32 exact = {f16_recall:.4f}; "
        f"memory {f16_stats['memory_bytes'] / 2**20:.0f} MiB vs "
        f"{stats['memory_bytes'] / 2**20:.0f} MiB.",
        "",
        f"Memory (tracemalloc, whole index incl. ids, metadata, filter columns): "
        f"{used / 2**20:.0f} MiB = {ratio:.3f}x the raw matrix "
        f"({stats['matrix_bytes'] / 2**20:.0f} MiB).",
        "",
        "| insert (batches of 1000, with metadata, then one query) | rows/s |",
        "|---|---:|",
        *[f"| {name} | {rate:,.0f} |" for name, rate in inserts.items()],
        "",
        *[f"- {note}" for note in notes],
        f"- total benchmark time {seconds:.0f} s",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.exists():  # keep the hand-written interpretation below the figures
        previous = args.out.read_text()
        marker = previous.find(NOTES_HEADING)
        if marker >= 0:
            text += "\n" + previous[marker:]
    args.out.write_text(text)


if __name__ == "__main__":
    main()
