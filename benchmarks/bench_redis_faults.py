"""What a caller of the Redis store sees under each fault, and how long it takes.

    python benchmarks/bench_redis_faults.py [--out FILE]      (about 1.5 min)

Every scenario runs on throwaway redis-servers (tests/servers) with the DEFAULT
configuration (only ``url`` and ``key_prefix`` set), through the loopback TCP proxy
(tests/servers/proxy.py) where a hang is needed. Writes a Markdown table: fault, what the
caller gets, time to error, time to recover.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memory_resources import MemoryAPI  # noqa: E402
from memory_resources.locking import Lock  # noqa: E402
from memory_resources.stores.redis import RedisStore  # noqa: E402
from tests.servers import RedisServer  # noqa: E402
from tests.servers.proxy import TcpProxy  # noqa: E402

Row = tuple[str, str, str, str]
PREFIX = "faultbench:"


def store(url: str, **extra: Any) -> RedisStore:
    """A store with the default configuration on ``url``."""
    return RedisStore({"url": url, "key_prefix": PREFIX, **extra})


def timed(call: Callable[[], Any]) -> tuple[float, str]:
    """Seconds ``call`` took and what it gave (the error's type and start of message)."""
    started = time.monotonic()
    try:
        result = call()
        outcome = f"returned {str(result)[:40]}"
    except Exception as exc:
        outcome = f"`{type(exc).__name__}`: {str(exc)[:90]}"
    return time.monotonic() - started, outcome


def restart() -> Row:
    """set/get in a loop while the server is SIGKILLed and restarted 0.5 s later."""
    server = RedisServer().start()
    client = store(server.url)
    client.set_context("c", {"i": 0})
    failures: list[str] = []
    longest = [0.0]
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                client.set_context("c", {"i": 1})
                client.get_context("c")
            except Exception as exc:
                failures.append(type(exc).__name__)
            longest[0] = max(longest[0], time.monotonic() - started)

    worker = threading.Thread(target=loop)
    worker.start()
    time.sleep(0.3)
    down = time.monotonic()
    server.kill()
    time.sleep(0.5)
    server.start()
    outage = time.monotonic() - down
    time.sleep(1.5)
    stop.set()
    worker.join()
    client.close()
    server.close()
    return (f"server restarted (down {outage:.2f} s), calls in a loop",
            f"{len(failures)} failed calls", "none",
            f"longest call {longest[0]:.2f} s (rode out the outage)")


def refused() -> Row:
    """Nothing listening on the port."""
    server = RedisServer().start()
    url = server.url
    server.close()
    elapsed, outcome = timed(lambda: store(url).get_context("c"))
    return ("nothing listening (connection refused)", outcome, f"{elapsed:.2f} s", "-")


def black_holed() -> list[Row]:
    """A server that stops answering, before or after connecting."""
    server = RedisServer().start()
    rows: list[Row] = []
    with TcpProxy("127.0.0.1", server.port) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        live = store(url)
        live.set_context("c", {"v": 1})
        proxy.blackhole()
        elapsed, outcome = timed(lambda: live.get_context("c"))
        proxy.pass_through()
        recover, _ = timed(lambda: live.get_context("c"))
        rows.append(("server hangs after connecting (black-holed)", outcome,
                     f"{elapsed:.2f} s", f"{recover * 1000:.0f} ms after it answers again"))
        proxy.blackhole()
        elapsed, outcome = timed(lambda: live.append_event("c", {"n": 1}))
        rows.append(("server hangs after append_event was sent", outcome, f"{elapsed:.2f} s",
                     "next call"))
        elapsed, outcome = timed(lambda: store(url).connect())
        rows.append(("server hangs before the first connection: connect()", outcome,
                     f"{elapsed:.2f} s", "-"))
        elapsed, outcome = timed(lambda: store(url).health_check()["status"])
        rows.append(("same: RedisStore.health_check()", outcome, f"{elapsed:.2f} s", "-"))
        with tempfile.TemporaryDirectory() as home:
            api = MemoryAPI(redis_config={"url": url, "key_prefix": PREFIX},
                            embedded_config={"path": str(Path(home) / "m.db")})
            elapsed, outcome = timed(
                lambda: api.health_check()["adapters"]["redis"]["status"])
            rows.append(("same: MemoryAPI.health_check()", outcome, f"{elapsed:.2f} s", "-"))
        proxy.pass_through()
        proxy.cut()
        live.close()
    server.close()
    return rows


def permanent() -> list[Row]:
    """Wrong password and an ACL user without the scripting permission."""
    server = RedisServer(password="right-pw").start()
    with server.client() as admin:
        admin.execute_command("ACL", "SETUSER", "reader", "on", ">pw", "~*", "+@all",
                              "-@scripting")
    base = f"redis://127.0.0.1:{server.port}/0"
    wrong, outcome = timed(lambda: store(base, password="wrong-pw").get_context("c"))
    rows: list[Row] = [("wrong password", outcome, f"{wrong * 1000:.0f} ms", "-")]
    elapsed, outcome = timed(lambda: store(base, username="reader", password="pw")
                             .set_context("c", {}))
    rows.append(("ACL user lacks a permission (NOPERM)", outcome, f"{elapsed * 1000:.0f} ms",
                 "-"))
    server.close()
    return rows


def read_only() -> Row:
    """Writes to a replica promoted 1 s into the call (a failover)."""
    primary = RedisServer().start()
    replica = RedisServer(extra_args=("--replicaof", "127.0.0.1", str(primary.port))).start()
    time.sleep(0.5)
    writer = store(replica.url)
    timer = threading.Timer(1.0, lambda: replica.client().execute_command(
        "REPLICAOF", "NO", "ONE"))
    timer.start()
    elapsed, outcome = timed(lambda: writer.set_context("c", {"v": 1})["version"])
    timer.join()
    writer.close()
    primary.close()
    replica.close()
    return ("writes hit a replica (READONLY), promoted after 1 s", outcome,
            "operation_timeout (10 s) if never promoted", f"{elapsed:.2f} s")


def redlock() -> list[Row]:
    """Acquire+release over 3 masters: healthy, one black-holed, two black-holed."""
    masters = [RedisServer().start() for _ in range(3)]
    rows: list[Row] = []
    with TcpProxy("127.0.0.1", masters[1].port) as one, \
            TcpProxy("127.0.0.1", masters[2].port) as two:
        locks = store(masters[0].url, lock_nodes=[f"redis://127.0.0.1:{one.port}/0",
                                                  f"redis://127.0.0.1:{two.port}/0"])

        def cycles() -> tuple[float, float]:
            times = []
            for _ in range(200):
                started = time.monotonic()
                with Lock(locks, "bench", blocking_timeout=0):
                    pass
                times.append(time.monotonic() - started)
            times.sort()
            return times[len(times) // 2] * 1000, times[int(len(times) * 0.99)] * 1000

        healthy = cycles()
        two.blackhole()
        degraded = cycles()
        rows.append(("Redlock, 1 of 3 masters black-holed: acquire+release",
                     f"p50/p99 {degraded[0]:.2f}/{degraded[1]:.2f} ms "
                     f"(healthy {healthy[0]:.2f}/{healthy[1]:.2f} ms)", "no error", "-"))
        one.blackhole()
        elapsed, outcome = timed(lambda: Lock(locks, "bench", blocking_timeout=0).acquire())
        rows.append(("Redlock, 2 of 3 masters black-holed", outcome, f"{elapsed:.2f} s", "-"))
        one.pass_through()
        two.pass_through()
        one.cut()
        two.cut()
        locks.close()
    for server in masters:
        server.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    rows: list[Row] = [restart(), refused(), *black_holed(), *permanent(), read_only(),
                       *redlock()]
    lines = [f"Redis faults, default config, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
             f", {os.cpu_count()} CPUs", "",
             "| fault | caller sees | time to error | time to recover |",
             "|---|---|---|---|"]
    lines += [f"| {a} | {b.replace('|', '/')} | {c} | {d} |" for a, b, c, d in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
