"""Code run in child processes by the lock tests (importable for the spawn start method)."""

from __future__ import annotations

import logging
import time
from typing import Any

import structlog

from memory_resources.locking import Lock
from memory_resources.stores.redis import RedisStore


def quiet_logs() -> None:
    """Drop the lock handle's debug logs in workers (thousands of acquisitions)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def increment_worker(config: dict[str, Any], lock_name: str, counter_key: str,
                     rounds: int) -> list[tuple[int, int]]:
    """``rounds`` read-modify-write increments of ``counter_key`` under the lock.

    Returns ``(value written, fencing token)`` for each round.
    """
    quiet_logs()
    store = RedisStore(config)
    seen: list[tuple[int, int]] = []
    try:
        client = store.client
        for _ in range(rounds):
            with Lock(store, lock_name, timeout=10, blocking_timeout=60,
                      retry_delay=0.002) as lock:
                value = int(client.get(counter_key) or 0) + 1
                client.set(counter_key, value)
                assert lock.fencing_token is not None
                seen.append((value, lock.fencing_token))
    finally:
        store.close()
    return seen


def hold_forever(config: dict[str, Any], lock_name: str, ttl: float, ready_key: str) -> None:
    """Acquire the lock, publish the fencing token under ``ready_key``, then hang."""
    quiet_logs()
    store = RedisStore(config)
    lock = Lock(store, lock_name, timeout=ttl, blocking_timeout=10).acquire()
    store.client.set(ready_key, str(lock.fencing_token))
    while True:
        time.sleep(3600)
