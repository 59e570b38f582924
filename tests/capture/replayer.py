"""A replayer process for the cross-process outbox tests (run as ``python -m``).

``python -m tests.capture.replayer OUTBOX TARGET STORE_JSON [--lease S] [--batch N]
[--announce] [--hang-after N] [--until FILE]`` replays TARGET's records of the outbox
file OUTBOX into a real store (``{"sqlite": PATH}`` or
``{"postgres": DSN, "schema": NAME}``) and prints the :class:`ReplayReport` as JSON.
With ``--announce`` it prints ``wrote TASK_RUN_ID`` after each output write reaches the
store; with ``--hang-after N`` it then stops after the Nth write (before deleting that
record from the outbox) until it is killed, so a test can SIGKILL it mid-way at a known
point. With ``--until FILE`` it replays again and again (a failed round, e.g. the store
still down, is retried) until FILE exists, then once more, and prints the summed report.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import time
from typing import Any

from memory_resources.capture.outbox import Outbox, OutboxTarget
from memory_resources.capture.writer import CaptureStores, CaptureWriter


class Announcing:
    """The real outputs store, printing each task run id once its write returned."""

    def __init__(self, store: Any, hang_after: int | None) -> None:
        self.store = store
        self.hang_after = hang_after
        self.count = 0

    def write_task_output_once(self, *args: Any, **kwargs: Any) -> Any:
        result = self.store.write_task_output_once(*args, **kwargs)
        self.count += 1
        print(f"wrote {kwargs['task_run_id']}", flush=True)
        if self.count == self.hang_after:
            print("hanging", flush=True)
            sys.stdin.read()  # until killed (the test keeps stdin open)
        return result


def build_store(spec: dict[str, Any]) -> Any:
    """A connected store of ``spec``."""
    if "sqlite" in spec:
        from memory_resources.config import EmbeddedConfig
        from memory_resources.stores.sqlite import SQLiteStore

        store: Any = SQLiteStore(EmbeddedConfig(path=spec["sqlite"]))
    else:
        from memory_resources.stores.postgres import PostgresStore

        store = PostgresStore({"dsn": spec["postgres"], "schema": spec["schema"],
                               "max_connections": 2})
    store.connect()
    return store


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("outbox")
    parser.add_argument("target")
    parser.add_argument("store")
    parser.add_argument("--lease", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--announce", action="store_true")
    parser.add_argument("--hang-after", type=int, default=None)
    parser.add_argument("--until", default=None)
    args = parser.parse_args(argv)
    if args.until:
        return _loop(args)
    store = build_store(json.loads(args.store))
    outputs = Announcing(store, args.hang_after) if args.announce else store
    outbox = Outbox(args.outbox, lease=args.lease)
    writer = CaptureWriter(lambda: CaptureStores(history=store, outputs=outputs), outbox,
                           OutboxTarget(args.target, args.target, None, None),
                           batch_size=args.batch)
    report = writer.replay()
    print(json.dumps(dataclasses.asdict(report)), flush=True)
    store.close()
    return 0


def _loop(args: argparse.Namespace) -> int:
    """Replay until the stop file exists (the store may be unreachable at first)."""
    from pathlib import Path

    outbox = Outbox(args.outbox, lease=args.lease)
    target = OutboxTarget(args.target, args.target, None, None)
    total: dict[str, int] = {"written": 0, "skipped": 0, "set_aside": 0, "rounds": 0}
    store: Any = None
    while True:
        last = Path(args.until).exists()
        try:
            if store is None:
                store = build_store(json.loads(args.store))
            writer = CaptureWriter(functools.partial(CaptureStores, store, store), outbox,
                                   target, batch_size=args.batch)
            report = writer.replay()
            for key in ("written", "skipped", "set_aside"):
                total[key] += getattr(report, key)
            total["rounds"] += 1
        except Exception:  # the store is still down: try again
            store = None
        if last:
            break
        time.sleep(0.02)
    print(json.dumps(total), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
