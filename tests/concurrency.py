"""Run test workers in threads and bring what they raised back to the test; measure how
long work blocks an event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any


def run_in_threads(*targets: Callable[[], object]) -> list[BaseException]:
    """Run each target in its own thread, all started before any is joined; returns what
    they raised (empty when all finished), so a failed assertion in a worker fails the
    test through an ``assert errors == []`` in the test itself."""
    errors: list[BaseException] = []

    def guarded(target: Callable[[], object]) -> None:
        try:
            target()
        except BaseException as exc:  # returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


async def lag_while(work: Callable[[], Awaitable[Any]], tick: float = 0.01
                    ) -> tuple[float, Any]:
    """The largest extra delay of a 10 ms ticker while ``work()`` is awaited, and its
    outcome (result or exception)."""
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(tick)
            worst = max(worst, time.perf_counter() - started - tick)

    ticking = asyncio.create_task(ticker())
    try:
        outcome: Any = await work()
    except Exception as exc:
        outcome = exc
    finally:
        done.set()
        await ticking
    return worst, outcome
