"""Redis Cluster 3 masters + 3 replicas: fail-over under writers, and what replica_acks costs.

    python benchmarks/bench_redis_cluster.py [--failovers 3] [--ops 400] [--out FILE]
    (about 2 min)

1. **Fail-over**: writer threads (sync store) and coroutines (async store) loop over
   ``set_context`` / ``append_event`` while a master is SIGKILLed; its replica is promoted
   and the killed node rejoins as a replica (``tests/redis/_failover.py``). For
   ``replica_acks`` 0 and 1, each master is killed in turn (``--failovers`` rounds): time to
   promotion, time until every shard has its replica back, typed errors the writers retried,
   the longest call (with those retries) and the acknowledged writes lost; once with the
   replica in sync, once with it lagging 0.3 s behind (frozen while the master takes 24 MB
   of filler, see ``failover_round``).
2. **Latency of a write with WAIT**: on the healthy cluster, raw redis-py (``SET`` on the
   cluster client), the store with ``replica_acks=0`` and with ``replica_acks=1`` alternate
   every 10 calls for ``set_context`` and ``append_event`` (raw: ``XADD``); p50 / p99.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memory_resources.stores.redis import RedisStore  # noqa: E402
from tests.redis._failover import Round, failover_round  # noqa: E402
from tests.servers import RedisCluster  # noqa: E402

BLOCK = 10
DATA = {"user_id": "user_123", "session_id": "session_456", "turn": 7,
        "history": ["hello", "how can I help?"], "scores": [0.25, 0.5, 0.75]}


def failovers(cluster: RedisCluster, acks: int, lag: float, rounds: int
              ) -> list[Round]:
    """``rounds`` fail-overs, a different master each time (the replica lagging ``lag`` s)."""
    out = []
    for _ in range(rounds):
        victim = cluster.masters()[0]
        config = {"url": cluster.url, "cluster": True, "operation_timeout": 10.0,
                  "replica_acks": acks, "replica_ack_timeout": 1.0}
        result = failover_round(cluster, config, victim,
                                prefix=f"bench:{uuid.uuid4().hex[:8]}:", lag=lag)
        out.append(result)
        print(f"acks={acks} lag={lag}: fail-over {result.failover_s:.2f} s, whole "
              f"{result.whole_s:.2f} s, lost {result.lost}/{result.acked}, errors "
              f"{dict(result.tally.errors)}, longest {result.tally.longest:.2f} s",
              flush=True)
        for name, message in result.tally.samples.items():
            print(f"    {name}: {message}", flush=True)
    return out


def _timed(op: Callable[[int], Any], start: int, count: int) -> list[float]:
    out = []
    for i in range(start, start + count):
        t0 = time.perf_counter()
        op(i)
        out.append(time.perf_counter() - t0)
    return out


def latency(cluster: RedisCluster, ops: int) -> dict[str, dict[str, float]]:
    """p50 / p99 (µs) of raw, acks 0 and acks 1, interleaved every BLOCK calls."""
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    plain = RedisStore({"url": cluster.url, "cluster": True, "key_prefix": prefix})
    acked = RedisStore({"url": cluster.url, "cluster": True, "key_prefix": prefix,
                        "replica_acks": 1, "replica_ack_timeout": 1.0})
    raw = cluster.client(decode_responses=True)
    payload = json.dumps(DATA)
    ids = [f"ctx-{i}" for i in range(50)]
    contenders: dict[str, Callable[[int], Any]] = {
        "set raw SET": lambda i: raw.set(f"{prefix}raw:{{{i % 50}}}", payload),
        "set_context acks=0": lambda i: plain.set_context(ids[i % 50], DATA),
        "set_context acks=1": lambda i: acked.set_context(ids[i % 50], DATA),
        "append raw XADD": lambda i: raw.xadd(f"{prefix}rawe:{{{i % 50}}}", {"d": payload}),
        "append_event acks=0": lambda i: plain.append_event(ids[i % 50], DATA),
        "append_event acks=1": lambda i: acked.append_event(ids[i % 50], DATA),
    }
    names = list(contenders)
    for name in names:  # warm connections and scripts
        _timed(contenders[name], 0, 20)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for block, start in enumerate(range(0, ops, BLOCK)):
        turn = block % len(names)
        for name in names[turn:] + names[:turn]:
            samples[name] += _timed(contenders[name], start, BLOCK)
    for key in list(raw.scan_iter(match=prefix + "*", count=1000)):
        raw.delete(key)
    raw.close()
    plain.close()
    acked.close()
    out = {}
    for name, values in samples.items():
        ordered = sorted(values)
        out[name] = {"p50": statistics.median(values) * 1e6,
                     "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6}
    return out


def report(rounds: dict[tuple[int, float], list[Round]], lat: dict[str, dict[str, float]], load: str
           ) -> str:
    lines = ["# Redis Cluster: fail-over and replica_acks", "",
             f"`python benchmarks/bench_redis_cluster.py`, {time.strftime('%Y-%m-%d %H:%M')} "
             f"UTC, load average {load} on the 2-core machine. A 3-master + 3-replica "
             "cluster on loopback (Redis 7.0.15, cluster-node-timeout 1000 ms); 3 writer "
             "threads (sync store) + 4 coroutines (async store), each looping "
             "set_context / append_event over 12 contexts.", "",
             "## Fail-over (one master SIGKILLed per round)", "",
             "| replica_acks | replica | promoted after | all replicas back after | calls | "
             "typed errors retried by the writer | longest call | acknowledged writes | "
             "lost |",
             "|---|---|---:|---:|---:|---|---:|---:|---:|"]
    for (acks, lag), results in rounds.items():
        state = f"lagging {lag:g} s" if lag else "in sync"
        for result in results:
            errors = ", ".join(f"{k} {v}" for k, v in sorted(result.tally.errors.items()))
            lines.append(
                f"| {acks} | {state} | {result.failover_s:.2f} s | {result.whole_s:.2f} s | "
                f"{result.tally.calls} | {errors or '0'} | {result.tally.longest:.2f} s | "
                f"{result.acked} | **{result.lost}** |")
    lines += ["", "The typed errors are `append_event` calls whose connection was cut after "
              "the command was sent (\"may or may not have been applied; not retried because "
              "append_event is not idempotent\"); the writer retried each once and it "
              "succeeded. \"Lagging\": the replica is frozen while its master takes 24 MB of "
              "filler, so what the master acknowledges next is not on the replica when the "
              "master is killed (tests/redis/_failover.py).",
              "", "## Latency of one write (healthy cluster, interleaved)", "",
              "| call | p50 µs | p99 µs |", "|---|---:|---:|"]
    for name, got in lat.items():
        lines.append(f"| {name} | {got['p50']:.0f} | {got['p99']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failovers", type=int, default=3)
    parser.add_argument("--ops", type=int, default=600)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/redis-cluster.md"))
    args = parser.parse_args()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    cluster = RedisCluster(3, replicas=1, node_timeout_ms=1000).start()
    try:
        lat = latency(cluster, args.ops)
        print(json.dumps(lat, indent=1), flush=True)
        rounds = {(acks, lag): failovers(cluster, acks, lag, args.failovers)
                  for lag in (0.0, 0.3) for acks in (0, 1)}
    finally:
        cluster.close()
    Path(args.out).write_text(report(rounds, lat, load))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
