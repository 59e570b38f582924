"""Batch calls vs one call at a time, through MemoryAPI, on every backend.

    python benchmarks/bench_batch.py [--items 1000] [--embeddings 10000] [--out FILE]

For each backend and each batch method (set_contexts, get_contexts, append_events,
write_task_outputs, write_flow_run_histories, index_embeddings), the items/s of a loop of
single calls (set_context, get_context, ...) and of one batch call with the same items,
alternating in 3 rounds (the median round is reported). Backends: the embedded default
(SQLite + numpy), Redis (127.0.0.1:6379), PostgreSQL (127.0.0.1:5432, db ``test``, a
throwaway schema) and pgvector (a throwaway embedded PostgreSQL 18 + pgvector, fsync on).
Embeddings have 768 dimensions; the single-call loop indexes ``--items`` of them, the batch
``--embeddings``. A batch is one call under PostgreSQL's ``operation_timeout`` (10 s by
default), which a large pgvector batch on a busy machine exceeds (the HNSW index is
updated row by row): the bench raises it to 300 s. Writes a Markdown table to ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memory_resources import MemoryAPI  # noqa: E402
from tests.fixtures.services import create_schema, delete_prefix, drop_schema  # noqa: E402

ROUNDS = 3
DIMENSION = 768
REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DATA = {"user_id": "user_123", "turn": 7, "history": ["hello", "how can I help?"]}
Row = dict[str, Any]


def measure(single: Callable[[int], None], batch: Callable[[int], None], items: int,
            batch_items: int) -> Row:
    """items/s of ``single(round)`` (``items`` calls) and ``batch(round)`` (one call of
    ``batch_items``), alternating; the median round by speed-up."""
    rounds = []
    for r in range(ROUNDS):
        began = time.perf_counter()
        single(r)
        single_rate = items / (time.perf_counter() - began)
        began = time.perf_counter()
        batch(r)
        batch_rate = batch_items / (time.perf_counter() - began)
        rounds.append((single_rate, batch_rate))
    rounds.sort(key=lambda pair: pair[1] / pair[0])
    single_rate, batch_rate = rounds[len(rounds) // 2]
    return {"single": single_rate, "batch": batch_rate, "speedup": batch_rate / single_rate}


def context_rows(api: MemoryAPI, n: int, tag: str) -> dict[str, Row]:
    """set_contexts, get_contexts and append_events of ``n`` items vs single calls."""
    ids = [f"{tag}-{i}" for i in range(n)]
    items = dict.fromkeys(ids, DATA)
    events = [DATA] * n
    return {
        "set_contexts": measure(lambda r: [api.set_context(c, DATA, ttl=3600) for c in ids],
                                lambda r: api.set_contexts(items, ttl=3600), n, n),
        "get_contexts": measure(lambda r: [api.get_context(c) for c in ids],
                                lambda r: api.get_contexts(ids), n, n),
        "append_events": measure(lambda r: [api.append_event(f"{tag}-s{r}", DATA)
                                            for _ in range(n)],
                                 lambda r: api.append_events(f"{tag}-b{r}", events), n, n),
    }


def record_rows(api: MemoryAPI, n: int, tag: str) -> dict[str, Row]:
    """write_task_outputs and write_flow_run_histories of ``n`` items vs single calls."""
    def outputs(r: int, kind: str) -> list[dict[str, Any]]:
        return [{"task_id": f"{tag}-{kind}{r}-{i % 50}", "output": DATA,
                 "task_run_id": f"{tag}-{kind}{r}-{i}"} for i in range(n)]

    def runs(r: int, kind: str) -> list[dict[str, Any]]:
        return [{"flow_id": f"{tag}-flow", "run_id": f"{kind}{r}-{i}",
                 "data": {"status": "completed", "duration": 1.5, "tags": ["a"]}}
                for i in range(n)]

    return {
        "write_task_outputs": measure(
            lambda r: [api.write_task_output(**item) for item in outputs(r, "s")],
            lambda r: api.write_task_outputs(outputs(r, "b")), n, n),
        "write_flow_run_histories": measure(
            lambda r: [api.write_flow_run_history(**run) for run in runs(r, "s")],
            lambda r: api.write_flow_run_histories(runs(r, "b")), n, n),
    }


def vector_rows(api: MemoryAPI, n: int, batch: int) -> dict[str, Row]:
    """index_embeddings of ``batch`` vectors vs ``n`` index_embedding calls."""
    rng = np.random.default_rng(7)
    matrix = rng.standard_normal((batch, DIMENSION)).astype(np.float32)
    single_vectors = [row.tolist() for row in matrix[:n]]
    return {"index_embeddings": measure(
        lambda r: [api.index_embedding(f"s{r}-{i}", single_vectors[i]) for i in range(n)],
        lambda r: api.index_embeddings([f"b{r}-{i}" for i in range(batch)], matrix),
        n, batch)}


@contextmanager
def temporary_home() -> Iterator[str]:
    home = tempfile.mkdtemp(prefix="bench-batch-")
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run(args: argparse.Namespace) -> dict[str, dict[str, Row]]:
    """Every backend's rows."""
    results: dict[str, dict[str, Row]] = {}
    n, embeddings = args.items, args.embeddings
    with temporary_home() as home:
        with MemoryAPI(embedded_config={"path": f"{home}/memory.db"},
                       vector_config={"dimension": DIMENSION}) as api:
            results["embedded (SQLite + numpy)"] = {**context_rows(api, n, "e"),
                                                    **record_rows(api, n, "e"),
                                                    **vector_rows(api, n, embeddings)}
        prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        with MemoryAPI(redis_config={"url": REDIS_URL, "key_prefix": prefix},
                       embedded_config={"path": f"{home}/redis.db"}) as api:
            results["Redis"] = context_rows(api, n, "r")
            delete_prefix(api.store("context").client, prefix)
        schema = create_schema(POSTGRES_DSN)
        try:
            store_config = {"dsn": POSTGRES_DSN, "schema": schema, "operation_timeout": 300}
            from memory_resources.stores.postgres import PostgresStore

            store = PostgresStore(store_config)
            api = MemoryAPI.from_stores(context=store, events=store, history=store,
                                        outputs=store, audit=store,
                                        embedded_config={"path": f"{home}/pg.db"})
            with api:
                results["PostgreSQL 15"] = {**context_rows(api, n, "p"),
                                            **record_rows(api, n, "p")}
        finally:
            drop_schema(POSTGRES_DSN, schema)
        from tests.servers import PostgresServer

        server = PostgresServer(fsync=True).start()
        try:
            with MemoryAPI(postgres_config={"dsn": server.dsn, "schema": "bench",
                                            "operation_timeout": 300},
                           vector_config={"backend": "pgvector", "dimension": DIMENSION},
                           embedded_config={"path": f"{home}/pgv.db"}) as api:
                results["pgvector (PostgreSQL 18)"] = vector_rows(api, n, embeddings)
        finally:
            server.close()
    return results


def write(args: argparse.Namespace, results: dict[str, dict[str, Row]], seconds: float
          ) -> None:
    """Print and save the Markdown table."""
    lines = [
        "# Batch calls vs one call at a time (MemoryAPI)",
        "",
        f"`python benchmarks/bench_batch.py --items {args.items} --embeddings "
        f"{args.embeddings}` on {platform.machine()}, Python {platform.python_version()}; "
        f"single calls and the batch call alternate in {ROUNDS} rounds, median round. "
        f"Embeddings: {DIMENSION} dimensions, {args.items} single calls vs one batch of "
        f"{args.embeddings}. Total time {seconds:.0f} s.",
        "",
        "| backend | batch call | single calls items/s | batch items/s | speed-up |",
        "|---|---|---:|---:|---:|",
    ]
    for backend, rows in results.items():
        for name, row in rows.items():
            lines.append(f"| {backend} | `{name}` | {row['single']:,.0f} | "
                         f"{row['batch']:,.0f} | {row['speedup']:.1f}x |")
    lines += ["", "Single calls: one round trip (and, on the SQL backends, one transaction "
              "with its fsync) per item. Batches: Redis one pipeline (contexts) or one Lua "
              "script (events); SQL one transaction; pgvector one binary COPY; numpy one "
              "matrix append."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--embeddings", type=int, default=10_000)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "batch.md"))
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    began = time.perf_counter()
    results = run(args)
    write(args, results, time.perf_counter() - began)


if __name__ == "__main__":
    main()
