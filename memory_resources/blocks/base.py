"""What every memory block shares: a lazily built store, kept for the block's life.

Blocks are configuration plus a factory. The live store (connection pool, clients) is built
on first use, reused by every call on the same block instance, and dropped when the block is
pickled (Prefect may pickle what crosses a task runner), so it is rebuilt lazily on the
other side.
"""

from __future__ import annotations

import threading
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, PrivateAttr

StoreT = TypeVar("StoreT")


class StoreFactoryMixin(BaseModel, Generic[StoreT]):
    """Mixin for a ``Block``: implement :meth:`_build_store`; call :meth:`get_store`."""

    _store: Any = PrivateAttr(default=None)
    _store_lock: Any = PrivateAttr(default_factory=threading.Lock)

    def _build_store(self) -> StoreT:
        """Create the store from this block's fields (not connected yet)."""
        raise NotImplementedError

    def get_store(self) -> StoreT:
        """The block's store, built and connected once per block instance."""
        store = self._store
        if store is None:
            with self._store_lock:
                store = self._store
                if store is None:
                    store = self._build_store()
                    store.connect()  # type: ignore[attr-defined]
                    self._store = store
        return store  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the store's connections (it is rebuilt on the next :meth:`get_store`)."""
        with self._store_lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()

    def __getstate__(self) -> dict[Any, Any]:
        state: dict[Any, Any] = super().__getstate__()
        private = dict(state.get("__pydantic_private__") or {})
        private["_store"] = None
        private.pop("_store_lock", None)
        state["__pydantic_private__"] = private
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        private = self.__pydantic_private__
        assert private is not None
        private["_store_lock"] = threading.Lock()
        private["_store"] = None


def in_async_run() -> bool:
    """True inside an async Prefect flow or task run (where Prefect's ``load`` is awaited)."""
    from prefect.context import get_run_context
    from prefect.exceptions import MissingContextError

    try:
        context = get_run_context()
    except MissingContextError:
        return False
    owner = getattr(context, "task", None) or getattr(context, "flow", None)
    return bool(getattr(owner, "isasync", False))


class DeploySafeLoad:
    """``load`` that returns the block, not a coroutine, outside async flow/task runs.

    Prefect's ``Block.load`` returns a coroutine whenever an event loop is running, so
    ``memory = MemoryStore.load("agent-memory")`` at module level gives a coroutine when
    ``prefect deploy`` (or a notebook) imports the module inside its loop. Here ``load``
    answers with the block everywhere except inside an async flow or task run, where it
    stays awaitable as Prefect documents; ``aload`` is always the awaitable form and
    ``_sync=True`` / ``_sync=False`` still force either path.
    """

    @classmethod
    def load(cls, name: str, validate: bool = True, client: Any = None,
             _sync: bool | None = None) -> Any:
        """The saved block ``name`` (awaitable only inside async flow/task runs)."""
        parent: Any = super()
        if _sync is None:
            _sync = not in_async_run()
        if _sync:
            return parent.load(name, validate=validate, client=client, _sync=True)
        return parent.aload(name, validate=validate, client=client)
