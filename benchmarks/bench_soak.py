"""Soak: 8 workers, ~60 s of mixed MemoryAPI calls on Redis + PostgreSQL, with one restart
of each server in the middle; then every acknowledged write is read back.

Reports ops/s, p50/p99 per operation, errors, lost and duplicated records (an
acknowledged write missing, or stored twice), the process RSS and the servers' connection
counts at start and end. Throwaway servers (tests/servers): Redis with ``SHUTDOWN SAVE``
on stop, PostgreSQL 18 with fsync on.

Run: ``python benchmarks/bench_soak.py [--seconds 60] [--workers 8]``; writes
``benchmarks/results/soak.md``.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memory_resources import MemoryAPI  # noqa: E402
from tests.servers import PostgresServer, RedisServer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "soak.md"
OPS = ("set_context", "get_context", "append_event", "write_flow_run_history",
       "write_task_output", "read_flow_run_history")
LOCK_EVERY = 50


class Worker:
    """One thread of mixed calls; remembers what was acknowledged and how long each took."""

    def __init__(self, api: MemoryAPI, n: int, stop: threading.Event) -> None:
        self.api, self.n, self.stop = api, n, stop
        self.latency: dict[str, list[float]] = collections.defaultdict(list)
        self.errors: collections.Counter[str] = collections.Counter()
        self.first_message: dict[str, str] = {}
        self.events: list[int] = []
        self.runs: list[str] = []
        self.outputs: list[str] = []
        self.unacknowledged = 0
        self.thread = threading.Thread(target=self.run, name=f"soak-{n}")
        self.started = time.monotonic()

    @property
    def context(self) -> str:
        return f"soak-ctx-{self.n}"

    @property
    def flow(self) -> str:
        return f"soak-flow-{self.n}"

    def call(self, op: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        started = time.perf_counter()
        try:
            fn(*args, **kwargs)
        except Exception as exc:  # counted: the soak reports every error
            key = f"{op}: {type(exc).__name__}"
            self.errors[key] += 1
            self.first_message.setdefault(
                key, f"at {time.monotonic() - self.started:.1f} s: {str(exc)[:160]}")
            return False
        finally:
            self.latency[op].append(time.perf_counter() - started)
        return True

    def locked(self) -> None:
        with self.api.acquire_lock(f"soak-lock-{self.n % 2}", timeout=5, blocking_timeout=2):
            pass

    def run(self) -> None:
        api, i = self.api, 0
        while not self.stop.is_set():
            op = OPS[i % len(OPS)]
            if op == "set_context":
                self.call(op, api.set_context, self.context, {"i": i}, ttl=3600)
            elif op == "get_context":
                self.call(op, api.get_context, self.context)
            elif op == "append_event":
                if self.call(op, api.append_event, self.context, {"seq": i}):
                    self.events.append(i)
                else:
                    self.unacknowledged += 1
            elif op == "write_flow_run_history":
                run_id = f"run-{self.n}-{i}"
                if self.call(op, api.write_flow_run_history, self.flow, run_id,
                             {"status": "completed", "i": i}):
                    self.runs.append(run_id)
                else:
                    self.unacknowledged += 1
            elif op == "write_task_output":
                task_id = f"soak-task-{self.n}-{i}"
                if self.call(op, api.write_task_output, task_id, {"i": i},
                             task_run_id=task_id):  # as the capture hooks do: idempotent
                    self.outputs.append(task_id)
                else:
                    self.unacknowledged += 1
            else:
                self.call(op, api.read_flow_run_history, self.flow, limit=5)
            if i % LOCK_EVERY == 0:
                self.call("lock acquire+release", self.locked)
            i += 1


def read_back(api: MemoryAPI, worker: Worker) -> tuple[int, int]:
    """(lost, duplicated) among the worker's acknowledged writes."""
    lost = duplicated = 0
    seen: collections.Counter[int] = collections.Counter()
    since = None
    while True:
        page = api.get_events(worker.context, since=since, limit=1000)
        seen.update(int(e["data"]["seq"]) for e in page)
        if len(page) < 1000:
            break
        since = page[-1]["id"]
    for seq in worker.events:
        lost += seen[seq] == 0
    duplicated += sum(count - 1 for count in seen.values() if count > 1)
    rows = collections.Counter(r["run_id"] for r in api.read_flow_run_history(
        worker.flow, limit=10_000))
    lost += sum(rows[run] == 0 for run in worker.runs)
    duplicated += sum(count - 1 for count in rows.values() if count > 1)
    for task_id in worker.outputs:
        versions = len(api.list_task_outputs(task_id))
        lost += versions == 0
        duplicated += max(0, versions - 1)
    return lost, duplicated


def connections(redis_server: RedisServer, pg: PostgresServer) -> tuple[int, int]:
    """(Redis connected_clients, PostgreSQL client backends), the probes excluded."""
    with redis_server.client() as client:
        redis_clients = int(client.info("clients")["connected_clients"]) - 1
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                        "'client backend' AND pid <> pg_backend_pid()")
            row = cur.fetchone()
    finally:
        conn.close()
    return redis_clients, int(row[0]) if row else -1


def restart(what: str, server: Any, log: list[str], started: float) -> None:
    at = time.monotonic() - started
    began = time.monotonic()
    server.stop()
    server.start()
    log.append(f"{what} restarted at {at:.1f} s (down {time.monotonic() - began:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    process = psutil.Process()
    with RedisServer() as redis_server, PostgresServer() as pg:
        api = MemoryAPI(redis_config={"url": redis_server.url, "max_connections": 32},
                        postgres_config={"dsn": pg.dsn, "max_connections": args.workers})
        api.connect()
        api.write_flow_run_history("warm", "warm", {"status": "completed"})
        rss_start = process.memory_info().rss
        conns_start = connections(redis_server, pg)
        stop = threading.Event()
        workers = [Worker(api, n, stop) for n in range(args.workers)]
        events: list[str] = []
        started = time.monotonic()
        for worker in workers:
            worker.thread.start()
        third = args.seconds / 3
        time.sleep(third)
        restart("Redis", redis_server, events, started)
        time.sleep(max(0.0, 2 * third - (time.monotonic() - started)))
        restart("PostgreSQL", pg, events, started)
        time.sleep(max(0.0, args.seconds - (time.monotonic() - started)))
        stop.set()
        for worker in workers:
            worker.thread.join()
        elapsed = time.monotonic() - started
        rss_end = process.memory_info().rss
        conns_end = connections(redis_server, pg)
        lost = duplicated = 0
        for worker in workers:
            worker_lost, worker_dup = read_back(api, worker)
            lost += worker_lost
            duplicated += worker_dup
        api.disconnect()
    report(args, workers, events, elapsed, lost, duplicated, (rss_start, rss_end),
           conns_start, conns_end)


def report(args: argparse.Namespace, workers: list[Worker], events: list[str],
           elapsed: float, lost: int, duplicated: int, rss: tuple[int, int],
           conns_start: tuple[int, int], conns_end: tuple[int, int]) -> None:
    latency: dict[str, list[float]] = collections.defaultdict(list)
    errors: collections.Counter[str] = collections.Counter()
    first: dict[str, str] = {}
    for worker in workers:
        for op, values in worker.latency.items():
            latency[op].extend(values)
        errors.update(worker.errors)
        for key, message in worker.first_message.items():
            first.setdefault(key, message)
    every = [v for values in latency.values() for v in values]
    acknowledged = sum(len(w.events) + len(w.runs) + len(w.outputs) for w in workers)
    unacknowledged = sum(w.unacknowledged for w in workers)

    def pct(values: list[float], q: float) -> str:
        ordered = sorted(values)
        return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.2f}"

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Soak: Redis + PostgreSQL through MemoryAPI, one restart of each",
        "",
        f"`python benchmarks/bench_soak.py --seconds {args.seconds:g} --workers "
        f"{args.workers}`, {stamp}. Throwaway Redis (SHUTDOWN SAVE on stop) and PostgreSQL "
        "18 (fsync on) on loopback; default configs except pool sizes (Redis 32, "
        f"PostgreSQL {args.workers}). 2-core machine shared with other jobs.",
        "",
        *(f"- {line}" for line in events),
        "",
        "| figure | value |",
        "|---|---:|",
        f"| calls | {len(every)} in {elapsed:.1f} s = {len(every) / elapsed:.0f} ops/s |",
        f"| p50 / p99 (all calls) | {pct(every, 0.5)} ms / {pct(every, 0.99)} ms |",
        f"| errors | {sum(errors.values())} |",
        f"| acknowledged writes read back | {acknowledged} |",
        f"| lost (acknowledged, missing) | {lost} |",
        f"| duplicated (stored twice) | {duplicated} |",
        f"| writes not acknowledged (error raised) | {unacknowledged} |",
        f"| RSS start / end | {rss[0] / 2**20:.1f} MiB / {rss[1] / 2**20:.1f} MiB |",
        f"| Redis clients start / end | {conns_start[0]} / {conns_end[0]} |",
        f"| PostgreSQL client backends start / end | {conns_start[1]} / {conns_end[1]} |",
        "",
        "| operation | calls | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
        *(f"| {op} | {len(v)} | {pct(v, 0.5)} | {pct(v, 0.99)} | {max(v) * 1000:.0f} |"
          for op, v in sorted(latency.items())),
        "",
    ]
    if errors:
        lines += ["| error | count | first one |", "|---|---:|---|",
                  *(f"| {name} | {count} | {first[name].replace('|', '/')} |"
                    for name, count in errors.most_common()), ""]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
