"""PostgreSQL-backed context through MemoryAPI vs LangGraph's PostgresStore, same server.

    python benchmarks/bench_langgraph.py [--dsn DSN] [--ops 600] [--out FILE]

``MemoryAPI.from_stores(context=PostgresStore(...))``: ``set_context`` (upsert + audit row
in one statement) and ``get_context``, against ``langgraph.store.postgres.PostgresStore``
``put`` and ``get`` (psycopg 3, its defaults from ``from_conn_string``) on the same
PostgreSQL, each in its own throwaway schema. One thread, the two alternate every 10 calls
with their order rotating, 5 rounds; each figure is the median round. Needs the ``bench``
extra (``pip install -e '.[bench]'``). Writes a Markdown table to ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg2
import structlog
from psycopg2 import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memory_resources import MemoryAPI  # noqa: E402
from memory_resources.stores.postgres import PostgresStore  # noqa: E402

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
"""The `postgres` database: LangGraph's setup() builds an index CONCURRENTLY, which waits for
every open transaction of its database (a test elsewhere holding one in `test` would stall it)."""
ROUNDS = 5
BLOCK = 10
DATA = {"user_id": "user_123", "session_id": "session_456", "turn": 7,
        "history": ["hello", "how can I help?"], "scores": [0.25, 0.5, 0.75]}


def interleaved(contenders: dict[str, Callable[[int], Any]], n: int) -> dict[str, Any]:
    """Per round the median latency of each contender (blocks of BLOCK calls, order
    rotating); the round with the median ratio ours / theirs is reported."""
    names = list(contenders)
    rounds = []
    clock = time.perf_counter
    for _ in range(ROUNDS):
        latencies: dict[str, list[float]] = {name: [] for name in names}
        for block, start in enumerate(range(0, n, BLOCK)):
            shift = block % len(names)
            for name in names[shift:] + names[:shift]:
                call, out = contenders[name], latencies[name]
                for i in range(start, start + BLOCK):
                    began = clock()
                    call(i)
                    out.append(clock() - began)
        rounds.append({name: (statistics.median(v), sum(v) / len(v))
                       for name, v in latencies.items()})
    rounds.sort(key=lambda r: r["ours"][0] / r["theirs"][0])
    return rounds[len(rounds) // 2]


def with_schema(dsn: str, schema: str) -> str:
    """``dsn`` with ``search_path`` set to ``schema`` (libpq ``options``)."""
    joiner = "&" if "?" in dsn else "?"
    return f"{dsn}{joiner}options={quote(f'-csearch_path={schema}')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("MEMORY_BENCH_POSTGRES_DSN")
                        or DEFAULT_DSN)
    parser.add_argument("--ops", type=int, default=600, help="calls per round")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "langgraph.md")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    from langgraph.store.postgres import PostgresStore as LangGraphStore

    ours_schema, theirs_schema = (f"mrbench_{uuid.uuid4().hex[:8]}" for _ in range(2))
    admin = psycopg2.connect(args.dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(theirs_schema)))
    home = tempfile.mkdtemp(prefix="bench-langgraph-")
    store = PostgresStore({"dsn": args.dsn, "schema": ours_schema})
    api = MemoryAPI.from_stores(context=store, events=store,
                                embedded_config={"path": f"{home}/memory.db"})
    api.connect()
    ids = [f"session-{i}" for i in range(100)]
    namespace = ("sessions",)
    try:
        with LangGraphStore.from_conn_string(with_schema(args.dsn, theirs_schema)) as theirs:
            theirs.setup()
            for i in range(100):  # both start with every key present
                api.set_context(ids[i], DATA)
                theirs.put(namespace, ids[i], DATA)
            put = interleaved({
                "ours": lambda i: api.set_context(ids[i % 100], DATA),
                "theirs": lambda i: theirs.put(namespace, ids[i % 100], DATA),
            }, args.ops)
            get = interleaved({
                "ours": lambda i: api.get_context(ids[i % 100]),
                "theirs": lambda i: theirs.get(namespace, ids[i % 100]),
            }, args.ops)
        version = admin.server_version
    finally:
        api.disconnect()
        with admin.cursor() as cur:
            for schema in (ours_schema, theirs_schema):
                cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(schema)))
        admin.close()
        shutil.rmtree(home, ignore_errors=True)
    write(args, version, {"set_context vs PostgresStore.put": put,
                          "get_context vs PostgresStore.get": get})


def write(args: argparse.Namespace, server_version: int, rows: dict[str, Any]) -> None:
    """Print and save the Markdown table."""
    from importlib.metadata import version

    lines = [
        "# PostgreSQL context: MemoryAPI vs LangGraph's PostgresStore",
        "",
        f"`python benchmarks/bench_langgraph.py --ops {args.ops}` on {platform.machine()}, "
        f"Python {platform.python_version()}, PostgreSQL {server_version // 10000} "
        f"(loopback), langgraph-checkpoint-postgres "
        f"{version('langgraph-checkpoint-postgres')}, psycopg {version('psycopg')} vs "
        f"psycopg2 {version('psycopg2-binary')}; one thread, alternating every {BLOCK} calls "
        f"(order rotating), median of {ROUNDS} rounds.",
        "",
        "| operation (ours vs LangGraph) | ours p50 µs | ours mean µs | LangGraph p50 µs "
        "| LangGraph mean µs | ours / LangGraph (p50) | (mean) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, got in rows.items():
        (op50, omean), (tp50, tmean) = got["ours"], got["theirs"]
        lines.append(f"| {name} | {op50 * 1e6:.0f} | {omean * 1e6:.0f} | {tp50 * 1e6:.0f} "
                     f"| {tmean * 1e6:.0f} | {op50 / tp50:.2f}x | {omean / tmean:.2f}x |")
    lines += ["", "< 1 means ours is faster. Ours writes an audit row in the same statement "
              "as each set_context (LangGraph's put writes none) and keeps a version and "
              "created_at per context; both upsert one row per call in autocommit (one "
              "commit, so one WAL flush, each)."]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
