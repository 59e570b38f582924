"""The contract kit: the behaviour suites every backend of this library passes, as a
pytest plugin a third-party backend runs against itself.

Define, in a ``conftest.py``, one fixture per role the backend implements, each returning
a connected, empty, isolated instance (closed after the test)::

    memory_context_store   ContextStore          memory_run_history    RunHistory
    memory_event_log       EventLog              memory_task_outputs   TaskOutputs
    memory_lock_manager    LockManager           memory_audit_log      AuditLog (+ the
    memory_vector_index    make(dimension, metric, *, namespace=None) -> VectorIndex

and run ``pytest -p memory_resources.testing`` (or list ``"memory_resources.testing"`` in
the root conftest's ``pytest_plugins``). The kit runs the suite of every role provided and
reports the others as skipped. Only this package imports pytest (install the ``testing``
extra); ``import memory_resources`` never does. See docs/extending.md.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("memory_resources.testing.suites")

from memory_resources.testing.plugin import (  # noqa: E402
    FIXTURES,
    PROTOCOLS,
    ROLES,
    pytest_collect_file,
    pytest_sessionfinish,
    pytest_terminal_summary,
    pytest_testnodedown,
)

__all__ = ["FIXTURES", "PROTOCOLS", "ROLES", "pytest_collect_file", "pytest_sessionfinish",
           "pytest_terminal_summary", "pytest_testnodedown"]
