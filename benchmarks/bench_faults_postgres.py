"""Time to error and time to recover for each PostgreSQL fault, through MemoryAPI with the
default configuration, on a throwaway server behind the loopback proxy.

Run: ``python benchmarks/bench_faults_postgres.py`` (about 1 minute); writes
``benchmarks/results/faults_postgres.md``.
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memory_resources import MemoryAPI  # noqa: E402
from tests.servers import PostgresServer  # noqa: E402
from tests.servers.proxy import TcpProxy  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "faults_postgres.md"
ROWS: list[tuple[str, str, str, str]] = []


def timed(call: Callable[[], Any]) -> tuple[str, float]:
    """``call()``'s outcome (``ok`` or the error's class name) and its duration in s."""
    started = time.monotonic()
    try:
        call()
    except Exception as exc:  # the outcome is what is measured
        return type(exc).__name__, time.monotonic() - started
    return "ok", time.monotonic() - started


def record(fault: str, outcome: str, to_error: float | None, recovery: str) -> None:
    shown = "-" if to_error is None else f"{to_error:.2f} s"
    ROWS.append((fault, outcome, shown, recovery))
    print(f"{fault}: {outcome} in {shown}; {recovery}", flush=True)


def api_for(dsn: str, **options: Any) -> MemoryAPI:
    return MemoryAPI(postgres_config={"dsn": dsn, "schema": "faults", **options})


def hung_established(server: PostgresServer) -> None:
    with TcpProxy("127.0.0.1", server.port) as proxy:
        api = api_for(f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres")
        api.write_flow_run_history("f", "warm", {"status": "running"})
        proxy.blackhole()
        outcome, took = timed(lambda: api.write_flow_run_history("f", "x", {"status": "ok"}))
        record("established connection black-holed: write_flow_run_history", outcome, took,
               "")
        started = time.monotonic()
        report = api.health_check()
        record("established connection black-holed: health_check()",
               f"postgres {report['adapters']['postgres']['status']}",
               time.monotonic() - started, "")
        proxy.pass_through()
        outcome, took = timed(lambda: api.write_flow_run_history("f", "y", {"status": "ok"}))
        ROWS[-2] = (*ROWS[-2][:3], f"traffic back: next call {outcome} in {took * 1000:.0f} ms")
        api.disconnect()


def hung_at_connect(server: PostgresServer) -> None:
    with TcpProxy("127.0.0.1", server.port) as proxy:
        proxy.blackhole()
        api = api_for(f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres")
        outcome, took = timed(lambda: api.write_flow_run_history("f", "x", {"status": "ok"}))
        record("hung server (accepts, never answers): first call connects", outcome, took,
               "")
        api.disconnect()


def refused(server: PostgresServer) -> None:
    api = api_for(server.dsn)
    api.write_flow_run_history("f", "warm", {"status": "running"})
    server.stop()
    outcome, took = timed(lambda: api.write_flow_run_history("f", "x", {"status": "ok"}))
    record("server stopped (connection refused)", outcome, took, "")
    server.start()
    outcome, took = timed(lambda: api.write_flow_run_history("f", "y", {"status": "ok"}))
    ROWS[-1] = (*ROWS[-1][:3], f"server back: next call {outcome} in {took * 1000:.0f} ms")
    api.disconnect()


def restart_under_calls(server: PostgresServer) -> None:
    api = api_for(server.dsn, max_connections=4)
    api.write_flow_run_history("f", "warm", {"status": "running"})
    failures: list[str] = []
    latencies: list[float] = []
    stop = threading.Event()

    def worker(n: int) -> None:
        i = 0
        while not stop.is_set():
            outcome, took = timed(lambda i=i: api.write_flow_run_history(
                "f", f"r{n}-{i}", {"status": "completed"}))
            latencies.append(took)
            if outcome != "ok":
                failures.append(outcome)
            i += 1
            time.sleep(0.005)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    started = time.monotonic()
    server.restart()
    downtime = time.monotonic() - started
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()
    record(f"server restarted under 4 writers ({downtime:.2f} s down)",
           f"{len(failures)} failed of {len(latencies)} calls", None,
           f"slowest call {max(latencies):.2f} s (waited for the server)")
    api.disconnect()


def terminated_idle(server: PostgresServer) -> None:
    api = api_for(server.dsn, application_name="mr_bench_idle", max_connections=3)
    for i in range(3):
        api.append_event("ctx", {"i": i})
    conn = server.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = 'mr_bench_idle'")
    time.sleep(0.2)
    conn.close()
    outcomes = [timed(lambda i=i: api.append_event("ctx", {"after": i})) for i in range(30)]
    failed = sum(1 for outcome, _ in outcomes if outcome != "ok")
    record("idle pooled connections terminated (pg_terminate_backend)",
           f"{failed} failed of 30 append_event", None,
           f"first call {outcomes[0][1] * 1000:.1f} ms (reconnect), median "
           f"{sorted(t for _, t in outcomes)[15] * 1000:.1f} ms")
    api.disconnect()


def permanent(server: PostgresServer) -> None:
    conn = server.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE ROLE mr_pw LOGIN PASSWORD 'right'")
    hba = server.data_dir / "pg_hba.conf"
    hba.write_text("host all mr_pw 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\n")
    if server.user is not None:
        import shutil

        shutil.chown(hba, server.user)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_reload_conf()")
    conn.close()
    time.sleep(0.3)
    base = f"127.0.0.1:{server.port}"
    for fault, dsn in (
        ("wrong password", f"postgresql://mr_pw:wrong@{base}/postgres"),
        ("role does not exist", f"postgresql://mr_ghost@{base}/postgres"),
        ("database does not exist", f"postgresql://postgres@{base}/mr_nodb"),
    ):
        api = api_for(dsn)
        outcome, took = timed(lambda api=api: api.write_flow_run_history(
            "f", "x", {"status": "ok"}))
        record(fault, outcome, took, "never retried: fix the configuration")
        api.disconnect()


def main() -> None:
    with PostgresServer(fsync=False) as server:
        for step in (hung_established, hung_at_connect, refused, restart_under_calls,
                     terminated_idle, permanent):
            step(server)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# PostgreSQL faults: time to error, time to recover",
        "",
        f"`python benchmarks/bench_faults_postgres.py`, {stamp}, MemoryAPI with the default",
        "postgres_config (operation_timeout 10 s), throwaway PostgreSQL 18 (fsync off) on",
        "loopback, the tests' TCP proxy for the hangs. 2-core machine shared with other jobs.",
        "",
        "| fault | what the caller gets | time to error | recovery |",
        "|---|---|---:|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in ROWS),
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
