"""The usearch HNSW backend against the exact numpy index, on clustered 768-d vectors.

    python benchmarks/bench_usearch.py [--n 100000 --queries 200] [--raw-only]

In one process, on one Gaussian mixture (``tests.fixtures.pgvector.clustered_vectors``, the
pgvector benchmark's data; held-out rows as queries), cosine:

* raw usearch: build time (all cores), memory (usearch's figure, RSS delta), file size,
  recall@10 and ms per query at several ``expansion_search`` (the defaults' evidence);
* ours through ``MemoryAPI`` (what users call), embedded SQLite + graph beside it:
  ``index_embeddings`` build time (SQLite persistence + graph), RSS delta, graph file and
  SQLite sizes, reopen time (load + check + first query);
* query time, interleaved query by query so machine load hits all alike:
  ``MemoryAPI.query_embeddings`` on ``backend="usearch"``, the raw usearch search of the
  same graph, and ``MemoryAPI.query_embeddings`` on ``backend="numpy"`` (exact, same file);
* filtered queries (10 % and 0.5 % of rows match): ms, recall, rows returned.

``--raw-only`` (e.g. ``--n 1000000``) measures only raw usearch vs exact numpy matmul,
``--skip-raw`` only the MemoryAPI part.
Writes benchmarks/results/usearch.md (``--out`` to change).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memory_resources import MemoryAPI  # noqa: E402
from tests.fixtures.pgvector import CLUSTERED_CENTERS, clustered_vectors  # noqa: E402

TOP_K = 10
EXPANSIONS = (64, 128, 256, 512)
DEFAULTS = {"connectivity": 32, "expansion_add": 128}
"""The backend's defaults; its expansion_search follows the vector count (auto_expansion)."""
BATCH = 10_000
Array = np.ndarray[Any, Any]


def rss_bytes() -> int:
    """Resident set size of this process now."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def exact_top_k(data: Array, queries: Array, k: int, mask: Array | None = None) -> Array:
    """Exact cosine top-k rows per query, in chunks of rows (no n x q copy of the data)."""
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = np.empty((queries.shape[0], data.shape[0]), dtype=np.float32)
    for start in range(0, data.shape[0], 50_000):
        block = data[start : start + 50_000]
        scores[:, start : start + block.shape[0]] = (qn @ block.T) / np.linalg.norm(
            block, axis=1)
    if mask is not None:
        scores[:, ~mask] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    return np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), 1), 1)


def recall(found: list[list[int]], exact: Array) -> float:
    """Mean share of the exact top-k found."""
    hits = [len(set(row) & set(truth.tolist())) for row, truth in zip(found, exact, strict=True)]
    return float(np.mean(hits)) / exact.shape[1]


def ms(samples: list[float]) -> str:
    """``median / p95`` in ms."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"{statistics.median(ordered) * 1e3:.2f} / {p95 * 1e3:.2f}"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def raw_usearch(data: Array, queries: Array, truth: Array, home: Path,
                settings: dict[str, int], expansions: tuple[int, ...]) -> list[str]:
    """Raw usearch: build, memory, size, and the expansion_search sweep."""
    from usearch.index import Index

    lines = ["## Raw usearch (the same library, no wrapper)", "",
             f"load average before: {load_average()}", ""]
    before = rss_bytes()
    graph = Index(ndim=data.shape[1], metric="cos", dtype="f32",
                  connectivity=settings["connectivity"], expansion_add=settings["expansion_add"])
    seconds, _ = timed(lambda: graph.add(np.arange(data.shape[0], dtype=np.uint64), data))
    grown = rss_bytes() - before
    path = home / "raw.usearch"
    graph.save(str(path))
    lines += [
        f"- build: {data.shape[0]:,} vectors in {seconds:.1f} s "
        f"({data.shape[0] / seconds:,.0f} vectors/s, all cores)",
        f"- memory: usearch {graph.memory_usage / 2**20:,.0f} MiB, RSS delta "
        f"{grown / 2**20:,.0f} MiB (raw float32 matrix: {data.nbytes / 2**20:,.0f} MiB)",
        f"- file: {path.stat().st_size / 2**20:,.0f} MiB", "",
        "| expansion_search | recall@10 | ms per query (median / p95) |", "|---:|---:|---:|",
    ]
    for expansion in expansions:
        graph.expansion_search = expansion
        found, samples = [], []
        for q in queries:
            took, matches = timed(lambda q=q: graph.search(q, TOP_K))
            samples.append(took)
            found.append([int(key) for key in matches.keys])
        lines.append(f"| {expansion} | {recall(found, truth):.3f} | {ms(samples)} |")
        print(lines[-1], flush=True)
    exact_samples = []
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    for q in queries:
        took, _ = timed(lambda q=q: np.argpartition(-(unit @ q), TOP_K)[:TOP_K])
        exact_samples.append(took)
    lines += ["", f"Exact matmul + argpartition over the normalised matrix: "
              f"{ms(exact_samples)} ms per query (median / p95).", ""]
    path.unlink()
    print("\n".join(lines), flush=True)
    return lines


def through_api(data: Array, queries: Array, truth: Array, home: Path) -> list[str]:
    """Ours through MemoryAPI, interleaved with raw usearch and the exact numpy index."""
    embedded = {"path": str(home / "memory.db")}
    config = {"backend": "usearch", "dimension": data.shape[1]}
    ids = [str(i) for i in range(data.shape[0])]
    tags = [{"tenth": i % 10, "rare": i % 200} for i in range(data.shape[0])]
    lines = ["## Through MemoryAPI (embedded SQLite + graph beside it)", "",
             f"load average before: {load_average()}", ""]
    gc.collect()
    before = rss_bytes()
    api = MemoryAPI(embedded_config=embedded, vector_config=config)
    started = time.perf_counter()
    for start in range(0, len(ids), BATCH):
        api.index_embeddings(ids[start : start + BATCH], data[start : start + BATCH],
                             tags[start : start + BATCH])
    build = time.perf_counter() - started
    index = api.store("vectors")
    save, _ = timed(index.save)
    grown = rss_bytes() - before
    stats = index.stats()
    lines += [
        f"- `index_embeddings` in batches of {BATCH:,}: {build:.1f} s "
        f"({len(ids) / build:,.0f} vectors/s; SQLite rows + graph inserts)",
        f"- graph save: {save:.1f} s; graph file {stats['graph_bytes'] / 2**20:,.0f} MiB, "
        f"SQLite file {stats['persisted_bytes'] / 2**20:,.0f} MiB",
        f"- RSS delta after the build: {grown / 2**20:,.0f} MiB (usearch reports "
        f"{stats['memory_bytes'] / 2**20:,.0f} MiB)",
    ]
    api.disconnect()
    api = MemoryAPI(embedded_config=embedded, vector_config=config)
    reopen, _ = timed(lambda: api.query_embeddings(queries[0], TOP_K))
    lines.append(f"- reopen (read graph file, check it against SQLite, first query): "
                 f"{reopen:.1f} s")
    exact_api = MemoryAPI(embedded_config=embedded, vector_config={**config,
                                                                   "backend": "numpy"})
    exact_api.query_embeddings(queries[0], TOP_K)  # load the matrix
    index = api.store("vectors")
    graph = index._loaded().graph
    lines += ["", f"Single queries, {len(queries)} interleaved query by query "
              f"(load average {load_average()}):", "",
              "| expansion_search | contender | recall@10 | ms per query (median / p95) |",
              "|---:|---|---:|---:|"]
    for setting in (64, None):
        index.expansion_search = setting
        expansion = index.stats()["expansion_search"]
        graph.expansion_search = expansion  # ours sets it too before each search
        samples: dict[str, list[float]] = {"ours": [], "raw": [], "exact": []}
        found: dict[str, list[list[int]]] = {"ours": [], "raw": [], "exact": []}
        for q in queries:
            for name, call in (("ours", lambda q=q: api.query_embeddings(q, TOP_K)),
                               ("raw", lambda q=q: graph.search(q, TOP_K)),
                               ("exact", lambda q=q: exact_api.query_embeddings(q, TOP_K))):
                took, out = timed(call)
                samples[name].append(took)
                keys = out.keys if name == "raw" else [m["id"] for m in out]
                found[name].append([int(key) for key in keys])
        for name, label in (("ours", "MemoryAPI.query_embeddings, backend usearch"),
                            ("raw", "raw usearch `Index.search` (same graph)"),
                            ("exact", "MemoryAPI.query_embeddings, backend numpy (exact)")):
            shown = f"{expansion} (auto)" if setting is None else str(expansion)
            lines.append(f"| {shown} | {label} | {recall(found[name], truth):.3f} | "
                         f"{ms(samples[name])} |")
        print("\n".join(lines[-3:]), flush=True)
    lines += ["", "Filtered (MemoryAPI.query_embeddings with `filter_metadata`):", "",
              "| filter | share | rows returned | recall@10 | usearch ms | exact numpy ms |",
              "|---|---:|---:|---:|---:|---:|"]
    tenth = np.array([i % 10 == 3 for i in range(len(ids))])
    rare = np.array([i % 200 == 7 for i in range(len(ids))])
    for flt, mask in (({"tenth": 3}, tenth), ({"rare": 7}, rare)):
        want = exact_top_k(data, queries, TOP_K, mask)
        ours_t, exact_t, got, rows = [], [], [], []
        for q in queries:
            took, out = timed(lambda q=q, f=flt: api.query_embeddings(q, TOP_K, f))
            ours_t.append(took)
            got.append([int(m["id"]) for m in out])
            rows.append(len(out))
            took, _ = timed(lambda q=q, f=flt: exact_api.query_embeddings(q, TOP_K, f))
            exact_t.append(took)
        lines.append(f"| `{flt}` | {mask.mean():.1%} | {min(rows)}-{max(rows)} | "
                     f"{recall(got, want):.3f} | {ms(ours_t)} | {ms(exact_t)} |")
    api.disconnect()
    exact_api.disconnect()
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--raw-only", action="store_true")
    parser.add_argument("--skip-raw", action="store_true", help="only the MemoryAPI part")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/usearch.md")
    parser.add_argument("--centers", type=int, default=CLUSTERED_CENTERS,
                        help="mixture centers (fewer: more rows per cluster, harder)")
    parser.add_argument("--connectivity", type=int, default=DEFAULTS["connectivity"])
    parser.add_argument("--expansion-add", type=int, default=DEFAULTS["expansion_add"])
    parser.add_argument("--expansions", default=",".join(map(str, EXPANSIONS)),
                        help="expansion_search values of the raw sweep, comma-separated")
    args = parser.parse_args()
    settings = {"connectivity": args.connectivity, "expansion_add": args.expansion_add}
    expansions = tuple(int(x) for x in args.expansions.split(","))
    vectors, _ = clustered_vectors(args.n + args.queries, args.dim, centers=args.centers)
    data, queries = vectors[: args.n], vectors[args.n :]
    truth = exact_top_k(data, queries, TOP_K)
    home = Path(tempfile.mkdtemp(prefix="bench-usearch-"))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [f"# usearch HNSW vs exact: {args.n:,} x {args.dim} clustered, cosine", "",
             f"Run {started}; load average at start {load_average()} (2 cores); "
             f"{args.queries} held-out queries; {args.centers} centers; raw settings "
             f"{settings}.", ""]
    try:
        if not args.skip_raw:
            lines += raw_usearch(data, queries, truth, home, settings, expansions)
        if not args.raw_only:
            lines += through_api(data, queries, truth, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    lines.append(f"Load average at the end: {load_average()}.")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
