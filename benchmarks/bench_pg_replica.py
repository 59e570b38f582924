"""PostgreSQL primary + streaming replica: replay lag, the cost of read-your-writes, and how
long a read takes to fall back to the primary when the replica is down (< 2 min).

A throwaway PostgreSQL 18 primary (fsync on) and a ``pg_basebackup -R`` hot standby on
loopback (``tests/servers``). Figures, medians over interleaved rounds:

* replay lag: a commit on the primary (raw psycopg2) until the replica's
  ``pg_last_wal_replay_lsn()`` passes it;
* read after write (``write_flow_run`` then ``read_flow_runs``, the read timed) with
  ``replica_consistency`` read_your_writes vs eventual vs no replica, and a read that
  follows no write (read_your_writes skips the check);
* fallback: the first read after the replica was killed / reset+refused / black-holed
  (``replica_timeout`` 2 s default, then 0.5 s), and a read while the replica is marked
  down; sync and async stores.

Usage: ``python benchmarks/bench_pg_replica.py [--rounds 200]``; prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memory_resources.records import FlowRunWrite
from memory_resources.stores.postgres import PostgresStore
from memory_resources.stores.postgres.aio import AsyncPostgresStore
from tests.servers import PostgresServer
from tests.servers.postgres_replica import PostgresReplica
from tests.servers.proxy import TcpProxy


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return f"{statistics.median(values) * 1000:.2f} ms (p95 {p95 * 1000:.2f})"


def replay_lag(primary: PostgresServer, replica: PostgresReplica, rounds: int) -> list[float]:
    conn = primary.connect()
    rconn = replica.connect()
    conn.autocommit = rconn.autocommit = True
    lags = []
    with conn.cursor() as cur, rconn.cursor() as rcur:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_lag (id serial PRIMARY KEY, v text)")
        for _ in range(rounds):
            cur.execute("INSERT INTO bench_lag (v) VALUES ('x')")
            committed = time.perf_counter()
            cur.execute("SELECT pg_current_wal_lsn()::text")
            lsn = cur.fetchone()[0]
            while True:
                rcur.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))
                if rcur.fetchone()[0]:
                    break
            lags.append(time.perf_counter() - committed)
        cur.execute("DROP TABLE bench_lag")
    conn.close()
    rconn.close()
    return lags


def read_after_write(stores: dict[str, PostgresStore], rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in stores}
    out["read_your_writes, no write before"] = []
    flow = f"bench-{uuid.uuid4().hex[:6]}"
    for i in range(rounds):
        for name, store in stores.items():  # interleaved
            store.write_flow_run(FlowRunWrite(flow, f"{name}-{i}", status="running"))
            started = time.perf_counter()
            store.read_flow_runs(flow, limit=5)
            out[name].append(time.perf_counter() - started)
        started = time.perf_counter()
        stores["read_your_writes"].read_flow_runs(flow, limit=5)
        out["read_your_writes, no write before"].append(time.perf_counter() - started)
    return out


def _timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _run(loop: asyncio.AbstractEventLoop, store: AsyncPostgresStore) -> Any:
    return loop.run_until_complete(store.read_flow_runs("f"))


def fallback(primary: PostgresServer, replica: PostgresReplica, schema: str,
             replica_timeout: float) -> list[tuple[str, str, float, float]]:
    rows = []
    for fault in ("killed", "refused", "blackholed"):
        with TcpProxy(replica.host, replica.port) as proxy:
            config = {"dsn": primary.dsn, "schema": schema, "auto_migrate": False,
                      "read_replica_dsn": f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres",
                      "replica_timeout": replica_timeout, "replica_consistency": "eventual"}
            sync = PostgresStore(config)
            loop = asyncio.new_event_loop()
            aio = AsyncPostgresStore(config)
            loop.run_until_complete(aio.connect())
            sync.read_flow_runs("f")
            loop.run_until_complete(aio.read_flow_runs("f"))
            if fault == "killed":
                replica.kill()
            elif fault == "refused":
                proxy.cut()
                proxy.reject()
            else:
                proxy.blackhole()
            reads: dict[str, Callable[[], Any]] = {
                "sync": functools.partial(sync.read_flow_runs, "f"),
                "async": functools.partial(_run, loop, aio),
            }
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for kind, read in reads.items():
                    rows.append((fault, kind, _timed(read), _timed(read)))
            sync.close()
            loop.run_until_complete(aio.close())
            loop.close()
            if fault == "killed":
                replica.start()
                replica.wait_streaming()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with PostgresServer(fsync=True) as primary, PostgresReplica(primary) as replica:
        replica.wait_streaming()
        schema = "bench_replica"
        migrate = PostgresStore({"dsn": primary.dsn, "schema": schema})
        migrate.connect()
        migrate.close()
        replica.wait_caught_up()
        lags = replay_lag(primary, replica, args.rounds)
        base = {"dsn": primary.dsn, "schema": schema, "auto_migrate": False}
        stores = {
            "read_your_writes": PostgresStore({**base, "read_replica_dsn": replica.dsn}),
            "eventual": PostgresStore({**base, "read_replica_dsn": replica.dsn,
                                       "replica_consistency": "eventual"}),
            "no replica": PostgresStore(base),
        }
        reads = read_after_write(stores, args.rounds)
        status = stores["read_your_writes"].replica_status()
        for store in stores.values():
            store.close()
        falls = [(timeout, *row) for timeout in (2.0, 0.5)
                 for row in fallback(primary, replica, schema, timeout)]
    print(f"load: {os.getloadavg()}")
    print(f"replay lag (commit -> replayed on the replica): {_ms(lags)}")
    for name, values in reads.items():
        print(f"read after write, {name}: {_ms(values)}")
    print(f"read_your_writes routing: {status}")
    print("| replica_timeout | fault | store | first read | read while down |")
    for timeout, fault, kind, first, then in falls:
        print(f"| {timeout:g} s | {fault} | {kind} | {first * 1000:.0f} ms | "
              f"{then * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
