"""PostgreSQL over TLS (verify-full) vs plaintext on the same throwaway server (< 1 min).

A PostgreSQL with ``ssl=on`` (the distribution build: the embedded wheel has no OpenSSL)
and a pg_hba.conf that accepts both; interleaved rounds, medians:

* a new connection (raw psycopg2 ``connect`` + ``close``, and asyncpg ``connect``), the
  cost the pool pays once per connection (``max_lifetime``, reconnects);
* ``PostgresStore.read_flow_runs`` on a warm pool (what every read pays), and
  ``write_flow_run``.

Usage: ``python benchmarks/bench_pg_tls.py [--rounds 200]``; prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import psycopg2

from memory_resources.records import FlowRunWrite
from memory_resources.stores.postgres import PostgresStore
from memory_resources.stores.postgres.aio_driver import tls_option
from tests.servers import PostgresServer, ssl_postgres_bin_dir
from tests.servers.postgres import _chown_tree, service_user
from tests.servers.postgres_tls import PostgresPki

BOTH = "host all all 127.0.0.1/32 trust\nhostssl all all 127.0.0.1/32 trust\n"


def _timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _libpq(port: int, options: dict[str, str]) -> None:
    psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                     **options).close()


async def _asyncpg(port: int, options: dict[str, str]) -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres",
                                 database="postgres", ssl=tls_option(options))
    await conn.close()


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    pki = PostgresPki.make()
    server_dir = pki.directory / "server"
    (server_dir / "both_hba.conf").write_text(BOTH)
    user = service_user()
    if user is not None:
        _chown_tree(server_dir, user)
    settings = {**pki.server_settings(), "hba_file": str(server_dir / "both_hba.conf")}
    try:
        with PostgresServer(fsync=True, settings=settings, bin_dir=ssl_postgres_bin_dir()) as pg:
            base = {"host": "127.0.0.1", "port": pg.port, "user": "postgres",
                    "database": "postgres", "schema": "bench_tls"}
            tls = {"sslmode": "verify-full", "sslrootcert": str(pki.ca)}
            modes = {"plaintext": {"sslmode": "disable"}, "TLS verify-full": tls}
            setup = PostgresStore({**base, "sslmode": "disable"})
            conn = pg.connect()
            conn.autocommit = True
            conn.cursor().execute("CREATE SCHEMA IF NOT EXISTS bench_tls")
            conn.close()
            setup.connect()
            setup.close()
            figures: dict[str, dict[str, list[float]]] = {m: {} for m in modes}
            stores = {m: PostgresStore({**base, **o}) for m, o in modes.items()}
            loop = asyncio.new_event_loop()

            for i in range(args.rounds):
                for mode, options in modes.items():
                    rows = figures[mode]
                    store = stores[mode]
                    steps: dict[str, Callable[[], Any]] = {
                        "psycopg2 connect + close": functools.partial(_libpq, pg.port, options),
                        "asyncpg connect + close": functools.partial(
                            loop.run_until_complete, _asyncpg(pg.port, options)),
                        "write_flow_run (warm pool)": functools.partial(
                            store.write_flow_run,
                            FlowRunWrite("bench", f"{mode}-{i}", status="running")),
                        "read_flow_runs (warm pool)": functools.partial(
                            store.read_flow_runs, "bench", limit=5),
                    }
                    for name, step in steps.items():
                        rows.setdefault(name, []).append(_timed(step))
            loop.close()
            for store in stores.values():
                store.close()
            version = pg.version()
    finally:
        pki.close()
    print(f"load: {os.getloadavg()}; PostgreSQL {version}; {args.rounds} rounds")
    print("| figure | plaintext | TLS verify-full |")
    print("|---|---|---|")
    for name in figures["plaintext"]:
        print(f"| {name} | {_ms(figures['plaintext'][name])} | "
              f"{_ms(figures['TLS verify-full'][name])} |")


if __name__ == "__main__":
    main()
