"""Run capture without Prefect: masking, the durable outbox, the writer and replay.

This package sits below ``blocks/`` and ``prefect/`` and imports neither (nor Prefect):
the Prefect hooks and the ``MemoryStore`` block both call it. Names are imported on first
access so ``import memory_resources.capture.declare`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "MASK": "memory_resources.capture.masking",
    "capture_parameters": "memory_resources.capture.masking",
    "mask_value": "memory_resources.capture.masking",
    "safe_value": "memory_resources.capture.masking",
    "Outbox": "memory_resources.capture.outbox",
    "OutboxEntry": "memory_resources.capture.outbox",
    "OutboxTarget": "memory_resources.capture.outbox",
    "default_outbox_path": "memory_resources.capture.outbox",
    "CaptureStores": "memory_resources.capture.writer",
    "CaptureWriter": "memory_resources.capture.writer",
    "ReplayReport": "memory_resources.capture.writer",
    "TargetReplay": "memory_resources.capture.replay",
    "replay_outbox": "memory_resources.capture.replay",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memory_resources.capture' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = sorted(_LAZY)
