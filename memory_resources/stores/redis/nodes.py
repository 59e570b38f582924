"""The pieces Redlock's fan-out is built from: a master (:class:`LockNode`), the worker
threads that talk to it (:class:`Worker`) and one request's answers (:class:`Round`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from redis.cluster import RedisCluster

from .client import close_client
from .errors import CAUGHT
from .scripts import Scripts

PENDING: Any = object()
"""A node that has not answered yet."""


class LockNode:
    """One Redlock master: its client and the scripts registered on it.

    ``main`` is the client the store uses for everything else on this server (the same as
    ``client`` unless Redlock asks the primary through a pool with shorter timeouts).
    """

    __slots__ = ("client", "cluster", "label", "main", "main_scripts", "scripts")

    def __init__(self, client: Any, label: str, *, main: Any = None) -> None:
        self.client = client
        self.label = label
        self.scripts = Scripts(client)
        self.cluster = isinstance(client, RedisCluster)
        self.main = client if main is None else main
        self.main_scripts = self.scripts if main is None else Scripts(main)

    def close(self) -> None:
        """Close this node's client(s); a dead server does not make it fail."""
        for client in {id(self.client): self.client, id(self.main): self.main}.values():
            with contextlib.suppress(*CAUGHT):
                close_client(client)


class Worker:
    """The threads that talk to one master; at most ``limit`` requests pending."""

    def __init__(self, label: str, limit: int) -> None:
        self.executor = ThreadPoolExecutor(max_workers=limit,
                                           thread_name_prefix=f"redlock-{label}")
        self.limit = limit
        self.pending = 0
        self.guard = threading.Lock()

    def submit(self, fn: Callable[[], None]) -> bool:
        """Queue ``fn``; False when the master already has ``limit`` requests pending."""
        with self.guard:
            if self.pending >= self.limit:
                return False
            self.pending += 1
        try:
            self.executor.submit(self._run, fn)
        except RuntimeError:  # shut down by close()
            self._done()
            return False
        return True

    def _run(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        finally:
            self._done()

    def _done(self) -> None:
        with self.guard:
            self.pending -= 1


class Round:
    """One request sent to several masters, and what became of each."""

    def __init__(self, count: int) -> None:
        self.results: list[Any] = [PENDING] * count
        self.cond = threading.Condition()
        self.closed = False
        self.verdict: str | None = None
        self.late: list[tuple[LockNode, Any]] = []
