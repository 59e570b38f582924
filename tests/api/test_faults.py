"""Backend faults through MemoryAPI: typed errors, never a silent False, other roles unharmed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from memory_resources.api import MemoryAPI
from memory_resources.errors import BackendError, BackendUnavailableError

from .conftest import DIMENSION

NOBODY_LISTENS = "127.0.0.1"
CLOSED_PORT = 1


def _api_with_unreachable(backend: str, tmp_path: Path) -> MemoryAPI:
    """A MemoryAPI whose ``backend`` (``redis`` or ``postgres``) is configured at a port
    nobody listens on (one attempt, 1 s timeout); the other roles stay embedded."""
    unreachable = {"host": NOBODY_LISTENS, "port": CLOSED_PORT, "connection_timeout": 1,
                   "retry_attempts": 0}
    configs: dict[str, Any] = {f"{backend}_config": unreachable}
    return MemoryAPI(**configs, vector_config={"dimension": DIMENSION},
                     embedded_config={"path": str(tmp_path / "m.db")})


def test_connect_raises_a_typed_error_when_redis_is_unreachable(tmp_path: Path) -> None:
    """connect() raises BackendUnavailableError naming redis instead of returning False."""
    api = _api_with_unreachable("redis", tmp_path)
    with pytest.raises(BackendUnavailableError) as caught:
        api.connect()
    assert caught.value.backend == "redis"
    api.disconnect()


def test_a_down_backend_only_fails_the_methods_it_serves(tmp_path: Path) -> None:
    """With Redis down, context writes raise a BackendError while history keeps working."""
    api = _api_with_unreachable("redis", tmp_path)
    with pytest.raises(BackendError):
        api.set_context("c", {"v": 1})
    with pytest.raises(BackendError):
        api.acquire_lock("l", blocking_timeout=0).acquire()
    assert api.write_flow_run_history("f", "r", {"status": "completed"}) is True
    assert api.read_flow_run_history("f")[0]["status"] == "completed"
    assert api.health_check()["overall_status"] == "degraded"
    api.disconnect()


def test_connect_raises_a_typed_error_when_postgres_is_unreachable(tmp_path: Path) -> None:
    """An unreachable PostgreSQL makes connect() raise BackendUnavailableError (postgres)."""
    api = _api_with_unreachable("postgres", tmp_path)
    with pytest.raises(BackendUnavailableError) as caught:
        api.connect()
    assert caught.value.backend == "postgres"
    assert api.set_context("still-works", {"v": 1}) is True
    api.disconnect()
