"""MemoryAPI configuration: dict validation, backend selection, missing backends."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from memory_resources.api import MemoryAPI
from memory_resources.errors import ConfigurationError

from .conftest import DIMENSION


def test_unknown_key_names_the_dict_and_key(tmp_path: Path) -> None:
    """A typo in redis_config is refused with the dict and key in the message."""
    with pytest.raises(ConfigurationError, match=r"redis_config\['hots'\]"):
        MemoryAPI(redis_config={"hots": "localhost"})


def test_bad_value_names_the_dict_and_key() -> None:
    """A port out of range in postgres_config is refused naming postgres_config['port']."""
    with pytest.raises(ConfigurationError, match=r"postgres_config\['port'\]"):
        MemoryAPI(postgres_config={"port": 70000})


def test_config_must_be_a_dict() -> None:
    """A vector_config that is not a dict is refused naming vector_config."""
    with pytest.raises(ConfigurationError, match="vector_config"):
        MemoryAPI(vector_config="numpy")  # type: ignore[arg-type]


def test_unknown_vector_backend_is_refused(tmp_path: Path) -> None:
    """vector_config["backend"] naming an uninstalled backend raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="pinecone"):
        MemoryAPI(vector_config={"backend": "pinecone"},
                  embedded_config={"path": str(tmp_path / "m.db")})


def test_pgvector_without_postgres_is_refused(tmp_path: Path) -> None:
    """The pgvector backend without any PostgreSQL connection is a configuration error."""
    with pytest.raises(ConfigurationError, match="pgvector"):
        MemoryAPI(vector_config={"backend": "pgvector"},
                  embedded_config={"path": str(tmp_path / "m.db")})


def test_placeholder_and_numpy_are_the_exact_index(tmp_path: Path) -> None:
    """The spec's "placeholder" backend and "numpy" both give the exact numpy index."""
    for name in ("placeholder", "numpy"):
        api = MemoryAPI(vector_config={"backend": name, "dimension": DIMENSION},
                        embedded_config={"path": str(tmp_path / f"{name}.db")})
        assert api.backends["vectors"] == "numpy"
        api.disconnect()


@pytest.mark.parametrize(("argument", "module", "config"), [
    ("redis_config", "memory_resources.stores.redis", {"host": "127.0.0.1"}),
    ("postgres_config", "memory_resources.stores.postgres", {"host": "127.0.0.1"}),
])
def test_missing_backend_module_is_a_clear_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, argument: str, module: str,
    config: dict[str, Any],
) -> None:
    """When a backend's module cannot be imported the error names the config and backend."""
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigurationError, match=f"{argument}.*not available"):
        MemoryAPI(**{argument: config}, embedded_config={"path": str(tmp_path / "m.db")})


def test_missing_driver_package_is_named(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    """When the redis package itself is missing the error says which package to install."""
    for name in [m for m in sys.modules if m == "redis" or m.startswith("redis.")
                 or m.startswith("memory_resources.stores.redis")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ConfigurationError, match="'redis'"):
        MemoryAPI(redis_config={"host": "127.0.0.1"},
                  embedded_config={"path": str(tmp_path / "m.db")})


def test_from_stores_fills_missing_roles_with_the_embedded_default(tmp_path: Path) -> None:
    """Composed from one SQLite store, every other role still works on the embedded default."""
    from memory_resources.config import EmbeddedConfig
    from memory_resources.stores.sqlite import SQLiteStore

    mine = SQLiteStore(EmbeddedConfig(path=str(tmp_path / "context.db")))
    api = MemoryAPI.from_stores(context=mine, events=mine,
                                embedded_config={"path": str(tmp_path / "rest.db")},
                                vector_config={"dimension": DIMENSION}, owns_stores=False)
    api.set_context("c", {"v": 1})
    api.write_task_output("t", {"ok": 1})
    assert mine.get_context("c") is not None
    assert api.read_task_output("t") is not None
    api.disconnect()
    assert mine.get_context("c") is not None  # not owned: still usable
    mine.close()


def test_from_stores_refuses_an_object_missing_the_protocol(tmp_path: Path) -> None:
    """A store object that does not implement its role's Protocol is refused by role name."""
    with pytest.raises(ConfigurationError, match="history"):
        MemoryAPI.from_stores(history=object(),
                              embedded_config={"path": str(tmp_path / "m.db")})
