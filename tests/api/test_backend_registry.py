"""The backend registry: built-ins and entry points resolved by name for every role,
configuration by name (``backends=``), and its errors. Third-party backends are
registered through real entry points (the ``plugin`` fixture: a dist-info folder on
sys.path, tests/fixtures/plugins.py)."""

from __future__ import annotations

import asyncio
import importlib
import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from memory_resources import MemoryAPI, backends
from memory_resources.api_async import AsyncMemoryAPI
from memory_resources.backends import available_backends, resolve_backend
from memory_resources.backends_builtin import BUILTIN, NUMPY, REDIS, SQLITE
from memory_resources.default import configs_from_env
from memory_resources.errors import ConfigurationError
from memory_resources.stores.offload import ThreadOffload

REPO = Path(__file__).resolve().parents[2]
STORE_ROLES = ("context", "events", "locks", "history", "outputs", "audit")

def _embedded(tmp_path: Path) -> dict[str, Any]:
    return {"embedded_config": {"path": str(tmp_path / "memory.db")},
            "vector_config": {"dimension": 4}}


def test_builtins_resolve_by_name_and_alias() -> None:
    """Built-ins resolve case-insensitively, aliases included, and are listed per role;
    this package's own entry points for them raise no shadowing warning."""
    backends._shadowing.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_backend(" Redis ", "context") is REDIS
    assert resolve_backend("embedded", "history") is SQLITE
    assert resolve_backend("placeholder", "vectors") is NUMPY
    assert {"numpy", "pgvector", "placeholder"} <= set(available_backends("vectors"))
    assert {"embedded", "postgres", "sqlite"} <= set(available_backends("audit"))
    assert "redis" in available_backends("locks") and "redis" not in available_backends("audit")
    assert "numpy" not in available_backends("context")


def test_pyproject_declares_each_builtin_entry_point() -> None:
    """pyproject.toml's memory_resources.backends entry points are the built-in Backend
    objects, so an installed package lists them (the registry knows them without it)."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    points = project["entry-points"]["memory_resources.backends"]
    assert set(points) == set(BUILTIN)
    for name, target in points.items():
        module, _, attribute = target.partition(":")
        assert getattr(importlib.import_module(module), attribute) is BUILTIN[name]


def test_unknown_name_lists_the_known_names_of_that_role(plugin: Any, tmp_path: Path) -> None:
    """An unknown backend name is a ConfigurationError naming the role's known backends,
    installed entry points included, vectors-only ones and broken ones left out."""
    with pytest.raises(ConfigurationError) as info:
        MemoryAPI(backends={"events": {"backend": "kafka"}}, **_embedded(tmp_path))
    message = str(info.value)
    assert message.startswith("backends['events']['backend']: unknown events backend 'kafka'")
    assert "known: embedded, plugsql, plugsync, postgres, redis, sqlite (" in message


def test_a_backend_that_cannot_fill_the_role_is_refused(tmp_path: Path) -> None:
    """Naming a backend for a role it does not declare says which roles it fills."""
    with pytest.raises(ConfigurationError, match=r"backends\['history'\]\['backend'\]: the "
                       r"'redis' backend cannot fill the history role \(it fills context, "
                       r"events, locks\)"):
        MemoryAPI(backends={"history": "redis"}, **_embedded(tmp_path))
    with pytest.raises(ConfigurationError, match=r"backends\['memory'\]: unknown role"):
        MemoryAPI(backends={"memory": "sqlite"}, **_embedded(tmp_path))
    with pytest.raises(ConfigurationError, match=r"backends\['context'\]: must be a dict"):
        MemoryAPI(backends={"context": {"url": "redis://x"}}, **_embedded(tmp_path))


def test_an_entry_point_cannot_shadow_a_builtin(plugin: Any, tmp_path: Path) -> None:
    """An entry point of another distribution named like a built-in (redis) is ignored:
    the built-in is used, and the first resolution says so with a UserWarning naming the
    entry point (once per process)."""
    backends._shadowing.cache_clear()
    with pytest.warns(UserWarning, match=r"entry point 'redis' = .* is ignored: 'redis' "
                                         r"names the built-in backend"):
        assert resolve_backend("redis", "context") is REDIS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_backend("redis", "context") is REDIS
        assert resolve_backend("sqlite", "history") is not None
    with pytest.raises(ConfigurationError, match=r"cannot fill the history role"):
        resolve_backend("redis", "history")


def test_the_deprecated_vector_group_still_builds_vectors(plugin: Any, tmp_path: Path) -> None:
    """A factory in memory_resources.vector_backends is a vectors-only backend, built
    with a DeprecationWarning from vector_config, and serves the spec's vector calls."""
    with pytest.warns(DeprecationWarning, match="deprecated entry-point group"):
        api = MemoryAPI(vector_config={"backend": "LegacyVec", "dimension": 4},
                        embedded_config={"path": str(tmp_path / "memory.db")})
    try:
        assert plugin.CALLS == [("legacy", "legacyvec")]
        assert api.index_embedding("doc", [1, 0, 0, 0], {"kind": "note"})
        assert [m["id"] for m in api.query_embeddings([1, 0, 0, 0], top_k=1)] == ["doc"]
    finally:
        api.disconnect()
    with pytest.raises(ConfigurationError, match="cannot fill the context role"), \
            pytest.warns(DeprecationWarning):
        MemoryAPI(backends={"context": "legacyvec"}, **_embedded(tmp_path))


def test_a_missing_package_or_a_broken_entry_point_is_named(plugin: Any,
                                                            tmp_path: Path) -> None:
    """A backend whose driver or module is not installed names the package; an entry
    point that is not a Backend says so."""
    with pytest.raises(ConfigurationError, match=r"backends\['context'\]: the 'needdriver' "
                       r"backend needs the Python package 'no_such_driver_pkg', which is not "
                       r"installed"):
        MemoryAPI(backends={"context": "needdriver"}, **_embedded(tmp_path))
    with pytest.raises(ConfigurationError, match=r"the 'gone' backend needs the Python "
                       r"package 'no_such_plugin_module'"):
        MemoryAPI(backends={"context": "gone"}, **_embedded(tmp_path))
    with pytest.raises(ConfigurationError, match=r"entry point 'plug_backends:NOT_A_BACKEND' "
                       r"of 'notbackend' is not a memory_resources.backends.Backend"):
        MemoryAPI(backends={"context": "notbackend"}, **_embedded(tmp_path))


def test_options_are_validated_by_the_backend_before_anything_is_built(
    plugin: Any, tmp_path: Path
) -> None:
    """A backend's own options model refuses a missing or unknown key, naming it, and no
    store is built when any role's options are wrong."""
    with pytest.raises(ConfigurationError, match=r"backends\['context'\]\['path'\]: Field "
                                                 r"required"):
        MemoryAPI(backends={"context": {"backend": "plugsql"}}, **_embedded(tmp_path))
    with pytest.raises(ConfigurationError, match=r"backends\['audit'\]\['colour'\]: Extra"):
        MemoryAPI(backends={"context": {"backend": "plugsql", "path": str(tmp_path / "a")},
                            "audit": {"backend": "plugsql", "path": "x", "colour": 1}},
                  **_embedded(tmp_path))
    assert plugin.CALLS == []


@pytest.mark.parametrize("role", STORE_ROLES)
def test_a_third_party_backend_fills_any_role_by_name(plugin: Any, tmp_path: Path,
                                                      role: str) -> None:
    """backends={role: {"backend": "plugsql", ...}} puts that role, and only it, on the
    entry point's backend; the API's calls for the role, store(role) and the health
    check see it."""
    path = tmp_path / "plug.db"
    api = MemoryAPI(backends={role: {"backend": "plugsql", "path": str(path)}},
                    **_embedded(tmp_path))
    try:
        assert api.backends == {**dict.fromkeys(STORE_ROLES, "sqlite"), "vectors": "numpy",
                                role: "plugsql"}
        assert type(api.store(role)).__name__ == "PlugStore"
        api.set_context("s", {"n": 1})
        api.append_event("s", {"type": "x"})
        api.write_flow_run_history("flow", "run", {"status": "completed"})
        api.write_task_output("task", {"v": 1})
        with api.acquire_lock("lock", timeout=5) as lock:
            assert lock.fencing_token is not None
        assert api.get_context("s")["data"] == {"n": 1}  # type: ignore[index]
        assert [e["data"] for e in api.get_events("s")] == [{"type": "x"}]
        assert api.read_flow_run_history("flow")[0]["run_id"] == "run"
        assert api.read_task_output("task")["output"] == {"v": 1}  # type: ignore[index]
        audit = api.read_audit_log(limit=50)  # the plug store's trail has no writes
        assert audit == [] if role == "audit" else audit
        adapter = next(name for name, roles in
                       (("redis", ("context", "events", "locks")),
                        ("postgres", ("history", "outputs", "audit"))) if role in roles)
        report = api.health_check()
        assert report["overall_status"] == "healthy"
        assert report["adapters"][adapter]["backend"] == "plugsql,sqlite"
        assert report["adapters"][adapter]["roles"][role]["backend"] == "plugsql"
    finally:
        api.disconnect()
    assert path.exists()


def test_roles_with_equal_options_share_one_store(plugin: Any, tmp_path: Path) -> None:
    """Roles naming the same backend with equal options share one store; other options
    build another."""
    one = {"backend": "plugsql", "path": str(tmp_path / "one.db")}
    api = MemoryAPI(backends={"context": one, "events": dict(one),
                              "history": {"backend": "plugsql", "path": str(tmp_path / "2")}},
                    **_embedded(tmp_path))
    try:
        assert api.store("context") is api.store("events")
        assert api.store("history") is not api.store("context")
        assert [call[0] for call in plugin.CALLS] == ["build", "build"]
    finally:
        api.disconnect()


def test_backends_override_the_seed_keys_role_by_role(
    plugin: Any, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """redis_config keeps the roles that backends= does not name: context on the entry
    point's backend, events and locks on Redis."""
    api = MemoryAPI(redis_config={"url": redis_url, "key_prefix": redis_prefix},
                    backends={"context": {"backend": "plugsql",
                                          "path": str(tmp_path / "c.db")}},
                    **_embedded(tmp_path))
    try:
        assert api.backends["context"] == "plugsql"
        assert api.backends["events"] == api.backends["locks"] == "redis"
        api.set_context("s", {"on": "plug"})
        api.append_event("s", {"on": "redis"})
        assert api.get_context("s")["data"] == {"on": "plug"}  # type: ignore[index]
        assert api.store("events").get_events("s")[0]["data"] == {"on": "redis"}
    finally:
        api.clear_context("s")
        api.store("events").clear_context("s")
        api.disconnect()


def test_every_builtin_by_name_on_real_services(
    tmp_path: Path, redis_url: str, redis_prefix: str, postgres_dsn: str, pg_schema: str,
    pgvector_dsn: str, pgvector_schema: str,
) -> None:
    """backends= alone configures Redis, PostgreSQL and pgvector by name; roles given
    the same options share one store and the facade works end to end."""
    redis = {"backend": "redis", "url": redis_url, "key_prefix": redis_prefix}
    postgres = {"backend": "postgres", "dsn": postgres_dsn, "schema": pg_schema}
    vectors = {"backend": "pgvector", "dimension": 4, "namespace": "byname",
               "postgres": {"dsn": pgvector_dsn, "schema": pgvector_schema}}
    backends = {"context": redis, "events": redis, "locks": redis, "history": postgres,
                "outputs": postgres, "audit": postgres, "vectors": vectors}
    with MemoryAPI(backends=backends,
                   embedded_config={"path": str(tmp_path / "unused.db")}) as api:
        assert api.backends == {**dict.fromkeys(("context", "events", "locks"), "redis"),
                                **dict.fromkeys(("history", "outputs", "audit"), "postgres"),
                                "vectors": "pgvector"}
        assert api.store("context") is api.store("locks")
        assert api.store("history") is api.store("audit")
        api.set_context("s", {"a": 1}, ttl=60)
        api.write_flow_run_history("f", "r", {"status": "running"})
        api.index_embedding("v", [1, 2, 3, 4])
        assert api.get_context("s")["data"] == {"a": 1}  # type: ignore[index]
        assert api.read_flow_run_history("f")[0]["status"] == "running"
        assert api.query_embeddings([1, 2, 3, 4], top_k=1)[0]["id"] == "v"
        assert api.health_check()["overall_status"] == "healthy"
        api.clear_context("s")
    assert not (tmp_path / "unused.db").exists()


def test_async_api_uses_build_async_else_worker_threads(plugin: Any, tmp_path: Path) -> None:
    """AsyncMemoryAPI takes the store of a backend's build_async as it is and runs a
    sync-only backend's store on worker threads."""
    api = AsyncMemoryAPI(
        backends={"context": {"backend": "plugsql", "path": str(tmp_path / "a.db")},
                  "events": {"backend": "plugsync", "path": str(tmp_path / "b.db")}},
        **_embedded(tmp_path))
    assert [("build_async", str(tmp_path / "a.db")),
                            ("build", str(tmp_path / "b.db"))] == plugin.CALLS
    assert api.backends["context"] == api.backends["events"] == "plugsql"

    async def use() -> None:
        async with api:
            context, events = await api.store("context"), await api.store("events")
            assert isinstance(context, ThreadOffload) and isinstance(events, ThreadOffload)
            assert context is not events
            await api.set_context("s", {"async": True})
            await api.append_event("s", {"n": 1})
            assert (await api.get_context("s"))["data"] == {"async": True}  # type: ignore[index]
            assert len(await api.get_events("s")) == 1

    asyncio.run(use())


def test_the_environment_configures_backends_by_name(plugin: Any, tmp_path: Path) -> None:
    """MEMORY_RESOURCES_BACKENDS (JSON) gives get_memory_api's configuration its
    backends; malformed JSON is a ConfigurationError naming the variable."""
    spec = {"context": {"backend": "plugsql", "path": str(tmp_path / "env.db")}}
    kwargs = configs_from_env({"MEMORY_RESOURCES_BACKENDS": json.dumps(spec)})
    assert kwargs == {"backends": spec}
    api = MemoryAPI(**kwargs, **_embedded(tmp_path))
    try:
        assert api.backends["context"] == "plugsql"
    finally:
        api.disconnect()
    with pytest.raises(ConfigurationError, match="MEMORY_RESOURCES_BACKENDS: must be JSON"):
        configs_from_env({"MEMORY_RESOURCES_BACKENDS": "{context: redis}"})
    with pytest.raises(ConfigurationError, match="MEMORY_RESOURCES_BACKENDS: must be a JSON "
                                                 "object"):
        configs_from_env({"MEMORY_RESOURCES_BACKENDS": "[1]"})


def test_native_async_transports_come_from_the_stores(tmp_path: Path) -> None:
    """AsyncMemoryAPI gives a store with async_transport() its native twin (Redis:
    redis.asyncio, PostgreSQL: asyncpg), configured or given, and runs the others on
    worker threads; nothing connects at construction."""
    from memory_resources.stores.postgres.aio import AsyncPostgresStore
    from memory_resources.stores.redis import RedisStore
    from memory_resources.stores.redis.aio import AsyncRedisStore

    api = AsyncMemoryAPI(redis_config={"url": "redis://127.0.0.1:1/0"},
                         postgres_config={"dsn": "postgresql://u@127.0.0.1:1/db"},
                         **_embedded(tmp_path))
    roles = api._roles
    assert isinstance(roles["context"], AsyncRedisStore) and roles["locks"] is roles["context"]
    assert isinstance(roles["audit"], AsyncPostgresStore)
    assert isinstance(roles["vectors"], ThreadOffload)
    given = AsyncMemoryAPI.from_stores(context=RedisStore({"url": "redis://127.0.0.1:1/0"}),
                                       **_embedded(tmp_path))
    assert isinstance(given._roles["context"], AsyncRedisStore)
    assert isinstance(given._roles["events"], ThreadOffload)
