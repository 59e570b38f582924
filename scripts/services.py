"""Prepare or run the test services outside pytest.

    python scripts/services.py check    # resolve binaries (apt-get install redis-server and
                                        # postgresql when missing and root; no cluster is
                                        # created or started), print the plan; --start also starts
                                        # and stops one throwaway of each to prove they work
    python scripts/services.py serve    # start throwaway Redis + PostgreSQL 18 (pgvector),
                                        # print MEMORY_TEST_* exports, run until Ctrl-C

Run from the repository root (``make services`` does); it imports ``tests.servers``.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.servers import (  # noqa: E402
    PostgresServer,
    RedisServer,
    ServerStartError,
    find_redis_server,
    postgres_bin_dir,
    ssl_postgres_bin_dir,
)
from tests.servers import resolve as r  # noqa: E402


def check(start: bool) -> int:
    """Resolve every binary the fixtures may need; optionally start/stop one of each."""
    try:
        binary = find_redis_server()
        pg_bin = postgres_bin_dir()
    except ServerStartError as exc:
        print(f"services: {exc}", file=sys.stderr)
        return 1
    print(f"services: throwaway redis binary {binary.path} ({binary.source})")
    print(f"services: embedded postgres binaries {pg_bin}")
    try:
        print(f"services: postgres with OpenSSL (TLS tests) {ssl_postgres_bin_dir()}")
    except ServerStartError as exc:
        print(f"services: {exc}", file=sys.stderr)
        return 1
    print("services: redis=" + r.describe(r.redis_choice(), "throwaway"))
    print("services: postgres=" + r.describe(r.postgres_choice(), "embedded"))
    print("services: pgvector=" + r.describe(r.pgvector_choice(), "embedded"))
    if start:
        try:
            with RedisServer() as redis_server:
                print(f"services: started redis {redis_server.version()} on {redis_server.url}")
            with PostgresServer(fsync=False) as pg:
                print(f"services: started postgres {pg.version()} on {pg.dsn}")
        except ServerStartError as exc:
            print(f"services: {exc}", file=sys.stderr)
            return 1
    return 0


def serve(fsync: bool) -> int:
    """Start a throwaway Redis and PostgreSQL, print exports, wait for SIGINT/SIGTERM."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with RedisServer() as redis_server, PostgresServer(fsync=fsync) as pg:
        print(f"export MEMORY_TEST_REDIS_URL={redis_server.url}")
        print(f"export MEMORY_TEST_POSTGRES_DSN={pg.dsn}")
        print(f"export MEMORY_TEST_PGVECTOR_DSN={pg.dsn}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    check_cmd = sub.add_parser("check", help="resolve binaries and print the plan")
    check_cmd.add_argument("--start", action="store_true", help="also start/stop one of each")
    serve_cmd = sub.add_parser("serve", help="run throwaway servers until interrupted")
    serve_cmd.add_argument("--fsync", action="store_true", help="keep fsync on (benchmarks)")
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(args.start)
    return serve(args.fsync)


if __name__ == "__main__":
    raise SystemExit(main())
