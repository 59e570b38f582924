"""Run test workers in threads and bring what they raised back to the test; measure how
long work blocks an event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from memory_resources.testing.threads import run_in_threads

__all__ = ["lag_while", "run_in_threads"]


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
