"""The suites' view of the backend under test: each fixture returns the project's
``memory_<role>`` fixture.

Each suite binds the ones it uses at module level (``context_store = roles.context_store``),
so they are module fixtures there: a project's own ``context_store`` fixture (say) cannot
shadow the one the kit tests.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def context_store(memory_context_store: Any) -> Any:
    """The ContextStore under test."""
    return memory_context_store


@pytest.fixture
def event_log(memory_event_log: Any) -> Any:
    """The EventLog under test."""
    return memory_event_log


@pytest.fixture
def lock_manager(memory_lock_manager: Any) -> Any:
    """The LockManager under test."""
    return memory_lock_manager


@pytest.fixture
def run_history(memory_run_history: Any) -> Any:
    """The RunHistory under test."""
    return memory_run_history


@pytest.fixture
def task_outputs(memory_task_outputs: Any) -> Any:
    """The TaskOutputs under test."""
    return memory_task_outputs


@pytest.fixture
def audit_log(memory_audit_log: Any) -> Any:
    """The audited store under test (AuditLog, ContextStore, RunHistory, TaskOutputs)."""
    return memory_audit_log


@pytest.fixture
def vector_index(memory_vector_index: Any) -> Any:
    """The factory of VectorIndex instances under test."""
    return memory_vector_index
