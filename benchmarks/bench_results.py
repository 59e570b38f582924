"""Cached task hit time: our blocks as Prefect result storage vs prefect-redis's.

One process, one temporary Prefect API. A flow calls one cached task ``--calls`` times
with inputs whose results are already stored (every call is a cache hit); the flows on
``RedisMemory``, ``PostgresMemory`` and prefect-redis's ``RedisDatabase`` (which opens a
new client per call) alternate ``--repeats`` times after a warm-up. A second, storage-level
measure times what a hit asks of the storage (``ResultStore.exists`` + ``read``),
interleaved in rounds of 200 per backend.

The report replaces the "Result storage" section of ``benchmarks/results/prefect.md``
(``--out``), leaving the capture figures above it.

    .venv/bin/python -m benchmarks.bench_results [--calls 50] [--repeats 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

MARKER = "## Result storage: cached task hit time"
REDIS_URL = os.environ.get("MEMORY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_DSN = os.environ.get("MEMORY_BENCH_POSTGRES_DSN",
                              "postgresql://postgres@127.0.0.1:5432/postgres")


def _blocks(salt: str, schema: str) -> dict[str, Any]:
    from prefect_redis import RedisDatabase

    from memory_resources.blocks import PostgresMemory, RedisMemory

    host, port = REDIS_URL.split("//", 1)[1].split("/")[0].split(":")
    blocks: dict[str, Any] = {
        "RedisMemory (ours)": RedisMemory(url=REDIS_URL, key_prefix=f"bench:{salt}:"),
        "prefect-redis RedisDatabase": RedisDatabase(host=host, port=int(port)),
        "PostgresMemory (ours)": PostgresMemory(dsn=POSTGRES_DSN, schema=schema),
    }
    for name, block in blocks.items():
        block.save(f"bench-{salt[:8]}-{name.split()[0].lower()}")
    return blocks


def _flow(block: Any, salt: str, calls: int) -> Callable[[], None]:
    from prefect import flow, task
    from prefect.cache_policies import INPUTS

    @task(result_storage=block, cache_policy=INPUTS, persist_result=True,
          result_storage_key=f"bench-{salt}-{{parameters[i]}}")
    def cached(i: int) -> dict[str, Any]:
        return {"i": i, "payload": "x" * 512}

    @flow(name="cached-hits")
    def hits() -> None:
        for i in range(calls):
            state = cached(i, return_state=True)
            assert state.result()["i"] == i

    return hits


def _storage_round(block: Any, keys: list[str], n: int) -> float:
    from prefect.results import ResultStore

    store = ResultStore(result_storage=block, cache_result_in_memory=False)
    started = time.perf_counter()
    for j in range(n):
        key = keys[j % len(keys)]
        assert store.exists(key)
        store.read(key)
    return (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "prefect.md")
    args = parser.parse_args()

    import redis
    from prefect.testing.utilities import prefect_test_harness

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.fixtures.services import create_schema, drop_schema

    salt = uuid.uuid4().hex[:12]
    schema = create_schema(POSTGRES_DSN)
    per_call: dict[str, list[float]] = {}
    per_lookup: dict[str, list[float]] = {}
    try:
        with prefect_test_harness(server_startup_timeout=120):
            blocks = _blocks(salt, schema)
            flows = {name: _flow(block, salt, args.calls) for name, block in blocks.items()}
            for fn in flows.values():
                fn()  # warm-up: stores every result (misses)
            names = list(flows)
            for repeat in range(args.repeats):
                shift = repeat % len(names)  # rotate who goes first (position effects)
                for name in names[shift:] + names[:shift]:
                    fn = flows[name]
                    started = time.perf_counter()
                    fn()
                    per_call.setdefault(name, []).append(
                        (time.perf_counter() - started) / args.calls)
            keys = [f"bench-{salt}-{i}" for i in range(args.calls)]
            for _ in range(10):
                for name, block in blocks.items():
                    per_lookup.setdefault(name, []).append(_storage_round(block, keys, 200))
            for block in blocks.values():
                if hasattr(block, "close"):
                    block.close()
    finally:
        drop_schema(POSTGRES_DSN, schema)
        with redis.Redis.from_url(REDIS_URL) as client:
            client.delete(*[f"bench-{salt}-{i}" for i in range(args.calls)])
            for key in client.scan_iter(f"bench:{salt}:*"):
                client.delete(key)

    base = "prefect-redis RedisDatabase"
    lines = [
        MARKER, "",
        f"A flow calls one cached task (`cache_policy=INPUTS`, `result_storage=<block>`) "
        f"{args.calls} times, every call a cache hit; flows on each storage alternate "
        f"{args.repeats} times (first place rotating) after a warm-up, one process, "
        "temporary Prefect API, loopback "
        f"Redis and PostgreSQL. Python {platform.python_version()}, {os.cpu_count()} cores "
        "(shared). Storage level: `ResultStore.exists` + `read` of a stored record (what a "
        "hit asks of the storage), 10 interleaved rounds of 200 per backend.", "",
        "| result storage | per cached call, median (ms) | ÷ prefect-redis | "
        "exists + read, median (ms) | ÷ prefect-redis |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in blocks:
        call, look = statistics.median(per_call[name]), statistics.median(per_lookup[name])
        lines.append(
            f"| {name} | {call * 1000:.2f} | {call / statistics.median(per_call[base]):.2f}x "
            f"| {look * 1000:.3f} | {look / statistics.median(per_lookup[base]):.2f}x |")
    lines += ["", "Raw per-call times (ms): " + "; ".join(
        f"{n}: {[round(v * 1000, 2) for v in vs]}" for n, vs in per_call.items()), ""]
    report = "\n".join(lines)
    print(report)
    if args.out:
        old = args.out.read_text() if args.out.exists() else ""
        head = old.split(MARKER, 1)[0].rstrip("\n")
        args.out.write_text((head + "\n\n" if head else "") + report)


if __name__ == "__main__":
    main()
