"""The Prefect integration: declare-once run capture, injection, and the durable outbox.

``remember(memory)`` over ``@flow`` writes every run's history and its tasks' outputs to a
:class:`~memory_resources.blocks.MemoryStore`; ``memory.task`` is a capturing ``@task``;
``current_memory()`` returns the capturing memory from inside a run. See docs/prefect.md.
"""

from __future__ import annotations

from ..capture.masking import MASK, capture_parameters, mask_value
from ..capture.outbox import Outbox, OutboxTarget, default_outbox_path
from ..capture.writer import CaptureStores, CaptureWriter, ReplayReport
from .artifacts import summarize
from .capture import current_memory, referenced_tasks, remember, remembered_task
from .hooks import SKIP_TAG, CaptureTarget, FlowCaptureHook, TaskCaptureHook
from .lock_manager import MemoryLockManager

__all__ = [
    "MASK",
    "SKIP_TAG",
    "CaptureStores",
    "CaptureTarget",
    "CaptureWriter",
    "FlowCaptureHook",
    "MemoryLockManager",
    "Outbox",
    "OutboxTarget",
    "ReplayReport",
    "TaskCaptureHook",
    "capture_parameters",
    "current_memory",
    "default_outbox_path",
    "mask_value",
    "referenced_tasks",
    "remember",
    "remembered_task",
    "summarize",
]
