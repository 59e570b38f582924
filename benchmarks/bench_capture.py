"""Capture overhead: a flow of 100 tasks with ``@remember(memory)`` versus without.

One process, one temporary Prefect API (``prefect_test_harness``). For each backend the
plain flow and the captured flow run alternately ``--repeats`` times (after a warm-up of
each); the ratio is median(captured) / median(plain). Every capture hook call is timed
(flow hooks and task hooks separately) for p50/p99 latency.

Backends: the embedded default (always), and Redis + PostgreSQL when reachable
(``MEMORY_BENCH_REDIS_URL`` / ``MEMORY_BENCH_POSTGRES_DSN``, default 127.0.0.1:6379 and
postgresql://postgres@127.0.0.1:5432/postgres; history and outputs then go to PostgreSQL,
in a throwaway schema dropped afterwards).

    .venv/bin/python -m benchmarks.bench_capture [--tasks 100] [--repeats 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

HOOK_TIMES: dict[str, list[float]] = {"flow": [], "task": []}


def _instrument() -> None:
    """Time every capture hook call (class-level wrap, before any flow is decorated)."""
    from memory_resources.prefect import hooks

    for kind, cls in (("flow", hooks.FlowCaptureHook), ("task", hooks.TaskCaptureHook)):
        original = cls.__call__

        def timed(self: Any, *args: Any, _original: Any = original, _kind: str = kind) -> None:
            started = time.perf_counter()
            try:
                _original(self, *args)
            finally:
                HOOK_TIMES[_kind].append(time.perf_counter() - started)

        setattr(cls, "__call__", timed)  # noqa: B010  (patching a dunder on the class)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _build_flows(memory: Any, n_tasks: int) -> tuple[Callable[[], Any], Callable[[], Any]]:
    from prefect import flow
    from prefect.tasks import Task

    from memory_resources.prefect import remember

    def make_body(step: Any) -> Callable[[], int]:
        def body() -> int:
            total = 0
            for i in range(n_tasks):
                total += step(i)["square"]
            return total
        return body

    def square(i: int) -> dict[str, int]:
        return {"i": i, "square": i * i}

    # two task objects: the plain flow's task carries no capture hook at all
    plain = flow(name="bench-plain")(make_body(Task(fn=square, name="step")))
    captured_step: Any = Task(fn=square, name="step")
    captured = remember(memory, tasks=[captured_step])(
        flow(name="bench-captured")(make_body(captured_step)))
    return plain, captured


def _time(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    started, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - started, time.process_time() - cpu


def bench_backend(name: str, memory: Any, n_tasks: int, repeats: int) -> dict[str, Any]:
    """Alternate plain and captured runs; return timings and hook latencies."""
    plain, captured = _build_flows(memory, n_tasks)
    plain()
    captured()  # warm-up: imports, store files/schemas, connections
    for values in HOOK_TIMES.values():
        values.clear()
    plain_times, captured_times, plain_cpu, captured_cpu = [], [], [], []
    hook_totals: list[float] = []
    for _ in range(repeats):
        wall, cpu = _time(plain)
        plain_times.append(wall)
        plain_cpu.append(cpu)
        before = sum(HOOK_TIMES["flow"]) + sum(HOOK_TIMES["task"])
        wall, cpu = _time(captured)
        captured_times.append(wall)
        captured_cpu.append(cpu)
        hook_totals.append(sum(HOOK_TIMES["flow"]) + sum(HOOK_TIMES["task"]) - before)
    rows = memory.api.read_flow_run_history(None, limit=1000)
    captured_rows = [r for r in rows if r["flow_name"] == "bench-captured"]
    assert len(captured_rows) == repeats + 1, "every captured run has its history row"
    return {
        "backend": name,
        "plain": statistics.median(plain_times),
        "captured": statistics.median(captured_times),
        "ratio": statistics.median(captured_times) / statistics.median(plain_times),
        "ratio_min": min(captured_times) / min(plain_times),
        "cpu_ratio": statistics.median(captured_cpu) / statistics.median(plain_cpu),
        "hook_total": statistics.median(hook_totals),
        "hook_ratio": 1 + statistics.median(hook_totals) / statistics.median(plain_times),
        "plain_all": plain_times,
        "captured_all": captured_times,
        "flow_hook": (_percentile(HOOK_TIMES["flow"], 0.5), _percentile(HOOK_TIMES["flow"], 0.99),
                      len(HOOK_TIMES["flow"])),
        "task_hook": (_percentile(HOOK_TIMES["task"], 0.5), _percentile(HOOK_TIMES["task"], 0.99),
                      len(HOOK_TIMES["task"])),
    }


def _redis_url() -> str | None:
    import redis

    url = os.environ.get("MEMORY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception:
        return None
    return url


def _postgres_dsn() -> str | None:
    import psycopg2

    dsn = os.environ.get("MEMORY_BENCH_POSTGRES_DSN",
                         "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        psycopg2.connect(dsn, connect_timeout=2).close()
    except Exception:
        return None
    return dsn


@contextmanager
def _servers_memory(folder: Path) -> Iterator[Any]:
    """A MemoryStore on Redis + PostgreSQL (own key prefix and schema), or None."""
    import psycopg2

    from memory_resources.blocks import MemoryStore, PostgresMemory, RedisMemory

    url, dsn = _redis_url(), _postgres_dsn()
    if url is None or dsn is None:
        yield None
        return
    tag = uuid.uuid4().hex[:8]
    schema = f"bench_capture_{tag}"
    memory = MemoryStore(
        redis=RedisMemory(url=url, key_prefix=f"bench_capture_{tag}:"),
        postgres=PostgresMemory(dsn=dsn, schema=schema),
        embedded_path=str(folder / "servers.db"),
        outbox_path=str(folder / "servers-outbox.db"),
    )
    try:
        yield memory
    finally:
        memory.close()
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.close()


def _report(results: list[dict[str, Any]], n_tasks: int, repeats: int) -> str:
    lines = [
        "# Prefect capture overhead",
        "",
        f"Flow of {n_tasks} sequential tasks, capture on (`@remember(memory)`, history + every "
        f"task output) vs off, alternating {repeats} runs each after one warm-up, one process, "
        f"temporary Prefect API. Python {platform.python_version()}, {os.cpu_count()} cores "
        f"(shared). Target: ratio <= 1.10.",
        "",
        "| backend | plain (s, median) | captured (s, median) | ratio of medians "
        "| ratio of minimums | CPU-time ratio (medians) | 1 + hook time / plain (medians) "
        "| flow hook p50 / p99 (ms) | task hook p50 / p99 (ms) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        fp50, fp99, _ = r["flow_hook"]
        tp50, tp99, _ = r["task_hook"]
        lines.append(
            f"| {r['backend']} | {r['plain']:.3f} | {r['captured']:.3f} | {r['ratio']:.3f} | "
            f"{r['ratio_min']:.3f} | {r['cpu_ratio']:.3f} | {r['hook_ratio']:.3f} "
            f"({r['hook_total']:.3f} s) | "
            f"{fp50 * 1000:.2f} / {fp99 * 1000:.2f} | {tp50 * 1000:.2f} / {tp99 * 1000:.2f} |"
        )
    lines += ["", "Raw run times (s):", ""]
    for r in results:
        lines.append(f"- {r['backend']}: plain {[round(t, 3) for t in r['plain_all']]}, "
                     f"captured {[round(t, 3) for t in r['captured_all']]}; hook calls: "
                     f"{r['flow_hook'][2]} flow, {r['task_hook'][2]} task")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "prefect.md",
                        help="markdown report to write")
    args = parser.parse_args(argv)

    _instrument()
    from prefect.testing.utilities import prefect_test_harness

    from memory_resources.blocks import MemoryStore

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-capture-") as tmp, \
            prefect_test_harness(server_startup_timeout=180):
        folder = Path(tmp)
        embedded = MemoryStore(embedded_path=str(folder / "memory.db"),
                               outbox_path=str(folder / "outbox.db"))
        results.append(bench_backend("embedded (SQLite)", embedded, args.tasks, args.repeats))
        embedded.close()
        with _servers_memory(folder) as servers:
            if servers is not None:
                results.append(bench_backend("Redis + PostgreSQL", servers, args.tasks,
                                             args.repeats))
            else:
                print("Redis or PostgreSQL not reachable: skipped", file=sys.stderr)
    report = _report(results, args.tasks, args.repeats)
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
