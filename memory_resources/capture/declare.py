"""Who attaches capture to flows and tasks: a seam so blocks need not import ``prefect/``.

``MemoryStore.capture(flow)`` and ``MemoryStore.task`` are implemented by the Prefect layer
(``memory_resources.prefect.capture``), which sits above the blocks. The package root
(``memory_resources/__init__.py``, the composition root above every layer) registers a
loader for it here; the blocks call :func:`declarers` and never import ``prefect/``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from ..errors import ConfigurationError


class Declarers(NamedTuple):
    """The functions that attach capture: ``remember(memory, **options)(flow)`` and
    ``remembered_task(memory, fn, **task_options)``."""

    remember: Callable[..., Any]
    remembered_task: Callable[..., Any]


_LOADER: Callable[[], Declarers] | None = None


def register_declarers(loader: Callable[[], Declarers]) -> None:
    """Set the (lazy) loader of the capture declarers; the last registration wins."""
    global _LOADER
    _LOADER = loader


def declarers() -> Declarers:
    """The registered declarers (loaded on first use)."""
    if _LOADER is None:
        raise ConfigurationError(
            "no capture declarers registered: import memory_resources (the package root "
            "registers the Prefect layer's remember/remembered_task)"
        )
    return _LOADER()


__all__ = ["Declarers", "declarers", "register_declarers"]
