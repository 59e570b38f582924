"""health_check() and get_memory_stats() have the spec's shape on the embedded default."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from memory_resources.api import MemoryAPI
from memory_resources.clock import to_datetime

from .conftest import DIMENSION, unit


def test_health_check_shape_on_the_embedded_default(api: MemoryAPI) -> None:
    """overall_status is healthy and each spec adapter says which backend serves it."""
    health = api.health_check()
    assert health["overall_status"] == "healthy"
    assert set(health["adapters"]) == {"redis", "postgres", "vector"}
    assert health["adapters"]["redis"]["backend"] == "sqlite"
    assert health["adapters"]["redis"]["serves"] == ["context", "events", "locks"]
    assert health["adapters"]["postgres"]["backend"] == "sqlite"
    assert health["adapters"]["postgres"]["serves"] == ["history", "outputs", "audit"]
    assert health["adapters"]["vector"]["backend"] == "numpy"
    for entry in health["adapters"].values():
        assert entry["status"] == "healthy"
        assert entry["latency_ms"] >= 0
    stamp = to_datetime(health["timestamp"])
    assert abs((dt.datetime.now(dt.timezone.utc) - stamp).total_seconds()) < 600


def test_health_and_stats_report_an_unusable_store_without_raising(tmp_path: Path) -> None:
    """A SQLite path that cannot be created makes the SQL adapters unhealthy (health) and
    carry an error (stats), while the vector adapter on another file stays healthy."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file, so nothing can be created beneath it")
    memory = MemoryAPI(embedded_config={"path": str(blocker / "sub" / "memory.db")},
                       vector_config={"dimension": DIMENSION,
                                      "path": str(tmp_path / "vectors.db")})
    health = memory.health_check()
    assert health["adapters"]["redis"]["status"] == "unhealthy"
    assert health["adapters"]["postgres"]["status"] == "unhealthy"
    assert health["adapters"]["redis"]["error"]
    assert health["overall_status"] == "degraded"  # the vector index still works
    assert health["adapters"]["vector"]["status"] == "healthy"
    stats = memory.get_memory_stats()["adapters"]
    assert stats["redis"]["error"] and stats["redis"]["used_memory"] is None
    assert stats["postgres"]["active_connections"] is None
    assert stats["vector"]["total_embeddings"] == 0
    memory.disconnect()


def test_memory_stats_have_the_spec_keys_and_counts(api: MemoryAPI) -> None:
    """stats["adapters"] carries used_memory, active_connections and total_embeddings."""
    api.index_embedding("one", unit(1))
    api.index_embedding("two", unit(0, 1))
    api.set_context("ctx", {"v": 1})
    stats = api.get_memory_stats()
    adapters = stats["adapters"]
    assert adapters["redis"]["used_memory"] > 0
    assert adapters["postgres"]["active_connections"] >= 1
    assert adapters["vector"]["total_embeddings"] == 2
    assert adapters["redis"]["backend"] == "sqlite"
    assert adapters["vector"]["backend"] == "numpy"
    assert "timestamp" in stats


def test_spec_monitoring_snippet_runs(api: MemoryAPI) -> None:
    """The spec's Monitoring example reads every key it prints."""
    health = api.health_check()
    degraded = health["overall_status"] != "healthy"
    stats = api.get_memory_stats()
    lines = [
        f"Redis memory usage: {stats['adapters']['redis']['used_memory']}",
        f"PostgreSQL connections: {stats['adapters']['postgres']['active_connections']}",
        f"Vector embeddings: {stats['adapters']['vector']['total_embeddings']}",
    ]
    assert not degraded
    assert lines[2] == "Vector embeddings: 0"


def test_health_of_an_adapter_served_by_several_stores(tmp_path: Path) -> None:
    """When an adapter's roles use different stores, its entry lists each role's report."""
    from memory_resources.config import EmbeddedConfig
    from memory_resources.stores.sqlite import SQLiteStore

    separate = SQLiteStore(EmbeddedConfig(path=str(tmp_path / "context.db")))
    api = MemoryAPI.from_stores(context=separate,
                                embedded_config={"path": str(tmp_path / "rest.db")},
                                vector_config={"dimension": DIMENSION})
    health = api.health_check()
    redis_entry = health["adapters"]["redis"]
    assert redis_entry["status"] == "healthy" and redis_entry["backend"] == "sqlite"
    assert set(redis_entry["roles"]) == {"context", "events", "locks"}
    paths = {role: report["details"]["path"] for role, report in redis_entry["roles"].items()}
    assert paths["context"].endswith("context.db") and paths["events"].endswith("rest.db")
    assert "roles" not in health["adapters"]["postgres"]
    api.disconnect()
