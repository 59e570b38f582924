"""LockManager contract: lease primitives and the generic Lock handle built on them.

Uses only the Protocol methods (``try_acquire`` / ``release`` / ``extend``) through the
``lock_manager`` fixture, and :class:`memory_resources.locking.Lock` over it. Lease expiry
uses real time (leases of a few hundred milliseconds).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from typing import Any

import pytest

from memory_resources.errors import LockNotAcquiredError, MemoryValidationError
from memory_resources.locking import Lock
from memory_resources.protocols import LockManager
from memory_resources.testing.suites import roles
from memory_resources.testing.threads import run_in_threads

lock_manager = roles.lock_manager


def _name() -> str:
    return f"lock-{uuid.uuid4().hex}"


def _owner() -> str:
    return uuid.uuid4().hex


def test_fixture_implements_protocol(lock_manager: Any) -> None:
    """The fixture object satisfies the LockManager protocol and names its backend."""
    assert isinstance(lock_manager, LockManager)
    assert isinstance(lock_manager.backend_name, str) and lock_manager.backend_name


def test_only_one_owner_holds_a_lease(lock_manager: LockManager) -> None:
    """While one owner holds the lease, another owner's try_acquire returns None."""
    name, a, b = _name(), _owner(), _owner()
    token = lock_manager.try_acquire(name, a, 10_000)
    assert isinstance(token, int) and not isinstance(token, bool)
    assert lock_manager.try_acquire(name, b, 10_000) is None
    assert lock_manager.try_acquire(_name(), b, 10_000) is not None, "other names are free"


def test_release_by_non_owner_is_refused(lock_manager: LockManager) -> None:
    """release by another owner returns False and the lease stays held."""
    name, a, b = _name(), _owner(), _owner()
    assert lock_manager.try_acquire(name, a, 10_000) is not None
    assert lock_manager.release(name, b) is False
    assert lock_manager.try_acquire(name, b, 10_000) is None
    assert lock_manager.release(name, a) is True
    assert lock_manager.release(name, a) is False, "a second release finds nothing"


def test_fencing_tokens_strictly_increase(lock_manager: LockManager) -> None:
    """Each acquisition of a name returns a larger token, even after the lease was released."""
    name = _name()
    tokens: list[int] = []
    for _ in range(8):
        owner = _owner()
        token = lock_manager.try_acquire(name, owner, 10_000)
        assert token is not None
        tokens.append(token)
        assert lock_manager.release(name, owner) is True
    assert all(later > earlier for earlier, later in itertools.pairwise(tokens))


def test_expired_lease_can_be_taken_and_old_owner_loses_it(lock_manager: LockManager) -> None:
    """After ttl_ms another owner takes the lease with a larger token; the old owner's
    release and extend then fail."""
    name, a, b = _name(), _owner(), _owner()
    first = lock_manager.try_acquire(name, a, 200)
    assert first is not None
    time.sleep(0.35)
    second = lock_manager.try_acquire(name, b, 10_000)
    assert second is not None and second > first
    assert lock_manager.extend(name, a, 10_000) is False
    assert lock_manager.release(name, a) is False
    assert lock_manager.try_acquire(name, a, 10_000) is None


def test_extend_keeps_the_lease_past_its_first_ttl(lock_manager: LockManager) -> None:
    """extend by the owner resets the lease; extend by another owner is refused."""
    name, a, b = _name(), _owner(), _owner()
    started = time.monotonic()
    assert lock_manager.try_acquire(name, a, 800) is not None
    assert lock_manager.extend(name, b, 5_000) is False
    assert lock_manager.extend(name, a, 5_000) is True
    time.sleep(max(0.0, started + 1.0 - time.monotonic()))  # past the first lease's end
    assert lock_manager.try_acquire(name, b, 1_000) is None
    assert lock_manager.release(name, a) is True


def test_lock_handle_is_a_context_manager(lock_manager: LockManager) -> None:
    """Lock holds the lease inside the with-block with a fencing token and frees it after."""
    name = _name()
    with Lock(lock_manager, name, timeout=5, blocking_timeout=0) as lock:
        assert lock.held and lock.fencing_token is not None
        assert lock_manager.try_acquire(name, _owner(), 1_000) is None
        first = lock.fencing_token
    assert not lock.held
    with Lock(lock_manager, name, timeout=5, blocking_timeout=0) as again:
        assert again.fencing_token is not None and again.fencing_token > first


def test_lock_is_released_when_the_body_raises(lock_manager: LockManager) -> None:
    """An exception in the with-body propagates and the lease is released."""
    name = _name()
    with pytest.raises(RuntimeError, match="boom"), Lock(lock_manager, name, timeout=30):
        raise RuntimeError("boom")
    assert lock_manager.try_acquire(name, _owner(), 1_000) is not None


def test_blocking_timeout_is_honoured(lock_manager: LockManager) -> None:
    """A held lock makes acquire give up with LockNotAcquiredError after blocking_timeout."""
    name = _name()
    assert lock_manager.try_acquire(name, _owner(), 30_000) is not None
    started = time.monotonic()
    with pytest.raises(LockNotAcquiredError) as info:
        Lock(lock_manager, name, timeout=5, blocking_timeout=0.3).acquire()
    assert time.monotonic() - started >= 0.3
    assert info.value.lock_name == name


def test_waiter_gets_the_lock_when_the_holder_releases(lock_manager: LockManager) -> None:
    """A blocked acquire succeeds once the holder releases within blocking_timeout."""
    name, holder = _name(), _owner()
    assert lock_manager.try_acquire(name, holder, 30_000) is not None
    timer = threading.Timer(0.2, lambda: lock_manager.release(name, holder))
    timer.start()
    try:
        with Lock(lock_manager, name, timeout=5, blocking_timeout=5) as lock:
            assert lock.held
    finally:
        timer.join()


def test_mutual_exclusion_between_threads(lock_manager: LockManager) -> None:
    """Threads incrementing a shared counter under the lock lose no update; tokens grow."""
    name = _name()
    counter = {"value": 0}
    tokens: list[int] = []

    def work() -> None:
        for _ in range(15):
            with Lock(lock_manager, name, timeout=10, blocking_timeout=30,
                      retry_delay=0.005) as lock:
                assert lock.fencing_token is not None
                tokens.append(lock.fencing_token)
                value = counter["value"]
                time.sleep(0.0005)
                counter["value"] = value + 1

    errors = run_in_threads(*[work] * 4)
    assert errors == []
    assert counter["value"] == 60
    assert all(later > earlier for earlier, later in itertools.pairwise(tokens))


@pytest.mark.parametrize("odd", ["spaces in name", "glob*?[x]", "{tag}", "ünï 🚀 'q' \"dq\""])
def test_odd_lock_names_are_independent(lock_manager: LockManager, odd: str) -> None:
    """Odd lock names lock only themselves."""
    base = uuid.uuid4().hex
    name, other = f"{base}{odd}", f"{base}{odd}x"
    owner = _owner()
    assert lock_manager.try_acquire(name, owner, 5_000) is not None
    assert lock_manager.try_acquire(other, _owner(), 5_000) is not None
    assert lock_manager.release(name, owner) is True


@pytest.mark.parametrize(("name", "ttl_ms", "field"), [
    ("", 1_000, "lock_name"),
    (None, 1_000, "lock_name"),
    ("ok", 0, "ttl_ms"),
    ("ok", -5, "ttl_ms"),
    ("ok", "100", "ttl_ms"),
])
def test_bad_arguments_are_refused(
    lock_manager: LockManager, name: Any, ttl_ms: Any, field: str
) -> None:
    """Bad names or TTLs raise MemoryValidationError naming the argument; nothing is held."""
    real = _name() if name == "ok" else name
    with pytest.raises(MemoryValidationError) as info:
        lock_manager.try_acquire(real, _owner(), ttl_ms)
    assert info.value.field == field
    if name == "ok":
        assert lock_manager.try_acquire(real, _owner(), 1_000) is not None


def test_lock_handle_validates_its_name(lock_manager: LockManager) -> None:
    """The Lock handle refuses an empty name before touching the backend."""
    with pytest.raises(MemoryValidationError):
        Lock(lock_manager, "")


def test_retry_jitter_leaves_the_global_random_state_alone(lock_manager: LockManager) -> None:
    """A Lock that retries (jitter between attempts) draws from its own generator, so the
    application's ``random`` sequence is the same with or without the wait."""
    name, holder = _name(), _owner()
    assert lock_manager.try_acquire(name, holder, 10_000) is not None
    try:
        state = random.getstate()
        with pytest.raises(LockNotAcquiredError):
            Lock(lock_manager, name, timeout=10, blocking_timeout=0.3,
                 retry_delay=0.02).acquire()
        assert random.getstate() == state
    finally:
        lock_manager.release(name, holder)


def test_is_held_follows_the_lease(lock_manager: Any) -> None:
    """``is_held`` (the LockInspector view) is True while a lease is held and False once it
    was released or expired, whoever asks."""
    from memory_resources.protocols import LockInspector

    assert isinstance(lock_manager, LockInspector) and isinstance(lock_manager, LockManager)
    name, a = _name(), _owner()
    assert lock_manager.is_held(name) is False
    assert lock_manager.try_acquire(name, a, 10_000) is not None
    assert lock_manager.is_held(name) is True
    assert lock_manager.release(name, a) is True
    assert lock_manager.is_held(name) is False
    assert lock_manager.try_acquire(name, a, 200) is not None
    time.sleep(0.35)
    assert lock_manager.is_held(name) is False, "an expired lease is not held"
