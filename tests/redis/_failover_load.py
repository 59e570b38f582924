"""A write load for fail-over tests: each writer owns one context and loops
``set_context(cid, {"n": n})`` + ``append_event(cid, {"n": n})``, retrying a call that raised
a typed error (:data:`TYPED`) until ``operation_timeout`` has passed since its first
attempt; what was
acknowledged is tallied, then compared with what the store holds after the fail-over."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from memory_resources.errors import BackendTimeoutError, BackendUnavailableError

TYPED = (BackendUnavailableError, BackendTimeoutError)
"""What a fail-over may raise: unreachable, maybe-applied, or (``replica_acks``)
``ReplicaAckError``; the writer retries these."""


@dataclass
class Tally:
    """What one writer saw."""

    cid: str
    rounds: int = 0
    typed_errors: int = 0
    failed: int = 0
    acked_n: int = 0
    acked_events: set[int] = field(default_factory=set)
    slowest: float = 0.0

    def record(self, started: float) -> None:
        self.slowest = max(self.slowest, time.monotonic() - started)


@dataclass
class Outcome:
    """Totals over the writers, and what the store lost of the acknowledged writes."""

    rounds: int
    typed_errors: int
    failed: int
    lost_contexts: int
    lost_events: int
    duplicate_events: int
    slowest: float


def _retry(call: Callable[[], Any], tally: Tally, timeout: float) -> bool:
    started = time.monotonic()
    while True:
        try:
            call()
            tally.record(started)
            return True
        except TYPED:
            tally.typed_errors += 1
            if time.monotonic() - started > timeout:
                tally.failed += 1
                tally.record(started)
                return False


def write_loop(store: Any, tally: Tally, stop: threading.Event) -> None:
    """Sync writer: runs until ``stop`` is set."""
    timeout = store.config.operation_timeout
    n = 0
    while not stop.is_set():
        n += 1
        tally.rounds = n
        data = {"n": n}
        if _retry(functools.partial(store.set_context, tally.cid, data), tally, timeout):
            tally.acked_n = n
        if _retry(functools.partial(store.append_event, tally.cid, data), tally, timeout):
            tally.acked_events.add(n)


async def _aretry(call: Callable[[], Awaitable[Any]], tally: Tally, timeout: float) -> bool:
    started = time.monotonic()
    while True:
        try:
            await call()
            tally.record(started)
            return True
        except TYPED:
            tally.typed_errors += 1
            if time.monotonic() - started > timeout:
                tally.failed += 1
                tally.record(started)
                return False


async def async_write_loop(store: Any, tally: Tally, stop: asyncio.Event) -> None:
    """Async writer: runs until ``stop`` is set."""
    timeout = store.config.operation_timeout
    n = 0
    while not stop.is_set():
        n += 1
        tally.rounds = n
        data = {"n": n}
        if await _aretry(functools.partial(store.set_context, tally.cid, data), tally, timeout):
            tally.acked_n = n
        if await _aretry(functools.partial(store.append_event, tally.cid, data), tally, timeout):
            tally.acked_events.add(n)


def outcome(tallies: list[Tally], stored: dict[str, tuple[int, list[int]]]) -> Outcome:
    """Compare the tallies with ``stored``: per context id, the ``n`` its context holds and
    the ``n`` of each stored event."""
    lost_contexts = lost_events = duplicates = 0
    for tally in tallies:
        context_n, events = stored[tally.cid]
        lost_contexts += max(0, tally.acked_n - context_n)
        lost_events += len(tally.acked_events - set(events))
        duplicates += len(events) - len(set(events))
    return Outcome(
        rounds=sum(t.rounds for t in tallies), typed_errors=sum(t.typed_errors for t in tallies),
        failed=sum(t.failed for t in tallies), lost_contexts=lost_contexts,
        lost_events=lost_events, duplicate_events=duplicates,
        slowest=max(t.slowest for t in tallies))


def read_back(store: Any, tallies: list[Tally]) -> dict[str, tuple[int, list[int]]]:
    """What a sync store holds for each writer's context."""
    stored: dict[str, tuple[int, list[int]]] = {}
    for tally in tallies:
        record = store.get_context(tally.cid)
        events = [event["data"]["n"] for event in store.get_events(tally.cid)]
        stored[tally.cid] = (0 if record is None else int(record["data"]["n"]), events)
    return stored
