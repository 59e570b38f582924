"""AsyncMemoryAPI under concurrency vs the raw async clients, and vs the sync MemoryAPI.

    python benchmarks/bench_async.py [--redis redis://127.0.0.1:6379/0]
        [--postgres postgresql://postgres@127.0.0.1:5432/test] [--ops 40] [--out FILE]

Redis: 64 coroutines in one event loop, each doing ``--ops`` pairs of set_context (ttl) +
get_context through ``AsyncMemoryAPI`` (the default, automatic pipelining, and with it
off), against raw
``redis.asyncio`` doing ``SET EX`` + ``json.dumps`` and ``GET`` + ``json.loads`` from 64
coroutines on one pooled client; and the sync ``MemoryAPI`` doing the same pairs from 1
thread and from 8 threads. PostgreSQL: 64 coroutines writing history rows through
``AsyncMemoryAPI.write_flow_run_history`` (history row, key row and audit row in one
statement) against raw asyncpg executing the bare ``INSERT ... ON CONFLICT`` of the row,
and the sync API from 1 and 8 threads. Contenders alternate within each of 5 rounds; each
figure is the median round's operations per second. Writes a Markdown report to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import psycopg2
import redis
import redis.asyncio as aredis
import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memory_resources import AsyncMemoryAPI, MemoryAPI  # noqa: E402

ROUNDS = 5
TASKS = 64
DATA = {"user_id": "user_123", "session_id": "session_456", "turn": 7,
        "history": ["hello", "how can I help?"], "scores": [0.25, 0.5, 0.75]}
UTC = dt.timezone.utc


async def concurrent(op: Callable[[int, int], Awaitable[Any]], ops: int) -> float:
    """``op(task, i)`` from TASKS coroutines, ``ops`` each; operations per second."""
    async def worker(k: int) -> None:
        for i in range(ops):
            await op(k, i)

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(TASKS)))
    return TASKS * ops / (time.perf_counter() - started)


def threaded(op: Callable[[int, int], Any], ops: int, threads: int) -> float:
    """The same ``TASKS * ops`` operations spread over ``threads`` threads; ops/s."""
    per_thread = TASKS * ops // threads

    def worker(k: int) -> None:
        for i in range(per_thread):
            op(k, i)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    started = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return per_thread * threads / (time.perf_counter() - started)


def median_rates(rounds: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(rates) for name, rates in rounds.items()}


async def bench_redis(url: str, ops: int) -> dict[str, float]:
    """Median ops/s (a set+get pair counts as 2 operations) per contender."""
    prefix = f"bench_async:{uuid.uuid4().hex[:8]}:"
    home = tempfile.mkdtemp(prefix="bench-async-")
    config = {"url": url, "key_prefix": prefix, "max_connections": 64}
    ours = AsyncMemoryAPI(redis_config=config, embedded_config={"path": f"{home}/a.db"})
    plain = AsyncMemoryAPI(redis_config=config, embedded_config={"path": f"{home}/b.db"})
    plain._roles["context"].auto_pipeline = False
    sync = MemoryAPI(redis_config=config, embedded_config={"path": f"{home}/c.db"})
    raw = aredis.Redis.from_url(url, max_connections=64, decode_responses=True)
    await ours.connect()
    await plain.connect()
    sync.connect()

    async def api_pair(api: AsyncMemoryAPI, k: int, i: int) -> None:
        await api.set_context(f"s{k}", {**DATA, "turn": i}, ttl=3600)
        record = await api.get_context(f"s{k}")
        assert record is not None

    async def raw_pair(k: int, i: int) -> None:
        await raw.set(f"{prefix}raw:{k}", json.dumps({**DATA, "turn": i}), ex=3600)
        value = await raw.get(f"{prefix}raw:{k}")
        assert value is not None and json.loads(value)

    def sync_pair(k: int, i: int) -> None:
        sync.set_context(f"t{k}", {**DATA, "turn": i}, ttl=3600)
        assert sync.get_context(f"t{k}") is not None

    async def go_ours(k: int, i: int) -> None:
        await api_pair(ours, k, i)

    async def go_plain(k: int, i: int) -> None:
        await api_pair(plain, k, i)

    contenders: dict[str, Callable[[], Awaitable[float]]] = {
        "AsyncMemoryAPI, 64 coroutines (default: auto-pipelining)":
            lambda: concurrent(go_ours, ops),
        "AsyncMemoryAPI, 64 coroutines (auto_pipeline=False)": lambda: concurrent(go_plain, ops),
        "raw redis.asyncio, 64 coroutines": lambda: concurrent(raw_pair, ops),
        "sync MemoryAPI, 1 thread": lambda: asyncio.to_thread(threaded, sync_pair, ops, 1),
        "sync MemoryAPI, 8 threads": lambda: asyncio.to_thread(threaded, sync_pair, ops, 8),
    }
    for run in contenders.values():  # warm-up: connections, scripts, caches
        await run()
    rounds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, run in contenders.items():
            rounds[name].append(2 * await run())
    await ours.disconnect()
    await plain.disconnect()
    sync.disconnect()
    await raw.aclose()
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
    return median_rates(rounds)


async def bench_postgres(dsn: str, ops: int) -> dict[str, float]:
    """Median history writes per second per contender."""
    schema = f"bench_async_{uuid.uuid4().hex[:8]}"
    home = tempfile.mkdtemp(prefix="bench-async-pg-")
    config = {"dsn": dsn, "schema": schema, "max_connections": 8}
    ours = AsyncMemoryAPI(postgres_config=config, embedded_config={"path": f"{home}/a.db"})
    await ours.connect()
    sync = MemoryAPI(postgres_config=config, embedded_config={"path": f"{home}/b.db"})
    sync.connect()
    upsert = (
        "INSERT INTO flow_run_history (flow_id, run_id, status, data, created_at,"
        " updated_at) VALUES ($1, $2, $3, $4::jsonb, $5, $6)"
        " ON CONFLICT (flow_id, run_id, created_at) DO UPDATE SET"
        " status = EXCLUDED.status, data = flow_run_history.data || EXCLUDED.data,"
        " updated_at = EXCLUDED.updated_at"
    )
    raw = await asyncpg.create_pool(dsn, min_size=8, max_size=8,
                                    server_settings={"search_path": f"{schema},public"})
    tag = iter(range(10**9))

    async def ours_write(k: int, i: int) -> None:
        await ours.write_flow_run_history("bench-async", f"{next(tag)}",
                                          {"status": "running", "step": i})

    async def raw_write(k: int, i: int) -> None:
        now = dt.datetime.now(UTC)
        await raw.execute(upsert, "bench-raw", f"{next(tag)}", "running",
                          json.dumps({"step": i}), now, now)

    def sync_write(k: int, i: int) -> None:
        sync.write_flow_run_history("bench-sync", f"{next(tag)}",
                                    {"status": "running", "step": i})

    contenders: dict[str, Callable[[], Awaitable[float]]] = {
        "AsyncMemoryAPI.write_flow_run_history, 64 coroutines":
            lambda: concurrent(ours_write, ops),
        "raw asyncpg bare upsert, 64 coroutines": lambda: concurrent(raw_write, ops),
        "sync MemoryAPI, 1 thread": lambda: asyncio.to_thread(threaded, sync_write, ops, 1),
        "sync MemoryAPI, 8 threads": lambda: asyncio.to_thread(threaded, sync_write, ops, 8),
    }
    for run in contenders.values():
        await run()
    rounds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, run in contenders.items():
            rounds[name].append(await run())
    await ours.disconnect()
    sync.disconnect()
    await raw.close()
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
    conn.close()
    return median_rates(rounds)


def table(rates: dict[str, float], raw_name: str) -> list[str]:
    lines = ["| contender | ops/s (median of 5) | vs raw |", "|---|---:|---:|"]
    for name, rate in rates.items():
        lines.append(f"| {name} | {rate:,.0f} | {rate / rates[raw_name]:.2f}\u00d7 |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--ops", type=int, default=40)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/async.md"))
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    started = dt.datetime.now(UTC)
    redis_rates = asyncio.run(bench_redis(args.redis, args.ops))
    pg_rates = asyncio.run(bench_postgres(args.postgres, max(5, args.ops // 4)))
    with open("/proc/loadavg") as fh:
        load = " ".join(fh.read().split()[:3])
    report = [
        "# AsyncMemoryAPI under concurrency",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"{TASKS} coroutines in one event loop, load average at the end {load}. "
        "Produced by `benchmarks/bench_async.py`; every contender runs in the same process, "
        "alternating within each of 5 rounds.",
        "",
        "## Redis: set_context (ttl) + get_context pairs",
        "",
        *table(redis_rates, "raw redis.asyncio, 64 coroutines"),
        "",
        "## PostgreSQL: history writes",
        "",
        *table(pg_rates, "raw asyncpg bare upsert, 64 coroutines"),
        "",
    ]
    Path(args.out).write_text("\n".join(report))
    print("\n".join(report))


if __name__ == "__main__":
    main()
