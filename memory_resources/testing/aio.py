"""Run the kit on an async backend: its coroutine methods behind the sync calls the suites
make.

:class:`SyncView` wraps a store whose methods are coroutines; each call runs on one event
loop in a background thread (:class:`LoopThread`) and returns its result, so the same
suites check the async transport. This repository's ``*_async`` contract variants are
built this way::

    @pytest.fixture
    def memory_context_store(tmp_path):
        runner = LoopThread()
        store = MyAsyncStore(tmp_path / "contexts.json")
        runner.call(store.connect())
        yield SyncView(store, runner)
        runner.call(store.close())
        runner.stop()
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Coroutine
from typing import Any


class LoopThread:
    """An event loop running in a daemon thread; :meth:`call` waits for a coroutine."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="async-contract",
                                       daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the loop and return its result (or raise its exception)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class SyncView:
    """The async ``store`` seen through sync calls: coroutine methods run on ``runner``'s
    loop (from any thread), everything else is the store's own attribute."""

    def __init__(self, store: Any, runner: LoopThread) -> None:
        self._store = store
        self._runner = runner

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if not inspect.iscoroutinefunction(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._runner.call(value(*args, **kwargs))

        return call

    def __repr__(self) -> str:
        return f"SyncView({self._store!r})"
