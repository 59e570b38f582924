"""The process-wide MemoryAPI: built once from the environment, replaceable, resettable."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

import memory_resources
from memory_resources import default
from memory_resources.api import MemoryAPI
from memory_resources.errors import ConfigurationError


def test_get_memory_api_is_one_instance_across_threads(memory_home: Path) -> None:
    """Eight threads calling get_memory_api() concurrently all get the same instance."""
    seen: list[MemoryAPI] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        seen.append(default.get_memory_api())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and all(api is seen[0] for api in seen)
    assert memory_resources.get_memory_api() is seen[0]


def test_default_uses_the_embedded_file_under_home(memory_home: Path) -> None:
    """Without backend env vars the default runs on $MEMORY_RESOURCES_HOME/memory.db."""
    api = default.get_memory_api()
    api.set_context("global", {"v": 1})
    assert set(api.backends.values()) == {"sqlite", "numpy"}
    assert (memory_home / "memory.db").exists()


def test_env_vector_settings_are_applied(memory_home: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """MEMORY_RESOURCES_VECTOR_BACKEND/DIMENSION configure the default's vector index."""
    monkeypatch.setenv(default.ENV_VECTOR_BACKEND, "numpy")
    monkeypatch.setenv(default.ENV_VECTOR_DIMENSION, "4")
    api = default.get_memory_api()
    assert api.vector_dimension == 4
    assert api.index_embedding("v", [1.0, 0.0, 0.0, 0.0]) is True


def test_bad_env_dimension_is_a_configuration_error(memory_home: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-numeric MEMORY_RESOURCES_VECTOR_DIMENSION names the variable."""
    monkeypatch.setenv(default.ENV_VECTOR_DIMENSION, "big")
    with pytest.raises(ConfigurationError, match=default.ENV_VECTOR_DIMENSION):
        default.get_memory_api()


def test_configs_from_env_maps_every_variable() -> None:
    """Each MEMORY_RESOURCES_* variable becomes the matching config dict key."""
    kwargs = default.configs_from_env({
        default.ENV_REDIS_URL: "redis://127.0.0.1:6379/2",
        default.ENV_POSTGRES_DSN: "postgresql://u@127.0.0.1/db",
        default.ENV_VECTOR_BACKEND: "pgvector",
        default.ENV_VECTOR_DIMENSION: "384",
    })
    assert kwargs == {
        "redis_config": {"url": "redis://127.0.0.1:6379/2"},
        "postgres_config": {"dsn": "postgresql://u@127.0.0.1/db"},
        "vector_config": {"backend": "pgvector", "dimension": 384},
    }
    assert default.configs_from_env({}) == {}


def test_configure_and_set_replace_the_default(memory_home: Path, tmp_path: Path) -> None:
    """configure_memory_api builds and installs an API; set_memory_api installs a given one."""
    configured = default.configure_memory_api(
        vector_config={"dimension": 3}, embedded_config={"path": str(tmp_path / "c.db")})
    assert default.get_memory_api() is configured
    assert configured.vector_dimension == 3
    mine = MemoryAPI(vector_config={"dimension": 5},
                     embedded_config={"path": str(tmp_path / "mine.db")})
    assert default.set_memory_api(mine) is mine
    assert default.get_memory_api() is mine
    default.reset_memory_api()
    rebuilt = default.get_memory_api()
    assert rebuilt is not mine and rebuilt.vector_dimension == 768
    mine.set_context("still-usable", {"v": 1})  # set_memory_api never closes a given API
    mine.disconnect()


def test_set_memory_api_refuses_other_objects() -> None:
    """Only a MemoryAPI can become the default."""
    with pytest.raises(ConfigurationError):
        default.set_memory_api("not an api")  # type: ignore[arg-type]


def test_import_is_cheap_and_prefect_free() -> None:
    """`import memory_resources` imports neither Prefect, redis, psycopg2 nor the API."""
    code = ("import sys, memory_resources; "
            "print(sorted(m for m in ('prefect', 'redis', 'psycopg2', 'numpy', "
            "'memory_resources.api') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_default_is_closed_at_exit(tmp_path: Path) -> None:
    """A process using the default exits cleanly and leaves its data readable."""
    home = tmp_path / "exit-home"
    code = ("from memory_resources import get_memory_api; "
            "get_memory_api().set_context('atexit', {'v': 1})")
    env = {"MEMORY_RESOURCES_HOME": str(home), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    with MemoryAPI(embedded_config={"path": str(home / "memory.db")}) as api:
        record = api.get_context("atexit")
        assert record is not None and record["data"] == {"v": 1}
    assert not (home / "memory.db-wal").exists() or (home / "memory.db-wal").stat().st_size == 0
