"""The context handle and the lock factory of MemoryAPI."""

from __future__ import annotations

import threading

import pytest

from memory_resources.api import MemoryAPI
from memory_resources.errors import LockLostError, LockNotAcquiredError
from memory_resources.handles import ContextHandle
from memory_resources.runinfo import acting_as


def test_context_handle_round_trip(api: MemoryAPI) -> None:
    """set/get/data/update/append_event/events/clear act on the bound session."""
    ctx = api.context("session-1", ttl=600)
    assert isinstance(ctx, ContextHandle)
    assert ctx.get() is None and ctx.data == {}
    record = ctx.set({"user": "ada"})
    assert record["data"] == {"user": "ada"} and record["ttl"] == 600
    assert ctx.update(step=2) == {"user": "ada", "step": 2}
    stored = api.get_context("session-1")
    assert stored is not None and stored["data"] == {"user": "ada", "step": 2}
    assert stored["ttl"] == 600
    event = ctx.append_event({"type": "goal"})
    assert event["data"] == {"type": "goal"} and event["id"]
    assert [e["data"] for e in ctx.events()] == [{"type": "goal"}]
    assert [e["data"] for e in ctx.events(since=event["id"])] == []
    assert ctx.clear() is True
    assert ctx.get() is None and ctx.events() == []


def test_context_handle_ttl_override(api: MemoryAPI) -> None:
    """set(..., ttl=None) stores without expiry even when the handle has a TTL."""
    ctx = api.context("session-2", ttl=60)
    assert ctx.set({"a": 1}, ttl=None)["ttl"] is None
    assert ctx.set({"a": 1}, ttl=30)["ttl"] == 30
    assert ctx.set({"a": 1})["ttl"] == 60


def test_handle_writes_are_attributed_to_the_acting_run(api: MemoryAPI) -> None:
    """Writes through a handle inside acting_as() carry that flow run id in the audit log."""
    ctx = api.context("session-3")
    with acting_as("flow-run-42", "task-run-7"):
        ctx.set({"x": 1})
        ctx.append_event({"type": "e"})
    rows = api.read_audit_log(flow_run_id="flow-run-42")
    assert len(rows) == 2
    assert {row["task_run_id"] for row in rows} == {"task-run-7"}


def test_lock_factory_returns_an_unacquired_lock(api: MemoryAPI) -> None:
    """memory.lock(name) is acquired by `with` and exposes the fencing token."""
    lock = api.lock("resource", timeout=5, blocking_timeout=0)
    assert lock.fencing_token is None and not lock.held
    with lock as held:
        assert held is lock and lock.held
        first = lock.fencing_token
        with pytest.raises(LockNotAcquiredError):
            api.lock("resource", blocking_timeout=0).acquire()
    with api.lock("resource", blocking_timeout=0) as again:
        assert again.fencing_token is not None and first is not None
        assert again.fencing_token > first


def test_lock_auto_extend_keeps_the_lease(api: MemoryAPI) -> None:
    """With auto_extend the watchdog keeps a 0.3 s lease alive past its TTL."""
    with api.lock("long", timeout=0.3, blocking_timeout=0, auto_extend=True) as lock:
        threading.Event().wait(0.8)
        assert not lock.lost
        with pytest.raises(LockNotAcquiredError):
            api.lock("long", blocking_timeout=0).acquire()
        lock.extend()


def test_extend_after_takeover_reports_lock_lost(api: MemoryAPI) -> None:
    """A lease that expired and was taken by another holder cannot be extended."""
    lock = api.lock("short", timeout=0.1, blocking_timeout=0).acquire()
    threading.Event().wait(0.3)
    with api.lock("short", blocking_timeout=0):
        with pytest.raises(LockLostError):
            lock.extend()
        assert lock.release() is False
