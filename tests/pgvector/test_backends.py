"""The vector backend registry, the VectorMemory block and MemoryAPI on pgvector."""

from __future__ import annotations

import pickle
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memory_resources import vector_backends
from memory_resources.api import MemoryAPI
from memory_resources.blocks.postgres import PostgresMemory
from memory_resources.blocks.vector import VectorMemory
from memory_resources.config import EmbeddedConfig, PostgresConfig, VectorConfig
from memory_resources.errors import ConfigurationError
from memory_resources.stores.numpy_index import NumpyVectorIndex
from memory_resources.stores.pgvector import PgVectorIndex


@pytest.fixture
def plugin_dist(tmp_path: Path) -> Iterator[Path]:
    """An installed-looking distribution on sys.path declaring two vector backends:
    ``fakevec`` (works) and ``brokenvec`` (its module fails to import)."""
    (tmp_path / "fakevec_plugin.py").write_text(textwrap.dedent("""
        CALLS = []

        def create(config, *, postgres, embedded):
            CALLS.append((config, postgres, embedded))
            return ("fake index", config.namespace)
    """))
    dist = tmp_path / "fakevec_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakevec-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[memory_resources.vector_backends]\n"
        "fakevec = fakevec_plugin:create\n"
        "brokenvec = no_such_module_here:create\n"
        "numpy = fakevec_plugin:create\n"
    )
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    sys.modules.pop("fakevec_plugin", None)


def test_entry_point_backend_is_created_with_the_facade_arguments(plugin_dist: Path) -> None:
    """A backend declared in the deprecated entry-point group is listed and built by
    create_vector_index with (config, postgres=, embedded=), with a DeprecationWarning."""
    assert "fakevec" in vector_backends.available_vector_backends()
    config = VectorConfig(backend="FakeVec", namespace="plug")
    postgres = PostgresConfig()
    embedded = EmbeddedConfig.model_validate({})
    with pytest.warns(DeprecationWarning, match="deprecated entry-point group"):
        built: Any = vector_backends.create_vector_index(config, postgres=postgres,
                                                         embedded=embedded)
    assert built == ("fake index", "plug")
    import fakevec_plugin  # type: ignore[import-not-found]

    calls = fakevec_plugin.CALLS
    assert calls == [(config, postgres, embedded)]


def test_entry_points_cannot_shadow_builtins(plugin_dist: Path, tmp_path: Path) -> None:
    """An entry point named like a built-in (numpy) is ignored: the built-in wins."""
    config = VectorConfig(backend="numpy", dimension=4, path=str(tmp_path / "v.db"))
    index = vector_backends.create_vector_index(
        config, postgres=None, embedded=EmbeddedConfig.model_validate({}))
    assert isinstance(index, NumpyVectorIndex)


def test_broken_entry_point_is_a_configuration_error(plugin_dist: Path) -> None:
    """A backend whose module cannot be imported raises ConfigurationError naming it and
    the missing package."""
    with pytest.raises(ConfigurationError, match=r"'brokenvec' backend needs the Python "
                                                 r"package 'no_such_module_here'"):
        vector_backends.resolve_vector_backend("brokenvec")


def test_unknown_backend_lists_the_known_ones() -> None:
    """An unknown name raises ConfigurationError listing every available backend."""
    with pytest.raises(ConfigurationError) as info:
        vector_backends.resolve_vector_backend("pinecone")
    assert "unknown vector backend 'pinecone'" in str(info.value)
    assert "numpy, pgvector, placeholder" in str(info.value)


def test_placeholder_is_the_numpy_index(tmp_path: Path) -> None:
    """The spec's 'placeholder' backend builds the exact numpy index."""
    config = VectorConfig(backend="placeholder", dimension=4, path=str(tmp_path / "v.db"))
    index = vector_backends.create_vector_index(
        config, postgres=None, embedded=EmbeddedConfig.model_validate({}))
    assert isinstance(index, NumpyVectorIndex)


def test_pgvector_uses_the_facade_connection_unless_the_config_has_one(
    pgvector_postgres_config: PostgresConfig,
) -> None:
    """pgvector takes vector_config['postgres'] when given, else the facade's postgres."""
    config = VectorConfig(backend="pgvector", dimension=4)
    embedded = EmbeddedConfig.model_validate({})
    index: Any = vector_backends.create_vector_index(
        config, postgres=pgvector_postgres_config, embedded=embedded)
    assert isinstance(index, PgVectorIndex) and index._postgres is pgvector_postgres_config
    own = PostgresConfig(host="elsewhere")
    index = vector_backends.create_vector_index(
        config.model_copy(update={"postgres": own}), postgres=pgvector_postgres_config,
        embedded=embedded)
    assert index._postgres is own
    with pytest.raises(ConfigurationError, match="needs a PostgreSQL connection"):
        vector_backends.create_vector_index(config, postgres=None, embedded=embedded)


def test_vector_memory_block_builds_pgvector_from_a_nested_postgres_block(
    pgvector_dsn: str, pgvector_schema: str
) -> None:
    """VectorMemory(backend='pgvector', postgres=PostgresMemory(...)) builds a connected
    PgVectorIndex; pickling drops it and the copy rebuilds one over the same data."""
    block = VectorMemory(
        backend="pgvector", dimension=4, metric="euclidean", namespace="blocky",
        postgres=PostgresMemory(dsn=pgvector_dsn, schema=pgvector_schema, auto_migrate=False),
    )
    config = block.to_config()
    assert type(config.postgres) is PostgresConfig and config.postgres.schema_ == pgvector_schema
    try:
        index = block.get_store()
        assert isinstance(index, PgVectorIndex) and block.get_store() is index
        index.upsert(["p"], [[3, 4, 0, 0]], [{"from": "block"}])
        copy = pickle.loads(pickle.dumps(block))
        assert copy._store is None
        try:
            assert copy.get_store().query([0, 0, 0, 0], top_k=1) == [
                {"id": "p", "score": pytest.approx(5.0), "metadata": {"from": "block"}}]
        finally:
            copy.close()
    finally:
        block.close()


def test_vector_memory_block_defaults_to_the_exact_numpy_index(tmp_path: Path) -> None:
    """A VectorMemory with the default backend builds the numpy index at its path; an
    unknown backend fails when the store is built."""
    block = VectorMemory(dimension=4, path=str(tmp_path / "vectors.db"))
    assert block.backend == "placeholder"
    try:
        assert isinstance(block.get_store(), NumpyVectorIndex)
    finally:
        block.close()
    with pytest.raises(ConfigurationError, match="unknown vector backend"):
        VectorMemory(dimension=4, backend="nope").get_store()


def test_memory_api_vector_operations_on_pgvector(
    pgvector_postgres_config: PostgresConfig, tmp_path: Path
) -> None:
    """MemoryAPI(vector_config={'backend': 'pgvector', ...}) indexes, queries with a filter
    and deletes embeddings through the spec's methods."""
    postgres = pgvector_postgres_config.model_dump(by_alias=True)
    postgres["dsn"] = pgvector_postgres_config.dsn.get_secret_value()  # type: ignore[union-attr]
    api = MemoryAPI(
        vector_config={"backend": "pgvector", "dimension": 4, "namespace": "api",
                       "postgres": postgres},
        embedded_config={"path": str(tmp_path / "memory.db")},
    )
    try:
        assert api.connect()
        assert api.index_embedding("doc_001", [0.1, 0.2, 0.3, 0.4], {"type": "document"})
        assert api.index_embedding("doc_002", [0.4, 0.3, 0.2, 0.1], {"type": "note"})
        found = api.query_embeddings([0.1, 0.2, 0.3, 0.4], top_k=5,
                                     filter_metadata={"type": "document"})
        assert [match["id"] for match in found] == ["doc_001"]
        assert found[0]["score"] == pytest.approx(1.0, abs=1e-6)
        assert api.delete_embedding("doc_001") is True
        assert api.get_memory_stats()["adapters"]["vector"]["total_embeddings"] == 1
    finally:
        api.disconnect()
