"""MemoryAPI (embedded SQLite) and its SQLiteStore vs raw sqlite3 doing the same statements.

Run: ``python benchmarks/bench_sqlite.py [--ops N] [--block B] [--out FILE]``.

What "raw" does, per operation, on its own file with the same schema and pragmas (WAL,
synchronous=NORMAL, foreign_keys=ON, busy_timeout) and one connection in autocommit mode:

* set_context: ``json.dumps`` of the data, ``BEGIN IMMEDIATE``, the delete-if-expired, the
  upsert ``... RETURNING version, created_at``, the audit ``INSERT`` (details via
  ``json.dumps``), ``COMMIT``.
* get_context: the ``SELECT`` with the expiry condition and ``json.loads`` of the data.
* append_event: ``json.dumps``, ``BEGIN IMMEDIATE``, the delete-if-expired, the event
  ``INSERT``, the audit ``INSERT``, ``COMMIT``.

The store additionally validates arguments, encodes through the codec (tagged types, size
limit), reads the acting run ids, builds the record it returns (timestamps as ISO text,
data decoded) and maps driver errors. Store and raw alternate in blocks so both run under
the same machine load; the median block is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from memory_resources import MemoryAPI
from memory_resources.clock import utc_iso
from memory_resources.config import EmbeddedConfig
from memory_resources.stores.sqlite import SQLiteStore
from memory_resources.stores.sqlite.audit import INSERT_AUDIT
from memory_resources.stores.sqlite.context import (
    DELETE_EVENTS_OF,
    DELETE_EXPIRED_ONE,
    SELECT_CONTEXT,
    UPSERT_CONTEXT,
)
from memory_resources.stores.sqlite.events import INSERT_EVENT

DATA = {
    "user_id": "user_123",
    "session_id": "session_456",
    "goal": "summarise the quarterly report",
    "steps": [{"n": 1, "tool": "search"}, {"n": 2, "tool": "read"}],
    "score": 0.87,
}
EVENT = {"type": "user_action", "action": "login", "ok": True}


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Raw:
    """The same statements on a plain sqlite3 connection."""

    def __init__(self, path: Path) -> None:
        SQLiteStore(EmbeddedConfig(path=str(path))).connect()  # same schema, then raw only
        self.conn = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        self.conn.execute("PRAGMA busy_timeout = 30000")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA foreign_keys = ON")

    def set_context(self, context_id: str, data: dict[str, object]) -> None:
        conn = self.conn
        payload = _dumps(data)
        now = time.time()
        stamp = utc_iso(now)
        conn.execute("BEGIN IMMEDIATE")
        if conn.execute(DELETE_EXPIRED_ONE, (context_id, now)).rowcount:
            conn.execute(DELETE_EVENTS_OF, (context_id,))
        version, _created = conn.execute(
            UPSERT_CONTEXT, (context_id, payload, stamp, None, None)).fetchone()
        conn.execute(INSERT_AUDIT, (stamp, "context.set", context_id, None, None,
                                    _dumps({"version": version, "ttl": None})))
        conn.execute("COMMIT")

    def get_context(self, context_id: str) -> object:
        row = self.conn.execute(SELECT_CONTEXT, (context_id, time.time())).fetchone()
        return json.loads(row[0])

    def append_event(self, context_id: str, event: dict[str, object]) -> None:
        conn = self.conn
        payload = _dumps(event)
        now = time.time()
        stamp = utc_iso(now)
        conn.execute("BEGIN IMMEDIATE")
        if conn.execute(DELETE_EXPIRED_ONE, (context_id, now)).rowcount:
            conn.execute(DELETE_EVENTS_OF, (context_id,))
        event_id = conn.execute(INSERT_EVENT, (context_id, stamp, payload)).lastrowid
        conn.execute(INSERT_AUDIT, (stamp, "event.append", context_id, None, None,
                                    _dumps({"event_id": str(event_id)})))
        conn.execute("COMMIT")


def _block_time(fn: Callable[[int], object], start: int, count: int) -> float:
    began = time.perf_counter()
    for i in range(start, start + count):
        fn(i)
    return time.perf_counter() - began


def run(ops: int, block: int) -> list[tuple[str, float, float, float, float, float]]:
    """(operation, MemoryAPI ops/s, store ops/s, raw ops/s, median paired time ratio
    MemoryAPI/raw, the same store/raw).

    MemoryAPI (what users call), the store it serves and raw alternate in blocks of
    ``block`` operations, their order rotating, so all see the same machine load; ops/s come
    from the median block time, the ratios are medians of paired ratios.
    """
    with tempfile.TemporaryDirectory() as tmp:
        api = MemoryAPI(embedded_config={"path": f"{tmp}/store.db"})
        api.connect()
        store: SQLiteStore = api.store("context")
        raw = Raw(Path(tmp) / "raw.db")
        keys = [f"ctx-{i % 100}" for i in range(ops + block)]
        cases: list[tuple[str, dict[str, Callable[[int], object]]]] = [
            ("set_context", {"api": lambda i: api.set_context(keys[i], DATA),
                             "store": lambda i: store.set_context(keys[i], DATA),
                             "raw": lambda i: raw.set_context(keys[i], DATA)}),
            ("get_context", {"api": lambda i: api.get_context(keys[i]),
                             "store": lambda i: store.get_context(keys[i]),
                             "raw": lambda i: raw.get_context(keys[i])}),
            ("append_event", {"api": lambda i: api.append_event(keys[i], EVENT),
                              "store": lambda i: store.append_event(keys[i], EVENT),
                              "raw": lambda i: raw.append_event(keys[i], EVENT)}),
        ]
        results = []
        for name, contenders in cases:
            names = list(contenders)
            for fn in contenders.values():  # warm the statement caches
                _block_time(fn, 0, block)
            times: dict[str, list[float]] = {key: [] for key in names}
            for turn, start in enumerate(range(0, ops, block)):
                shift = turn % len(names)  # rotate who goes first
                for key in names[shift:] + names[:shift]:
                    times[key].append(_block_time(contenders[key], start, block))
            api_ratio, store_ratio = (
                statistics.median(m / r for m, r in zip(times[key], times["raw"], strict=True))
                for key in ("api", "store"))
            results.append((name, *(block / statistics.median(times[key]) for key in names),
                            api_ratio, store_ratio))
        api.disconnect()
        raw.conn.close()
    return results


def render(results: list[tuple[str, float, float, float, float, float]], ops: int,
           block: int) -> str:
    """A markdown table of the results."""
    lines = [
        f"{ops} operations of each kind per contender, alternating in blocks of {block} "
        f"(order rotating); Python {platform.python_version()}, SQLite "
        f"{sqlite3.sqlite_version}, {platform.machine()}, {os.cpu_count()} cores, load "
        f"average {os.getloadavg()[0]:.1f} at the end (ratios are measured side by side, so "
        "a busy machine lowers every column)",
        "",
        "| operation | MemoryAPI ops/s | SQLiteStore ops/s | raw sqlite3 ops/s "
        "| MemoryAPI / raw (median) | store-level / raw |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, api, mine, theirs, api_ratio, ratio in results:
        lines.append(f"| {name} | {api:,.0f} | {mine:,.0f} | {theirs:,.0f} "
                     f"| {api_ratio:.2f}x | {ratio:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ops", type=int, default=3000)
    parser.add_argument("--block", type=int, default=200)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "sqlite.md",
                        help="markdown report to write")
    args = parser.parse_args(argv)
    table = render(run(args.ops, args.block), args.ops, args.block)
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            "# SQLite embedded store vs raw sqlite3\n\n"
            "Produced by `python benchmarks/bench_sqlite.py --out benchmarks/results/sqlite.md`"
            " (target: time ratio <= 1.5x). What raw does is listed in the script's"
            " docstring: the same statements, pragmas, JSON encoding and audit insert."
            " Write rates are bounded by SQLite's own work (commit, WAL append, periodic"
            " checkpoints), identical on both sides; ours adds argument validation, the"
            " codec, run-id lookup and building the returned record. MemoryAPI is what"
            " users call; the store-level column is the same store called directly."
            " On a shared, busy machine ratios vary by about +-0.2 between runs.\n\n"
            f"{table}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
