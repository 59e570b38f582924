"""Redis Sentinel fail-overs under a write load: failed calls, longest call, lost writes.

    python benchmarks/bench_sentinel_failover.py [--runs N] [--out FILE]   (~1 min per run)

Each scenario starts a throwaway topology (tests/servers/redis_sentinel.py: 1 or 2 replicas,
3 sentinels, down-after-milliseconds 1000), lets 3 threads loop ``set_context`` +
``append_event`` through one RedisStore (``operation_timeout`` 10 s, ``sentinel_check_interval``
0.2 s; a call that raised a typed error is retried until its deadline), then either SIGKILLs
the primary or demotes it with ``SENTINEL FAILOVER``, writes 1 s more, and compares what was
acknowledged with what the store holds (tests/redis/_failover_load.py). Writes a Markdown
table; the figures are in docs/scaling.md ("Redis Sentinel").
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from pathlib import Path

import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memory_resources.stores.redis import RedisStore  # noqa: E402
from tests.fixtures.redis_sentinel import sentinel_config  # noqa: E402
from tests.redis._failover_load import Outcome, Tally, outcome, read_back, write_loop  # noqa: E402
from tests.servers.redis_sentinel import SentinelTopology  # noqa: E402

SCENARIOS = [  # (fault, replicas, replica_acks)
    ("sigkill", 1, 0), ("sigkill", 2, 1),
    ("demote", 1, 0), ("demote", 2, 0), ("demote", 2, 1), ("demote", 2, 2),
]


def scenario(fault: str, replicas: int, acks: int) -> tuple[float, Outcome]:
    """One run: seconds until every sentinel names the new primary, and the outcome."""
    with SentinelTopology(replicas=replicas, password="bench-data",
                          sentinel_password="bench-sentinel") as topo:
        store = RedisStore(sentinel_config(topo, "sentinelbench:", operation_timeout=10,
                                           replica_acks=acks, sentinel_check_interval=0.2))
        tallies = [Tally(f"writer-{i}") for i in range(3)]
        stop = threading.Event()
        threads = [threading.Thread(target=write_loop, args=(store, t, stop)) for t in tallies]
        try:
            for thread in threads:
                thread.start()
            time.sleep(0.5)
            old = topo.primary()
            started = time.monotonic()
            if fault == "sigkill":
                old.kill()
            else:
                with topo.sentinel_client(topo.sentinels[0]) as admin:
                    admin.execute_command("SENTINEL", "FAILOVER", topo.service)
            topo.wait_promoted(old)
            switched = time.monotonic() - started
            time.sleep(1.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        try:
            return switched, outcome(tallies, read_back(store, tallies))
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--only", choices=["sigkill", "demote"],
                        help="run the scenarios of one fault only")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    lines = [f"load average before: {os.getloadavg()[0]:.1f}", "",
             "| fault | replicas | replica_acks | switch (s) | rounds | typed errors | failed "
             "| lost contexts | lost events | duplicate events | longest call (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for fault, replicas, acks in SCENARIOS:
        if args.only and fault != args.only:
            continue
        for _ in range(args.runs):
            switched, result = scenario(fault, replicas, acks)
            row = (f"| {fault} | {replicas} | {acks} | {switched:.2f} | {result.rounds} | "
                   f"{result.typed_errors} | {result.failed} | {result.lost_contexts} | "
                   f"{result.lost_events} | {result.duplicate_events} | {result.slowest:.2f} |")
            print(row, flush=True)
            lines.append(row)
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
